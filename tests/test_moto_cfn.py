"""moto's CloudFormation as the Celery cluster needs it (foundation/local/moto_cfn.py): a table
keeps its TimeToLiveSpecification (celery's result backend only reads it then), and an ECS
service its Tags and PropagateTags (a worker's scale-in protection is granted by its task's
tag)."""

from __future__ import annotations

import json

from tests.moto_server import ACCOUNT, MotoAws

TEMPLATE = {
    "Resources": {
        "Results": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": "cfn-gaps-results",
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
            },
        },
        "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "cfn-gaps"}},
        "Worker": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": "cfn-gaps-worker",
                "ContainerDefinitions": [{"Name": "c", "Image": "i", "Memory": 512}],
            },
        },
        "Service": {
            "Type": "AWS::ECS::Service",
            "Properties": {
                "Cluster": {"Ref": "Cluster"},
                "ServiceName": "cfn-gaps-q",
                "TaskDefinition": {"Ref": "Worker"},
                "DesiredCount": 0,
                "PropagateTags": "SERVICE",
                "Tags": [{"Key": "foundation:queue", "Value": "cfn-gaps-q"}],
            },
        },
    }
}


def test_a_tables_ttl_and_a_services_tags_are_kept(moto_cloudformation: MotoAws) -> None:
    aws = moto_cloudformation
    aws.client("cloudformation").create_stack(
        StackName="cfn-gaps", TemplateBody=json.dumps(TEMPLATE)
    )
    ttl = aws.client("dynamodb").describe_time_to_live(TableName="cfn-gaps-results")
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    (service,) = aws.client("ecs").describe_services(
        cluster="cfn-gaps", services=["cfn-gaps-q"], include=["TAGS"]
    )["services"]
    assert (service["propagateTags"], service["tags"]) == (
        "SERVICE",
        [{"key": "foundation:queue", "value": "cfn-gaps-q"}],
    )


def test_a_queue_policy_is_set_on_its_queue_and_taken_off_with_its_stack(
    moto_cloudformation: MotoAws,
) -> None:
    """moto's CloudFormation has no AWS::SQS::QueuePolicy: moto_cfn.py sets the document, its
    GetAtt resolved, as the queue's Policy attribute (moto_gaps.py evaluates its denies)."""
    aws = moto_cloudformation
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
    }
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "cfn-gaps-guarded"}},
            "Policy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {
                    "Queues": [{"Ref": "Queue"}],
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [deny]},
                },
            },
        }
    }
    cloudformation, sqs = aws.client("cloudformation"), aws.client("sqs")
    cloudformation.create_stack(StackName="cfn-gaps-queue", TemplateBody=json.dumps(template))
    url = sqs.get_queue_url(QueueName="cfn-gaps-guarded")["QueueUrl"]
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:cfn-gaps-guarded"
    assert json.loads(policy["Policy"]) == {
        "Version": "2012-10-17",
        "Statement": [deny | {"Resource": arn}],
    }
    cloudformation.delete_stack(StackName="cfn-gaps-queue")
    assert "cfn-gaps-guarded" not in str(sqs.list_queues().get("QueueUrls", []))
