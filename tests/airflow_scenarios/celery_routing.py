"""Drive real Airflow's scheduler against FoundationCeleryExecutor, publishing through real kombu
(SQS transport) and reading results through celery's DynamoDB backend, both on moto.

Run by tests/test_airflow_celery.py in its own process, with AIRFLOW_HOME, a SQLite database,
the runtime files in $AIRFLOW_HOME/config and the scheduler's Celery environment already set:

    python -m tests.airflow_scenarios.celery_routing <input.json>

The input names the DAGs folder, the SSM parameters to publish and the queues to create. The
output (stdout, last line) is one JSON document: every message each queue holds, decoded back
to the workload Airflow serialized, and the task instances as the database has them.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import textwrap
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
from tests.airflow_scenarios.enforcement import (
    BUNDLE,
    PolicyLog,
    reserialize,
    start_after_trigger,
)


def dag_sources(stolen_queue: str) -> dict[str, str]:
    """dag_a: one plain task. dag_b: a task that asks for dag_a's queue, and a plain one.
    dag_c: no manifest, so no identity. dag_d (no manifest either): an AWS sensor asking to
    defer. dag_e: a dag_id whose manifest binds it to another bundle, declared in this one."""
    header = DAG_HEADER
    return {
        "dag_a.py": header
        + textwrap.dedent(
            """
            with DAG("dag_a", schedule="@once", start_date=START):

                @task
                def extract():
                    return "as dag_a"

                extract()
            """
        ),
        "dag_b.py": header
        + textwrap.dedent(
            f"""
            with DAG("dag_b", schedule="@once", start_date=START):

                @task(queue={stolen_queue!r})
                def borrow():
                    return "as dag_a?"

                @task
                def plain():
                    return "as dag_b"

                borrow() >> plain()
            """
        ),
        "dag_c.py": UNMANAGED_DAG,
        "dag_e.py": header
        + textwrap.dedent(
            """
            with DAG("dag_e", schedule="@once", start_date=START):

                @task
                def claim():
                    return "dag_e's identity, from the wrong bundle"

                claim()
            """
        ),
        "dag_d.py": header
        + textwrap.dedent(
            """
            from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

            with DAG("dag_d", schedule=None, start_date=START):
                S3KeySensor(task_id="wait", bucket_key="s3://landing/x.csv", deferrable=True)
            """
        ),
    }


def decode(body: str) -> dict:
    """kombu's SQS message (base64 of its JSON envelope) -> the workload in the Celery task."""
    envelope = json.loads(base64.b64decode(body))
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return {"task": envelope["headers"]["task"], "workload": json.loads(args[0])}


def drain(sqs: Any, url: str) -> list[dict]:
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        if not got.get("Messages"):
            return messages
        messages += [decode(m["Body"]) for m in got["Messages"]]


def drain_one(sqs: Any, url: str) -> dict:
    """One workload off the queue, put back at once (the routing assertions see it too)."""
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    return decode(message["Body"])["workload"]


def main(inputs: dict) -> dict:
    import boto3

    ssm, sqs, dynamodb = boto3.client("ssm"), boto3.client("sqs"), boto3.client("dynamodb")
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in inputs["queues"]}
    for name, value in inputs["parameters"].items():
        value = value | {"queue_url": urls[value["queue"]]}
        ssm.put_parameter(Name=name, Value=json.dumps(value), Type="String")
    dynamodb.create_table(
        TableName=inputs["results_table"],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=inputs["results_table"],
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
    )

    policy_log = PolicyLog()
    logging.getLogger("airflow_local_settings").addHandler(policy_log)

    from airflow.utils import db

    db.initdb()
    dags = Path(inputs["dags_folder"])
    for name, text in dag_sources(inputs["stolen_queue"]).items():
        (dags / name).write_text(text)
    reserialize(BUNDLE)

    scenario = Scenario()
    scenario.tick(2)
    # A task instance whose row asks for dag_a's queue (written directly, as if the hook never
    # ran): the executor still sends it to dag_b's.
    run_id = scenario.trigger("dag_b")
    update_task_instance("dag_b", run_id, "borrow", queue=inputs["stolen_queue"])
    start_after_trigger()
    scenario.tick(2)
    deferrals = scenario.defer_each(
        drain_one(sqs, urls[inputs["queues_by_dag"]["dag_a"]]), inputs["triggers"]
    )
    executor = type(scenario.executor)
    return {
        "deferrals": deferrals,
        "executor": f"{executor.__module__}.{executor.__qualname__}",
        "policy_warnings": policy_log.messages,
        "hook_bypassed_run": run_id,
        "queues": {name: drain(sqs, url) for name, url in urls.items()},
        "task_instances": scenario.task_instances(),
        "task_events": scenario.task_events,
    }


class Scenario:
    def __init__(self) -> None:
        from airflow.api_fastapi.app import create_app
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from fastapi.testclient import TestClient

        self.job = Job()
        self.scheduler = SchedulerJobRunner(job=self.job, num_runs=1)
        self.job.prepare_for_execution()
        [self.executor] = self.scheduler.executors
        self.executor.job_id = self.job.id
        self.executor.start()
        self.task_events: list[dict] = []
        log_task_event = self.executor.log_task_event

        def record_event(*, event: str, extra: str, ti_key: Any) -> None:
            self.task_events.append({"event": event, "extra": extra, "key": list(ti_key)})
            log_task_event(event=event, extra=extra, ti_key=ti_key)

        self.executor.log_task_event = record_event
        # The public REST API and the Execution API, with the api-server's plugins folder.
        self.api = TestClient(create_app(apps="all"))
        self.api.__enter__()  # runs the apps' lifespan (the Execution API's services)

    def tick(self, times: int) -> None:
        from airflow.utils.session import create_session

        for _ in range(times):
            with create_session() as session:
                self.scheduler._do_scheduling(session)
                session.expunge_all()
            self.executor.heartbeat()
            with create_session() as session:
                self.scheduler._process_executor_events(executor=self.executor, session=session)

    def trigger(self, dag_id: str) -> str:
        return trigger(self.api, dag_id)

    def defer_each(self, workload: dict, triggers: list[str]) -> list[dict]:
        """What a worker does when its task defers, once per trigger class: start the task
        instance through the Execution API, then ask to defer it to that trigger."""
        from datetime import UTC, datetime

        ti = workload["ti"]
        now = datetime.now(UTC).isoformat()
        headers = start_task_instance(self.api, workload)
        out = []
        for classpath in triggers:
            response = self.api.patch(
                f"/execution/task-instances/{ti['id']}/state",
                headers=headers,
                json={
                    "state": "deferred",
                    "classpath": classpath,
                    "trigger_kwargs": {"moment": now},
                    "next_method": "execute_complete",
                },
            )
            out.append(
                {
                    "classpath": classpath,
                    "status": response.status_code,
                    "body": response.json() if response.content else None,
                    "ti_state": self.ti_state(ti["id"]),
                    "triggers": self.trigger_classpaths(),
                }
            )
        return out

    def ti_state(self, ti_id: str) -> str | None:
        from uuid import UUID

        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        with create_session() as session:
            return session.get(TaskInstance, UUID(ti_id)).state

    def trigger_classpaths(self) -> list[str]:
        from airflow.models.trigger import Trigger
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return sorted(session.scalars(select(Trigger.classpath)))

    def task_instances(self) -> list[dict]:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            query = select(TaskInstance).order_by(TaskInstance.dag_id, TaskInstance.task_id)
            return [
                {
                    "dag_id": ti.dag_id,
                    "run_id": ti.run_id,
                    "task_id": ti.task_id,
                    "state": ti.state,
                    "queue": ti.queue,
                }
                for ti in session.scalars(query)
            ]


if __name__ == "__main__":
    with mock_aws():
        result = main(json.loads(Path(sys.argv[1]).read_text()))
    print(json.dumps(result, default=str))
