"""Targeted assertions on generated statements, escalation handling and IAM size limits."""

from __future__ import annotations

import json

from foundation.iam.policy import Statement
from foundation.iam.sizing import MANAGED_POLICY_MAX_CHARS, document_size
from foundation.project import load_project
from tests.conftest import ProjectDir


def statements(project: ProjectDir, dag_id: str) -> list[dict]:
    loaded = load_project(project.root)
    dag = next(d for d in loaded.dags if d.dag_id == dag_id)
    return [s.document() for s in dag.policy.statements]


def test_a_dag_with_no_permissions_gets_only_its_baseline(project: ProjectDir) -> None:
    docs = statements(project, "housekeeping")
    assert docs == [
        {
            "Sid": "Secretsmanager0",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:acme-airflow/dags/housekeeping/*"
            ],
        },
        {
            "Sid": "S31",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [
                "arn:aws:s3:::acme-airflow-logs-111122223333-us-east-1/"
                "task-logs/dag_id=housekeeping/*",
                "arn:aws:s3:::acme-airflow-logs-111122223333-us-east-1/"
                "task-logs/executor_callbacks/housekeeping/*",
            ],
        },
        {
            "Sid": "S32",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::acme-airflow-logs-111122223333-us-east-1"],
            "Condition": {"StringLike": {"s3:prefix": "task-logs/dag_id=housekeeping/*"}},
        },
        {
            "Sid": "S33",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::acme-airflow-logs-111122223333-us-east-1"],
            "Condition": {
                "StringLike": {"s3:prefix": "task-logs/executor_callbacks/housekeeping/*"}
            },
        },
        {
            "Sid": "S34",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::acme-airflow-dags-111122223333-us-east-1/dags/*"],
        },
        {
            "Sid": "S35",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::acme-airflow-dags-111122223333-us-east-1"],
        },
    ]


def test_named_secrets_match_the_six_character_suffix_exactly(project: ProjectDir) -> None:
    docs = statements(project, "sales_daily")
    resources = [r for d in docs for r in d["Resource"] if ":secret:" in r]
    assert (
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:shared/salesforce-oauth-??????"
        in (resources)
    )
    assert not any(r.endswith("salesforce-oauth*") for r in resources)


def test_names_resolve_in_the_deployments_partition(project: ProjectDir) -> None:
    config = project.root / "config" / "foundation.yaml"
    text = (
        config.read_text()
        .replace("us-east-1", "cn-north-1")
        .replace("arn:aws:acm:", "arn:aws-cn:acm:")
    )
    config.write_text(text)
    project.manifest(
        "housekeeping",
        "dag_id: housekeeping\nowner: x\npermissions:\n  sqs: [{queue: q1, access: send}]\n",
    )
    for name in ("sales_daily", "finance_redshift_load"):
        (project.root / "dag_permissions" / f"{name}.yaml").unlink()
    docs = statements(project, "housekeeping")
    assert {"arn:aws-cn:sqs:cn-north-1:111122223333:q1"} <= {r for d in docs for r in d["Resource"]}
    assert all(r.startswith("arn:aws-cn:") for d in docs for r in d["Resource"])


def test_escalation_is_refused_unless_the_config_allows_it(project: ProjectDir) -> None:
    project.manifest(
        "housekeeping",
        """
        dag_id: housekeeping
        owner: x
        permissions:
          statements:
            - actions: [lambda:UpdateFunctionCode]
              resources: ["arn:aws:lambda:us-east-1:111122223333:function:cleanup"]
        """,
    )
    refused = project.run("validate")
    assert refused.exit_code == 2
    assert "lambda:UpdateFunctionCode (Write) can escalate privileges" in refused.stderr
    config = project.root / "config" / "foundation.yaml"
    config.write_text(
        config.read_text().replace(
            "allow_escalation_for: []", "allow_escalation_for: [housekeeping]"
        )
    )
    allowed = project.run("validate", "--json")
    assert allowed.exit_code == 0, allowed.stderr
    dag = next(d for d in json.loads(allowed.stdout)["dags"] if d["dag_id"] == "housekeeping")
    assert dag["escalations"] == ["lambda:UpdateFunctionCode"]


def test_pass_role_is_typed_to_its_service(project: ProjectDir) -> None:
    docs = statements(project, "inventory_events")
    passing = [d for d in docs if d["Action"] == ["iam:PassRole"]]
    assert passing == [
        {
            "Sid": passing[0]["Sid"],
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": ["arn:aws:iam::111122223333:role/emr-serverless-inventory"],
            "Condition": {"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}},
        }
    ]


def test_star_only_for_actions_without_resource_level_permissions(project: ProjectDir) -> None:
    loaded = load_project(project.root)
    for dag in loaded.dags:
        for st in dag.policy.statements:
            if "*" in st.resources:
                assert set(st.actions) <= {
                    "redshift-data:DescribeStatement",
                    "redshift-data:GetStatementResult",
                    "redshift-data:CancelStatement",
                    "glue:GetCrawlerMetrics",
                }, st


def test_sids_are_unique_and_sources_point_at_manifest_lines(project: ProjectDir) -> None:
    loaded = load_project(project.root)
    for dag in loaded.dags:
        sids = [s.sid for s in dag.policy.statements]
        assert len(sids) == len(set(sids))
        assert all(s.sources for s in dag.policy.statements)
    glue = next(d for d in loaded.dags if d.dag_id == "orders_glue_transform")
    sources = {src for s in glue.policy.statements for src in s.sources}
    assert "dag_permissions/orders_glue_transform.yaml:7 permissions.glue.jobs[0]" in sources
    assert "baseline: the DAG's own task-log prefix" in sources


def _many_buckets(count: int) -> str:
    lines = ["dag_id: big", "owner: x", "permissions:", "  s3:"]
    lines += [
        f"    - {{bucket: bucket-{i:04d}-with-a-long-name, prefix: some/long/prefix/{i}/, "
        "access: read_write}"
        for i in range(count)
    ]
    return "\n".join(lines) + "\n"


def test_large_policies_are_split_across_managed_policies(empty_project: ProjectDir) -> None:
    empty_project.manifest("big", _many_buckets(60))
    loaded = load_project(empty_project.root)
    (dag,) = loaded.dags
    assert not loaded.findings
    assert len(dag.policy.policies) > 1
    assert all(size <= MANAGED_POLICY_MAX_CHARS for size in dag.policy.worst_case_sizes)
    objects = {r for s in dag.policy.statements for r in s.resources if r.endswith("/*")}
    # every declared prefix; own secrets, logs and callback logs, and the DAG bundle
    assert len(objects) == 60 + 4


def test_policies_that_cannot_fit_are_a_check_failure(empty_project: ProjectDir) -> None:
    empty_project.manifest("big", _many_buckets(400))
    result = empty_project.run("validate")
    assert result.exit_code == 2
    assert "needs" in result.stderr and "managed policies" in result.stderr
    assert "iam.max_managed_policies_per_role" in result.stderr


def test_sizes_are_measured_at_the_worst_case_partition(empty_project: ProjectDir) -> None:
    empty_project.manifest("small", "dag_id: small\nowner: x\n")
    loaded = load_project(empty_project.root)
    (dag,) = loaded.dags
    real = document_size(dag.policy.statements)
    # seven ARNs hold the partition (aws -> aws-us-gov: 7 more each), the secrets ARN also the
    # region (us-east-1 -> ap-southeast-14: 6 more)
    assert dag.policy.worst_case_sizes == [real + 7 * 7 + 6]


def test_policy_size_ignores_whitespace() -> None:
    st = Statement(("s3:GetObject",), ("arn:aws:s3:::b/p/*",), None, (), "S3")
    document = {"Version": "2012-10-17", "Statement": [st.document()]}
    assert document_size([st]) == len(json.dumps(document, separators=(",", ":")))
