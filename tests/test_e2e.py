"""The whole cluster, booted from its own templates: the shipped example (its manifests and its
`dags/`) is bootstrapped and deployed by `foundation` onto moto's server over HTTP with IAM
enforced; `airflow db migrate` runs as the deploy's RunTask; every ECS service starts as a
process of the image's entrypoint with its task definition's command, environment and secrets
under its task role (foundation/local: what differs from ECS is listed there); each Airflow
task runs as the RunTask the scheduler's executor makes, under its DAG's role. A local
PostgreSQL stands in for RDS.

moto checks actions and resource ARNs, and (foundation/local/moto_gaps.py) the s3:prefix,
s3:delimiter and ecs:cluster conditions through the toolkit's own IAM evaluation; it checks no
other condition and no PassRole: test_synth.py evaluates the same templates' conditions. What
only AWS can show is in test_live_aws.py (opt-in).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from foundation.config import Deployment
from foundation.local.cluster import LocalCluster
from foundation.local.ecs import Endpoint
from foundation.local.postgres import LocalPostgres
from foundation.naming import role_path
from foundation.project import load_project
from tests.conftest import ROOT, ProjectDir
from tests.moto_server import ACCOUNT, REGION, MotoAws

ENV = "e2e"
NAME = "acme-e2e"
RUN_TIMEOUT = 240


@dataclass
class Booted:
    deployment: Deployment
    local: LocalCluster
    aws: MotoAws
    url: str
    headers: dict[str, str]
    postgres: LocalPostgres

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(
            method, self.url + path, headers=self.headers, timeout=30, **kwargs
        )
        response.raise_for_status()
        return response

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        body = {"logical_date": None, "conf": conf or {}}
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body).json()["dag_run_id"]

    def workers_done(self) -> None:
        """A task's state is final before its process ends (it uploads its log last)."""
        deadline = time.monotonic() + 60
        while any(r.family.startswith(f"{NAME}-worker-") for r in self.local.ecs.running.values()):
            assert time.monotonic() < deadline, "worker tasks still running after 60 s"
            time.sleep(0.5)

    def wait(self, dag_id: str, run_id: str) -> str:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise AssertionError(f"{dag_id} {run_id} still running after {RUN_TIMEOUT} s")


def _the_data_platform(aws: MotoAws) -> None:
    """What the example's DAGs expect to exist besides the cluster (the data platform's)."""
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    s3.create_bucket(Bucket="acme-raw")
    dynamodb.create_table(
        TableName="sales_watermarks",
        KeySchema=[{"AttributeName": "source", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "source", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # a DAG's own variable, under its own secrets prefix (only its role may read it)
    aws.client("secretsmanager").create_secret(
        Name="airflow/dags/sales_daily/variables/batch_size", SecretString="7"
    )


def _why(output: str, local: LocalCluster) -> str:
    """What a failed deploy printed, and the end of every container's log."""
    logs = [
        f"--- {r.family} (exit {r.process.returncode}):\n"
        + (r.folder / "container.log").read_text()[-1500:]
        for r in [*local.ecs.finished.values(), *local.ecs.running.values()]
    ]
    return "\n".join([output[-3000:], *logs, *local.ecs.refused.values()])


@pytest.fixture(scope="module")
def booted(moto_cloudformation: MotoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    root = tmp_path_factory.mktemp("e2e")
    for folder in ("config", "dag_permissions", "dags"):
        shutil.copytree(ROOT / folder, root / folder)
    for path in (root / "config").glob("*.yaml"):
        path.write_text(path.read_text().replace("111122223333", ACCOUNT))
    (root / "config" / f"{ENV}.yaml").write_text(f"name: {NAME}\n")
    project = ProjectDir(root)
    admin = moto_cloudformation.admin
    credentials = {
        "AWS_ACCESS_KEY_ID": admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
    }
    endpoint = Endpoint(
        moto_cloudformation.endpoint, REGION, ACCOUNT, admin.access_key_id, admin.secret_access_key
    )
    deployment = load_project(root, ENV).deployment
    postgres = LocalPostgres().start()
    local = None
    try:
        local = LocalCluster.prepare(deployment, endpoint, postgres, root / "tasks")
        with pytest.MonkeyPatch.context() as mp:
            for name, value in moto_cloudformation.environment.items():
                mp.setenv(name, value)
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                mp.delenv(name, raising=False)
            for verb in ("bootstrap", "deploy"):
                result = project.run_with_env(credentials, verb, "--yes", "--env", ENV)
                assert result.exit_code == 0, _why(result.stdout + result.stderr, local)
        _the_data_platform(moto_cloudformation)
        local.sync_dags(root / "dags")
        url = local.start_services()
        login = {"username": "admin", "password": local.password("admin")}
        token = requests.post(f"{url}/auth/token", json=login, timeout=30)
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        yield Booted(deployment, local, moto_cloudformation, url, headers, postgres)
    finally:
        if local:
            local.stop()
        postgres.stop()


def test_the_deploys_migration_ran_as_its_task(booted: Booted) -> None:
    (migration,) = [
        r for r in booted.local.ecs.finished.values() if r.family == f"{NAME}-db-migrate"
    ]
    assert migration.process.returncode == 0
    health = booted.api("GET", "/api/v2/monitor/health").json()
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"


def test_every_dag_of_the_example_is_parsed_from_the_s3_bundle(booted: Booted) -> None:
    expected = sorted(p.stem for p in (ROOT / "dag_permissions").glob("*.yaml"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        dags = booted.api("GET", "/api/v2/dags").json()["dags"]
        if len(dags) >= len(expected):
            break
        time.sleep(2)
    assert sorted(d["dag_id"] for d in dags) == expected
    assert booted.api("GET", "/api/v2/importErrors").json()["total_entries"] == 0
    assert {d["bundle_name"] for d in dags} == {"dags"}


def test_dags_run_to_success_each_under_its_own_role(booted: Booted) -> None:
    runs = {dag_id: booted.trigger(dag_id) for dag_id in ("sales_daily", "housekeeping")}
    assert {dag_id: booted.wait(dag_id, run) for dag_id, run in runs.items()} == {
        "sales_daily": "success",
        "housekeeping": "success",
    }
    run = booted.api("GET", f"/api/v2/dags/sales_daily/dagRuns/{runs['sales_daily']}").json()
    ds = run["run_after"][:10]
    body = booted.aws.client("s3").get_object(
        Bucket="acme-raw", Key=f"salesforce/{ds}/accounts.json"
    )["Body"]
    # batch_size 7 came from the DAG's own secrets prefix, through the workers' backend
    assert json.loads(body.read()) == [{"id": i, "name": f"account-{i}"} for i in range(7)]
    # each task ran as its DAG's RunTask: its task definition and its role, nothing else
    booted.workers_done()
    expected = {}
    for dag_id in runs:
        names = booted.deployment.dag_names(dag_id)
        role = f"arn:aws:iam::{ACCOUNT}:role{role_path(NAME)}{names.role}"
        expected[names.task_family] = role
    launched = {
        (r.family, r.task.overrides["taskRoleArn"])
        for r in booted.local.ecs.finished.values()
        if r.family.startswith(f"{NAME}-worker-")
    }
    assert launched == set(expected.items())
    logs = booted.aws.client("s3").list_objects_v2(
        Bucket=f"{NAME}-logs-{ACCOUNT}-{REGION}", Prefix="task-logs/"
    )
    keys = sorted(o["Key"] for o in logs.get("Contents", []))
    for dag_id, run_id in runs.items():
        task = "extract" if dag_id == "sales_daily" else "report"
        key = f"task-logs/dag_id={dag_id}/run_id={run_id}/task_id={task}/attempt=1.log"
        assert key in keys, keys


def test_a_task_outside_its_grant_is_denied(booted: Booted) -> None:
    run = booted.trigger("sales_daily", {"prefix": "orders/"})  # orders_glue_transform's
    assert booted.wait("sales_daily", run) == "failed"
    booted.workers_done()
    log = booted.api(
        "GET", f"/api/v2/dags/sales_daily/dagRuns/{run}/taskInstances/extract/logs/1"
    ).json()
    denied = "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied"
    assert denied in json.dumps(log)
