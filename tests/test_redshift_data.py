"""Redshift Data API grants: a cluster with db_user or a secret, a Redshift Serverless workgroup
(named by its id in IAM) with the task's own identity or a secret, and the DAG's own statements.

The statement-owner condition and the Secrets Manager read the Data API makes on the caller's
behalf are what moto does not evaluate: they are checked here with the toolkit's own IAM
evaluation (foundation/iam/evaluate.py); test_provider_access.py runs the provider's hook on moto.
"""

from __future__ import annotations

from foundation.config import DAG_ENDPOINT_SERVICES
from foundation.iam.evaluate import Request, allows
from foundation.project import load_project
from tests.conftest import ProjectDir

WORKGROUP_ID = "8d2a1c3e-4b5f-4a6b-9c7d-0e1f2a3b4c5d"
OTHER_WORKGROUP_ID = "8d2a1c3e-4b5f-4a6b-9c7d-0e1f2a3b4c5e"
A, R = "arn:aws", "us-east-1:111122223333"
WORKGROUP = f"{A}:redshift-serverless:{R}:workgroup/{WORKGROUP_ID}"
MANIFEST = f"""
dag_id: rs
owner: a@example.com
permissions:
  redshift_data:
    - {{cluster: analytics, database: finance, secret: redshift/finance-etl}}
    - {{workgroup: reports, workgroup_id: {WORKGROUP_ID}, database: sales}}
    - {{workgroup: reports, workgroup_id: {WORKGROUP_ID}, database: sales, secret: redshift/rep}}
"""
OWN = {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}


def policy(project: ProjectDir) -> list[dict]:
    project.manifest("rs", MANIFEST)
    dag = next(d for d in load_project(project.root).dags if d.dag_id == "rs")
    return [s.document() for s in dag.policy.statements]


def test_the_statements_exactly(empty_project: ProjectDir) -> None:
    docs = policy(empty_project)
    assert docs[0] == {
        "Sid": "Secretsmanager0",
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": [
            f"{A}:secretsmanager:{R}:secret:acme-airflow/dags/rs/*",
            f"{A}:secretsmanager:{R}:secret:redshift/finance-etl-??????",
            f"{A}:secretsmanager:{R}:secret:redshift/rep-??????",
        ],
    }
    assert docs[6:] == [
        {
            "Sid": "RedshiftData6",
            "Effect": "Allow",
            "Action": ["redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"],
            "Resource": [f"{A}:redshift:{R}:cluster:analytics", WORKGROUP],
        },
        {
            "Sid": "RedshiftServerless7",
            "Effect": "Allow",
            "Action": ["redshift-serverless:GetCredentials"],
            "Resource": [WORKGROUP],
        },
        {
            "Sid": "RedshiftData8",
            "Effect": "Allow",
            "Action": [
                "redshift-data:CancelStatement",
                "redshift-data:DescribeStatement",
                "redshift-data:GetStatementResult",
            ],
            "Resource": ["*"],
            "Condition": OWN,
        },
    ]
    # with a secret, no database user's temporary credentials
    assert not any("redshift:GetClusterCredentials" in d["Action"] for d in docs)


def test_what_the_grants_reach_and_what_they_do_not(empty_project: ProjectDir) -> None:
    docs = policy(empty_project)
    run = "redshift-data:ExecuteStatement"
    assert allows(docs, Request(run, WORKGROUP))
    assert allows(docs, Request("redshift-serverless:GetCredentials", WORKGROUP))
    assert allows(docs, Request(run, f"{A}:redshift:{R}:cluster:analytics"))
    other = f"{A}:redshift-serverless:{R}:workgroup/{OTHER_WORKGROUP_ID}"
    assert not allows(docs, Request(run, other))
    assert not allows(docs, Request("redshift-serverless:GetCredentials", other))
    assert not allows(docs, Request(run, f"{A}:redshift:{R}:cluster:analytics2"))
    # a secret login: the Data API reads the named secret with the task's identity, no other
    secret = f"{A}:secretsmanager:{R}:secret:redshift/finance-etl-AbC123"
    assert allows(docs, Request("secretsmanager:GetSecretValue", secret))
    near = f"{A}:secretsmanager:{R}:secret:redshift/finance-etl2-AbC123"
    assert not allows(docs, Request("secretsmanager:GetSecretValue", near))
    # the cluster takes a secret here: no database user's credentials
    dbuser = f"{A}:redshift:{R}:dbuser:analytics/admin"
    assert not allows(docs, Request("redshift:GetClusterCredentials", dbuser))
    # statements: only the role session's own (the condition moto does not evaluate)
    mine = {"aws:userid": "AROA1:task", "redshift-data:statement-owner-iam-userid": "AROA1:task"}
    theirs = mine | {"redshift-data:statement-owner-iam-userid": "AROA2:task"}
    for action in ("DescribeStatement", "GetStatementResult", "CancelStatement"):
        assert allows(docs, Request(f"redshift-data:{action}", "*", mine))
        assert not allows(docs, Request(f"redshift-data:{action}", "*", theirs))


def test_a_workgroup_is_reachable_with_private_endpoints() -> None:
    from stacks.network import DAG_SERVICE_ENDPOINTS

    assert "redshift-serverless" in DAG_ENDPOINT_SERVICES
    assert set(DAG_SERVICE_ENDPOINTS) == DAG_ENDPOINT_SERVICES
