"""Celery settings for SQS as the broker ([celery] celery_config_options points here).

Delivered by airflow-foundation (written into $AIRFLOW_HOME/config at start) to the scheduler
and to every DAG's Celery worker service.

- Queues: kombu uses only the queues in `predefined_queues`, so it never lists or creates one.
  A worker's environment names its own DAG's queue and nothing else; the scheduler's executor
  adds each DAG's queue as it resolves that DAG's published identity.
- One DAG per worker: a DAG's worker runs a workload only if its dag_id is exactly the one its
  service was deployed for (FOUNDATION_WORKER_DAG_ID); anything else fails as a Celery task
  before any of it runs, so the scheduler fails the task instance with the reason. The queue's
  policy already lets only the scheduler send to it: this holds if that policy is ever gone.
- Scale-in protection: while a worker task runs an Airflow task, ECS may not stop it for a
  scale-in or a deployment (the ECS agent's task-protection endpoint). Every task start sets
  protection (renewing it); prefork children share their counts of running tasks in a file, so
  the last task out of the last live child releases it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import urllib.request

from airflow.configuration import conf
from airflow.providers.celery.executors.default_celery import get_default_celery_config
from celery import signals
from foundation_workload import workload_origin

CELERY_CONFIG = get_default_celery_config(conf)
PREDEFINED_QUEUES: dict[str, dict] = CELERY_CONFIG["broker_transport_options"].setdefault(
    "predefined_queues", {}
)

# A DAG's worker: the one dag_id it runs. The worker of DAGs without a manifest (the baseline
# identity, no grants) runs any dag_id instead: it has nothing a DAG could borrow.
WORKER_DAG_ENV = "FOUNDATION_WORKER_DAG_ID"
UNMANAGED_WORKER_ENV = "FOUNDATION_WORKER_UNMANAGED"
AGENT_ENV = "ECS_AGENT_URI"  # set by ECS in every task's containers
BUSY_FILE_ENV = "FOUNDATION_BUSY_FILE"
# the task's own temporary folder: /tmp in a container, $TMPDIR where tasks share a machine
BUSY_FILE = os.path.join(tempfile.gettempdir(), "foundation-running-tasks")
PROTECTION_MINUTES = 2880  # the endpoint's longest; a task running longer loses protection
log = logging.getLogger(__name__)


class WorkloadRefused(Exception):
    """This worker runs no part of the workload: it is not its DAG's."""


def refuse_other_dags(_task: object, _task_id: str, args: tuple, _kwargs: dict) -> None:
    """execute_workload's before_start, in the worker: nothing of the workload has run yet."""
    if os.environ.get(UNMANAGED_WORKER_ENV) == "true":
        return
    own = os.environ.get(WORKER_DAG_ENV)
    try:
        dag_id = workload_origin(json.loads(args[0]))[0]
    except (IndexError, TypeError, ValueError, AttributeError):
        dag_id = None
    if own is None or dag_id != own:
        refused = WorkloadRefused(
            f"the worker of DAG {own!r} refuses a workload of DAG {dag_id!r}: a DAG's workloads "
            "run only on its own worker, under its own role"
        )
        log.error("%s", refused)
        raise refused


CELERY_CONFIG["task_annotations"] = {"execute_workload": {"before_start": refuse_other_dags}}


def set_protection(enabled: bool) -> None:
    agent = os.environ.get(AGENT_ENV)
    if not agent:
        return
    body: dict = {"ProtectionEnabled": enabled}
    if enabled:
        body["ExpiresInMinutes"] = PROTECTION_MINUTES
    request = urllib.request.Request(
        f"{agent}/task-protection/v1/state",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    except OSError as err:  # never fail an Airflow task over its worker's protection
        log.warning("could not set ECS task scale-in protection to %s: %s", enabled, err)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def count_running(delta: int) -> None:
    """Change this pool child's count of running tasks. Each start sets protection again (which
    also renews its 48 hours); when no live child runs a task, protection is released. Counts of
    children that died mid-task are dropped. The lock is held across the call to the agent, so
    two children never send their changes out of order."""
    path = os.environ.get(BUSY_FILE_ENV, BUSY_FILE)
    with open(path, "a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        text = counter.read()
        running = {int(pid): n for pid, n in json.loads(text).items()} if text else {}
        running[os.getpid()] = max(0, running.get(os.getpid(), 0) + delta)
        running = {pid: n for pid, n in running.items() if n and _alive(pid)}
        counter.seek(0)
        counter.truncate()
        json.dump(running, counter)
        counter.flush()
        if delta > 0:
            set_protection(True)
        elif not running:
            set_protection(False)


@signals.worker_ready.connect
def _worker_started(**_: object) -> None:
    """A new worker runs nothing yet: forget counts a previous worker in this container left."""
    path = os.environ.get(BUSY_FILE_ENV, BUSY_FILE)
    with open(path, "w") as counter:
        json.dump({}, counter)


@signals.task_prerun.connect
def _task_started(**_: object) -> None:
    count_running(+1)


@signals.task_postrun.connect
def _task_finished(**_: object) -> None:
    count_running(-1)
