"""The generated grants are what Airflow's amazon provider actually calls.

Each test writes a manifest into a copy of the example project, loads it with the real generator
(`load_project`), and runs the provider's own code against a local moto server with IAM access
control enforced, under an IAM user that carries exactly that DAG's generated policies (one
managed policy per generated policy, as the DAG's role would). The hooks get no connection
(`aws_conn_id=None`, and an empty `[logging] remote_log_conn_id` as the deployment sets it), so
they find the user's keys in the environment the way a task finds its ECS task role. Every test
also makes calls outside the grant and asserts that moto refuses them with a 403 (or, for the
log handler, that nothing was written), so no test can pass with enforcement off. The tests
run `without` an action show that the action is needed: glue:GetJob before StartJobRun,
s3:GetObject before the log handler's PutObject, glue:GetCrawlerMetrics at the end of the
crawler wait.

What this proves, for S3 read and write (of a prefix and of a whole bucket), the task-log
baseline, the DAG's own secrets and named secrets, Glue jobs and crawlers, Athena, EMR steps,
Redshift Data, Data Pipeline (through the generic AwsBaseHook: the provider has no Data Pipeline
hook), SQS send and consume, SNS, Lambda
and DynamoDB read and write: the action set of each grant covers every call the provider makes
on its default path, and the provider cannot do more than the grant. For S3, SQS, Secrets
Manager and SSM moto also checks the real bucket, object, queue, secret and parameter ARNs
(the last two through foundation/local/moto_gaps.py), so resource scoping is proven there too
(a sibling prefix `sales_eu/` next to `sales/`, another DAG's log prefix, another queue, a
near secret name, another DAG's secrets prefix), and S3's `s3:prefix` condition is evaluated
(moto_gaps.py again), so listing a sibling prefix is refused.

What moto cannot prove, and where it is covered instead:
- Resource scoping of every other service. moto checks those calls against the literal resource
  "*", so `as_moto_enforces` widens their statements to "*" (here a DAG could start any Glue
  job; DynamoDB is left at "*" because moto checks its batch calls against "*" too).
  tests/test_isolation_property.py evaluates the real ARNs, prefixes and
  conditions against colliding names, and tests/test_catalog.py checks every action and resource
  type against the IAM database.
- Conditions other than S3's: the Redshift Data statement-owner condition is dropped here
  (tests/test_redshift_data.py evaluates it, with the workgroup and secret scoping).
- Redshift Serverless itself: moto has no redshift-serverless service, so
  redshift-serverless:GetCredentials (which the Data API calls on the caller's behalf for a
  workgroup) is checked against the IAM database and the toolkit's evaluation only.
- Checks AWS makes on a caller's behalf: iam:PassRole, redshift:GetClusterCredentials for the
  Data API's db_user, Athena's reads of the Glue catalog and writes to the results location, KMS,
  and s3:ListBucket turning a missing key's 403 into a 404 (moto answers 404 regardless). The
  Athena test makes the Glue and S3 calls itself, with the DAG's keys, as a stand-in.
- Calls moto does not implement: glue:GetCrawlerMetrics and datapipeline:QueryObjects. moto
  checks IAM before it finds a call unimplemented, so its 500 shows the call was authorized (and
  the crawler test shows a 403 once the action is removed).
- S3 batch deletes scoped per key: see `as_moto_enforces`.
- Non-default paths: on_kill (StopQueryExecution, BatchStopJobRun, CancelStatement), deferrable
  triggers (elasticmapreduce:ListSteps), durable retries (glue:GetJobRuns), a list of SQL
  (BatchExecuteStatement) and failed multipart uploads (AbortMultipartUpload) are not run.
Lambda is invoked with a payload: moto fails the signature of a body-less Lambda request when
IAM is enforced, and the operator's default payload is None.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from foundation.airflow.settings import dag_worker
from foundation.project import load_project
from tests.conftest import ProjectDir
from tests.moto_server import ACCOUNT, REGION, Credentials, MotoAws

EXAMPLE_ACCOUNT = "111122223333"
NO_RETRIES = Config(retries={"total_max_attempts": 1})

# --- What moto 5.2.5 enforces, and the one place the generated statements are adapted to it ---

# Services whose calls moto checks against the real ARN: S3 builds bucket and object ARNs
# (moto/core/authorization.py, _authenticate_and_authorize_s3_action), SQS, IAM and STS
# define _determine_resource (the queue ARN, the role ARN), and foundation/local/moto_gaps.py
# adds it for Secrets Manager and SSM (the secret, the parameter). Their statements are kept
# as generated, so resource scoping is really enforced for them.
MOTO_CHECKS_ARNS = frozenset({"s3", "sqs", "iam", "sts", "secretsmanager", "ssm"})
# Every other service's calls are checked against the literal resource "*"
# (BaseResponse.call_action in moto/core/responses.py), which no ARN pattern matches, so their
# statements get Resource "*": moto can check only their action sets.
MOTO_CHECKS_STAR = frozenset(
    {
        "athena",
        "datapipeline",
        "dynamodb",
        "ecs",
        "elasticmapreduce",
        "glue",
        "kms",
        "lambda",
        "logs",
        "redshift",
        "redshift-data",
        "redshift-serverless",
        "sns",
    }
)
# moto authorizes these calls under their API operation name, where IAM has one action for the
# operation (lambda:InvokeFunction covers Invoke; sqs:DeleteMessage covers DeleteMessageBatch).
MOTO_ACTION_ALIASES = {
    "lambda:InvokeFunction": ("lambda:Invoke",),
    "sqs:DeleteMessage": ("sqs:DeleteMessageBatch",),
}


def as_moto_enforces(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The generated statements, changed only where moto checks differently from IAM.

    - Resource "*" for the services in MOTO_CHECKS_STAR (see above).
    - moto's names for actions added next to IAM's (MOTO_ACTION_ALIASES).
    - Conditions dropped: moto gives identity policies no request context (only
      sts:ExternalId), and a condition with no value to compare, or with an operator other than
      StringEquals, holds (moto/iam/access_control.py _check_conditions and
      policy_conditions.py). They change nothing moto decides; without them the document
      shows what is really checked.
    - s3:DeleteObject also on the bucket ARN: moto authorizes a DeleteObjects (batch) request
      once, as s3:DeleteObject on the bucket ARN (moto/s3/responses.py, _bucket_response_post),
      and then checks each key only against the bucket policy. AWS checks s3:DeleteObject per
      key, which the generated object-ARN statement grants. So moto cannot show a batch delete
      scoped to the prefix; the write test shows the scoping with a single-key DeleteObject.
    """
    out = []
    for statement in statements:
        actions = statement["Action"]
        services = {action.split(":", 1)[0] for action in actions}
        unknown = services - MOTO_CHECKS_ARNS - MOTO_CHECKS_STAR
        assert not unknown, f"as_moto_enforces does not know how moto checks {sorted(unknown)}"
        assert services <= MOTO_CHECKS_STAR or not services & MOTO_CHECKS_STAR, statement
        # moto_gaps evaluates s3:prefix: S3's conditions stay
        keep_condition = services == {"s3"}
        adapted = {k: v for k, v in statement.items() if k != "Condition" or keep_condition}
        aliases = [alias for action in actions for alias in MOTO_ACTION_ALIASES.get(action, ())]
        adapted["Action"] = [*actions, *aliases]
        if services <= MOTO_CHECKS_STAR:
            adapted["Resource"] = "*"
        out.append(adapted)
        if "s3:DeleteObject" in actions:
            buckets = sorted({arn.split("/", 1)[0] for arn in statement["Resource"]})
            sid = f"{statement['Sid']}MotoDeleteObjects"
            out.append(
                {"Sid": sid, "Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": buckets}
            )
    return out


# --- Helpers ---


@pytest.fixture
def moto_project(empty_project: ProjectDir) -> ProjectDir:
    """The example's config in moto's account, so generated ARNs name moto's resources."""
    config = empty_project.root / "config" / "foundation.yaml"
    text = config.read_text()
    assert EXAMPLE_ACCOUNT in text
    config.write_text(text.replace(EXAMPLE_ACCOUNT, ACCOUNT))
    return empty_project


def generated_policies(
    project: ProjectDir, dag_id: str, permissions: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    """Write the DAG's manifest, load the project, and return the DAG's managed policies."""
    manifest = {"dag_id": dag_id, "owner": "tests@example.com"}
    if permissions:
        manifest["permissions"] = permissions
    project.manifest(dag_id, yaml.safe_dump(manifest, sort_keys=False))
    loaded = load_project(project.root)
    assert not loaded.findings
    dag = next(d for d in loaded.dags if d.dag_id == dag_id)
    return [[statement.document() for statement in policy] for policy in dag.policy.policies]


def without_action(policies: list[list[dict]], action: str) -> list[list[dict]]:
    """The policies with one action taken out (which must be there): to show it is needed."""
    assert any(action in s["Action"] for policy in policies for s in policy), action
    out = []
    for policy in policies:
        kept = [{**s, "Action": [a for a in s["Action"] if a != action]} for s in policy]
        out.append([s for s in kept if s["Action"]])
    return out


RunAs = Callable[..., list[list[dict[str, Any]]]]


@pytest.fixture
def run_as(moto_env: MotoAws, moto_project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> RunAs:
    """Make the environment's AWS keys those of a user carrying the DAG's generated policies.

    `run_as(dag_id, permissions, without="svc:Action")` writes the manifest, generates the
    policies, optionally removes one action, adapts them with `as_moto_enforces`, and returns
    the policies as generated.
    """

    def switch(
        dag_id: str, permissions: dict[str, Any] | None = None, without: str | None = None
    ) -> list[list[dict[str, Any]]]:
        policies = generated_policies(moto_project, dag_id, permissions or {})
        if without:
            policies = without_action(policies, without)
        creds = moto_env.user_with(dag_id, [as_moto_enforces(policy) for policy in policies])
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_access_key)
        return policies

    return switch


def dag_client(moto_aws: MotoAws, service: str) -> Any:
    """A plain client with the DAG's keys, for calls the provider's hooks do not make."""
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    return moto_aws.client(service, creds)


def worker_environment(project: ProjectDir, dag_id: str) -> dict[str, str]:
    """The environment the deployment gives the DAG's task containers."""
    return dag_worker(load_project(project.root).deployment, dag_id).environment


def assert_denied(call: Callable[[], Any], action: str | None = None) -> None:
    """`call` fails because moto's IAM check refused it, not for any other reason.

    The refusal may come wrapped (DynamoDBHook raises AirflowException from it). JSON-protocol
    services report it with the code "403" and name the action in the message; S3 reports
    AccessDenied, or a bare 403 for HEAD, which has no body.
    """
    with pytest.raises(Exception) as caught:
        call()
    error: BaseException | None = caught.value
    while error is not None and not isinstance(error, ClientError):
        error = error.__cause__
    assert isinstance(error, ClientError), f"not refused by IAM: {caught.value!r}"
    response = error.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403, response
    assert response["Error"]["Code"] in {"AccessDenied", "AccessDeniedException", "403"}, response
    if action:
        assert f"not authorized to perform: {action}" in str(error)


class RecordingTaskInstance:
    """What a sensor's poke needs of the context's task instance: somewhere to push XComs."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        self.xcoms[key] = value


def make_bucket(moto_aws: MotoAws, name: str, objects: dict[str, str] | None = None) -> None:
    s3 = moto_aws.client("s3")
    if name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=name)
    for key, body in (objects or {}).items():
        s3.put_object(Bucket=name, Key=key, Body=body.encode())


def object_text(moto_aws: MotoAws, bucket: str, key: str) -> str | None:
    try:
        body = moto_aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    except moto_aws.client("s3").exceptions.NoSuchKey:
        return None
    return body.read().decode()


# --- S3 ---


def test_s3_read_reads_and_lists_its_prefix_only(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket = "acme-lake-read"
    objects = {"sales/2024/day.csv": "a,b\n1,2\n", "sales_eu/day.csv": "eu"}
    make_bucket(moto_aws, bucket, objects)
    run_as("s3_reader", {"s3": [{"bucket": bucket, "prefix": "sales/", "access": "read"}]})
    hook = S3Hook(aws_conn_id=None)

    assert hook.check_for_key("sales/2024/day.csv", bucket) is True
    assert hook.read_key("sales/2024/day.csv", bucket) == "a,b\n1,2\n"
    assert hook.list_keys(bucket, prefix="sales/") == ["sales/2024/day.csv"]

    assert_denied(lambda: hook.read_key("sales_eu/day.csv", bucket))  # the sibling prefix
    assert_denied(lambda: hook.list_keys(bucket, prefix="sales_eu/"))  # s3:prefix, evaluated
    assert_denied(lambda: hook.load_string("x", "sales/new.csv", bucket, replace=True))


def test_s3_write_writes_and_deletes_in_its_prefix_only(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket = "acme-lake-write"
    make_bucket(moto_aws, bucket, {"out/old.csv": "old", "out_eu/keep.csv": "keep"})
    run_as("s3_writer", {"s3": [{"bucket": bucket, "prefix": "out/", "access": "write"}]})
    hook = S3Hook(aws_conn_id=None)

    hook.load_string("1,2\n", "out/new.csv", bucket, replace=True)
    assert object_text(moto_aws, bucket, "out/new.csv") == "1,2\n"
    big = b"x" * (9 * 1024 * 1024)  # above the 8 MiB threshold: a multipart upload
    hook.load_bytes(big, "out/big.bin", bucket, replace=True)
    head = moto_aws.client("s3").head_object(Bucket=bucket, Key="out/big.bin")
    assert head["ContentLength"] == len(big)
    hook.delete_objects(bucket, ["out/old.csv", "out/new.csv", "out/big.bin"])
    assert moto_aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="out/")["KeyCount"] == 0

    s3 = hook.get_conn()
    assert_denied(lambda: s3.delete_object(Bucket=bucket, Key="out_eu/keep.csv"))
    assert_denied(lambda: s3.put_object(Bucket=bucket, Key="out_eu/new.csv", Body=b"x"))
    assert_denied(lambda: hook.read_key("out_eu/keep.csv", bucket))
    # Write-only cannot read: this also refuses S3Hook.load_* with the default replace=False,
    # which HEADs the key (s3:GetObject) before it writes.
    hook.load_string("again", "out/again.csv", bucket, replace=True)
    assert_denied(lambda: hook.read_key("out/again.csv", bucket))
    assert_denied(lambda: hook.load_string("x", "out/again.csv", bucket))


def test_s3_whole_bucket_is_all_of_that_bucket_and_no_other(
    moto_aws: MotoAws, run_as: RunAs
) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket, beside = "acme-lake-owned", "acme-lake-owned2"
    make_bucket(moto_aws, bucket, {"top.csv": "t", "deep/er/key.csv": "d"})
    make_bucket(moto_aws, beside, {"top.csv": "other"})
    run_as("s3_owner", {"s3": [{"bucket": bucket, "access": "read_write"}]})
    hook = S3Hook(aws_conn_id=None)

    assert hook.check_for_bucket(bucket) is True  # HeadBucket: a request with no s3:prefix
    assert sorted(hook.list_keys(bucket)) == ["deep/er/key.csv", "top.csv"]  # the root
    assert hook.read_key("deep/er/key.csv", bucket) == "d"
    hook.load_string("n", "new/x.csv", bucket, replace=True)
    hook.delete_objects(bucket, ["top.csv"])
    assert sorted(hook.list_keys(bucket)) == ["deep/er/key.csv", "new/x.csv"]

    assert hook.check_for_bucket(beside) is False  # refused: the hook logs the 403
    assert_denied(lambda: hook.get_conn().head_bucket(Bucket=beside))
    assert_denied(lambda: hook.list_keys(beside))
    assert_denied(lambda: hook.read_key("top.csv", beside))
    assert_denied(lambda: hook.load_string("x", "top.csv", beside, replace=True))


# --- Task logs (the baseline every DAG gets) ---


def _write_log(base: Path, dag_id: str, text: str) -> Path:
    path = base / f"dag_id={dag_id}" / "run_id=manual__1" / "task_id=extract" / "attempt=1.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _log_io(
    project: ProjectDir, dag_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, str]:
    """The S3 remote-log IO as Airflow builds it from the DAG worker's [logging] settings."""
    from airflow.providers.amazon.aws.log.s3_task_handler import S3RemoteLogIO

    for name, value in worker_environment(project, dag_id).items():
        if name.startswith("AIRFLOW__LOGGING__"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path))
    log_io = S3RemoteLogIO.from_config()
    bucket = load_project(project.root).deployment.logs_bucket
    assert log_io.remote_base == f"s3://{bucket}/task-logs"
    return log_io, bucket


def test_task_logs_upload_append_and_read_in_own_prefix_only(
    moto_aws: MotoAws,
    run_as: RunAs,
    moto_project: ProjectDir,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_as("logs_dag")
    log_io, bucket = _log_io(moto_project, "logs_dag", tmp_path, monkeypatch)
    make_bucket(moto_aws, bucket)
    relative = "dag_id=logs_dag/run_id=manual__1/task_id=extract/attempt=1.log"

    local = _write_log(tmp_path, "logs_dag", "first\n")
    log_io.upload(local)  # HeadObject (404), PutObject
    assert object_text(moto_aws, bucket, f"task-logs/{relative}") == "first\n"
    assert local.read_text() == ""  # uploaded, so the handler emptied the local copy
    local.write_text("second\n")
    log_io.upload(local)  # HeadObject, GetObject (the old log), PutObject
    assert object_text(moto_aws, bucket, f"task-logs/{relative}") == "first\nsecond\n"
    _, logs = log_io.read(relative, None)  # ListObjectsV2, HeadObject, GetObject
    assert logs == ["first\nsecond\n"]

    # Another DAG's prefix: write() reports the failure, upload() keeps the local copy.
    other = _write_log(tmp_path, "other_dag", "not mine\n")
    other_key = f"task-logs/{other.relative_to(tmp_path)}"
    assert log_io.write("not mine\n", f"s3://{bucket}/{other_key}") is False
    log_io.upload(other)
    assert object_text(moto_aws, bucket, other_key) is None
    assert other.read_text() == "not mine\n"


def test_task_logs_upload_needs_get_object_before_put(
    moto_aws: MotoAws,
    run_as: RunAs,
    moto_project: ProjectDir,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_as("logs_no_read", without="s3:GetObject")
    log_io, bucket = _log_io(moto_project, "logs_no_read", tmp_path, monkeypatch)
    make_bucket(moto_aws, bucket)

    local = _write_log(tmp_path, "logs_no_read", "first\n")
    log_io.upload(local)  # the HeadObject is refused, so the handler never PUTs
    key = f"task-logs/{local.relative_to(tmp_path)}"
    assert object_text(moto_aws, bucket, key) is None
    assert local.read_text() == "first\n"


# --- Secrets ---


def test_secrets_own_prefix_and_named_secret(
    moto_aws: MotoAws, run_as: RunAs, moto_project: ProjectDir
) -> None:
    from airflow.providers.amazon.aws.hooks.secrets_manager import SecretsManagerHook

    dag_id = "secrets_dag"
    admin = moto_aws.client("secretsmanager")
    uri = "postgres://etl:pw@warehouse.internal:5432/sales"
    admin.create_secret(Name=f"acme-airflow/dags/{dag_id}/connections/warehouse", SecretString=uri)
    admin.create_secret(Name=f"acme-airflow/dags/{dag_id}/variables/threshold", SecretString="42")
    admin.create_secret(Name="shared/salesforce-oauth", SecretString="token-1")
    admin.create_secret(Name="shared/salesforce-oauth-admin", SecretString="not yours")
    admin.create_secret(Name="acme-airflow/dags/other_dag/variables/threshold", SecretString="7")
    run_as(dag_id, {"secrets": ["shared/salesforce-oauth"]})

    # The secrets backend exactly as the deployment configures the DAG's workers.
    environment = worker_environment(moto_project, dag_id)
    module, _, name = environment["AIRFLOW__WORKERS__SECRETS_BACKEND"].rpartition(".")
    backend_class = getattr(importlib.import_module(module), name)
    backend = backend_class(**json.loads(environment["AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS"]))
    assert backend.get_conn_value("warehouse") == uri
    assert backend.get_variable("threshold") == "42"
    hook = SecretsManagerHook(aws_conn_id=None)
    assert hook.get_secret("shared/salesforce-oauth") == "token-1"
    # by ARN (foundation/local/moto_gaps.py): a near name and another DAG's prefix are refused
    for other in (
        "shared/salesforce-oauth-admin",
        "acme-airflow/dags/other_dag/variables/threshold",
    ):
        assert_denied(lambda o=other: hook.get_secret(o), "secretsmanager:GetSecretValue")

    name = "shared/salesforce-oauth"
    assert_denied(lambda: hook.conn.describe_secret(SecretId=name), "secretsmanager:DescribeSecret")
    assert_denied(
        lambda: hook.conn.put_secret_value(SecretId=name, SecretString="stolen"),
        "secretsmanager:PutSecretValue",
    )


# --- Glue ---


def _glue_job(moto_aws: MotoAws, name: str) -> None:
    moto_aws.client("glue").create_job(
        Name=name,
        Role=f"arn:aws:iam::{ACCOUNT}:role/glue-etl",
        Command={"Name": "glueetl", "ScriptLocation": "s3://acme-artifacts/glue/curate.py"},
    )


def test_glue_job_starts_and_completes(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook

    _glue_job(moto_aws, "orders-curate")
    run_as("glue_job_dag", {"glue": {"jobs": ["orders-curate"]}})
    hook = GlueJobHook(aws_conn_id=None, job_name="orders-curate", job_poll_interval=0)

    run_id = hook.initialize_job()["JobRunId"]  # GetJob, StartJobRun
    assert hook.get_job_state("orders-curate", run_id) in {"STARTING", "RUNNING", "SUCCEEDED"}
    assert hook.job_completion("orders-curate", run_id)["JobRunState"] == "SUCCEEDED"

    assert_denied(lambda: hook.conn.delete_job(JobName="orders-curate"), "glue:DeleteJob")


def test_glue_job_needs_get_job_before_start(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook

    _glue_job(moto_aws, "orders-recurate")
    run_as("glue_no_get_job", {"glue": {"jobs": ["orders-recurate"]}}, without="glue:GetJob")
    hook = GlueJobHook(aws_conn_id=None, job_name="orders-recurate")

    assert_denied(hook.initialize_job, "glue:GetJob")
    runs = moto_aws.client("glue").get_job_runs(JobName="orders-recurate")["JobRuns"]
    assert runs == []  # the hook never reached StartJobRun


@pytest.mark.parametrize("with_metrics", [True, False], ids=["granted", "without_metrics"])
def test_glue_crawler_starts_and_waits(
    moto_aws: MotoAws, run_as: RunAs, with_metrics: bool
) -> None:
    from airflow.providers.amazon.aws.hooks.glue_crawler import GlueCrawlerHook

    crawler = f"orders-crawler-{with_metrics}".lower()
    moto_aws.client("glue").create_crawler(
        Name=crawler, Role="glue-crawler", Targets={"S3Targets": [{"Path": "s3://acme-curated/"}]}
    )
    moto_aws.set_transition("glue::crawl", "immediate")
    without = None if with_metrics else "glue:GetCrawlerMetrics"
    run_as("glue_crawler_dag", {"glue": {"crawlers": [crawler]}}, without=without)
    hook = GlueCrawlerHook(aws_conn_id=None, config=NO_RETRIES)

    assert hook.has_crawler(crawler) is True
    hook.start_crawler(crawler)
    # The wait polls GetCrawler, then calls GetCrawlerMetrics, which moto does not implement.
    # moto checks IAM first: a 500 means the call was authorized, a 403 that it was not.
    with pytest.raises(ClientError) as caught:
        hook.wait_for_crawler_completion(crawler, poll_interval=0)
    assert caught.value.operation_name == "GetCrawlerMetrics"
    status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == (500 if with_metrics else 403)

    assert_denied(lambda: hook.glue_client.delete_crawler(Name=crawler), "glue:DeleteCrawler")


# --- Athena ---


def test_athena_query_in_its_workgroup(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.athena import AthenaHook

    results_bucket = "acme-athena-results"
    make_bucket(moto_aws, results_bucket)
    moto_aws.client("athena").create_work_group(Name="marketing")
    glue = moto_aws.client("glue")
    glue.create_database(DatabaseInput={"Name": "marketing_curated"})
    glue.create_table(DatabaseName="marketing_curated", TableInput={"Name": "campaigns"})
    run_as(
        "athena_dag",
        {
            "athena": {
                "workgroups": ["marketing"],
                "databases": ["marketing_curated"],
                "results": {"bucket": results_bucket, "prefix": "marketing/"},
            }
        },
    )
    hook = AthenaHook(aws_conn_id=None)
    output = f"s3://{results_bucket}/marketing/"

    query_id = hook.run_query(
        "SELECT campaign, clicks FROM campaigns",
        {"Database": "marketing_curated", "Catalog": "AwsDataCatalog"},
        {"OutputLocation": output},
        workgroup="marketing",
    )
    assert hook.poll_query_status(query_id, sleep_time=0) == "SUCCEEDED"
    assert hook.check_query_status(query_id) == "SUCCEEDED"
    assert "ResultSet" in hook.get_query_results(query_id)
    assert hook.get_output_location(query_id).startswith(output)

    athena = hook.get_conn()
    assert_denied(lambda: athena.delete_work_group(WorkGroup="marketing"), "athena:DeleteWorkGroup")
    assert_denied(lambda: athena.create_work_group(Name="mine"), "athena:CreateWorkGroup")

    # Athena reads the catalog and writes results with the caller's credentials; moto's Athena
    # does neither, so make those calls with the DAG's keys as a stand-in.
    catalog = dag_client(moto_aws, "glue")
    assert catalog.get_database(Name="marketing_curated")["Database"]["Name"] == "marketing_curated"
    table = catalog.get_table(DatabaseName="marketing_curated", Name="campaigns")
    assert table["Table"]["Name"] == "campaigns"
    s3 = dag_client(moto_aws, "s3")
    s3.put_object(Bucket=results_bucket, Key="marketing/q1.csv", Body=b"campaign,clicks\n")
    assert s3.get_object(Bucket=results_bucket, Key="marketing/q1.csv")["Body"].read()
    assert_denied(lambda: s3.put_object(Bucket=results_bucket, Key="finance/q1.csv", Body=b"x"))


# --- EMR ---


def test_emr_add_steps_and_watch_them(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator
    from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor

    cluster = moto_aws.emr_cluster("analytics", LogUri="s3://acme-emr-logs/analytics/")
    run_as("emr_dag", {"emr": {"clusters": [cluster]}})
    steps = [
        {
            "Name": "sessionise",
            "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "job.py"]},
        }
    ]

    add = EmrAddStepsOperator(
        task_id="add", job_flow_id=cluster, steps=steps, aws_conn_id=None, do_xcom_push=False
    )
    step_ids = add.execute({})  # DescribeCluster (the logs link), AddJobFlowSteps
    assert len(step_ids) == 1
    ti = RecordingTaskInstance()
    sensor = EmrStepSensor(
        task_id="watch", job_flow_id=cluster, step_id=step_ids[0], aws_conn_id=None
    )
    assert sensor.poke({"ti": ti}) is False  # DescribeStep, DescribeCluster; moto never finishes

    emr = add.hook.conn
    assert_denied(
        lambda: emr.terminate_job_flows(JobFlowIds=[cluster]), "elasticmapreduce:TerminateJobFlows"
    )


# --- Redshift Data ---


def test_redshift_data_statement(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.redshift_data import RedshiftDataHook

    target = {"cluster": "analytics", "database": "finance", "db_user": "etl_finance"}
    run_as("redshift_dag", {"redshift_data": [target]})
    hook = RedshiftDataHook(aws_conn_id=None)

    output = hook.execute_query(
        sql="COPY ledger FROM 's3://acme-curated/ledger/'",
        database="finance",
        cluster_identifier="analytics",
        db_user="etl_finance",
        wait_for_completion=False,
    )
    assert hook.check_query_is_finished(output.statement_id) is False  # moto never finishes
    described = hook.conn.describe_statement(Id=output.statement_id)
    assert described["ClusterIdentifier"] == "analytics"
    # What RedshiftDataOperator(return_sql_result=True) fetches.
    assert hook.conn.get_statement_result(Id=output.statement_id)["Records"]

    # moto implements no other Redshift Data call; it refuses before looking for one.
    assert_denied(
        lambda: hook.conn.list_databases(ClusterIdentifier="analytics", Database="finance"),
        "redshift-data:ListDatabases",
    )


def test_redshift_serverless_statement(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.redshift_data import RedshiftDataHook

    workgroup_id = "8d2a1c3e-4b5f-4a6b-9c7d-0e1f2a3b4c5d"
    target = {"workgroup": "reports", "workgroup_id": workgroup_id, "database": "sales"}
    run_as("serverless_dag", {"redshift_data": [target]})
    hook = RedshiftDataHook(aws_conn_id=None)

    output = hook.execute_query(
        sql="SELECT 1", database="sales", workgroup_name="reports", wait_for_completion=False
    )
    assert hook.check_query_is_finished(output.statement_id) is False  # moto never finishes
    assert hook.conn.get_statement_result(Id=output.statement_id)["Records"]
    assert_denied(
        lambda: hook.conn.list_databases(WorkgroupName="reports", Database="sales"),
        "redshift-data:ListDatabases",
    )


def test_redshift_data_with_a_secret(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.redshift_data import RedshiftDataHook

    admin = moto_aws.client("secretsmanager")
    admin.create_secret(Name="redshift/finance-etl", SecretString='{"username": "etl"}')
    admin.create_secret(Name="redshift/finance-admin", SecretString='{"username": "admin"}')
    target = {"cluster": "analytics", "database": "finance", "secret": "redshift/finance-etl"}
    run_as("secret_login_dag", {"redshift_data": [target]})
    hook = RedshiftDataHook(aws_conn_id=None)

    output = hook.execute_query(
        sql="SELECT 1",
        database="finance",
        cluster_identifier="analytics",
        secret_arn="redshift/finance-etl",
        wait_for_completion=False,
    )
    assert hook.conn.describe_statement(Id=output.statement_id)["ClusterIdentifier"] == "analytics"
    # The Data API reads the secret with the caller's identity (moto does not): the same read,
    # with the DAG's keys, of the named secret and of another.
    secrets = dag_client(moto_aws, "secretsmanager")
    value = secrets.get_secret_value(SecretId="redshift/finance-etl")["SecretString"]
    assert value == '{"username": "etl"}'
    assert_denied(
        lambda: secrets.get_secret_value(SecretId="redshift/finance-admin"),
        "secretsmanager:GetSecretValue",
    )


# --- Data Pipeline ---


def test_datapipeline_activate_and_watch(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    admin = moto_aws.client("datapipeline")
    pipeline = admin.create_pipeline(name="inventory-rollup", uniqueId="inventory-rollup")
    pipeline_id = pipeline["pipelineId"]
    # moto's ids are lower-case hex, which the manifest (rightly) refuses; moto checks Data
    # Pipeline calls against Resource "*", so the id the manifest names cannot matter here.
    run_as("datapipeline_dag", {"datapipeline": {"pipelines": ["df-07315261AS3RBNKK2QHY"]}})
    # The provider has no Data Pipeline hook; a DAG would use its generic hook's client.
    client = AwsBaseHook(aws_conn_id=None, client_type="datapipeline", config=NO_RETRIES).conn

    client.activate_pipeline(pipelineId=pipeline_id)
    described = client.describe_pipelines(pipelineIds=[pipeline_id])["pipelineDescriptionList"]
    assert [d["pipelineId"] for d in described] == [pipeline_id]
    client.describe_objects(pipelineId=pipeline_id, objectIds=["Default"])
    # moto does not implement QueryObjects; it checks IAM first, so a 500 means authorized.
    with pytest.raises(ClientError) as caught:
        client.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500

    assert_denied(
        lambda: client.delete_pipeline(pipelineId=pipeline_id), "datapipeline:DeletePipeline"
    )


# --- SQS, SNS, Lambda, DynamoDB ---


def _queue(moto_aws: MotoAws, name: str) -> str:
    return moto_aws.client("sqs").create_queue(QueueName=name)["QueueUrl"]


def test_sqs_send(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.sqs import SqsHook

    own, other = _queue(moto_aws, "orders-out"), _queue(moto_aws, "orders-out-eu")
    run_as("sqs_sender", {"sqs": [{"queue": "orders-out", "access": "send"}]})
    hook = SqsHook(aws_conn_id=None)

    assert hook.send_message(own, "order 1")["MessageId"]
    received = moto_aws.client("sqs").receive_message(QueueUrl=own)["Messages"]
    assert [m["Body"] for m in received] == ["order 1"]

    assert_denied(lambda: hook.send_message(other, "order 2"), "sqs:SendMessage")
    assert_denied(lambda: hook.conn.receive_message(QueueUrl=own), "sqs:ReceiveMessage")


def test_sqs_consume_with_the_sensor(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.sqs import SqsHook
    from airflow.providers.amazon.aws.sensors.sqs import SqsSensor

    own, other = _queue(moto_aws, "inventory-events"), _queue(moto_aws, "inventory-events-eu")
    admin = moto_aws.client("sqs")
    for body in ("sku 1", "sku 2"):
        admin.send_message(QueueUrl=own, MessageBody=body)
        admin.send_message(QueueUrl=other, MessageBody=body)
    run_as("sqs_consumer", {"sqs": [{"queue": "inventory-events", "access": "consume"}]})

    sensor = SqsSensor(
        task_id="wait", sqs_queue=own, aws_conn_id=None, max_messages=10, wait_time_seconds=0
    )
    ti = RecordingTaskInstance()
    assert sensor.poke({"ti": ti}) is True  # ReceiveMessage, DeleteMessageBatch
    assert sorted(m["Body"] for m in ti.xcoms["messages"]) == ["sku 1", "sku 2"]
    attributes = admin.get_queue_attributes(QueueUrl=own, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"  # deleted, not in flight

    hook = SqsHook(aws_conn_id=None)
    assert_denied(lambda: hook.conn.receive_message(QueueUrl=other), "sqs:ReceiveMessage")
    assert_denied(lambda: hook.send_message(own, "sku 3"), "sqs:SendMessage")


def test_sns_publish(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

    admin = moto_aws.client("sns")
    topic = admin.create_topic(Name="finance-loads")["TopicArn"]
    inbox = _queue(moto_aws, "finance-loads-inbox")
    inbox_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:finance-loads-inbox"
    admin.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=inbox_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    run_as("sns_dag", {"sns": [{"topic": "finance-loads"}]})
    hook = SnsHook(aws_conn_id=None)

    assert hook.publish_to_target(topic, "ledger loaded")["MessageId"]
    received = moto_aws.client("sqs").receive_message(QueueUrl=inbox)["Messages"]
    assert [m["Body"] for m in received] == ["ledger loaded"]

    assert_denied(lambda: hook.conn.delete_topic(TopicArn=topic), "sns:DeleteTopic")


def test_lambda_invoke(moto_aws: MotoAws, run_as: RunAs) -> None:
    from airflow.providers.amazon.aws.hooks.lambda_function import LambdaHook

    moto_aws.echo_function("enrich-inventory")
    run_as("lambda_dag", {"lambda": [{"function": "enrich-inventory"}]})
    hook = LambdaHook(aws_conn_id=None)

    response = hook.invoke_lambda(function_name="enrich-inventory", payload='{"sku": "A1"}')
    assert response["StatusCode"] == 200
    assert json.loads(response["Payload"].read()) == {"sku": "A1"}  # moto's function echoes

    # (Not GetFunction: moto fails the signature of any body-less Lambda request once IAM is
    # enforced, a 403 for the wrong reason; that is also why the invoke above has a payload.)
    assert_denied(
        lambda: hook.conn.update_function_configuration(
            FunctionName="enrich-inventory", Timeout=60
        ),
        "lambda:UpdateFunctionConfiguration",
    )


@pytest.fixture
def watermarks(moto_aws: MotoAws) -> str:
    table = "sales_watermarks"
    ddb = moto_aws.client("dynamodb")
    if table not in ddb.list_tables()["TableNames"]:
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "source", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "source", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    ddb.put_item(TableName=table, Item={"source": {"S": "crm"}, "day": {"S": "2024-05-01"}})
    return table


def test_dynamodb_write(moto_aws: MotoAws, run_as: RunAs, watermarks: str) -> None:
    from airflow.providers.amazon.aws.hooks.dynamodb import DynamoDBHook

    run_as("ddb_writer", {"dynamodb": [{"table": watermarks, "access": "write"}]})
    hook = DynamoDBHook(aws_conn_id=None, table_name=watermarks, table_keys=["source"])

    assert hook.write_batch_data([{"source": "salesforce", "day": "2024-05-02"}]) is True
    item = moto_aws.client("dynamodb").get_item(
        TableName=watermarks, Key={"source": {"S": "salesforce"}}
    )["Item"]
    assert item["day"] == {"S": "2024-05-02"}

    table = hook.conn.Table(watermarks)
    assert_denied(lambda: table.get_item(Key={"source": "crm"}), "dynamodb:GetItem")


def test_dynamodb_read(moto_aws: MotoAws, run_as: RunAs, watermarks: str) -> None:
    from airflow.providers.amazon.aws.hooks.dynamodb import DynamoDBHook
    from airflow.providers.amazon.aws.sensors.dynamodb import DynamoDBValueSensor

    run_as("ddb_reader", {"dynamodb": [{"table": watermarks, "access": "read"}]})
    sensor = DynamoDBValueSensor(
        task_id="wait",
        table_name=watermarks,
        partition_key_name="source",
        partition_key_value="crm",
        attribute_name="day",
        attribute_value="2024-05-01",
        aws_conn_id=None,
    )
    assert sensor.poke({}) is True  # GetItem
    # The sensor swallows errors (a refusal would only look like "not yet"), so check the
    # refusal on the hook's table directly.
    hook = DynamoDBHook(aws_conn_id=None, table_name=watermarks, table_keys=["source"])
    table = hook.conn.Table(watermarks)
    assert_denied(
        lambda: table.put_item(Item={"source": "crm", "day": "2099-01-01"}), "dynamodb:PutItem"
    )
    assert_denied(
        lambda: hook.write_batch_data([{"source": "crm", "day": "2099-01-01"}]),
        "dynamodb:BatchWriteItem",
    )
