"""FA003 takes `arn:aws:s3:::bucket/*` as one resource (a whole-bucket s3 entry) only for a
bucket of no deployment: a grant of a whole bucket of the deployment's own (task logs of every
DAG, every bundle's DAG code, the published templates) or of another deployment's fails the
synth's checks. The manifest checks refuse such an entry too, but FA003 is the gate on what the
templates hold, whatever code made them (a change to the task_logs or bundle grants, a cluster
role)."""

from __future__ import annotations

import pytest

from foundation.checks.rules.fa003_resource_scope import ResourceScope
from tests.test_checks import assembly_of


def policy(resource: str) -> dict:
    return {
        "Resources": {
            "Policy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "p",
                    "Roles": ["r"],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": resource}
                        ],
                    },
                },
            }
        }
    }


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:s3:::acme-logs-111122223333-us-east-1/*",  # this deployment's task logs
        "arn:aws:s3:::acme-dags-111122223333-us-east-1/*",  # every bundle's DAG code
        "arn:aws:s3:::foundation-111122223333-us-east-1-acme/*",  # its templates
        "arn:aws:s3:::acme-stg-dags-111122223333-us-east-1/*",  # another deployment's
    ],
)
def test_a_whole_bucket_of_a_deployments_is_wider_than_one_resource(resource: str) -> None:
    [finding] = ResourceScope().check(assembly_of(policy(resource)))
    assert (finding.rule, finding.resource, finding.message) == (
        "FA003",
        "Policy",
        f"{resource!r} matches more than one resource",
    )


def test_a_users_own_whole_bucket_passes() -> None:
    assert list(ResourceScope().check(assembly_of(policy("arn:aws:s3:::acme-raw/*")))) == []
