"""Drive real Airflow (scheduler, API, dag-processor code) against FoundationEcsExecutor.

Run by tests/test_airflow_enforcement.py in its own process, with AIRFLOW_HOME, a SQLite database,
the runtime files in $AIRFLOW_HOME/config and the scheduler's environment already set. Airflow's
state (config, ORM) is per process, hence the subprocess. Usage:

    python -m tests.airflow_scenarios.enforcement <input.json>

The input names the DAGs folders and the SSM parameters to publish. The output (stdout, last line)
is one JSON document of observations; the test module asserts on it.

Everything goes through Airflow's own code: DAG files are parsed and serialized as `airflow dags
reserialize` does, runs are created by the scheduler's loop or the public REST API, task instances
are cleared through the REST API, a worker reports its mapped XCom through the Execution API (so
the scheduler expands the downstream mapped task itself), and workloads reach the executor through
the scheduler's own queueing. Only AWS is fake: SSM is moto, and ECS RunTask/DescribeTasks are
answered by a botocore hook on the executor's client after boto has validated the parameters
against the ECS API model (moto's ECS cannot run an awsvpc Fargate task).
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto import mock_aws

from tests.airflow_scenarios import (
    DAG_HEADER,
    UNMANAGED_DAG,
    start_task_instance,
    trigger,
    update_task_instance,
)

BUNDLE = "dags-folder"
INTRUDER_BUNDLE = "intruder"


def dag_sources(stolen_config: dict) -> dict[str, str]:
    """dag_a: a plain task, a task mapped over its output, a task mapped over a literal.
    dag_b: a task whose executor_config names dag_a's identity, a plain task, and a deadline
    (due at once) whose callback runs on the executor. dag_c: no manifest, so no identity.
    dag_d: a manifest whose published identity cannot be read.
    `@once` schedules: the scheduler creates exactly one run of each, whatever the time."""
    header = DAG_HEADER
    return {
        "dag_a.py": header
        + textwrap.dedent(
            """
            with DAG("dag_a", schedule="@once", start_date=START):

                @task
                def make_items():
                    return [1, 2, 3]

                @task
                def process(x):
                    return x

                @task
                def fixed(x):
                    return x

                process.expand(x=make_items())
                fixed.expand(x=["a", "b", "c"])
            """
        ),
        "dag_b.py": header
        + textwrap.dedent(
            f"""
            STOLEN = {stolen_config!r}

            with DAG(
                "dag_b",
                schedule="@once",
                start_date=START,
                deadline=DeadlineAlert(
                    reference=DeadlineReference.DAGRUN_QUEUED_AT,
                    interval=timedelta(0),
                    callback=SyncCallback("dag_b_alerts.notify", kwargs={{"to": "team-b"}}),
                ),
            ):

                @task(executor_config=STOLEN)
                def borrow():
                    return "as dag_a"

                @task
                def plain():
                    return "as dag_b"

                borrow() >> plain()
            """
        ),
        "dag_c.py": UNMANAGED_DAG,
        # dag_d's published identity is not JSON: it alone is refused, the others still launch
        "dag_d.py": header
        + textwrap.dedent(
            """
            with DAG("dag_d", schedule="@once", start_date=START):

                @task
                def unreadable():
                    return "no identity"

                unreadable()
            """
        ),
    }


INTRUDER_SOURCE = textwrap.dedent(
    """
    from datetime import timedelta

    from airflow.sdk import DAG, DeadlineAlert, DeadlineReference, SyncCallback, task

    # Another bundle claims dag_b's dag_id, callback included.
    with DAG(
        "dag_b",
        schedule=None,
        deadline=DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(0),
            callback=SyncCallback("intruder_alerts.notify"),
        ),
    ):

        @task
        def exfiltrate():
            return "dag_b's identity, from the wrong bundle"

        exfiltrate()
    """
)


class PolicyLog(logging.Handler):
    """Collects what the shipped task_policy tells DAG authors at parse time."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class FakeEcs:
    """Answers the ECS calls the executor makes (StopTask for its health check, RunTask,
    DescribeTasks) on its own boto client, and records RunTask's kwargs as boto received them;
    boto validates them against the ECS API model before the answer short-circuits the call."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.run_task_calls: list[dict] = []
        self._tasks: dict[str, dict] = {}

    def install(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.ecs.RunTask", self._record)
        client.meta.events.register("before-call.ecs", self._answer)

    def _record(self, params: dict, **_: Any) -> None:
        self.run_task_calls.append({"phase": self.scenario.phase, "kwargs": copy.deepcopy(params)})

    def _answer(self, model: Any, params: dict, **_: Any):
        from botocore.awsrequest import AWSResponse

        ok = AWSResponse("https://ecs.fake", 200, {}, None)
        if model.name == "RunTask":
            arn = f"arn:aws:ecs:us-east-1:111122223333:task/cluster/{len(self._tasks):032x}"
            self._tasks[arn] = {
                "taskArn": arn,
                "lastStatus": "PROVISIONING",
                "desiredStatus": "RUNNING",
                "containers": [{"name": "airflow-worker", "lastStatus": "PENDING"}],
            }
            return ok, {"tasks": [self._tasks[arn]], "failures": []}
        if model.name == "StopTask":
            missing = {"Code": "InvalidParameterException", "Message": "The task was not found."}
            return AWSResponse("https://ecs.fake", 400, {}, None), {"Error": missing}
        if model.name == "DescribeTasks":
            arns = json.loads(params["body"])["tasks"]  # params: the serialized request
            tasks = [{**self._tasks[a], "lastStatus": "RUNNING"} for a in arns]
            return ok, {"tasks": tasks, "failures": []}
        raise AssertionError(f"unexpected ECS call {model.name}")


def main(inputs: dict) -> dict:
    import boto3

    ssm = boto3.client("ssm")
    for name, value in inputs["parameters"].items():
        ssm.put_parameter(Name=name, Value=value, Type="String")

    policy_log = PolicyLog()
    logging.getLogger("airflow_local_settings").addHandler(policy_log)

    from airflow.utils import db

    db.initdb()  # what `airflow db migrate` does on an empty database

    dags = Path(inputs["dags_folder"])
    for name, text in dag_sources(inputs["stolen_executor_config"]).items():
        (dags / name).write_text(text)
    reserialize(BUNDLE)

    scenario = Scenario(inputs)
    out: dict[str, Any] = {"policy_warnings": policy_log.messages}
    try:
        scenario.run()
    finally:
        out |= scenario.observations()
    return out


def reserialize(bundle_name: str) -> None:
    """Parse one bundle and write its DAGs to the database, as `airflow dags reserialize` does
    (the dag-processor's own path: BundleDagBag, then sync_bag_to_db)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    with create_session() as session:
        manager = DagBundlesManager()
        manager.sync_bundles_to_db(session=session)
        session.commit()
        bundle = manager.get_bundle(bundle_name)
        bundle.initialize()
        bag = BundleDagBag(bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if bag.import_errors:
            raise RuntimeError(f"import errors in {bundle_name}: {bag.import_errors}")
        sync_bag_to_db(bag, bundle.name, bundle_version=None, session=session)


def start_after_trigger() -> None:
    """The scheduler starts a queued run once `run_after <= now()`; SQLite's now() has whole
    seconds, so a run triggered in this second starts in the next one."""
    time.sleep(1.1)


def workload_of(call: dict) -> dict:
    [container] = call["kwargs"]["overrides"]["containerOverrides"]
    return json.loads(container["command"][-1])


class Scenario:
    def __init__(self, inputs: dict) -> None:
        from airflow.api_fastapi.app import create_app
        from airflow.callbacks.database_callback_sink import DatabaseCallbackSink
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from fastapi.testclient import TestClient

        self.inputs = inputs
        self.phase = "setup"
        self.phases: dict[str, dict] = {}
        self.ecs = FakeEcs(self)
        # The scheduler loads the executor named by AIRFLOW__CORE__EXECUTOR, from
        # $AIRFLOW_HOME/config, and starts it as SchedulerJobRunner._execute does.
        self.job = Job()
        self.scheduler = SchedulerJobRunner(job=self.job, num_runs=1)
        self.job.prepare_for_execution()
        [self.executor] = self.scheduler.executors
        self.executor.job_id = self.job.id
        self.executor.callback_sink = DatabaseCallbackSink()
        self.ecs.install(self.executor.ecs)
        self.executor.start()  # the provider's health check: StopTask of a task that is not there
        self.spy_on_executor()
        # The public REST API and the Execution API, as the api-server serves them; the simple
        # auth manager with all_admins gives every request an admin token.
        self.api = TestClient(create_app(apps="core,execution"))
        self.api.__enter__()  # runs the apps' lifespan (the Execution API's services)

    def spy_on_executor(self) -> None:
        """Record, without changing them, the workloads and executor_config the provider's
        _process_workloads hands execute_async, and the task events the executor logs."""
        self.handed: list[dict] = []
        self.task_events: list[dict] = []
        execute_async, log_task_event = self.executor.execute_async, self.executor.log_task_event

        def spy(key: Any, command: Any, queue: Any = None, executor_config: Any = None) -> None:
            [workload] = command
            ti = getattr(workload, "ti", None)
            self.handed.append(
                {
                    "phase": self.phase,
                    "type": workload.type,
                    "dag_id": ti.dag_id if ti else workload.callback.data.get("dag_id"),
                    "task_id": ti.task_id if ti else None,
                    "executor_config": executor_config,
                }
            )
            execute_async(key, command, queue, executor_config)

        def record_event(*, event: str, extra: str, ti_key: Any) -> None:
            key = list(ti_key) if isinstance(ti_key, tuple) else str(ti_key)  # task or callback
            self.task_events.append(
                {"phase": self.phase, "event": event, "extra": extra, "key": key}
            )
            log_task_event(event=event, extra=extra, ti_key=ti_key)

        self.executor.execute_async = spy
        self.executor.log_task_event = record_event

    # -- the scheduler ---------------------------------------------------------------------------

    def tick(self, times: int = 1) -> None:
        """SchedulerJobRunner._run_scheduler_loop's body, without its timers."""
        from airflow.models.deadline import Deadline
        from airflow.utils.session import create_session
        from sqlalchemy import select

        for _ in range(times):
            with create_session() as session:
                self.scheduler._do_scheduling(session)
                session.expunge_all()
            self.executor.heartbeat()
            with create_session() as session:
                self.scheduler._process_executor_events(executor=self.executor, session=session)
            # The loop saves executor task events to the log table and only logs a failure;
            # with SQLAlchemy 2.1 that save fails (a generator given to bulk_save_objects), so
            # the events are read from the executor itself (spy_on_executor).
            try:
                with create_session() as session:
                    self.scheduler._process_task_event_logs(self.executor._task_event_logs, session)
            except Exception:
                self.executor._task_event_logs.clear()
            with create_session() as session:
                due = select(Deadline).where(
                    Deadline.deadline_time < datetime.now(UTC), ~Deadline.missed
                )
                for deadline in session.scalars(due):
                    deadline.handle_miss(session)
                self.scheduler._enqueue_executor_callbacks(session)

    # -- the phases ------------------------------------------------------------------------------

    def run(self) -> None:
        # 1. The scheduler creates each DAG's scheduled run (expanding the literal mapped task),
        #    queues its task instances and sends them to the executor. dag_b's deadline is due
        #    at once: its callback reaches the executor on the next tick.
        self.phase = "scheduled"
        self.tick(2)
        self.phases["scheduled"] = {"task_instances": self.task_instances()}

        # 2. A worker of dag_a's make_items reports its result through the Execution API with the
        #    token the scheduler put in its workload; the scheduler then expands `process`.
        self.phase = "expanded"
        self.finish_make_items()
        self.tick()
        self.phases["expanded"] = {"task_instances": self.task_instances("dag_a")}

        # 3. Runs triggered through the public REST API.
        self.phase = "api_trigger"
        run_ids = {dag_id: self.trigger(dag_id) for dag_id in ("dag_a", "dag_b")}
        at_trigger = [ti for d, r in run_ids.items() for ti in self.task_instances(d, r)]
        start_after_trigger()
        self.tick(2)
        self.phases["api_trigger"] = {
            "run_ids": run_ids,
            "at_trigger": at_trigger,
            "task_instances": [ti for d, r in run_ids.items() for ti in self.task_instances(d, r)],
        }

        # 4. dag_b's borrow fails (marked through the REST API, as the UI does); a user clears it
        #    through the REST API and the scheduler sends it again.
        self.phase = "clear"
        run_id = run_ids["dag_b"]
        base = f"/api/v2/dags/dag_b/dagRuns/{run_id}/taskInstances"
        self.api.patch(f"{base}/borrow", json={"new_state": "failed"}).raise_for_status()
        cleared = self.api.post(
            "/api/v2/dags/dag_b/clearTaskInstances",
            json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["borrow"]},
        )
        cleared.raise_for_status()
        at_clear = self.task_instances("dag_b", run_id)
        self.tick()
        self.phases["clear"] = {
            "run_id": run_id,
            "cleared": [(t["task_id"], t["map_index"]) for t in cleared.json()["task_instances"]],
            "at_clear": at_clear,
            "task_instances": self.task_instances("dag_b", run_id),
        }

        # 5. A task instance that never went through the mutation hook (its row written
        #    directly) still carries dag_b's request for dag_a's identity when it is queued.
        self.phase = "hook_bypassed"
        run_id = self.trigger("dag_b")
        self.set_executor_config("dag_b", run_id, "borrow", self.inputs["stolen_executor_config"])
        at_queue = self.task_instances("dag_b", run_id)
        start_after_trigger()
        self.tick(2)  # the second sends the run's deadline callback before the next phase
        self.phases["hook_bypassed"] = {
            "run_id": run_id,
            "at_queue": at_queue,
            "task_instances": self.task_instances("dag_b", run_id),
        }

        # 6. Another bundle defines dag_b too; its dag-processor writes it; a run is triggered.
        self.phase = "intruder"
        (Path(self.inputs["intruder_folder"]) / "dag_b.py").write_text(INTRUDER_SOURCE)
        reserialize(INTRUDER_BUNDLE)
        run_id = self.trigger("dag_b")
        start_after_trigger()
        self.tick(2)
        self.phases["intruder"] = {
            "dag_bundle": self.dag_bundle("dag_b"),
            "run_id": run_id,
            "task_instances": self.task_instances("dag_b", run_id),
        }

    def trigger(self, dag_id: str) -> str:
        return trigger(self.api, dag_id)

    def set_executor_config(self, dag_id: str, run_id: str, task_id: str, config: dict) -> None:
        update_task_instance(dag_id, run_id, task_id, executor_config=config)

    def finish_make_items(self) -> None:
        """What the worker of make_items does: start, push [1, 2, 3] as a mappable XCom, succeed."""
        [call] = [
            c
            for c in self.ecs.run_task_calls
            if workload_of(c)["type"] == "ExecuteTask"
            and workload_of(c)["ti"]["task_id"] == "make_items"
        ]
        workload = workload_of(call)
        ti = workload["ti"]
        now = datetime.now(UTC).isoformat()
        headers = start_task_instance(self.api, workload)
        self.api.post(
            f"/execution/xcoms/{ti['dag_id']}/{ti['run_id']}/{ti['task_id']}/return_value",
            params={"map_index": -1, "mapped_length": 3},
            headers=headers,
            json=[1, 2, 3],
        ).raise_for_status()
        self.api.patch(
            f"/execution/task-instances/{ti['id']}/state",
            headers=headers,
            json={"state": "success", "end_date": now},
        ).raise_for_status()

    # -- observations ----------------------------------------------------------------------------

    def observations(self) -> dict:
        import airflow_local_settings

        executor = type(self.executor)
        return {
            "executor": {
                "class": f"{executor.__module__}.{executor.__qualname__}",
                "file": sys.modules[executor.__module__].__file__,
                "healthy": self.executor.IS_BOTO_CONNECTION_HEALTHY,
            },
            "local_settings_file": airflow_local_settings.__file__,
            "phases": self.phases,
            "handed_to_executor": self.handed,
            "run_task_calls": self.ecs.run_task_calls,
            "task_events": self.task_events,
            "callbacks": self.callbacks(),
            "task_instances": self.task_instances(),
        }

    def task_instances(self, dag_id: str | None = None, run_id: str | None = None) -> list[dict]:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(TaskInstance).order_by(
            TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index
        )
        if dag_id:
            query = query.where(TaskInstance.dag_id == dag_id)
        if run_id:
            query = query.where(TaskInstance.run_id == run_id)
        with create_session() as session:
            return [
                {
                    "dag_id": ti.dag_id,
                    "run_id": ti.run_id,
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "try_number": ti.try_number,
                    "state": ti.state,
                    "executor_config": ti.executor_config,
                }
                for ti in session.scalars(query)
            ]

    def callbacks(self) -> list[dict]:
        from airflow.models.callback import Callback
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return [
                {
                    "dag_id": c.data.get("dag_id"),
                    "path": c.data.get("path"),
                    "type": c.type,
                    "state": c.state,
                }
                for c in session.scalars(select(Callback))
            ]

    def dag_bundle(self, dag_id: str) -> str | None:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            return session.get(DagModel, dag_id).bundle_name


if __name__ == "__main__":
    with mock_aws():
        result = main(json.loads(Path(sys.argv[1]).read_text()))
    print(json.dumps(result, default=str))
