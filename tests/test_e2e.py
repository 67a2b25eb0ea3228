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

import io
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from rich.console import Console

from foundation import dev
from foundation.config import Deployment
from foundation.local.cluster import LocalCluster
from foundation.views import LiveReporter
from tests.conftest import ROOT
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
    session: dev.Session | None = None  # when booted as `foundation dev` boots

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
        while any(r.family.startswith(f"{NAME}--worker-") for r in self.local.ecs.running.values()):
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
    """What the example's DAGs expect to exist besides the cluster and the buckets `foundation
    dev` makes empty (the data platform's)."""
    aws.client("dynamodb").create_table(
        TableName="sales_watermarks",
        KeySchema=[{"AttributeName": "source", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "source", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # a DAG's own variable, under its own secrets prefix (only its role may read it)
    aws.client("secretsmanager").create_secret(
        Name=f"{NAME}/dags/sales_daily/variables/batch_size", SecretString="7"
    )


def _why(error: Exception, output: str, tasks: Path) -> str:
    """Why the boot failed: the error, what the deploy printed, the end of every task's log."""
    logs = [
        f"--- {log.parent.name}:\n{log.read_text()[-1500:]}"
        for log in sorted(tasks.glob("*/container.log"))
    ]
    return "\n".join([repr(error), output[-3000:], *logs])


@contextmanager
def boot(
    moto: MotoAws, root: Path, name: str, before: Callable[[MotoAws], None] | None = None
) -> Iterator[Booted]:
    """The project at `root` (this account, deployment `name`), booted as `foundation dev`
    boots a project (foundation/dev.py) on the suite's moto server; `before` runs once it is up,
    before anything logs in."""
    for path in (root / "config").glob("*.yaml"):
        path.write_text(path.read_text().replace("111122223333", ACCOUNT))
    (root / "config" / f"{ENV}.yaml").write_text(f"name: {name}\n")
    options = dev.Options(root, ENV)
    printed = io.StringIO()
    reporter = LiveReporter(Console(file=printed, width=200))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in moto.environment.items():
            mp.setenv(key, value)
        for key, value in moto.local.environment(options.state).items():
            mp.setenv(key, value)  # boot sets them too: monkeypatch puts them back
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(key, raising=False)
        try:
            session = dev.boot(options, reporter, moto.local)
        except Exception as error:
            pytest.fail(_why(error, printed.getvalue(), options.state / "tasks"))
        try:
            if before:
                before(moto)
            login = {"username": "admin", "password": session.logins["admin"]}
            token = requests.post(f"{session.url}/auth/token", json=login, timeout=30)
            token.raise_for_status()
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            yield Booted(
                session.project.deployment, session.cluster, moto, session.url, headers, session
            )
        finally:
            session.stop()


@pytest.fixture(scope="module")
def booted(moto_cloudformation: MotoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The example, booted."""
    root = tmp_path_factory.mktemp("e2e")
    for folder in ("config", "dag_permissions", "dags"):
        shutil.copytree(ROOT / folder, root / folder)
    with boot(moto_cloudformation, root, NAME, _the_data_platform) as booted:
        yield booted


def migration_ran(booted: Booted) -> None:
    """The deploy's `airflow db migrate` task ended well; the cluster is healthy on it."""
    family = booted.deployment.namespace.family("db-migrate")
    (migration,) = [r for r in booted.local.ecs.finished.values() if r.family == family]
    assert migration.process.returncode == 0
    # the boot returns once the api-server answers; the scheduler, started beside it, is
    # healthy from its first heartbeat on, which a loaded machine delays (seen: once in 5 runs)
    deadline = time.monotonic() + 120
    while True:
        health = booted.api("GET", "/api/v2/monitor/health").json()
        if health["scheduler"]["status"] == "healthy" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy", health


def every_dag_parsed(booted: Booted) -> None:
    """Every DAG of the example, from the S3 bundle, with no import error."""
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


def test_the_deploys_migration_ran_as_its_task(booted: Booted) -> None:
    migration_ran(booted)


def test_every_dag_of_the_example_is_parsed_from_the_s3_bundle(booted: Booted) -> None:
    every_dag_parsed(booted)


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
        role = f"arn:aws:iam::{ACCOUNT}:role{booted.deployment.namespace.dag_role_path}{names.role}"
        expected[names.task_family] = role
    launched = {
        (r.family, r.task.overrides["taskRoleArn"])
        for r in booted.local.ecs.finished.values()
        if r.family.startswith(f"{NAME}--worker-")
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
    # the toolkit's grants hold everything the cluster and these DAGs did: no call was refused
    assert booted.session.denials() == []


def test_the_api_server_the_templates_boot_guards_the_execution_api(booted: Booted) -> None:
    """The runs above passed its allow-list (XComs, the Variable, state updates); what is not on
    it is refused (tests/test_execution_api.py attacks it route by route)."""
    response = requests.get(booted.session.url + "/execution/openapi.json", timeout=30)
    message = "GET /execution/openapi.json is not on airflow-foundation's Execution API allow-list"
    assert (response.status_code, response.json()) == (
        403,
        {"detail": {"reason": "foundation", "message": message}},
    )


def test_a_task_outside_its_grant_is_denied_and_dev_names_the_entry_to_add(
    booted: Booted,
) -> None:
    booted.session.denials()  # what came before this run is another test's
    run = booted.trigger("sales_daily", {"prefix": "orders/"})  # orders_glue_transform's
    assert booted.wait("sales_daily", run) == "failed"
    booted.workers_done()
    log = booted.api(
        "GET", f"/api/v2/dags/sales_daily/dagRuns/{run}/taskInstances/extract/logs/1"
    ).json()
    denied = "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied"
    assert denied in json.dumps(log)
    ds = booted.api("GET", f"/api/v2/dags/sales_daily/dagRuns/{run}").json()["run_after"][:10]
    # what `foundation dev` prints for it: the DAG, the call, and the manifest entry to add
    assert booted.session.denials() == [
        "denied: DAG sales_daily: s3:PutObject on "
        f"arn:aws:s3:::acme-raw/orders/{ds}/accounts.json\n"
        "  to allow it, add to dag_permissions/sales_daily.yaml:\n"
        "    permissions:\n"
        "      s3:\n"
        "        - {bucket: acme-raw, prefix: orders/, access: write}"
    ]


def test_dev_made_the_buckets_queues_and_topics_the_manifests_name(booted: Booted) -> None:
    assert booted.session.data == [
        "s3://acme-artifacts",
        "s3://acme-athena-results",
        "s3://acme-curated",
        "s3://acme-raw",
        "s3://acme-reports",
        "sqs inventory-events",
        "sns finance-loads",
    ]
