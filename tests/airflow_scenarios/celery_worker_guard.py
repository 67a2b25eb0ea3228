"""A workload of one DAG put on another DAG's queue: real Airflow's scheduler publishes dag_a's
workload to dag_a's queue (FoundationCeleryExecutor, real kombu), a principal moves it to
dag_b's queue, and dag_b's real Celery worker (started by the test, under dag_b's grants) takes
it. All on the moto server named by AWS_ENDPOINT_URL, whose queues carry no policy here: this is
the worker's own defence, as if the queue policy were gone.

Run by tests/test_celery_worker.py in its own process, with AIRFLOW_HOME, a SQLite database,
the runtime files in $AIRFLOW_HOME/config and the scheduler's Celery environment already set:

    python -m tests.airflow_scenarios.celery_worker_guard <input.json>

The output (stdout, last line) is one JSON document: the task instance as the database ends
with it, and the scheduler's events about it.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

from tests.airflow_scenarios import DAG_HEADER
from tests.airflow_scenarios.celery_routing import Scenario
from tests.airflow_scenarios.enforcement import BUNDLE, reserialize, start_after_trigger


def dag_source(marker: str) -> str:
    """dag_a: one task that leaves a file behind if any of it ever runs."""
    return DAG_HEADER + textwrap.dedent(
        f"""
        with DAG("dag_a", schedule=None, start_date=START):

            @task
            def extract():
                open({marker!r}, "w").write("dag_a's code ran")

            extract()
        """
    )


def move_one(sqs, source: str, target: str) -> str:
    """Take the one message off `source` and send its body, as it is, to `target`."""
    [message] = sqs.receive_message(QueueUrl=source, WaitTimeSeconds=10)["Messages"]
    sqs.send_message(QueueUrl=target, MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
    return message["Body"]


def main(inputs: dict) -> dict:
    import boto3
    from airflow.utils import db

    sqs = boto3.client("sqs")
    urls = inputs["queue_urls"]
    db.initdb()
    (Path(inputs["dags_folder"]) / "dag_a.py").write_text(dag_source(inputs["marker"]))
    reserialize(BUNDLE)

    scenario = Scenario()
    run_id = scenario.trigger("dag_a")
    start_after_trigger()
    scenario.tick(2)
    move_one(sqs, urls["dag_a"], urls["dag_b"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        scenario.tick(1)
        [ti] = scenario.task_instances()
        if ti["state"] == "failed":
            break
        time.sleep(1)
    return {
        "run_id": run_id,
        "task_instances": scenario.task_instances(),
        "events": events("dag_a"),
        "left_on": {
            dag: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            for dag, url in urls.items()
        },
    }


def events(dag_id: str) -> list[dict]:
    """The scheduler's audit log of the DAG's task instances."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Log).where(Log.dag_id == dag_id).order_by(Log.id))
        return [{"event": r.event, "task_id": r.task_id, "extra": r.extra} for r in rows]


if __name__ == "__main__":
    print(json.dumps(main(json.loads(Path(sys.argv[1]).read_text())), default=str))
