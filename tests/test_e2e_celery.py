"""The whole cluster in Celery mode, booted from its own templates: the shipped example with
`executor: celery` (an ECR image, as validate asks) is bootstrapped and deployed by `foundation`
onto moto's server over HTTP with IAM enforced, exactly as test_e2e.py does in ECS mode. The
scheduler's FoundationCeleryExecutor publishes each workload to its DAG's own SQS queue through
real kombu; nothing runs it until the backlog's alarm, read from the deployed template, scales
that DAG's worker service from 0 (foundation/local/autoscaling.py); its task is a process of the
image's entrypoint running `airflow celery worker` under the DAG's role, which asks the ECS
agent's endpoint (foundation/local/ecs_agent.py) for scale-in protection while each Airflow task
runs; once idle and unprotected, the service scales back to 0.

What differs from AWS is listed in foundation/local (ecs.py, ecs_agent.py, autoscaling.py,
moto_gaps.py); the alarms' one-minute periods are shortened to TIME_SCALE of a minute.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import pytest
import requests

from foundation.local.cluster import LocalCluster
from foundation.local.ecs import Endpoint, Running
from foundation.local.postgres import LocalPostgres
from foundation.project import load_project
from tests.conftest import ROOT, ProjectDir
from tests.moto_server import ACCOUNT, REGION, MotoAws
from tests.test_e2e import Booted, _why, every_dag_parsed, migration_ran
from tests.test_provider_access import assert_denied

ENV = "e2e-celery"
NAME = "acme-e2c"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/airflow-celery:3.3.2"
TIME_SCALE = 0.2  # the template's 60 s alarm periods last 12 s
TASKS = {"sales_daily": ["extract", "record_watermark"], "housekeeping": ["report"]}
LOG_TIMEOUT = 60
# the Celery task's own log line, with the workload it runs
EXECUTING = re.compile(
    r"Executing workload in Celery: .*? log_path='dag_id=([^/]+)/run_id=([^/]+)/task_id=([^/]+)/"
)


def _the_data_platform(aws: MotoAws) -> Callable[[], None]:
    """What the example's DAGs expect besides the cluster. The session's moto may hold it already
    (test_e2e.py makes the same): made if missing, with no earlier run's output. Returns what
    takes away what this made, so that a later test_e2e.py finds none of it."""
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    secrets = aws.client("secretsmanager")
    secret = f"{NAME}/dags/sales_daily/variables/batch_size"
    made = []
    if "acme-raw" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="acme-raw")
        made.append(lambda: s3.delete_bucket(Bucket="acme-raw"))
    if "sales_watermarks" not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName="sales_watermarks",
            KeySchema=[{"AttributeName": "source", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "source", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        made.append(lambda: dynamodb.delete_table(TableName="sales_watermarks"))
    if not secrets.list_secrets(Filters=[{"Key": "name", "Values": [secret]}])["SecretList"]:
        secrets.create_secret(Name=secret, SecretString="7")
        made.append(lambda: secrets.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True))

    def empty_bucket() -> None:
        for listed in s3.list_objects_v2(Bucket="acme-raw").get("Contents", []):
            s3.delete_object(Bucket="acme-raw", Key=listed["Key"])

    empty_bucket()

    def take_away() -> None:
        empty_bucket()
        for undo in made:
            undo()

    return take_away


@pytest.fixture(scope="module")
def booted(moto_cloudformation: MotoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    root = tmp_path_factory.mktemp("e2e-celery")
    for folder in ("config", "dag_permissions", "dags"):
        shutil.copytree(ROOT / folder, root / folder)
    for path in (root / "config").glob("*.yaml"):
        path.write_text(path.read_text().replace("111122223333", ACCOUNT))
    (root / "config" / f"{ENV}.yaml").write_text(
        f"name: {NAME}\nairflow:\n  executor: celery\n  image: {IMAGE}\n"
    )
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
    assert deployment.celery
    postgres = LocalPostgres().start()
    local, take_away = None, None
    try:
        local = LocalCluster.prepare(deployment, endpoint, postgres, root / "tasks")
        with pytest.MonkeyPatch.context() as mp:
            for name, value in moto_cloudformation.environment.items():
                mp.setenv(name, value)
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                mp.delenv(name, raising=False)
            for verb in ("bootstrap", "deploy"):
                result = project.run_with_env(credentials, verb, "--yes", "--env", ENV)
                failed = AssertionError(f"foundation {verb} exited {result.exit_code}")
                assert result.exit_code == 0, _why(
                    failed, result.stdout + result.stderr, root / "tasks"
                )
        take_away = _the_data_platform(moto_cloudformation)
        local.sync_dags(root / "dags")
        url = local.start_services(time_scale=TIME_SCALE)
        login = {"username": "admin", "password": local.password("admin")}
        token = requests.post(f"{url}/auth/token", json=login, timeout=30)
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        yield Booted(deployment, local, moto_cloudformation, url, headers)
    finally:
        if local:
            local.stop()
        postgres.stop()
        if take_away:
            take_away()


def worker_tasks(booted: Booted) -> list[Running]:
    """Every task of a DAG's worker service, finished or running."""
    ecs = booted.local.ecs
    with ecs._lock:
        tasks = [*ecs.finished.values(), *ecs.running.values()]
    dag_ids = [p.stem for p in (ROOT / "dag_permissions").glob("*.yaml")]
    services = {f"ecs-svc/{booted.deployment.dag_names(d).service}" for d in dag_ids}
    return [r for r in tasks if r.task.started_by in services]


def task_logs(booted: Booted, dag_id: str, count: int) -> list[str]:
    """The task-log keys under the DAG's prefix, once `count` are there (a worker uploads a
    task's log after its state is final)."""
    logs = booted.aws.client("s3")
    deadline = time.monotonic() + LOG_TIMEOUT
    while True:
        listed = logs.list_objects_v2(
            Bucket=f"{NAME}-logs-{ACCOUNT}-{REGION}", Prefix=f"task-logs/dag_id={dag_id}/"
        )
        keys = sorted(o["Key"] for o in listed.get("Contents", []))
        if len(keys) >= count or time.monotonic() > deadline:
            return keys
        time.sleep(0.5)


@dataclass(frozen=True)
class Runs:
    succeeding: dict[str, str]  # dag_id -> run_id
    denied: str  # a sales_daily run asked to write outside its grant
    every: dict[str, list[str]]  # dag_id -> its runs (unpausing made a scheduled one)
    states: dict[str, str]  # run_id -> its final state

    def ran(self, dag_id: str) -> dict[str, list[str]]:
        """Each of the DAG's runs -> the tasks that ran in it (the denied run stopped at its
        first)."""
        return {r: ["extract"] if r == self.denied else TASKS[dag_id] for r in self.every[dag_id]}


@pytest.fixture(scope="module")
def runs(booted: Booted) -> Runs:
    """Every run at once, each waited for: a worker scaled in while its long poll is open would
    take a message sent in the next seconds to its closed connection (see README), so the test
    sends none after the workers went idle."""
    assert worker_tasks(booted) == [], "a worker service started before its queue had work"
    succeeding = {dag_id: booted.trigger(dag_id) for dag_id in TASKS}
    denied = booted.trigger("sales_daily", {"prefix": "orders/"})  # orders_glue_transform's
    every = {dag_id: dag_runs(booted, dag_id) for dag_id in TASKS}
    states = {run: booted.wait(dag_id, run) for dag_id in TASKS for run in every[dag_id]}
    return Runs(succeeding, denied, every, states)


def dag_runs(booted: Booted, dag_id: str) -> list[str]:
    """The DAG's runs, once the scheduler made the one unpausing it is due (its last interval:
    neither DAG catches up)."""
    deadline = time.monotonic() + 60
    while True:
        listed = booted.api("GET", f"/api/v2/dags/{dag_id}/dagRuns").json()["dag_runs"]
        if any(r["run_type"] == "scheduled" for r in listed):
            return sorted(r["dag_run_id"] for r in listed)
        assert time.monotonic() < deadline, f"no scheduled run of {dag_id} after 60 s"
        time.sleep(1)


def test_the_deploys_migration_ran_as_its_task(booted: Booted) -> None:
    migration_ran(booted)


def test_every_dag_of_the_example_is_parsed_from_the_s3_bundle(booted: Booted) -> None:
    every_dag_parsed(booted)


def test_dags_run_to_success_each_on_its_own_worker_service(booted: Booted, runs: Runs) -> None:
    assert {dag_id: runs.states[run] for dag_id, run in runs.succeeding.items()} == {
        "sales_daily": "success",
        "housekeeping": "success",
    }
    assert [len(runs.every["sales_daily"]), len(runs.every["housekeeping"])] == [3, 2]
    assert runs.states == {
        run: "failed" if run == runs.denied else "success"
        for listed in runs.every.values()
        for run in listed
    }
    sales = runs.succeeding["sales_daily"]
    run = booted.api("GET", f"/api/v2/dags/sales_daily/dagRuns/{sales}").json()
    body = booted.aws.client("s3").get_object(
        Bucket="acme-raw", Key=f"salesforce/{run['run_after'][:10]}/accounts.json"
    )["Body"]
    # batch_size 7 came from the DAG's own secrets prefix, through the workers' backend
    accounts = [{"id": i, "name": f"account-{i}"} for i in range(7)]
    assert body.read() == json.dumps(accounts).encode()
    for dag_id in TASKS:
        expected = sorted(
            f"task-logs/dag_id={dag_id}/run_id={run_id}/task_id={task}/attempt=1.log"
            for run_id, tasks in runs.ran(dag_id).items()
            for task in tasks
        )
        assert task_logs(booted, dag_id, len(expected)) == expected
    # each Airflow task of every run ran in a task of its DAG's worker service, under its DAG's
    # role
    ecs = booted.aws.client("ecs")
    ran = {}
    for worker in worker_tasks(booted):
        definition = ecs.describe_task_definition(taskDefinition=worker.task.task_definition_arn)
        role = definition["taskDefinition"]["taskRoleArn"]
        for dag_id, run_id, task_id in EXECUTING.findall(worker_log(worker)):
            ran[(dag_id, run_id, task_id)] = (worker.family, role)
    by_dag = {}
    for dag_id in TASKS:
        names = booted.deployment.dag_names(dag_id)
        role = f"arn:aws:iam::{ACCOUNT}:role{booted.deployment.namespace.dag_role_path}{names.role}"
        by_dag[dag_id] = (names.task_family, role)
    assert set(ran.values()) == set(by_dag.values())
    assert ran == {
        (dag_id, run_id, task): by_dag[dag_id]
        for dag_id in TASKS
        for run_id, tasks in runs.ran(dag_id).items()
        for task in tasks
    }


def test_a_task_outside_its_grant_is_denied(booted: Booted, runs: Runs) -> None:
    assert runs.states[runs.denied] == "failed"
    log = booted.api(
        "GET", f"/api/v2/dags/sales_daily/dagRuns/{runs.denied}/taskInstances/extract/logs/1"
    ).json()
    errors = [e for event in log["content"] for e in event.get("error_detail", [])]
    assert [(e["exc_type"], e["exc_value"]) for e in errors] == [
        (
            "AccessDenied",
            "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied",
        )
    ], json.dumps(log)[-3000:]


def test_idle_workers_release_protection_and_scale_in_to_zero(booted: Booted, runs: Runs) -> None:
    families = {w.family for w in worker_tasks(booted)}
    assert families == {booted.deployment.dag_names(d).task_family for d in TASKS}
    deadline = time.monotonic() + 60
    while any(w.process.poll() is None for w in worker_tasks(booted)):
        assert time.monotonic() < deadline, "worker tasks still running 60 s after their runs"
        time.sleep(0.5)
    ecs = booted.aws.client("ecs")
    names = {booted.deployment.dag_names(d).service for d in TASKS}
    services = ecs.describe_services(cluster=NAME, services=sorted(names))["services"]
    assert {s["serviceName"]: s["desiredCount"] for s in services} == dict.fromkeys(names, 0)
    deployments = {s["serviceName"]: s["deployments"][0]["id"] for s in services}
    # no other DAG's service ever scaled, and no evaluation failed
    assert {a.service for a in booted.local.scaling.activities} == names
    assert booted.local.scaling.errors == []
    calls = booted.local.agent.calls
    for worker in worker_tasks(booted):
        service = worker.task.started_by.removeprefix("ecs-svc/")
        # stopped by the scale-in, with ECS's reason, not by its own exit
        assert worker.task.stopped_reason == (
            f"Scaling activity initiated by (deployment {deployments[service]})"
        )
        own = [c for c in calls if c.task_arn == worker.task.task_arn]
        started = len(EXECUTING.findall(worker_log(worker)))
        # each Airflow task it started set protection, as the DAG's role may; the last task
        # out released it
        assert [c.body["ProtectionEnabled"] for c in own].count(True) == started
        assert own[-1].body == {"ProtectionEnabled": False}
        for call in own:
            assert (call.method, call.status) == ("PUT", 200), call
            answer = call.answer["protection"]
            assert (answer["TaskArn"], answer["ProtectionEnabled"]) == (
                worker.task.task_arn,
                call.body["ProtectionEnabled"],
            )
        protection = ecs.get_task_protection(cluster=NAME, tasks=[worker.task.task_arn])
        assert protection["protectedTasks"] == [
            {"taskArn": worker.task.task_arn, "protectionEnabled": False}
        ]


def worker_log(worker: Running) -> str:
    return (worker.folder / "container.log").read_text()


def test_no_principal_but_the_scheduler_sends_to_a_dags_queue(booted: Booted, runs: Runs) -> None:
    """A principal of the account whose own policy allows everything (the set-up admin) and
    another DAG's role (as its worker holds it) are refused sending to and receiving from
    sales_daily's deployed queue; the runs above are the scheduler's sends and the workers'
    receives the same policy allows. moto enforces no queue policy: moto_gaps.py evaluates
    the denies the deployed template set on the queue, with the toolkit's IAM evaluation."""
    endpoint = booted.local.endpoint
    admin = endpoint.client("sqs")
    names, other = (booted.deployment.dag_names(d) for d in ("sales_daily", "housekeeping"))
    url = admin.get_queue_url(QueueName=names.queue)["QueueUrl"]
    ns = booted.deployment.namespace
    other_role = f"arn:aws:iam::{ACCOUNT}:role{ns.dag_role_path}{other.role}"
    intruder = endpoint.client("sqs", endpoint.session_of(other_role, "intruder"))
    for sqs in (admin, intruder):
        assert_denied(partial(sqs.send_message, QueueUrl=url, MessageBody="{}"), "sqs:SendMessage")
        assert_denied(partial(sqs.receive_message, QueueUrl=url), "sqs:ReceiveMessage")
    attributes = admin.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (
        attributes["ApproximateNumberOfMessages"],
        attributes["ApproximateNumberOfMessagesNotVisible"],
    ) == ("0", "0")
    statements = json.loads(attributes["Policy"])["Statement"]
    scheduler = f"arn:aws:iam::{ACCOUNT}:role/{NAME}--scheduler"
    assert [(s.get("Sid"), s["Condition"]) for s in statements] == [
        (None, {"Bool": {"aws:SecureTransport": "false"}}),
        ("OnlyTheSchedulerSends", {"ArnNotEquals": {"aws:PrincipalArn": [scheduler]}}),
        (
            "OnlyTheDagsWorkersConsume",
            {
                "ArnNotEquals": {
                    "aws:PrincipalArn": [
                        f"arn:aws:iam::{ACCOUNT}:role{ns.dag_role_path}{names.role}"
                    ]
                }
            },
        ),
    ]
