"""`foundation validate` on the shipped example, as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT, ProjectDir

EXAMPLE_DAGS = {
    "clickstream_emr",
    "finance_redshift_load",
    "housekeeping",
    "inventory_events",
    "marketing_athena_report",
    "orders_glue_transform",
    "sales_daily",
}


def test_example_validates_and_lists_every_dag(project: ProjectDir) -> None:
    result = project.run("validate")
    assert result.exit_code == 0, result.stderr
    for dag_id in EXAMPLE_DAGS:
        assert dag_id[:10] in result.stdout


def test_json_has_each_dags_statements_and_their_sources(project: ProjectDir) -> None:
    result = project.run("validate", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {d["dag_id"] for d in data["dags"]} == EXAMPLE_DAGS
    sales = next(d for d in data["dags"] if d["dag_id"] == "sales_daily")
    assert sales["services"] == ["s3", "secrets", "kms", "dynamodb"]
    assert sales["worker"] == {
        "cpu": 512,
        "memory": 1024,
        "min_count": 0,
        "max_count": 2,
        "concurrency": 2,
    }
    assert sales["statement_count"] == len(sales["statements"])
    objects = "arn:aws:s3:::acme-raw/salesforce/*"
    granting = [s for s in sales["statements"] if objects in s["Resource"]]
    assert {a for s in granting for a in s["Action"]} == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    }
    assert any(
        "dag_permissions/sales_daily.yaml:8 permissions.s3[0]" in source
        for s in granting
        for source in sales["sources"][s["Sid"]]
    )


def test_env_overlay_deep_merges(project: ProjectDir) -> None:
    result = project.run("validate", "--json", "--env", "staging")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "acme-airflow-stg"
    housekeeping = next(d for d in data["dags"] if d["dag_id"] == "housekeeping")
    # worker_defaults.max_count comes from the overlay, the rest from foundation.yaml
    assert housekeeping["worker"] == {
        "cpu": 512,
        "memory": 1024,
        "min_count": 0,
        "max_count": 2,
        "concurrency": 2,
    }


def test_overlay_errors_name_the_overlay_file(project: ProjectDir) -> None:
    project.write("config/staging.yaml", "database:\n  multi_az: true\n  storage: 10\n")
    result = project.run("validate", "--env", "staging")
    assert result.exit_code == 2
    assert "config/staging.yaml:3: database.storage: unknown field 'storage'" in result.stderr


def test_unknown_env_is_invalid_input(project: ProjectDir) -> None:
    result = project.run("validate", "--env", "nope")
    assert result.exit_code == 2
    assert "config/nope.yaml: --env nope: no such file" in result.stderr


def test_missing_project_is_invalid_input(tmp_path) -> None:
    result = ProjectDir(tmp_path).run("validate")
    assert result.exit_code == 2
    assert "config/foundation.yaml: not found" in result.stderr


def test_unknown_option_is_a_usage_error(project: ProjectDir) -> None:
    assert project.run("validate", "--bogus").exit_code == 2


def test_console_script_from_the_repo_root_without_traceback(project: ProjectDir) -> None:
    """The installed command, run as a user would: default --project is the current folder."""
    project.manifest("housekeeping", "dag_id: housekeeping\nowner: x\nworkr: {}\n")
    script = os.path.join(os.path.dirname(sys.executable), "foundation")
    done = subprocess.run(
        [script, "validate"], cwd=project.root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert (
        "dag_permissions/housekeeping.yaml:3: workr: unknown field 'workr'; did you mean 'worker'?"
        in done.stderr
    )
    ok = subprocess.run([script, "validate"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
