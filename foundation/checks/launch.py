"""The launch grants the scheduler may hold: exactly the catalog's prefix patterns."""

from __future__ import annotations

from typing import Any

from foundation.checks.model import Assembly
from foundation.iam import cluster
from foundation.iam.policy import ArnContext

LAUNCH_ACTIONS = {"iam:passrole", "ecs:runtask"}


def allowed_patterns(assembly: Assembly) -> dict[str, dict[str, Any]]:
    """Wildcard resources the rules accept for launch actions -> the condition each needs."""
    ctx = ArnContext(
        assembly.context["partition"], assembly.context["region"], assembly.context["account"]
    )
    out: dict[str, dict[str, Any]] = {}
    grant = cluster.launch_dag_tasks(
        assembly.context["project"],
        ctx,
        assembly.context.get("role_path", "/"),
        assembly.context.get("role_prefix", ""),
    )
    for st in cluster.statements(grant, ctx):
        if {a.lower() for a in st.actions} & LAUNCH_ACTIONS:
            for resource in st.resources:
                if "*" in resource:
                    out[resource] = st.condition or {}
    return out
