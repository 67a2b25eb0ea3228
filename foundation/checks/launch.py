"""The prefix grants the scheduler may hold: exactly the catalog's patterns (the ECS executor's
launch grants, the Celery executor's queues)."""

from __future__ import annotations

from typing import Any

from foundation.checks.model import Assembly
from foundation.iam import cluster
from foundation.iam.policy import ArnContext, Statement

LAUNCH_ACTIONS = {"iam:passrole", "ecs:runtask"}


def _ctx(assembly: Assembly) -> ArnContext:
    context = assembly.context
    return ArnContext(context["partition"], context["region"], context["account"])


def _launch(assembly: Assembly) -> list[Statement]:
    grant = cluster.launch_dag_tasks(
        assembly.context["project"],
        _ctx(assembly),
        assembly.context.get("role_path", "/"),
        assembly.context.get("role_prefix", ""),
    )
    return cluster.statements(grant, _ctx(assembly))


def scheduler_prefixes(assembly: Assembly) -> set[str]:
    """Every wildcard resource of the scheduler's grants, in either executor mode."""
    dispatch = cluster.statements(
        cluster.dispatch_celery(assembly.context["project"]), _ctx(assembly)
    )
    return {r for st in [*_launch(assembly), *dispatch] for r in st.resources if "*" in r}


def allowed_patterns(assembly: Assembly) -> dict[str, dict[str, Any]]:
    """Wildcard resources the rules accept for launch actions -> the condition each needs."""
    out: dict[str, dict[str, Any]] = {}
    for st in _launch(assembly):
        if {a.lower() for a in st.actions} & LAUNCH_ACTIONS:
            for resource in st.resources:
                if "*" in resource:
                    out[resource] = st.condition or {}
    return out
