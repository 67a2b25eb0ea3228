"""`foundation status`: each stack of the project as CloudFormation has it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foundation.cloudformation.actions import StackState, cloudformation, describe_stack
from foundation.project import load_project


def run(
    root: Path, env: str | None, profile: str | None, region: str | None
) -> list[tuple[str, StackState | None]]:
    project = load_project(root, env)
    deployment = project.deployment
    cfn = cloudformation(profile, region or deployment.region)
    names = deployment.namespace.stacks([d.dag_id for d in project.dags], deployment.worker_stacks)
    return [(name, describe_stack(cfn, name)) for name in names]


def as_data(stacks: list[tuple[str, StackState | None]]) -> dict[str, Any]:
    return {"stacks": [stack_data(name, state) for name, state in stacks]}


def stack_data(name: str, state: StackState | None) -> dict[str, Any]:
    if state is None:
        return {
            "stack": name,
            "status": "NOT_DEPLOYED",
            "drift": None,
            "last_update": None,
            "outputs": {},
        }
    return {
        "stack": name,
        "status": state.status,
        "drift": state.drift,
        "last_update": state.updated.isoformat() if state.updated else None,
        "outputs": state.outputs,
    }
