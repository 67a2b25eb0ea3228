"""`foundation destroy`: delete the project's stacks in reverse dependency order. Stateful
resources stay or are snapshotted as the templates say (DeletionPolicy), and are listed."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.cloudformation import actions
from foundation.cloudformation.plan import StackPlan, template_changes
from foundation.cloudformation.target import open_target
from foundation.deploy import Confirm, Interrupted, Outcome, Refused, Reporter, StackRunner


@dataclass(frozen=True)
class Kept:
    stack: str
    logical_id: str
    resource_type: str
    policy: str  # Retain | Snapshot


def kept_resources(stack: str, template: dict[str, Any]) -> list[Kept]:
    return [
        Kept(stack, logical_id, r["Type"], r["DeletionPolicy"])
        for logical_id, r in (template.get("Resources") or {}).items()
        if r.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")
    ]


def as_data(outcomes: list[Outcome], kept: list[Kept]) -> dict[str, Any]:
    return {
        "ok": all(o.ok for o in outcomes),
        "outcomes": [o.as_data() for o in outcomes],
        "kept": [
            {"stack": k.stack, "logical_id": k.logical_id, "resource_type": k.resource_type}
            | {"policy": k.policy}
            for k in kept
        ],
    }


def run(
    root: Path,
    env: str | None,
    out: Path | None,
    profile: str | None,
    region: str | None,
    yes: bool,
    reporter: Reporter,
    confirm: Confirm | None,
) -> tuple[list[Outcome], list[Kept]]:
    target = open_target(root, env, out, profile, region)
    if target.busy:
        busy = ", ".join(f"{s.name} ({s.status})" for s in target.busy)
        raise Refused(f"a CloudFormation operation is under way: {busy}; wait for it to end")
    order = [n for layer in reversed(target.assembly.layers) for n in sorted(layer)]
    names = target.orphans + [n for n in order if n in target.live]
    plans = []
    for name in names:
        deployed = actions.deployed_template(target.aws.cfn, name)
        plans.append(StackPlan(name, "delete", None, deployed, template_changes(deployed, None)))
    reporter.plan(plans, None)
    kept = [k for p in plans for k in kept_resources(p.name, p.deployed or {})]
    if not plans:
        return [], []
    reasons = [f"delete {len(plans)} stack(s): {', '.join(names)}"]
    if not yes and not (confirm and confirm(reasons)):
        raise Refused("destroy needs confirmation; nothing was deleted. Run again with --yes.")
    actions.acquire_lock(target.aws, target.bootstrap.bucket)
    try:
        runner = StackRunner(target, reporter, threading.Event(), drain_timeout=0)
        outcomes: list[Outcome] = []
        for plan in plans:
            try:
                outcome = runner.apply(plan, None)
            except KeyboardInterrupt:
                state = actions.describe_stack(target.aws.cfn, plan.name)
                status = state.status if state else "DELETE_COMPLETE"
                raise Interrupted([*outcomes, Outcome(plan.name, "interrupted", status)]) from None
            outcomes.append(outcome)
            if not outcome.ok:
                break
    finally:
        actions.release_lock(target.aws, target.bootstrap.bucket)
    return outcomes, kept
