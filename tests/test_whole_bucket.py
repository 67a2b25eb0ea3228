"""An `s3` entry without `prefix`: the whole bucket, exactly, and never one of the toolkit's.

Conditions (none here) and HeadBucket's missing `s3:prefix` are what moto does not evaluate
for us everywhere, so the reach of the statements is checked with the toolkit's own IAM
evaluation (foundation/iam/evaluate.py) as well as against moto in test_provider_access.py.
"""

from __future__ import annotations

from foundation.iam.evaluate import Request, allows
from foundation.project import load_project
from tests.conftest import ProjectDir

OWNED = """
dag_id: owner
owner: a@example.com
permissions:
  s3:
    - {bucket: acme-owned, access: read_write}
"""


def statements(project: ProjectDir, dag_id: str) -> list[dict]:
    dag = next(d for d in load_project(project.root).dags if d.dag_id == dag_id)
    return [s.document() for s in dag.policy.statements]


def test_the_policy_is_exactly_the_buckets_objects_and_unconditioned_listing(
    empty_project: ProjectDir,
) -> None:
    empty_project.manifest("owner", OWNED)
    logs = "arn:aws:s3:::acme-airflow-logs-111122223333-us-east-1"
    dags = "arn:aws:s3:::acme-airflow-dags-111122223333-us-east-1"
    assert statements(empty_project, "owner") == [
        {
            "Sid": "Secretsmanager0",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:acme-airflow/dags/owner/*"
            ],
        },
        {
            "Sid": "S31",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [
                f"{logs}/task-logs/dag_id=owner/*",
                f"{logs}/task-logs/executor_callbacks/owner/*",
            ],
        },
        {
            "Sid": "S32",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [logs],
            "Condition": {"StringLike": {"s3:prefix": "task-logs/dag_id=owner/*"}},
        },
        {
            "Sid": "S33",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [logs],
            "Condition": {"StringLike": {"s3:prefix": "task-logs/executor_callbacks/owner/*"}},
        },
        {
            "Sid": "S34",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{dags}/dags/*", "arn:aws:s3:::acme-owned/*"],
        },
        {
            "Sid": "S35",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [dags, "arn:aws:s3:::acme-owned"],
        },
        {
            "Sid": "S36",
            "Effect": "Allow",
            "Action": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"],
            "Resource": ["arn:aws:s3:::acme-owned/*"],
        },
    ]


def test_the_whole_bucket_and_nothing_beside_it(empty_project: ProjectDir) -> None:
    empty_project.manifest("owner", OWNED)
    policy = statements(empty_project, "owner")
    bucket = "arn:aws:s3:::acme-owned"
    # HeadBucket and a listing of the root carry no s3:prefix
    assert allows(policy, Request("s3:ListBucket", bucket))
    assert allows(policy, Request("s3:ListBucket", bucket, {"s3:prefix": "any/where/"}))
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert allows(policy, Request(action, f"{bucket}/top.csv"))
        assert allows(policy, Request(action, f"{bucket}/deep/er/key"))
        # a bucket whose name starts with the owned one's
        assert not allows(policy, Request(action, "arn:aws:s3:::acme-owned2/top.csv"))
    assert not allows(policy, Request("s3:ListBucket", "arn:aws:s3:::acme-owned2"))
    assert not allows(policy, Request("s3:PutBucketPolicy", bucket))
    assert not allows(policy, Request("s3:PutObjectAcl", f"{bucket}/top.csv"))


def test_a_read_entry_grants_no_write(empty_project: ProjectDir) -> None:
    manifest = OWNED.replace("dag_id: owner", "dag_id: reader").replace("read_write", "read")
    empty_project.manifest("reader", manifest)
    policy = statements(empty_project, "reader")
    assert allows(policy, Request("s3:GetObject", "arn:aws:s3:::acme-owned/k"))
    assert not allows(policy, Request("s3:PutObject", "arn:aws:s3:::acme-owned/k"))
    assert not allows(policy, Request("s3:DeleteObject", "arn:aws:s3:::acme-owned/k"))
