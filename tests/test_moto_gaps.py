"""The local AWS endpoint decides as AWS would where moto alone does not
(foundation/local/moto_gaps.py): resource ARNs for Secrets Manager, SSM, DynamoDB and ECS,
HeadBucket as s3:ListBucket, and the s3:prefix, s3:delimiter and ecs:cluster conditions, each
refused on the server over HTTP under an IAM user that carries exactly the statements shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from tests.moto_server import ACCOUNT, REGION, MotoAws

BUCKET = "gaps-bundle"


def denied(call, *args, **kwargs) -> bool:
    try:
        call(*args, **kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"] in ("AccessDenied", "403", "AccessDeniedException")
    return False


@pytest.fixture(scope="module")
def bucket(moto_aws: MotoAws) -> str:
    moto_aws.client("s3").create_bucket(Bucket=BUCKET)
    moto_aws.client("s3").put_object(Bucket=BUCKET, Key="dags/a.py", Body=b"")
    return BUCKET


def listing(condition: dict | None) -> list[list[dict]]:
    statement = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"}
    return [[statement | ({"Condition": condition} if condition else {})]]


def test_a_listing_limited_by_prefix_refuses_other_prefixes_and_head_bucket(
    moto_aws: MotoAws, bucket: str
) -> None:
    s3 = moto_aws.client(
        "s3", moto_aws.user_with("prefix", listing({"StringLike": {"s3:prefix": "dags/*"}}))
    )
    assert s3.list_objects_v2(Bucket=bucket, Prefix="dags/")["KeyCount"] == 1
    assert denied(s3.list_objects_v2, Bucket=bucket, Prefix="other/")
    assert denied(s3.list_objects_v2, Bucket=bucket)  # no prefix at all
    assert denied(s3.head_bucket, Bucket=bucket)  # HeadBucket carries no s3:prefix


def test_an_unconditioned_listing_allows_head_bucket_and_the_root(
    moto_aws: MotoAws, bucket: str
) -> None:
    s3 = moto_aws.client("s3", moto_aws.user_with("root", listing(None)))
    s3.head_bucket(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket, Prefix="", Delimiter="/")["CommonPrefixes"] == [
        {"Prefix": "dags/"}
    ]
    assert denied(s3.get_object, Bucket=bucket, Key="dags/a.py")  # no GetObject granted


def test_get_parameters_is_authorized_for_each_parameter_it_names(moto_aws: MotoAws) -> None:
    """As the ECS agent reads a task's SSM secrets (ssm:GetParameters): allowed only if the
    caller may read every parameter named, under a prefix grant as under an exact one."""
    for name in ("/gaps/many/a", "/gaps/many/b", "/gaps/other"):
        moto_aws.client("ssm").put_parameter(Name=name, Value=name[-1], Type="String")
    resource = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/gaps/many/*"
    grant = {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": resource}
    ssm = moto_aws.client("ssm", moto_aws.user_with("many", [[grant]]))
    got = ssm.get_parameters(Names=["/gaps/many/a", "/gaps/many/b"])["Parameters"]
    assert sorted((p["Name"], p["Value"]) for p in got) == [
        ("/gaps/many/a", "a"),
        ("/gaps/many/b", "b"),
    ]
    assert denied(ssm.get_parameters, Names=["/gaps/many/a", "/gaps/other"])
    assert denied(ssm.get_parameters, Names=["/gaps/other"])
    assert denied(ssm.get_parameter, Name="/gaps/many/a")  # another action: not granted


def test_named_secrets_parameters_and_tables_are_enforced_by_arn(moto_aws: MotoAws) -> None:
    admin = moto_aws.client
    mine = admin("secretsmanager").create_secret(Name="gaps/mine", SecretString="1")["ARN"]
    admin("secretsmanager").create_secret(Name="gaps/theirs", SecretString="2")
    admin("ssm").put_parameter(Name="/gaps/mine", Value="1", Type="String")
    admin("ssm").put_parameter(Name="/gaps/theirs", Value="2", Type="String")
    for table in ("gaps-mine", "gaps-theirs"):
        admin("dynamodb").create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:"
    creds = moto_aws.user_with(
        "arns",
        [
            [
                {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": mine},
                {
                    "Effect": "Allow",
                    "Action": "ssm:GetParameter",
                    "Resource": prefix.format("ssm") + "parameter/gaps/mine",
                },
                {
                    "Effect": "Allow",
                    "Action": "dynamodb:GetItem",
                    "Resource": prefix.format("dynamodb") + "table/gaps-mine",
                },
            ]
        ],
    )
    secrets, ssm = moto_aws.client("secretsmanager", creds), moto_aws.client("ssm", creds)
    assert secrets.get_secret_value(SecretId="gaps/mine")["SecretString"] == "1"
    assert secrets.get_secret_value(SecretId=mine)["SecretString"] == "1"
    assert denied(secrets.get_secret_value, SecretId="gaps/theirs")
    assert ssm.get_parameter(Name="/gaps/mine")["Parameter"]["Value"] == "1"
    assert denied(ssm.get_parameter, Name="/gaps/theirs")
    assert denied(ssm.get_parameters, Names=["/gaps/mine"])  # another action: not granted
    dynamodb = moto_aws.client("dynamodb", creds)
    key = {"k": {"S": "a"}}
    assert "Item" not in dynamodb.get_item(TableName="gaps-mine", Key=key)
    assert denied(dynamodb.get_item, TableName="gaps-theirs", Key=key)


def test_ecs_calls_are_held_to_their_cluster(moto_aws: MotoAws) -> None:
    moto_aws.client("ecs").create_cluster(clusterName="gaps")
    moto_aws.client("ecs").create_cluster(clusterName="gaps-other")
    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/gaps"
    statement = {
        "Effect": "Allow",
        "Action": "ecs:StopTask",
        "Resource": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/*",
        "Condition": {"ArnEquals": {"ecs:cluster": cluster}},
    }
    ecs = moto_aws.client("ecs", moto_aws.user_with("ecs", [[statement]]))
    with pytest.raises(ClientError) as missing:  # allowed; ECS's answer for an unknown task
        ecs.stop_task(cluster="gaps", task="a" * 32)
    assert missing.value.response["Error"]["Code"] == "InvalidParameterException"
    assert denied(ecs.stop_task, cluster="gaps-other", task="a" * 32)


def test_task_protection_is_kept_per_task_and_held_to_the_tasks_own_tag(
    moto_aws: MotoAws,
) -> None:
    """What a DAG's Celery worker role is granted (catalog.yaml celery_worker.protect): its own
    service's tasks only, told apart by their `foundation:queue` tag."""
    admin = moto_aws.client("ecs")
    admin.create_cluster(clusterName="gaps-protect")
    admin.register_task_definition(
        family="gaps-protect",
        containerDefinitions=[{"name": "c", "image": "i", "memory": 512}],
    )

    def task(started_by: str, tags: list[dict]) -> str:
        run = admin.run_task(
            cluster="gaps-protect",
            taskDefinition="gaps-protect",
            launchType="FARGATE",
            startedBy=started_by,
            tags=tags,
        )
        return run["tasks"][0]["taskArn"]

    own = task("ecs-svc/a", [{"key": "foundation:queue", "value": "q-a"}])
    other = task("ecs-svc/b", [{"key": "foundation:queue", "value": "q-b"}])
    untagged = task("ecs-svc/c", [])
    standalone = task("someone", [{"key": "foundation:queue", "value": "q-a"}])
    statement = {
        "Effect": "Allow",
        "Action": ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
        "Resource": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/gaps-protect/*",
        "Condition": {
            "ArnEquals": {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/gaps-protect"},
            "StringEquals": {"aws:ResourceTag/foundation:queue": "q-a"},
        },
    }
    ecs = moto_aws.client("ecs", moto_aws.user_with("protect", [[statement]]))

    def protect(arn: str, enabled: bool, minutes: int | None = None) -> dict:
        extra = {"expiresInMinutes": minutes} if minutes else {}
        return ecs.update_task_protection(
            cluster="gaps-protect", tasks=[arn], protectionEnabled=enabled, **extra
        )

    set_on = protect(own, True, 60)
    [protected] = set_on["protectedTasks"]
    assert (protected["taskArn"], protected["protectionEnabled"], set_on["failures"]) == (
        own,
        True,
        [],
    )
    lasts = protected["expirationDate"] - datetime.now(UTC)
    assert 3540 < lasts.total_seconds() <= 3600
    got = ecs.get_task_protection(cluster="gaps-protect", tasks=[own])["protectedTasks"]
    assert got == [protected]
    [released] = protect(own, False)["protectedTasks"]
    assert released == {"taskArn": own, "protectionEnabled": False}
    for refused in (other, untagged):
        assert denied(protect, refused, True)
        assert denied(ecs.get_task_protection, cluster="gaps-protect", tasks=[refused])
    answer = admin.update_task_protection(
        cluster="gaps-protect", tasks=[standalone, "f" * 32], protectionEnabled=True
    )
    assert answer["protectedTasks"] == []
    assert answer["failures"] == [
        {"arn": standalone, "reason": "TASK_NOT_VALID"},
        {"arn": "f" * 32, "reason": "MISSING"},
    ]


def test_a_queue_policys_deny_holds_for_everyone_but_the_role_it_spares(
    moto_aws: MotoAws,
) -> None:
    """moto enforces no queue policy: moto_gaps evaluates its denies, with aws:PrincipalArn the
    role (its path included) of a session, or the user."""
    import json

    iam, sqs = moto_aws.client("iam"), moto_aws.client("sqs")
    url = sqs.create_queue(QueueName="gaps-guarded")["QueueUrl"]
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:gaps-guarded"
    trust = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"}}
    role = iam.create_role(
        RoleName="gaps-sender",
        Path="/gaps/",
        AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [trust | {"Action": "sts:AssumeRole"}]}
        ),
    )["Role"]["Arn"]
    everything = {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}
    iam.put_role_policy(
        RoleName="gaps-sender",
        PolicyName="sqs",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [everything]}),
    )
    only_the_role = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "sqs:SendMessage",
        "Resource": queue,
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": role}},
    }
    policy = {"Version": "2012-10-17", "Statement": [only_the_role]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    session = moto_aws.client("sts").assume_role(RoleArn=role, RoleSessionName="sender")
    keys = session["Credentials"]
    import boto3

    as_role = boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto_aws.endpoint,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
    )
    user = moto_aws.client("sqs", moto_aws.user_with("broad-sqs", [[everything]]))
    as_role.send_message(QueueUrl=url, MessageBody="from the role")
    assert denied(user.send_message, QueueUrl=url, MessageBody="from anyone else")
    assert denied(moto_aws.client("sqs").send_message, QueueUrl=url, MessageBody="the admin")
    user.receive_message(QueueUrl=url)  # not denied: the policy names SendMessage only
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    user.send_message(QueueUrl=url, MessageBody="no policy, no deny")
