"""Cluster policies written by airflow-foundation.

- task_instance_mutation_hook (scheduler and api-server: every task instance they create or
  clear) pins the DAG's own identity, so the UI and API show what the executor will really use:
  its task definition and role in executor_config (ECS), or its queue (Celery). The executor
  enforces it; this only makes it visible.
- dag_policy (dag-processor, with the FAB auth manager) sets each DAG's access_control from its
  manifest's access; the dag-processor's FAB sync then grants exactly that. It runs beside the
  author's code, like task_policy: the manifest decides what review sees, not a control.
- task_policy (dag-processor, at parse time) tells DAG authors that executor_config (ECS) or
  queue (Celery) does not choose an identity, and that an AWS operator's deferral will be
  refused (its trigger would run as the triggerer; see foundation_deferral.py). It runs beside
  the author's code: a courtesy, not a control.
- dag_policy and task_policy refuse (an import error naming the reason) what would make the
  scheduler or the dag-processor put a trigger in the triggerer that no task deferred to: a
  deadline whose callback runs in the triggerer (AsyncCallback), an asset with a watcher, a
  task that starts from a trigger. Beside the author's code too: the triggerer refuses to run
  these triggers whatever wrote them (foundation_sealed.py); this says so at parse time.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import zlib

from foundation_names import DagNames

__all__ = ["dag_policy", "task_instance_mutation_hook", "task_policy"]  # Airflow copies these

PROJECT_ENV = "FOUNDATION_PROJECT"
ROLE_PREFIX_ENV = "FOUNDATION_ROLE_PREFIX"
EXECUTOR_ENV = "FOUNDATION_EXECUTOR"  # ecs or celery
DAG_ACCESS_ENV = "FOUNDATION_DAG_ACCESS"  # FAB only: zlib+base64 JSON {dag_id: access_control}
log = logging.getLogger(__name__)


def dag_names(dag_id: str) -> DagNames:
    return DagNames(os.environ[PROJECT_ENV], dag_id, os.environ.get(ROLE_PREFIX_ENV, ""))


def pinned_identity(dag_id: str) -> dict[str, str]:
    names = dag_names(dag_id)
    return {"task_definition": names.task_family, "task_role": names.role}


@functools.cache
def dag_access() -> dict[str, dict]:
    packed = os.environ[DAG_ACCESS_ENV]
    return json.loads(zlib.decompress(base64.b64decode(packed)))


def assets_in(conditions) -> list:
    """The assets in schedule conditions and task ports, through any and/or nesting."""
    found = []
    for condition in conditions:
        if hasattr(condition, "objects"):  # AssetAny, AssetAll
            found += assets_in(condition.objects)
        elif condition is not None:
            found.append(condition)
    return found


def triggerer_refusal(dag) -> str | None:
    """Why this DAG would put a trigger in the triggerer that no task deferred to, if it would."""
    for alert in dag.deadline or ():
        if type(alert.callback).__name__ == "AsyncCallback":
            return (
                f"DAG {dag.dag_id}: a deadline's AsyncCallback ({alert.callback.path}) would run "
                "in the shared triggerer, not as this DAG; use a SyncCallback (it runs on the "
                "DAG's own worker)"
            )
    ports = [a for task in dag.tasks for a in [*task.inlets, *task.outlets]]
    for asset in assets_in([getattr(dag.timetable, "asset_condition", None), *ports]):
        if getattr(asset, "watchers", None):
            return (
                f"DAG {dag.dag_id}: asset {asset.name!r} has a watcher, whose trigger would run "
                "in the shared triggerer, not as this DAG"
            )
    return None


def dag_policy(dag) -> None:
    """Refuse what would run in the triggerer for no deferred task; FAB: a DAG's access_control
    is its manifest's access, whatever the file set (FAB then revokes every other role's
    per-DAG permissions at each parse)."""
    reason = triggerer_refusal(dag)
    if reason:
        from airflow.exceptions import AirflowClusterPolicyViolation

        raise AirflowClusterPolicyViolation(reason)
    if DAG_ACCESS_ENV not in os.environ:
        return
    granted = dag_access().get(dag.dag_id, {})
    dag.access_control = {
        role: {resource: set(actions) for resource, actions in resources.items()}
        for role, resources in granted.items()
    }


def task_instance_mutation_hook(task_instance) -> None:
    if not os.environ.get(PROJECT_ENV):
        return
    if os.environ.get(EXECUTOR_ENV) == "celery":
        task_instance.queue = dag_names(task_instance.dag_id).queue
    else:
        task_instance.executor_config = {"foundation": pinned_identity(task_instance.dag_id)}


def task_policy(task) -> None:
    partial = getattr(task, "partial_kwargs", None) or {}  # a mapped task's
    if getattr(task, "start_from_trigger", False) or partial.get("start_from_trigger"):
        from airflow.exceptions import AirflowClusterPolicyViolation

        raise AirflowClusterPolicyViolation(
            f"{task.dag_id}.{task.task_id}: start_from_trigger=True would start the task in "
            "the shared triggerer, not as this DAG; start it on the DAG's worker (the default)"
        )
    if getattr(task, "deferrable", False) and type(task).__module__.startswith(
        "airflow.providers.amazon."
    ):
        log.warning(
            "%s.%s: deferrable=True will be refused: its trigger would call AWS as the "
            "triggerer, not as this DAG; use deferrable=False (it polls from the DAG's worker)",
            task.dag_id,
            task.task_id,
        )
    if os.environ.get(EXECUTOR_ENV) == "celery":
        from airflow.configuration import conf

        own = dag_names(task.dag_id).queue
        if task.queue not in (conf.get("operators", "default_queue"), own):
            log.warning(
                "%s.%s: queue %r is ignored; tasks of this DAG run on its own queue (%s)",
                task.dag_id,
                task.task_id,
                task.queue,
                own,
            )
        return
    if task.executor_config:
        log.warning(
            "%s.%s: executor_config is ignored; tasks of this DAG run as its own identity (%s)",
            task.dag_id,
            task.task_id,
            pinned_identity(task.dag_id)["task_role"] if os.environ.get(PROJECT_ENV) else "?",
        )
