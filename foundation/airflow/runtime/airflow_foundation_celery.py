"""CeleryExecutor that sends every workload to its own DAG's queue.

Delivered to the scheduler by airflow-foundation (written into $AIRFLOW_HOME/config at start).
Each DAG's queue is consumed only by that DAG's worker service, under its task role: the queue
is the identity. Just before a workload is published, the queue the task asked for (its
`queue` argument, whatever the DAG file or the database row said) is replaced by the one the
DAG's worker stack published in SSM, and DAGs with no identity are refused.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import boto3
from airflow.providers.celery.executors.celery_executor import CeleryExecutor
from airflow.providers.celery.executors.celery_executor_utils import (
    ExceptionWithTraceback,
    send_workload_to_executor,
)
from airflow_foundation_celery_config import PREDEFINED_QUEUES
from celery import states as celery_states
from foundation_identity import Gate, IdentityRefused
from foundation_workload import workload_origin

REGION_ENV = "AWS_DEFAULT_REGION"


class FoundationCeleryExecutor(CeleryExecutor):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.gate = Gate(boto3.client("ssm", region_name=os.environ.get(REGION_ENV)))

    def queue_for(self, workload: Any) -> str:
        data = workload.model_dump(mode="json")
        resolved = self.gate.resolve(data)
        queue, url = resolved.identity.get("queue"), str(resolved.identity.get("queue_url", ""))
        # The parameter is data: accept only the queue this DAG's worker stack creates.
        if queue != resolved.names.queue or not url.endswith(f"/{queue}"):
            raise Gate.not_its_own(workload_origin(data)[0])
        PREDEFINED_QUEUES[queue] = {"url": url}
        return queue

    def update_task_state(self, key: Any, state: str, info: Any) -> None:
        # Celery's key-value result backends (DynamoDB here) give the executor no reason for a
        # failure: read the worker's own, so a workload a worker refused before starting it
        # fails its task instance with the worker's words (the "state mismatch" event).
        if state == celery_states.FAILURE and info is None and key in self.workloads:
            try:
                info = str(self.workloads[key].result)
            except Exception:  # the reason is a courtesy: the failure stands without it
                self.log.exception("Reading the failure of workload %s failed", key)
        super().update_task_state(key, state, info)

    def _send_workloads_to_celery(self, workload_tuples_to_send: Any) -> list:
        # One by one in this process: kombu's queues are registered here, not in a pool's.
        results = []
        for key, workload, _asked, team_name in workload_tuples_to_send:
            try:
                queue = self.queue_for(workload)
            except IdentityRefused as refused:
                self.log.error("Refusing workload %s: %s", key, refused)
                self.log_task_event(event="foundation refused", extra=str(refused), ti_key=key)
                results.append((key, None, ExceptionWithTraceback(refused, str(refused))))
                continue
            except Exception as error:  # reading its identity failed: this workload alone
                self.log.exception("Reading the identity of workload %s failed", key)
                results.append((key, None, ExceptionWithTraceback(error, traceback.format_exc())))
                continue
            results.append(send_workload_to_executor((key, workload, queue, team_name)))
        return results
