"""Warnings (exit 0) for grants that add nothing and for DAGs whose grants reach the same S3
objects, each naming its file, line and field, and the other grant's."""

from __future__ import annotations

import json

import pytest

from foundation.iam.evaluate import covers
from tests.conftest import ProjectDir

EGRESS_OPEN = (
    "adds nothing: every task may already open tcp 443 to 0.0.0.0/0 (the workers security "
    "group all DAGs' tasks share, for AWS APIs, while network.private_endpoints is false)"
)


ECR = "111122223333.dkr.ecr.us-east-1.amazonaws.com"


def warnings(project: ProjectDir) -> list[str]:
    result = project.run("validate")
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.replace(f"{project.root}/", "").splitlines()


def test_the_examples_https_egress_is_already_open_to_every_task(project: ProjectDir) -> None:
    assert warnings(project) == [
        f"warning: dag_permissions/sales_daily.yaml:16: network.egress[0]: {EGRESS_OPEN}"
    ]
    data = json.loads(project.run("validate", "--json").stdout)
    assert data["warnings"] == [
        {
            "file": f"{project.root}/dag_permissions/sales_daily.yaml",
            "line": 16,
            "field": "network.egress[0]",
            "message": EGRESS_OPEN,
        }
    ]


def test_with_private_endpoints_the_same_egress_adds_something(project: ProjectDir) -> None:
    (project.root / "dag_permissions" / "inventory_events.yaml").unlink()  # no Data Pipeline
    config = project.root / "config" / "foundation.yaml"
    config.write_text(
        config.read_text()
        .replace("  nat_gateways: 2\n", "  nat_gateways: 2\n  private_endpoints: true\n")
        .replace("  nat_gateways: 2\n", "  nat_gateways: 2\n  s3_prefix_list_id: pl-63a5400a\n")
        .replace(
            "image: apache/airflow:3.3.2",
            "image: 111122223333.dkr.ecr.us-east-1.amazonaws.com/airflow:3.3.2",
        )
    )
    assert warnings(project) == []


def test_egress_within_a_manifest(empty_project: ProjectDir) -> None:
    empty_project.manifest(
        "db",
        """
        dag_id: db
        owner: a@example.com
        network:
          egress:
            - {cidr: 10.0.0.0/8, port: 5432}
            - {cidr: 10.1.0.0/16, port: 5432}
            - {cidr: 10.0.0.0/8, port: 5432}
            - {cidr: 10.0.0.0/8, port: 5432, protocol: udp}
            - {cidr: 10.0.0.0/8, port: 5433}
            - {cidr: 192.168.0.0/16, port: 443}
        """,
    )
    wider = "adds nothing: network.egress[0] (line 5) already allows tcp 5432 to 10.0.0.0/8"
    assert warnings(empty_project) == [
        f"warning: dag_permissions/db.yaml:6: network.egress[1]: {wider}",
        f"warning: dag_permissions/db.yaml:7: network.egress[2]: {wider}",
        f"warning: dag_permissions/db.yaml:10: network.egress[5]: {EGRESS_OPEN}",
    ]


def test_grants_covered_by_the_dags_other_grants(empty_project: ProjectDir) -> None:
    empty_project.manifest(
        "lake",
        """
        dag_id: lake
        owner: a@example.com
        permissions:
          s3:
            - {bucket: acme-raw, prefix: sales/, access: read_write}
            - {bucket: acme-raw, prefix: sales/, access: read}
            - {bucket: acme-raw, prefix: sales/eu/, access: write}
            - {bucket: acme-raw, prefix: sales_eu/, access: read}
            - {bucket: acme-raw, prefix: orders/, access: read}
            - {bucket: acme-raw, prefix: orders/, access: write}
          secrets: [shared/token, shared/token, shared/token-2]
          dynamodb:
            - {table: marks, access: read}
            - {table: marks, access: read_write}
          statements:
            - actions: [s3:GetObject]
              resources: ["arn:aws:s3:::acme-raw/sales/2024/*"]
            - actions: [s3:GetObject]
              resources: ["arn:aws:s3:::acme-raw/salesx/*"]
        """,
    )
    first = "dag_permissions/lake.yaml:5 permissions.s3[0] already grants it all"
    assert warnings(empty_project) == [
        f"warning: dag_permissions/lake.yaml:6: permissions.s3[1]: adds nothing: {first}",
        f"warning: dag_permissions/lake.yaml:7: permissions.s3[2]: adds nothing: {first}",
        "warning: dag_permissions/lake.yaml:11: permissions.secrets[1]: adds nothing: "
        "dag_permissions/lake.yaml:11 permissions.secrets[0] already grants it all",
        "warning: dag_permissions/lake.yaml:13: permissions.dynamodb[0]: adds nothing: "
        "dag_permissions/lake.yaml:14 permissions.dynamodb[1] already grants it all",
        f"warning: dag_permissions/lake.yaml:16: permissions.statements[0]: adds nothing: {first}",
    ]


def test_of_read_write_read_and_write_only_read_write_adds_nothing(
    empty_project: ProjectDir,
) -> None:
    empty_project.manifest(
        "lake",
        """
        dag_id: lake
        owner: a@example.com
        permissions:
          s3:
            - {bucket: acme-raw, prefix: sales/, access: read_write}
            - {bucket: acme-raw, prefix: sales/, access: read}
            - {bucket: acme-raw, prefix: sales/, access: write}
        """,
    )
    assert warnings(empty_project) == [
        "warning: dag_permissions/lake.yaml:5: permissions.s3[0]: adds nothing: "
        "dag_permissions/lake.yaml:6 permissions.s3[1]; dag_permissions/lake.yaml:7 "
        "permissions.s3[2] already grants it all"
    ]


def test_dags_reaching_the_same_objects(empty_project: ProjectDir) -> None:
    empty_project.manifest(
        "owner",
        """
        dag_id: owner
        owner: a@example.com
        permissions:
          s3:
            - {bucket: acme-raw, access: read_write}
            - {bucket: acme-curated, prefix: sales/, access: read}
        """,
    )
    empty_project.manifest(
        "sales",
        """
        dag_id: sales
        owner: b@example.com
        permissions:
          s3:
            - {bucket: acme-raw, prefix: sales/, access: read}
            - {bucket: acme-curated, prefix: sales/eu/, access: write}
            - {bucket: acme-curated, prefix: sales_eu/, access: write}
            - {bucket: acme-raw2, prefix: sales/, access: write}
          athena:
            workgroups: [analytics]
            results: {bucket: acme-curated, prefix: sales/}
        """,
    )
    assert warnings(empty_project) == [
        "warning: dag_permissions/owner.yaml:5: permissions.s3[0]: reaches objects DAG 'sales' "
        "declared at dag_permissions/sales.yaml:5 permissions.s3[0]: arn:aws:s3:::acme-raw/* "
        "covers arn:aws:s3:::acme-raw/sales/*",
        "warning: dag_permissions/owner.yaml:6: permissions.s3[1]: reaches objects DAG 'sales' "
        "declared at dag_permissions/sales.yaml:6 permissions.s3[1]: "
        "arn:aws:s3:::acme-curated/sales/* covers arn:aws:s3:::acme-curated/sales/eu/*",
        "warning: dag_permissions/sales.yaml:11: permissions.athena.results: reaches objects DAG "
        "'owner' declared at dag_permissions/owner.yaml:6 permissions.s3[1]: both grant "
        "arn:aws:s3:::acme-curated/sales/*",
    ]


@pytest.mark.parametrize(
    ("wide", "narrow", "expected"),
    [
        ("b/sales/*", "b/sales/*", True),
        ("b/sales/*", "b/sales/eu/*", True),
        ("b/*", "b/sales/x", True),
        ("b/sales/*", "b/sales_eu/*", False),
        ("b/sales/eu/*", "b/sales/*", False),
        ("s-??????", "s-abcdef", True),
        ("s-??????", "s-??????", True),
        # `?` takes one character: never what a `*` stands for
        ("b/?", "b/*", False),
        ("b/*", "b/?", True),
    ],
)
def test_pattern_coverage(wide: str, narrow: str, expected: bool) -> None:
    assert covers(wide, narrow) is expected


def test_synth_shows_the_warnings_and_the_audits_show_the_overlap(project: ProjectDir) -> None:
    project.manifest(
        "lake_owner",
        """
        dag_id: lake_owner
        owner: a@example.com
        permissions:
          s3:
            - {bucket: acme-raw, access: read_write}
        """,
    )
    synth = project.run("synth")
    assert synth.exit_code == 0, synth.stderr
    wide = "dag_permissions/lake_owner.yaml:5 permissions.s3[0]"
    sales = "dag_permissions/sales_daily.yaml:8 permissions.s3[0]"
    orders = "dag_permissions/orders_glue_transform.yaml:10 permissions.s3[0]"
    stderr = synth.stderr.replace(f"{project.root}/", "").splitlines()
    assert [line for line in stderr if line.startswith("warning: FA100")] == [
        "warning: FA100 project: dag_permissions/lake_owner.yaml:5: permissions.s3[0]: reaches "
        f"objects DAG 'orders_glue_transform' declared at {orders}: arn:aws:s3:::acme-raw/* "
        "covers arn:aws:s3:::acme-raw/orders/*",
        "warning: FA100 project: dag_permissions/lake_owner.yaml:5: permissions.s3[0]: reaches "
        f"objects DAG 'sales_daily' declared at {sales}: arn:aws:s3:::acme-raw/* covers "
        "arn:aws:s3:::acme-raw/salesforce/*",
        f"warning: FA100 project: dag_permissions/sales_daily.yaml:16: network.egress[0]: "
        f"{EGRESS_OPEN}",
    ]
    markdown = project.run("permissions", "--matrix", "--format", "markdown").stdout
    section = markdown[markdown.index("**Overlapping S3 grants**") :].splitlines()
    bundle = "baseline: the DAG bundle (tasks load their DAG's code from it)"
    assert section == [
        "**Overlapping S3 grants** (both DAGs reach these objects):",
        f"- arn:aws:s3:::acme-raw/* (DAG lake_owner: {bundle}; {wide}) covers "
        f"arn:aws:s3:::acme-raw/orders/* (DAG orders_glue_transform: {bundle}; {orders}; "
        "dag_permissions/orders_glue_transform.yaml:11 permissions.s3[1])",
        f"- arn:aws:s3:::acme-raw/* (DAG lake_owner: {bundle}; {wide}) covers "
        f"arn:aws:s3:::acme-raw/salesforce/* (DAG sales_daily: {bundle}; {sales})",
    ]
    shown = json.loads(project.run("permissions", "sales_daily", "--json").stdout)
    assert shown["overlaps"] == [
        {
            "wider": {
                "dag_id": "lake_owner",
                "objects": "arn:aws:s3:::acme-raw/*",
                "source": f"{bundle}; {wide}",
            },
            "other": {
                "dag_id": "sales_daily",
                "objects": "arn:aws:s3:::acme-raw/salesforce/*",
                "source": f"{bundle}; {sales}",
            },
            "covers": True,
        }
    ]
    page = project.run("permissions", "--matrix", "--format", "html").stdout
    assert "<h2>Overlapping S3 grants</h2><ul><li>arn:aws:s3:::acme-raw/* (DAG lake_owner" in page
