"""The CloudFormation service role's permissions, read from `deployer.yaml`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from foundation import yamlio
from foundation.iam.catalog import fill


@dataclass(frozen=True)
class DeployerGroup:
    name: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: dict[str, dict[str, Any]] | None
    why: str | None


@dataclass(frozen=True)
class Deployer:
    resource_types: dict[str, list[str]]
    groups: dict[str, DeployerGroup]
    always: list[str]
    not_granted: dict[str, str]  # handler permission pattern -> why the role lacks it


@cache
def deployer() -> Deployer:
    with resources.as_file(resources.files("foundation.iam").joinpath("deployer.yaml")) as path:
        data = yamlio.load(path).data
    groups = {
        name: DeployerGroup(
            name,
            tuple(g["actions"]),
            tuple(g["resources"]),
            g.get("condition"),
            g.get("why"),
        )
        for name, g in data["statements"].items()
    }
    return Deployer(data["resource_types"], groups, data["always"], data["not_granted"])


def _filled(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, list):
        return [_filled(v, values) for v in value]
    return {k: _filled(v, values) for k, v in value.items()}


def statements(values: dict[str, str]) -> list[dict[str, Any]]:
    """Policy statements for every resource type the toolkit's stacks use (every group: a test
    keeps each one referenced by a type or `always`).

    `values` fills the ARN formats: partition, region, account, name, boundary, role path/prefix.
    """
    out = []
    for _, group in sorted(deployer().groups.items()):
        statement: dict[str, Any] = {
            "Sid": "".join(part.capitalize() for part in group.name.split("_")),
            "Effect": "Allow",
            "Action": list(group.actions),
            "Resource": _filled(list(group.resources), values),
        }
        if group.condition:
            statement["Condition"] = _filled(group.condition, values)
        out.append(statement)
    return out
