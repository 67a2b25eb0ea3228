"""`foundation diff`: what a deploy would change, per stack, without executing anything."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foundation.cloudformation.plan import StackPlan
from foundation.cloudformation.target import discard, open_target, plan_all


def run(
    root: Path,
    env: str | None,
    out: Path | None,
    profile: str | None,
    region: str | None,
    concurrency: int = 4,
    on_stage: Callable[[str], None] | None = None,
) -> list[StackPlan]:
    target = open_target(root, env, out, profile, region, on_stage)
    if on_stage:
        on_stage("a change set for every stack")
    plans = plan_all(target, None, concurrency)
    discard(target, plans)
    return plans


def as_data(plans: list[StackPlan]) -> dict[str, Any]:
    """Every stack's plan; `changes` says whether a deploy would change anything (exit 3)."""
    return {
        "changes": any(p.action != "none" for p in plans),
        "stacks": [
            {
                "stack": p.name,
                "action": p.action,
                "resources": [
                    {
                        "action": c.action,
                        "logical_id": c.logical_id,
                        "resource_type": c.resource_type,
                        "replacement": c.replacement,
                    }
                    for c in p.changes
                ],
                "iam": [
                    {"added": c.added, "resource": c.resource, "statement": json.loads(c.statement)}
                    for c in p.iam
                ],
                "blocked": p.blocked,
                "approval_reasons": p.approval_reasons,
            }
            for p in plans
        ],
    }


def markdown(plans: list[StackPlan]) -> str:
    """A pull-request comment: one section per stack that would change."""
    changed = [p for p in plans if p.action != "none"]
    if not changed:
        return "**foundation diff**: no changes.\n"
    lines = [f"**foundation diff**: {len(changed)} of {len(plans)} stack(s) would change.", ""]
    for plan in changed:
        lines += [f"### `{plan.name}`: {plan.action}", ""]
        if plan.changes:
            lines += ["| action | resource | type | replacement |", "|---|---|---|---|"]
            lines += [
                f"| {c.action} | `{c.logical_id}` | {c.resource_type} | {c.replacement} |"
                for c in plan.changes
            ]
            lines.append("")
        if plan.iam:
            lines += ["| IAM | resource | statement |", "|---|---|---|"]
            lines += [
                f"| {'+' if c.added else '-'} | `{c.resource}` | `{c.statement}` |"
                for c in plan.iam
            ]
            lines.append("")
        for reason in plan.blocked:
            lines.append(f"- **cannot deploy**: {reason}")
        for reason in plan.approval_reasons:
            lines.append(f"- needs approval: {reason}")
        lines.append("")
    return "\n".join(lines)
