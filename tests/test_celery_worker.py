"""A DAG's real Celery worker (`airflow celery worker`, kombu's SQS transport over pycurl, celery's
DynamoDB result backend) against the moto server with IAM enforced, under an IAM user carrying
exactly the DAG's generated policies, with an ECS agent stand-in recording scale-in protection.

It consumes a workload from its own queue only, writes the result, turns protection on while the
task runs and off when it ends, and its keys can neither read another DAG's queue nor publish.
The workload itself is not a runnable Airflow task (there is no Execution API here), so the
Celery task fails; what is proven is the transport, the grants and the protection around it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from foundation.airflow import runtime_files, settings
from foundation.project import load_project
from tests.airflow_scenarios.enforcement import BUNDLE
from tests.conftest import ProjectDir
from tests.moto_server import ACCOUNT, Credentials, MotoAws
from tests.test_provider_access import EXAMPLE_ACCOUNT, as_moto_enforces, assert_denied

DAG_ID = "sales_daily"
OTHER_DAG = "housekeeping"


class Agent(BaseHTTPRequestHandler):
    """The ECS agent's task-protection endpoint: records each PUT body."""

    calls: ClassVar[list[dict]] = []

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        Agent.calls.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"protection": {}}')

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def agent() -> Iterator[str]:
    Agent.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/api/task-id"
    server.shutdown()


def celery_deployment(project: ProjectDir):
    config = project.root / "config" / "foundation.yaml"
    text = config.read_text().replace(EXAMPLE_ACCOUNT, ACCOUNT)
    text = text.replace("executor: ecs", "executor: celery")
    image = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/airflow-celery:3.3.2"
    config.write_text(text.replace("image: apache/airflow:3.3.2", f"image: {image}"))
    return load_project(project.root)


def unpack(archive: str, folder: Path) -> None:
    zipfile.ZipFile(io.BytesIO(base64.b64decode(archive))).extractall(folder)


def wait_for(check, seconds: float = 90.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    return None


def results_table(moto_aws: MotoAws, deployment) -> str:
    """Celery's results table, as core makes it (once per moto server)."""
    dynamodb = moto_aws.client("dynamodb")
    table = deployment.namespace.celery_results_table
    if table not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )
    return table


def start_worker(
    moto_aws: MotoAws,
    deployment,
    dag_id: str,
    queue_url: str,
    creds: Credentials,
    agent: str,
    folder: Path,
) -> tuple[subprocess.Popen, dict[str, str]]:
    """`airflow celery worker` of one DAG, as its service runs it: the DAG's environment and
    runtime files, its own queue only, the keys of `creds`. Returns it and its environment."""
    names = deployment.dag_names(dag_id)
    home = folder / "airflow"
    worker_settings = settings.dag_worker(deployment, dag_id)
    environment = worker_settings.environment | settings.celery_worker_queue(queue_url, names)
    assert list(worker_settings.delivered) == [runtime_files.RUNTIME_ENV]
    unpack(worker_settings.delivered[runtime_files.RUNTIME_ENV], home / "config")
    assert sorted(p.name for p in (home / "config").iterdir()) == sorted(
        runtime_files.FOR_CELERY_WORKERS
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env |= {k: v for k, v in environment.items() if not k.startswith("AIRFLOW__LOGGING__")}
    env |= moto_aws.environment | {
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": str(home / "config"),
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "ECS_AGENT_URI": agent,
        "FOUNDATION_BUSY_FILE": str(folder / "running"),
    }
    command = settings.celery_worker_command(names, concurrency=1)
    worker = subprocess.Popen(
        [sys.executable, "-m", "airflow", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return worker, env


def test_a_dags_worker_consumes_its_queue_under_its_own_grants(
    moto_aws: MotoAws, project: ProjectDir, agent: str, tmp_path: Path
) -> None:
    loaded = celery_deployment(project)
    deployment = loaded.deployment
    names, other = deployment.dag_names(DAG_ID), deployment.dag_names(OTHER_DAG)
    sqs, dynamodb = moto_aws.client("sqs"), moto_aws.client("dynamodb")
    own_url = sqs.create_queue(QueueName=names.queue)["QueueUrl"]
    other_url = sqs.create_queue(QueueName=other.queue)["QueueUrl"]
    table = results_table(moto_aws, deployment)
    dag = next(d for d in loaded.dags if d.dag_id == DAG_ID)
    policies = [[s.document() for s in policy] for policy in dag.policy.policies]
    creds = moto_aws.user_with("celery-worker", [as_moto_enforces(p) for p in policies])
    worker, env = start_worker(moto_aws, deployment, DAG_ID, own_url, creds, agent, tmp_path)
    try:
        # its own DAG's: past the worker's check, then refused by Airflow (not a whole workload)
        body = json.dumps({"ti": {"dag_id": DAG_ID}})
        publish(moto_aws, env | admin_keys(moto_aws.admin), names.queue, own_url, body)
        result = wait_for(lambda: dynamodb.scan(TableName=table)["Items"])
        done = wait_for(lambda: len(Agent.calls) >= 2 and Agent.calls)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=60)[0]
    assert result, output[-6000:]
    assert done, (Agent.calls, output[-6000:])
    assert [c["body"]["ProtectionEnabled"] for c in Agent.calls] == [True, False], output
    assert Agent.calls[0]["body"]["ExpiresInMinutes"] == 2880
    assert all(c["path"] == "/api/task-id/task-protection/v1/state" for c in Agent.calls)
    attributes = sqs.get_queue_attributes(QueueUrl=own_url, AttributeNames=["All"])["Attributes"]
    assert (
        attributes["ApproximateNumberOfMessages"],
        attributes["ApproximateNumberOfMessagesNotVisible"],
    ) == ("0", "0")
    assert "AccessDenied" not in output and "not authorized" not in output, output[-6000:]

    keys = moto_aws.client("sqs", creds)
    assert_denied(lambda: keys.receive_message(QueueUrl=other_url), "sqs:ReceiveMessage")
    assert_denied(lambda: keys.send_message(QueueUrl=own_url, MessageBody="x"), "sqs:SendMessage")


def admin_keys(admin: Credentials) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
    }


def publish(
    moto_aws: MotoAws,
    env: dict[str, str],
    queue: str,
    url: str,
    workload: str = "{}",
    check: bool = True,
) -> subprocess.CompletedProcess:
    """What the scheduler's executor does, through the same Celery settings: one workload onto
    the DAG's queue (in a process of its own, with the keys in `env`)."""
    program = (
        "import json,sys;"
        "from airflow.providers.celery.executors.celery_executor_utils import create_celery_app;"
        "from airflow.configuration import conf;"
        "from airflow_foundation_celery_config import PREDEFINED_QUEUES;"
        "PREDEFINED_QUEUES[sys.argv[1]]={'url':sys.argv[2]};"
        "app=create_celery_app(conf);"
        "app.tasks['execute_workload'].apply_async(args=(sys.argv[3],),queue=sys.argv[1])"
    )
    return subprocess.run(
        [sys.executable, "-c", program, queue, url, workload],
        env=env,
        check=check,
        timeout=120,
        capture_output=True,
        text=True,
    )


def test_the_scheduler_publishes_to_dag_queues_under_its_own_grants(
    moto_aws: MotoAws, project: ProjectDir, tmp_path: Path
) -> None:
    from foundation.iam import cluster
    from foundation.iam.policy import ArnContext

    deployment = celery_deployment(project).deployment
    names = deployment.dag_names(DAG_ID)
    sqs = moto_aws.client("sqs")
    own_url = sqs.create_queue(QueueName=names.queue)["QueueUrl"]
    sqs.purge_queue(QueueUrl=own_url)
    stray_url = sqs.create_queue(QueueName="not-a-dag-queue")["QueueUrl"]
    grant = cluster.dispatch_celery(deployment.namespace)
    rendered = cluster.statements(grant, ArnContext.of(deployment))
    statements = [s.document() for s in rendered]
    creds = moto_aws.user_with("scheduler", [as_moto_enforces(statements)])
    home = tmp_path / "airflow"
    scheduler = settings.cluster_component(deployment, "scheduler")
    environment = scheduler.environment
    unpack(scheduler.delivered[runtime_files.RUNTIME_ENV], home / "config")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env |= {
        k: v
        for k, v in environment.items()
        if not k.startswith("AIRFLOW__LOGGING__") and not k.endswith("_CMD")
    }
    env |= moto_aws.environment | {
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": str(home / "config"),
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
    }
    publish(moto_aws, env, names.queue, own_url)
    attributes = sqs.get_queue_attributes(QueueUrl=own_url, AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"
    refused = publish(moto_aws, env, "not-a-dag-queue", stray_url, check=False)
    assert refused.returncode != 0 and "not authorized" in refused.stderr, refused.stderr[-3000:]


def test_protection_is_renewed_per_task_and_released_by_the_last_live_one(
    agent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = celery_config_module("celery_config_under_test", monkeypatch, tmp_path / "config")
    busy = tmp_path / "running"
    monkeypatch.setenv("ECS_AGENT_URI", agent)
    monkeypatch.setenv("FOUNDATION_BUSY_FILE", str(busy))

    def sent() -> list[bool]:
        return [c["body"]["ProtectionEnabled"] for c in Agent.calls]

    module.count_running(+1)
    module.count_running(+1)  # a second task in this child renews the protection
    assert sent() == [True, True]
    # another live child is busy: this child's last task out keeps protection on
    counts = json.loads(busy.read_text())
    busy.write_text(json.dumps(counts | {str(os.getppid()): 1}))
    module.count_running(-1)
    module.count_running(-1)
    assert sent() == [True, True]
    # that child died mid-task (its pid is gone): the next task out releases protection
    busy.write_text(json.dumps({"999999999": 1, str(os.getpid()): 1}))
    module.count_running(-1)
    assert sent() == [True, True, False]
    assert json.loads(busy.read_text()) == {}


def test_running_counts_are_kept_in_the_tasks_own_temporary_folder(
    agent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/tmp in a container; $TMPDIR where the local cluster runs tasks side by side."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("ECS_AGENT_URI", agent)
    monkeypatch.delenv("FOUNDATION_BUSY_FILE", raising=False)
    module = celery_config_module("celery_config_tmpdir", monkeypatch, tmp_path / "config")
    module.count_running(+1)
    assert json.loads((tmp_path / "foundation-running-tasks").read_text()) == {str(os.getpid()): 1}


REFUSAL = (
    "the worker of DAG 'dag_b' refuses a workload of DAG 'dag_a': a DAG's workloads run only on "
    "its own worker, under its own role"
)


def test_a_dags_worker_refuses_another_dags_workload_and_its_task_instance_fails(
    moto_aws: MotoAws, project: ProjectDir, agent: str, tmp_path: Path
) -> None:
    """Real Airflow's scheduler publishes dag_a's workload; someone puts it on dag_b's queue
    (these queues carry no policy: moto evaluates none, and this is the worker's own defence);
    dag_b's real worker, under dag_b's grants, runs none of it, and the scheduler fails dag_a's
    task instance with the worker's reason."""
    from foundation.iam.policy import ArnContext, celery_worker_grants, render
    from tests.airflow_scenarios import airflow_environment, local_bundle, run_scenario
    from tests.test_airflow_celery import scheduler_environment

    deployment = celery_deployment(project).deployment
    sqs = moto_aws.client("sqs")
    urls = {
        dag: sqs.create_queue(QueueName=deployment.dag_names(dag).queue)["QueueUrl"]
        for dag in ("dag_a", "dag_b")
    }
    ssm = moto_aws.client("ssm")
    for dag, url in urls.items():
        identity = {"queue": deployment.dag_names(dag).queue, "queue_url": url, "bundle": BUNDLE}
        ssm.put_parameter(
            Name=deployment.namespace.identity_parameter(dag),
            Value=json.dumps(identity),
            Type="String",
            Overwrite=True,
        )
    table = results_table(moto_aws, deployment)
    grants = celery_worker_grants(deployment, deployment.dag_names("dag_b"))
    statements = [s.document() for g in grants for s in render(g, ArnContext.of(deployment))]
    creds = moto_aws.user_with("dag-b-worker", [as_moto_enforces(statements)])
    worker, _ = start_worker(
        moto_aws, deployment, "dag_b", urls["dag_b"], creds, agent, tmp_path / "worker"
    )

    home = tmp_path / "scheduler"
    dags = home / "dags"
    dags.mkdir(parents=True)
    runtime_files.write(home / "config", "celery")
    env = airflow_environment(
        scheduler_environment(), home, dags, [local_bundle(dags)], deployment.region
    )
    env |= {k: v for k, v in moto_aws.environment.items() if k != "AIRFLOW_HOME"}
    env |= admin_keys(moto_aws.admin) | {
        "PYTHONPATH": str(home / "config"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # the scenario's REST trigger
    }
    marker = tmp_path / "dag_a_ran"
    inputs = tmp_path / "inputs.json"
    inputs.write_text(
        json.dumps({"dags_folder": str(dags), "queue_urls": urls, "marker": str(marker)})
    )
    try:
        observed = run_scenario("celery_worker_guard", inputs, env)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=60)[0]

    [ti] = observed["task_instances"]
    assert (ti["dag_id"], ti["task_id"], ti["state"]) == ("dag_a", "extract", "failed"), output
    [mismatch] = [e for e in observed["events"] if e["event"] == "state mismatch"]
    assert mismatch["extra"].split(" Extra info: ")[1] == REFUSAL
    refused = "airflow_foundation_celery_config.WorkloadRefused: " + REFUSAL
    assert refused in output.splitlines(), output[-6000:]
    assert "Executing workload in Celery" not in output, output[-6000:]
    assert not marker.exists()
    [result] = [
        i
        for i in moto_aws.client("dynamodb").scan(TableName=table)["Items"]
        if REFUSAL in i["result"]["B"].decode(errors="replace")
    ]
    outcome = json.loads(result["result"]["B"])
    assert (outcome["status"], outcome["result"]["exc_type"]) == ("FAILURE", "WorkloadRefused")
    assert outcome["result"]["exc_message"] == [REFUSAL]
    # kombu acknowledges a message on the queue its routing key names: dag_a's, which this
    # worker does not know, so the worker stops there (README: Celery mode, residual risks)
    assert (
        'Unrecoverable error: UndefinedQueueException("Queue with name '
        f"'{deployment.dag_names('dag_a').queue}' must be defined in 'predefined_queues'.\")"
    ) in output


def celery_config_module(name: str, monkeypatch: pytest.MonkeyPatch, folder: Path):
    """The workers' Celery settings as a module of its own, among the files a worker unpacks."""
    import importlib.util

    unpack(runtime_files.archive(runtime_files.FOR_CELERY_WORKERS), folder)
    monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / runtime_files.CELERY_CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_dags_worker_is_told_its_dag_and_runs_no_other(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the stacks set is what the worker reads; a workload it cannot read names no DAG,
    and a worker told no DAG runs none."""
    deployment = celery_deployment(project).deployment
    module = celery_config_module("celery_config_refusals", monkeypatch, tmp_path / "runtime")
    assert (module.WORKER_DAG_ENV, module.UNMANAGED_WORKER_ENV) == (
        settings.WORKER_DAG_ENV,
        settings.UNMANAGED_WORKER_ENV,
    )
    assert settings.dag_worker(deployment, DAG_ID).environment[settings.WORKER_DAG_ENV] == DAG_ID
    unmanaged = settings.unmanaged_worker(deployment).environment
    assert unmanaged[settings.UNMANAGED_WORKER_ENV] == "true"
    assert settings.WORKER_DAG_ENV not in unmanaged
    refuse = module.refuse_other_dags
    monkeypatch.setenv(settings.WORKER_DAG_ENV, DAG_ID)
    monkeypatch.delenv(settings.UNMANAGED_WORKER_ENV, raising=False)
    own = json.dumps({"type": "ExecuteTask", "ti": {"dag_id": DAG_ID}})
    callback = json.dumps({"type": "ExecuteCallback", "callback": {"data": {"dag_id": OTHER_DAG}}})
    refuse(None, "id", (own,), {})
    for workload, named in ((callback, OTHER_DAG), ("[1]", None), ("not json", None)):
        with pytest.raises(module.WorkloadRefused) as refused:
            refuse(None, "id", (workload,), {})
        assert str(refused.value) == (
            f"the worker of DAG {DAG_ID!r} refuses a workload of DAG {named!r}: a DAG's "
            "workloads run only on its own worker, under its own role"
        )
    # a near name is another DAG
    with pytest.raises(module.WorkloadRefused):
        refuse(None, "id", (json.dumps({"ti": {"dag_id": DAG_ID.upper()}}),), {})
    monkeypatch.delenv(settings.WORKER_DAG_ENV)
    with pytest.raises(module.WorkloadRefused):
        refuse(None, "id", (own,), {})
    monkeypatch.setenv(settings.UNMANAGED_WORKER_ENV, "true")
    refuse(None, "id", (callback,), {})  # the baseline identity's worker: no grants to borrow
    assert module.CELERY_CONFIG["task_annotations"] == {
        "execute_workload": {"before_start": refuse}
    }
