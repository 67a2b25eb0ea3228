"""Attacks on the triggerer and on parse time, against real Airflow and PostgreSQL, one phase per
component (each in its own process, with that component's environment from
foundation.airflow.settings, its secrets injected as ECS would, and one metadata database):

    python -m tests.airflow_scenarios.triggers <phase> <input.json>

- migrate (db-migrate's environment): the schema.
- parse (the dag-processor's, sealed by foundation_sealed.seal): DagFileProcessorManager parses
  the DAG files once, forking a parse process per file as the dag-processor does. A DAG file
  probes for secrets at parse time; others ask for what would run in the triggerer for no
  deferred task (refused by the cluster policies), one after turning the policies off first.
- defer (the api-server's, with its plugins folder): a worker's calls defer one task to each
  classpath through the Execution API; the guard answers.
- plant (a component without the guard, as a row that never passed it): the same refused
  classpaths stored by Airflow's own route, a deadline callback queued by Airflow's own model
  code, an asset watcher, and the scheduler's start_from_trigger deferral.
- trigger (the triggerer's, sealed and guarded by foundation_sealed): the trigger runner runs
  whatever the guard lets through; a probe trigger looks for secrets.

The output (stdout, last line) is one JSON document of observations.
"""

from __future__ import annotations

import http.server
import importlib
import json
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.airflow_scenarios import start_task_instance

BUNDLE = "dags-folder"
DEFERRER = "deferrer"


def dag_files(inputs: dict) -> dict[str, str]:
    marks, probe_out = inputs["marks"], inputs["parse_probe_out"]
    header = "from datetime import datetime, timedelta\nSTART = datetime(2024, 1, 1)\n"
    tasks = "\n".join(
        f"    @task(task_id={name!r})\n    def t_{i}():\n        pass\n\n    t_{i}()\n"
        for i, name in enumerate(inputs["deferring_tasks"])
    )
    return {
        # Module-level code at parse time: everything it reaches, written out.
        "probe_dag.py": header
        + textwrap.dedent(
            f"""
            import json
            from pathlib import Path

            from airflow.sdk import DAG, task
            from tests.airflow_scenarios.probe import observe

            Path({probe_out!r}).write_text(json.dumps(observe({inputs["fernet_key_sha256"]!r})))

            with DAG("probe_dag", schedule=None, start_date=START):

                @task
                def nothing():
                    pass

                nothing()
            """
        ),
        # The DAG whose tasks defer (phase defer and plant), and a trigger class of its own.
        "evil_dag.py": header
        + textwrap.dedent(
            f"""
            from pathlib import Path

            from airflow.sdk import DAG, task
            from airflow.triggers.base import BaseTrigger, TriggerEvent


            class EvilTrigger(BaseTrigger):
                def serialize(self):
                    return ("evil_dag.EvilTrigger", {{}})

                async def run(self):
                    Path({marks["dag_class"]!r}).write_text("ran in the triggerer")
                    yield TriggerEvent("done")


            with DAG({DEFERRER!r}, schedule=None, start_date=START):
            """
        )
        + tasks,
        "async_deadline.py": header
        + textwrap.dedent(
            """
            from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference, task

            with DAG(
                "async_deadline",
                schedule=None,
                start_date=START,
                deadline=DeadlineAlert(
                    reference=DeadlineReference.DAGRUN_QUEUED_AT,
                    interval=timedelta(0),
                    callback=AsyncCallback("tests.airflow_scenarios.probe.touch"),
                ),
            ):

                @task
                def nothing():
                    pass

                nothing()
            """
        ),
        "asset_watcher.py": header
        + textwrap.dedent(
            """
            from airflow.providers.standard.triggers.file import FileDeleteTrigger
            from airflow.sdk import DAG, Asset, AssetWatcher, task

            watched = Asset(
                "landing",
                watchers=[AssetWatcher("w", FileDeleteTrigger(filepath="/tmp/landing.csv"))],
            )
            with DAG("asset_watcher", schedule=[watched], start_date=START):

                @task
                def nothing():
                    pass

                nothing()
            """
        ),
        "start_trigger.py": header
        + textwrap.dedent(
            """
            from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
            from airflow.sdk import DAG

            with DAG("start_trigger", schedule=None, start_date=START):
                DateTimeSensorAsync(
                    task_id="wait", target_time=datetime(2024, 1, 1), start_from_trigger=True
                )
            """
        ),
        # The policies run in the same process as the file: it can turn them off first. What it
        # then declares reaches the database; the triggerer is what refuses to run it.
        "start_trigger_bypass.py": header
        + textwrap.dedent(
            """
            import airflow.settings

            airflow.settings.task_policy = lambda task: None

            from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
            from airflow.sdk import DAG

            with DAG("start_trigger_bypass", schedule=None, start_date=START):
                DateTimeSensorAsync(
                    task_id="wait", target_time=datetime(2024, 1, 1), start_from_trigger=True
                )
            """
        ),
    }


# -- phases ----------------------------------------------------------------------------------------


def sealed_module():
    """foundation_sealed.py from $AIRFLOW_HOME/config, where Airflow's start puts it on sys.path
    (the component runs it as its main program; here its functions are called in that order)."""
    import airflow  # noqa: F401

    return importlib.import_module("foundation_sealed")


def migrate(inputs: dict) -> dict:
    from airflow.utils import db

    db.initdb()
    return {}


def parse(inputs: dict) -> dict:
    """The dag-processor: sealed as foundation_sealed.py seals it, then one parsing loop."""
    sealed_module().seal("dag-processor")
    from airflow.dag_processing.manager import DagFileProcessorManager
    from airflow.models.dag import DagModel
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dags = Path(inputs["dags_folder"])
    for name, text in dag_files(inputs).items():
        (dags / name).write_text(text)
    DagFileProcessorManager(max_runs=1).run()
    with create_session() as session:
        errors = {e.filename: e.stacktrace for e in session.scalars(select(ParseImportError))}
        dag_ids = sorted(session.scalars(select(DagModel.dag_id)))
    return {"import_errors": errors, "dag_ids": dag_ids}


def token_headers(api: Any, ti_id: str) -> dict[str, str]:
    """What a worker holds: the scheduler's token for its task instance, after starting it."""
    from airflow.api_fastapi.auth.tokens import JWTGenerator, get_signing_args
    from airflow.configuration import conf
    from airflow.executors.workloads.base import BaseWorkloadSchema

    generator = JWTGenerator(
        valid_for=conf.getint("execution_api", "jwt_expiration_time"),
        audience=conf.get_mandatory_list_value("execution_api", "jwt_audience")[0],
        issuer=conf.get("api_auth", "jwt_issuer", fallback=None),
        **get_signing_args(make_secret_key_if_needed=False),
    )
    token = BaseWorkloadSchema.generate_token(ti_id, generator)
    return start_task_instance(api, {"ti": {"id": ti_id}, "token": token})


def deferral(inputs: dict, task_id: str) -> tuple[str, dict | str]:
    """The classpath and kwargs a worker sends for this task's trigger, serialized as the Task
    SDK does (trigger.serialize(), then serde)."""
    from airflow.providers.common.sql.triggers.sql import SQLExecuteQueryTrigger
    from airflow.providers.http.triggers.http import HttpSensorTrigger, HttpTrigger
    from airflow.providers.standard.triggers.external_task import (
        DagStateTrigger,
        WorkflowTrigger,
    )
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    from airflow.sdk.serde import serialize

    from tests.airflow_scenarios.probe import ProbeTrigger

    marks, run_id = inputs["marks"], inputs["run_id"]
    kind = task_id.removesuffix("_bypass")
    raw: dict[str, tuple[str, dict]] = {
        "popen": ("subprocess.Popen", {"args": ["touch", marks["popen"]]}),
        "dag_class": ("evil_dag.EvilTrigger", {}),
        "amazon": (
            "airflow.providers.amazon.aws.triggers.s3.S3KeyTrigger",
            {"bucket_name": "landing", "bucket_key": "x.csv"},
        ),
        "callback_trigger": (
            "airflow.triggers.callback.CallbackTrigger",
            {
                "callback_path": "tests.airflow_scenarios.probe.touch",
                "callback_kwargs": {"path": marks["callback_trigger"]},
            },
        ),
    }
    if kind in raw:
        classpath, kwargs = raw[kind]
        return classpath, serialize(kwargs)
    if kind == "bad_kwargs":  # a listed class, kwargs as a string Airflow takes as encrypted
        return "airflow.providers.standard.triggers.temporal.DateTimeTrigger", "not-encrypted"
    trigger = {
        "datetime": lambda: DateTimeTrigger(moment=datetime.now(UTC)),
        "http": lambda: HttpTrigger(http_conn_id="http_local", method="GET", endpoint="ok"),
        "http_sensor": lambda: HttpSensorTrigger(
            http_conn_id="http_local", method="GET", endpoint="ok", poke_interval=1
        ),
        "sql": lambda: SQLExecuteQueryTrigger(sql="SELECT 1", conn_id="sql_local"),
        "workflow": lambda: WorkflowTrigger(
            external_dag_id=DEFERRER, run_ids=[run_id], allowed_states=["queued"]
        ),
        "dagstate": lambda: DagStateTrigger(
            dag_id=DEFERRER, states=["queued"], run_ids=[run_id], poll_interval=1
        ),
        "probe": lambda: ProbeTrigger(inputs["trigger_probe_out"], inputs["fernet_key_sha256"]),
    }[kind]()
    classpath, kwargs = trigger.serialize()
    return classpath, serialize(kwargs)


def defer_all(inputs: dict, task_ids: list[str]) -> list[dict]:
    """Start each task instance as a worker does, then ask to defer it to its trigger."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    from tests.airflow_scenarios import update_task_instance

    api = TestClient(create_app(apps="all"))
    api.__enter__()
    out = []
    for task_id in task_ids:
        update_task_instance(DEFERRER, inputs["run_id"], task_id, state="queued")
        ti_id = task_instance(DEFERRER, inputs["run_id"], task_id)["id"]
        headers = token_headers(api, ti_id)
        classpath, kwargs = deferral(inputs, task_id)
        response = api.patch(
            f"/execution/task-instances/{ti_id}/state",
            headers=headers,
            json={
                "state": "deferred",
                "classpath": classpath,
                "trigger_kwargs": kwargs,
                "next_method": "execute_complete",
            },
        )
        out.append(
            {
                "task_id": task_id,
                "classpath": classpath,
                "status": response.status_code,
                "body": response.json() if response.content else None,
                "state": task_instance(DEFERRER, inputs["run_id"], task_id)["state"],
                "trigger": trigger_of(DEFERRER, inputs["run_id"], task_id),
                "trigger_id": trigger_of(DEFERRER, inputs["run_id"], task_id, column="id"),
            }
        )
    return out


def defer(inputs: dict) -> dict:
    """The api-server: the guard answers each deferral."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    from tests.airflow_scenarios import trigger as trigger_run

    api = TestClient(create_app(apps="all"))
    api.__enter__()
    run_id = trigger_run(api, DEFERRER)
    inputs = inputs | {"run_id": run_id}
    guarded = [t for t in inputs["deferring_tasks"] if t in inputs["guarded_tasks"]]
    return {"run_id": run_id, "deferrals": defer_all(inputs, guarded)}


def plant(inputs: dict) -> dict:
    """Rows the guard never saw: Airflow's own code writes each, as a component without the
    guard (or anything else holding the database) would."""
    from airflow.models.asset import AssetModel, AssetWatcherModel
    from airflow.models.callback import Callback
    from airflow.models.dagbag import DBDagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.sdk import AsyncCallback
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from tests.airflow_scenarios import trigger as trigger_run
    from tests.airflow_scenarios.probe import ProbeTrigger

    bypassed = defer_all(inputs, [t for t in inputs["deferring_tasks"] if t.endswith("_bypass")])
    with create_session() as session:
        # A deadline's AsyncCallback, queued as the scheduler queues a missed deadline's.
        callback = Callback.create_from_sdk_def(
            AsyncCallback(
                "tests.airflow_scenarios.probe.touch", kwargs={"path": inputs["marks"]["deadline"]}
            ),
            dag_id="async_deadline",
        )
        session.add(callback)
        callback.queue(session=session)
        # An asset watcher, as the dag-processor writes one: a trigger on the allow-list (the
        # probe), with no task instance.
        asset = AssetModel(name="planted", uri="planted", group="asset")
        watcher = Trigger.from_object(
            ProbeTrigger(inputs["watcher_probe_out"], inputs["fernet_key_sha256"])
        )
        asset.watchers = [AssetWatcherModel(name="w", trigger=watcher)]
        session.add(asset)
        session.flush()
        watcher_id = watcher.id
    # A listed class whose kwargs are encrypted, as the scheduler's Trigger(...) stores them
    # (the Execution API stores a task's kwargs unencrypted): the trigger runner has no key.
    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == DEFERRER,
                TaskInstance.run_id == inputs["run_id"],
                TaskInstance.task_id == "encrypted",
            )
        ).one()
        row = Trigger(
            classpath="airflow.providers.standard.triggers.temporal.DateTimeTrigger",
            kwargs={"moment": datetime.now(UTC)},
        )
        session.add(row)
        session.flush()
        ti.state, ti.trigger_id, ti.next_method = "deferred", row.id, "execute_complete"
        encrypted = not row.encrypted_kwargs.startswith("{")
    # start_from_trigger: a run of the DAG that turned the task policy off, its task deferred
    # by the scheduler's own defer_task (what DagRun.schedule_tis calls).
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    api = TestClient(create_app(apps="core"))
    api.__enter__()
    start_run = trigger_run(api, "start_trigger_bypass")
    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == "start_trigger_bypass", TaskInstance.run_id == start_run
            )
        ).one()
        dag = DBDagBag().get_latest_version_of_dag("start_trigger_bypass", session=session)
        ti.refresh_from_task(dag.get_task("wait"))
        ti.start_date = datetime.now(UTC)
        deferred = ti.defer_task(session=session)
    with create_session() as session:
        triggers = {t.id: t.classpath for t in session.scalars(select(Trigger))}
    return {
        "watcher_trigger_id": watcher_id,
        "encrypted_kwargs_stored": encrypted,
        "bypassed": bypassed,
        "start_run_id": start_run,
        "start_deferred": deferred,
        "triggers": triggers,
    }


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def trigger(inputs: dict) -> dict:
    """The triggerer: sealed and guarded as foundation_sealed.py does, then its loop until every
    deferred task instance has left DEFERRED and the callback has ended."""
    sealed = sealed_module()
    sealed.seal("triggerer")
    sealed.guard()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", inputs["http_port"]), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    import structlog
    from airflow.jobs.job import Job
    from airflow.jobs.triggerer_job_runner import TriggererJobRunner, TriggerRunnerSupervisor

    job = Job()
    TriggererJobRunner(job=job, capacity=100)
    job.prepare_for_execution()
    supervisor = TriggerRunnerSupervisor.start(
        job=job, capacity=100, logger=structlog.get_logger(logger_name="triggerer")
    )
    deadline = time.monotonic() + inputs["trigger_seconds"]
    try:
        while time.monotonic() < deadline and not settled(inputs):
            supervisor.run_once()
        for _ in range(3):  # the last events and failures reach the database
            supervisor.run_once()
    finally:
        supervisor.kill(escalation_delay=5, force=True)
    return {
        "runner_pid": supervisor.pid,
        "task_instances": {
            t: task_instance(DEFERRER, inputs["run_id"], t) for t in inputs["deferring_tasks"]
        },
        "start_trigger": task_instance(
            "start_trigger_bypass", inputs["start_run_id"], "wait", with_next=True
        ),
        "callbacks": callbacks(),
        "asset_events": asset_events(),
        "refused_watchers": sorted(sealed.REFUSED),
    }


def control(inputs: dict) -> dict:
    """The probe where nothing is sealed (the triggerer's environment, as ECS starts it): what it
    finds there shows what it can find."""
    import airflow  # noqa: F401  (the configuration, read as the component reads it)

    from tests.airflow_scenarios.probe import observe

    return observe(inputs["fernet_key_sha256"])


def settled(inputs: dict) -> bool:
    states = [
        task_instance(DEFERRER, inputs["run_id"], t)["state"] for t in inputs["deferring_tasks"]
    ]
    start = task_instance("start_trigger_bypass", inputs["start_run_id"], "wait")["state"]
    return "deferred" not in [*states, start] and all(
        c["state"] in ("success", "failed") for c in callbacks()
    )


# -- observations ----------------------------------------------------------------------------------


def task_instance(dag_id: str, run_id: str, task_id: str, with_next: bool = True) -> dict:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
            )
        ).one()
        out = {"id": str(ti.id), "state": ti.state}
        if with_next:
            out |= {"next_method": ti.next_method, "next_kwargs": ti.next_kwargs}
        return out


def trigger_of(dag_id: str, run_id: str, task_id: str, column: str = "classpath") -> Any:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(
            select(getattr(Trigger, column))
            .join(TaskInstance, TaskInstance.trigger_id == Trigger.id)
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
            )
        )


def callbacks() -> list[dict]:
    from airflow.models.callback import Callback
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [
            {"path": c.data.get("path"), "state": c.state, "output": c.output}
            for c in session.scalars(select(Callback))
        ]


def asset_events() -> list[str]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [str(e.asset_id) for e in session.scalars(select(AssetEvent))]


PHASES = {
    "migrate": migrate,
    "control": control,
    "parse": parse,
    "defer": defer,
    "plant": plant,
    "trigger": trigger,
}

if __name__ == "__main__":
    phase, inputs_path = sys.argv[1], sys.argv[2]
    result = PHASES[phase](json.loads(Path(inputs_path).read_text()))
    print(json.dumps(result, default=str))
