"""The prefix grants the scheduler may hold, spelled out here from the deployment's namespace
(the config), not taken from the code that makes the grants: a change that widens the
scheduler's grant fails FA003/FA004 instead of widening what they accept."""

from __future__ import annotations

from typing import Any

from foundation.checks.model import Assembly, StackTemplate
from foundation.checks.policies import PolicyDoc
from foundation.naming import Namespace

LAUNCH_ACTIONS = {"iam:passrole", "ecs:runtask"}


def namespace(assembly: Assembly) -> Namespace:
    context = assembly.context
    return Namespace(
        context["project"],
        context.get("role_path", "/"),
        context.get("role_prefix", ""),
        context["account"],
        context["region"],
    )


def is_schedulers(stack: StackTemplate, doc: PolicyDoc, assembly: Assembly) -> bool:
    """Whether a policy applies to the scheduler's role, and to no other: the prefix grants
    are the scheduler's alone."""
    role = namespace(assembly).role("scheduler")
    names = [stack.resources.get(r, {}).get("Properties", {}).get("RoleName") for r in doc.roles]
    return bool(names) and all(name == role for name in names)


def allowed_patterns(assembly: Assembly) -> dict[str, dict[str, Any]]:
    """Wildcard resources the rules accept for launch actions -> the condition each needs:
    RunTask of a DAG's task definition on this cluster, PassRole of a DAG's role to ECS tasks."""
    ns, context = namespace(assembly), assembly.context
    p, r, a = context["partition"], context["region"], context["account"]
    cluster = f"arn:{p}:ecs:{r}:{a}:cluster/{ns.cluster}"
    return {
        f"arn:{p}:ecs:{r}:{a}:task-definition/{ns.worker_family_prefix}*:*": {
            "ArnEquals": {"ecs:cluster": cluster}
        },
        f"arn:{p}:iam::{a}:role{ns.dag_role_path}*": {
            "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        },
    }


def scheduler_prefixes(assembly: Assembly) -> set[str]:
    """Every wildcard resource FA003 accepts, in either executor mode: the launch patterns,
    the cluster's tasks, the DAGs' published identities and (Celery) the DAGs' queues."""
    ns, context = namespace(assembly), assembly.context
    p, r, a = context["partition"], context["region"], context["account"]
    return set(allowed_patterns(assembly)) | {
        f"arn:{p}:ecs:{r}:{a}:task/{ns.cluster}/*",
        f"arn:{p}:ssm:{r}:{a}:parameter{ns.identity_path}*",
        f"arn:{p}:sqs:{r}:{a}:{ns.dag_queue_prefix}*",
    }
