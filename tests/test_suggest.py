"""A refused call -> the manifest entry that would allow it (foundation/iam/suggest.py), as
`foundation dev` reports it. Each entry is checked both ways: its exact text, and that the grant
it names, rendered as the toolkit renders grants, allows the refused call (the toolkit's own IAM
evaluation, conditions included)."""

from __future__ import annotations

import pytest

from foundation.iam.evaluate import Request, allows
from foundation.iam.policy import ArnContext, Grant, render
from foundation.iam.suggest import entry_for

A = "arn:aws"
R = "us-east-1:111122223333"
CTX = ArnContext("aws", "us-east-1", "111122223333")

CASES = [
    (
        "s3:PutObject",
        f"{A}:s3:::acme-raw/orders/2026-12-01/accounts.json",
        {},
        "s3:\n  - {bucket: acme-raw, prefix: orders/, access: write}",
    ),
    (
        "s3:GetObject",
        f"{A}:s3:::acme-raw/orders/a.json",
        {},
        "s3:\n  - {bucket: acme-raw, prefix: orders/, access: read}",
    ),
    (
        "s3:ListBucket",
        f"{A}:s3:::acme-raw",
        {"s3:prefix": "orders/2026/"},
        "s3:\n  - {bucket: acme-raw, prefix: orders/, access: read}",
    ),
    (
        "secretsmanager:GetSecretValue",
        f"{A}:secretsmanager:{R}:secret:shared/salesforce-oauth-AbC123",
        {},
        "secrets: [shared/salesforce-oauth]",
    ),
    (
        "kms:Decrypt",
        f"{A}:kms:{R}:key/1f2e3d4c-5b6a-4789-9abc-def012345678",
        {},
        f'kms:\n  - {{key_arn: "{A}:kms:{R}:key/1f2e3d4c-5b6a-4789-9abc-def012345678", '
        "access: decrypt}",
    ),
    (
        "dynamodb:PutItem",
        f"{A}:dynamodb:{R}:table/sales_watermarks",
        {},
        "dynamodb:\n  - {table: sales_watermarks, access: write}",
    ),
    (
        "dynamodb:Query",
        f"{A}:dynamodb:{R}:table/sales_watermarks/index/by_day",
        {},
        "dynamodb:\n  - {table: sales_watermarks, access: read}",
    ),
    ("sqs:SendMessage", f"{A}:sqs:{R}:orders", {}, "sqs:\n  - {queue: orders, access: send}"),
    ("sns:Publish", f"{A}:sns:{R}:finance-loads", {}, "sns:\n  - {topic: finance-loads}"),
    (
        "lambda:InvokeFunction",
        f"{A}:lambda:{R}:function:enrich:live",
        {},
        "lambda:\n  - {function: enrich}",
    ),
    ("glue:StartJobRun", f"{A}:glue:{R}:job/orders", {}, "glue:\n  jobs: [orders]"),
    ("glue:StartCrawler", f"{A}:glue:{R}:crawler/raw", {}, "glue:\n  crawlers: [raw]"),
    (
        "elasticmapreduce:AddJobFlowSteps",
        f"{A}:elasticmapreduce:{R}:cluster/j-2AXXXXXXGAPLF",
        {},
        "emr:\n  clusters: [j-2AXXXXXXGAPLF]",
    ),
    (
        "redshift:GetClusterCredentials",
        f"{A}:redshift:{R}:dbuser:finance/loader",
        {},
        "redshift_data:\n  - {cluster: finance, database: <database>, db_user: loader}",
    ),
    (  # HeadBucket, or a listing of the root: only a whole bucket's entry allows it
        "s3:ListBucket",
        f"{A}:s3:::acme-raw",
        {},
        "s3:\n  - {bucket: acme-raw, access: read}",
    ),
    (
        "redshift-serverless:GetCredentials",
        f"{A}:redshift-serverless:{R}:workgroup/8d2a1c3e-4b5f-4a6b-9c7d-0e1f2a3b4c5d",
        {},
        "redshift_data:\n  - {workgroup: <workgroup name>, workgroup_id: "
        "8d2a1c3e-4b5f-4a6b-9c7d-0e1f2a3b4c5d, database: <database>}",
    ),
    (
        "datapipeline:ActivatePipeline",
        f"{A}:datapipeline:{R}:pipeline/df-0123",
        {},
        "datapipeline:\n  pipelines: [df-0123]",
    ),
    (
        "athena:StartQueryExecution",
        f"{A}:athena:{R}:workgroup/reports",
        {},
        "athena:\n  workgroups: [reports]\n  results: {bucket: <bucket>, prefix: <prefix>/}",
    ),
]


@pytest.mark.parametrize(("action", "resource", "context", "text"), CASES)
def test_the_entry_is_the_narrowest_that_allows_the_call(
    action: str, resource: str, context: dict[str, str], text: str
) -> None:
    entry = entry_for(action, resource, context)
    assert entry is not None
    assert entry.text == text
    # the grant it names allows the refused call: rendered as the toolkit renders a manifest's
    # a placeholder is the author's to fill: any value they choose
    params = {k: "chosen" if v.startswith("<") else v for k, v in entry.fields.items()}
    if entry.kind == "s3" and "s3:prefix" not in context:
        context = context | {"s3:prefix": entry.fields["prefix"]}
    statements = [s.document() for s in render(Grant(entry.kind, entry.access, params, ""), CTX)]
    assert allows(statements, Request(action, resource, context))


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:PutObject", "*"),  # names no resource
        ("glue:GetCrawlerMetrics", "*"),  # granted on "*": nothing to name
        ("ecs:RunTask", f"{A}:ecs:{R}:task-definition/x:1"),  # no manifest entry grants it
        ("s3:PutObject", f"{A}:sqs:{R}:orders"),  # not a resource of the action's formats
    ],
)
def test_no_entry_when_no_manifest_grant_names_the_call(action: str, resource: str) -> None:
    assert entry_for(action, resource) is None


def test_a_key_at_the_bucket_root_leaves_the_prefix_to_the_author() -> None:
    entry = entry_for("s3:PutObject", f"{A}:s3:::acme-raw/accounts.json")
    assert entry is not None
    assert entry.text == "s3:\n  - {bucket: acme-raw, prefix: <prefix>/, access: write}"
