"""The cluster components' own grants, rendered from the catalog like a DAG's."""

from __future__ import annotations

from foundation.iam.policy import (
    DAG_BUNDLE_PREFIX,
    TASK_LOGS_ROOT,
    ArnContext,
    Grant,
    Statement,
    merge,
    number,
    render,
)
from foundation.naming import (
    celery_results_table,
    dag_queue_prefix,
    identity_parameter,
    role_path,
    task_family_prefix,
    worker_execution_role_name,
)


def launch_dag_tasks(
    project: str, ctx: ArnContext, org_path: str = "/", role_prefix: str = ""
) -> Grant:
    """What the scheduler's executor needs to start each DAG's tasks as that DAG."""
    cluster_arn = f"arn:{ctx.partition}:ecs:{ctx.region}:{ctx.account}:cluster/{project}"
    params = {
        "family_prefix": task_family_prefix(project),
        "role_path": role_path(project, org_path),
        "execution_role": org_path[1:] + worker_execution_role_name(project, role_prefix),
        "ecs_cluster": project,
        "cluster_arn": cluster_arn,
        "identity_path": identity_parameter(project, ""),
    }
    return Grant("scheduler", "launch_dag_tasks", params, "cluster: the ECS executor")


def dispatch_celery(project: str) -> Grant:
    """What the scheduler's Celery executor needs to send each DAG's workloads to its queue."""
    params = {
        "queue_prefix": dag_queue_prefix(project),
        "identity_path": identity_parameter(project, ""),
        "table": celery_results_table(project),
    }
    return Grant("scheduler", "dispatch_celery", params, "cluster: the Celery executor")


def read_dag_bundle(dags_bucket: str) -> Grant:
    params = {"bucket": dags_bucket, "prefix": DAG_BUNDLE_PREFIX}
    return Grant("dag_bundle", "read", params, "cluster: the dag-processor reads the DAG bundle")


def read_task_logs(logs_bucket: str) -> Grant:
    params = {"bucket": logs_bucket, "prefix": TASK_LOGS_ROOT}
    return Grant("s3", "read", params, "cluster: the api-server reads every DAG's task logs")


def statements(grant: Grant, ctx: ArnContext) -> list[Statement]:
    out = merge(render(grant, ctx))
    number([out])
    return out
