"""The cluster components' own grants, rendered from the catalog like a DAG's."""

from __future__ import annotations

from typing import Any

from foundation.iam.catalog import catalog, fill
from foundation.iam.policy import (
    TASK_LOGS_ROOT,
    ArnContext,
    Grant,
    Statement,
    merge,
    number,
    render,
)
from foundation.naming import DagNames, Namespace, bundle_prefix


def launch_dag_tasks(ns: Namespace, ctx: ArnContext) -> Grant:
    """What the scheduler's executor needs to start each DAG's tasks as that DAG."""
    cluster_arn = f"arn:{ctx.partition}:ecs:{ctx.region}:{ctx.account}:cluster/{ns.cluster}"
    params = {
        "family_prefix": ns.worker_family_prefix,
        "role_path": ns.dag_role_path,
        "execution_role": ns.role_root[1:] + ns.worker_execution_role,
        "ecs_cluster": ns.cluster,
        "cluster_arn": cluster_arn,
        "identity_path": ns.identity_path,
    }
    return Grant("scheduler", "launch_dag_tasks", params, "cluster: the ECS executor")


def dispatch_celery(ns: Namespace) -> Grant:
    """What the scheduler's Celery executor needs to send each DAG's workloads to its queue."""
    params = {
        "queue_prefix": ns.dag_queue_prefix,
        "identity_path": ns.identity_path,
        "table": ns.celery_results_table,
    }
    return Grant("scheduler", "dispatch_celery", params, "cluster: the Celery executor")


def dag_queue_policy(ns: Namespace, names: DagNames, ctx: ArnContext) -> list[dict[str, Any]]:
    """The explicit denies on a DAG's queue: only the scheduler's role sends to it, only the
    DAG's own role consumes it, whatever any identity policy in the account allows."""
    values = {
        "partition": ctx.partition,
        "region": ctx.region,
        "account": ctx.account,
        "queue": names.queue,
        "scheduler_role": ns.component_role_path_name("scheduler"),
        "worker_role": ns.dag_role_path_name(names),
    }
    cat = catalog()
    return [
        {
            "Sid": deny.sid,
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": list(deny.actions),
            "Resource": [fill(cat.arns[key], values) for key in deny.resources],
            "Condition": {
                "ArnNotEquals": {
                    "aws:PrincipalArn": [fill(cat.arns[key], values) for key in deny.allowed]
                }
            },
        }
        for deny in cat.denies("dag_queue")
    ]


def read_dag_bundle(dags_bucket: str, bundle: str) -> Grant:
    params = {"bucket": dags_bucket, "prefix": bundle_prefix(bundle)}
    return Grant("dag_bundle", "read", params, f"cluster: reads the DAG bundle {bundle!r}")


def read_task_logs(logs_bucket: str) -> Grant:
    params = {"bucket": logs_bucket, "prefix": TASK_LOGS_ROOT}
    return Grant("s3", "read", params, "cluster: the api-server reads every DAG's task logs")


def statements(grant: Grant, ctx: ArnContext) -> list[Statement]:
    out = merge(render(grant, ctx))
    number([out])
    return out
