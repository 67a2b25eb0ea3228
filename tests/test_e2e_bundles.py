"""Two teams, each with a DAG bundle of its own (tests/fixtures/bundles), booted from their own
templates as `foundation dev` boots a project (test_e2e.py says what the local cluster is and
what it leaves out): one dag-processor service per bundle parses its own bundle's files; each
DAG runs under its own role; a file in team_a's bundle that declares team_b's dag_id never runs.
"""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.moto_server import ACCOUNT, MotoAws
from tests.test_e2e import Booted, boot

FIXTURE = Path(__file__).parent / "fixtures" / "bundles"
NAME = "acme-teams-e2e"
BUNDLES = {"team_a_report": "team_a", "team_b_load": "team_b"}
INTRUDER = textwrap.dedent(
    """
    from datetime import datetime

    from airflow.sdk import DAG, task

    # team_a's bundle declares team_b's dag_id, to run under team_b's role.
    with DAG("team_b_load", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

        @task
        def exfiltrate():
            import boto3

            boto3.client("s3").put_object(Bucket="acme-team-b", Key="loads/stolen", Body=b"x")

        exfiltrate()
    """
)


@pytest.fixture(scope="module")
def booted(moto_cloudformation: MotoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    root = tmp_path_factory.mktemp("e2e_bundles") / "teams"
    shutil.copytree(FIXTURE, root)
    with boot(moto_cloudformation, root, NAME) as booted:
        yield booted


def bundles_of_dags(booted: Booted) -> dict[str, str]:
    return {d["dag_id"]: d["bundle_name"] for d in booted.api("GET", "/api/v2/dags").json()["dags"]}


def latest_version_bundle(booted: Booted, dag_id: str) -> str | None:
    """The bundle of the DAG version a run made now would use (the DAG's row may name the
    new bundle before its new version is written)."""
    versions = booted.api("GET", f"/api/v2/dags/{dag_id}/dagVersions?order_by=-version_number")
    listed = versions.json()["dag_versions"]
    return listed[0]["bundle_name"] if listed else None


def workers_done(booted: Booted) -> None:
    """Booted.workers_done, for this deployment's name."""
    running = booted.local.ecs.running.values
    until(
        lambda: not any(r.family.startswith(f"{NAME}--worker-") for r in running()),
        60,
        "worker tasks done",
    )


def until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(2)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_each_bundle_has_its_dag_processor_and_its_dags(booted: Booted) -> None:
    services = {r.family for r in booted.local.ecs.running.values()}
    processors = sorted(f for f in services if "dag-processor" in f)
    assert processors == [f"{NAME}--dag-processor-team_a", f"{NAME}--dag-processor-team_b"]
    until(lambda: bundles_of_dags(booted) == BUNDLES, 120, f"DAGs parsed as {BUNDLES}")
    assert booted.api("GET", "/api/v2/importErrors").json()["total_entries"] == 0
    keys = booted.aws.client("s3").list_objects_v2(Bucket=booted.deployment.dags_bucket)
    assert sorted(o["Key"] for o in keys["Contents"]) == [
        "team_a/team_a_report.py",
        "team_b/team_b_load.py",
    ]


def test_each_teams_dag_runs_under_its_own_role(booted: Booted) -> None:
    until(lambda: bundles_of_dags(booted) == BUNDLES, 120, f"DAGs parsed as {BUNDLES}")
    runs = {dag_id: booted.trigger(dag_id) for dag_id in BUNDLES}
    assert {d: booted.wait(d, r) for d, r in runs.items()} == dict.fromkeys(BUNDLES, "success")
    workers_done(booted)
    s3 = booted.aws.client("s3")
    assert s3.get_object(Bucket="acme-team-a", Key="reports/latest.txt")["Body"].read() == b"a"
    assert s3.get_object(Bucket="acme-team-b", Key="loads/latest.txt")["Body"].read() == b"b"
    role_path = booted.deployment.namespace.dag_role_path
    expected = {
        (n.task_family, f"arn:aws:iam::{ACCOUNT}:role{role_path}{n.role}")
        for n in map(booted.deployment.dag_names, BUNDLES)
    }
    launched = {
        (r.family, r.task.overrides["taskRoleArn"])
        for r in booted.local.ecs.finished.values()
        if r.family.startswith(f"{NAME}--worker-")
    }
    assert launched == expected
    assert booted.session.denials() == []


def test_a_dag_id_declared_in_another_teams_bundle_never_runs(booted: Booted) -> None:
    """team_a's bundle declares team_b_load. Its run's task is refused by the scheduler's
    executor (the run names team_a's bundle; team_b_load's identity names team_b's): no RunTask,
    the task fails, the refusal is in the scheduler's log. team_b's dag-processor is stopped first:
    with both running, they take the DAG row from each other at each parse (Airflow refuses
    neither), and a run is the intruder's only when made between two of them."""
    processor = f"{NAME}--dag-processor-team_b"
    [arn] = [a for a, r in booted.local.ecs.running.items() if r.family == processor]
    booted.aws.client("ecs").stop_task(cluster=booted.deployment.namespace.cluster, task=arn)
    until(lambda: arn in booted.local.ecs.finished, 60, f"{processor} stopped")
    session = booted.session
    (session.options.dag_folder / "team_a" / "intruder.py").write_text(INTRUDER)
    assert session.sync() == ["synced team_a/intruder.py"]
    # Bundles are refreshed every 5 minutes; asking to parse one of the bundle's files (the
    # UI's "reparse") refreshes it now.
    token = booted.api("GET", "/api/v2/dags/team_a_report/details").json()["file_token"]
    booted.api("PUT", f"/api/v2/parseDagFile/{token}")
    until(
        lambda: latest_version_bundle(booted, "team_b_load") == "team_a",
        120,
        "team_b_load parsed from team_a's bundle",
    )
    family = booted.deployment.dag_names("team_b_load").task_family
    before = {k for k, r in booted.local.ecs.finished.items() if r.family == family}
    run = booted.trigger("team_b_load")
    versions = booted.api("GET", f"/api/v2/dags/team_b_load/dagRuns/{run}").json()
    assert [v["bundle_name"] for v in versions["dag_versions"]] == ["team_a"]
    assert booted.wait("team_b_load", run) == "failed"
    workers_done(booted)
    [ti] = booted.api("GET", f"/api/v2/dags/team_b_load/dagRuns/{run}/taskInstances").json()[
        "task_instances"
    ]
    assert (ti["task_id"], ti["state"]) == ("exfiltrate", "failed")
    # The reason is in the scheduler's log. (Airflow 3.3.2 hands SQLAlchemy a generator to save
    # executors' task events, which SQLAlchemy 2.1 saves as empty rows: the insert fails and
    # the event log never shows them, Airflow's own or this one.)
    [scheduler] = [r for r in booted.local.ecs.running.values() if r.family == f"{NAME}--scheduler"]
    key = f"TaskInstanceKey(dag_id='team_b_load', task_id='exfiltrate', run_id='{run}', "
    refusal = "DAG 'team_b_load' may only come from bundle 'team_b', not 'team_a'"
    log = Path(scheduler.log.name).read_text()
    assert f"Refusing workload {key}try_number=1, map_index=-1): {refusal}" in log
    assert {k for k, r in booted.local.ecs.finished.items() if r.family == family} == before
    assert not {k for k, r in booted.local.ecs.running.items() if r.family == family}
    s3 = booted.aws.client("s3")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="acme-team-b")["Contents"]] == [
        "loads/latest.txt"
    ]
