"""Where a workload comes from: read by the scheduler's executors (foundation_identity.py) and by
each DAG's Celery worker (airflow_foundation_celery_config.py), from the workload itself.

Delivered by airflow-foundation (written into $AIRFLOW_HOME/config at start).
"""

from __future__ import annotations


def workload_origin(workload: dict) -> tuple[str | None, str | None]:
    """(dag_id, bundle name) of a serialized ExecuteTask or ExecuteCallback workload."""
    bundle = (workload.get("bundle_info") or {}).get("name")
    if workload.get("type") == "ExecuteCallback":
        return (workload.get("callback") or {}).get("data", {}).get("dag_id"), bundle
    return (workload.get("ti") or {}).get("dag_id"), bundle
