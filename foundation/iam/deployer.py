"""The CloudFormation service role's permissions, read from `deployer.yaml`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from foundation import yamlio
from foundation.iam.catalog import fill
from foundation.naming import PROJECT_TAG, Namespace


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
    return {fill(k, values): _filled(v, values) for k, v in value.items()}


def values(ns: Namespace, partition: str, boundary: str) -> dict[str, str]:
    """What fills the ARN formats: every name from the deployment's namespace."""
    return {
        "partition": partition,
        "region": ns.region,
        "account": ns.account,
        "name": ns.name,
        "stem": ns.stem,
        "logs_bucket": ns.logs_bucket,
        "dags_bucket": ns.dags_bucket,
        "table": ns.celery_results_table,
        "dag_role_path": ns.dag_role_path,
        "dns": ns.dns_namespace,
        "tag": PROJECT_TAG,
        "boundary": boundary,
        "role_path": ns.role_root,
        "role_prefix": ns.role_prefix,
    }


def statements(values: dict[str, str]) -> list[dict[str, Any]]:
    """Policy statements for every resource type the toolkit's stacks use (every group: a test
    keeps each one referenced by a type or `always`).

    `values` (see `values`) fills the ARN formats.
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


MANAGED_POLICY_MAX_CHARS = 6144
MAX_POLICIES = 10  # IAM's default managed policies per role
# The longest values each placeholder can take: the split into policies is decided at these, so
# it is the same for every deployment and every one of them fits.
WORST_CASE = values(
    Namespace("n" * 20, "/" + "p" * 60 + "/", "r" * 15 + "_", "111122223333", "ap-southeast-14"),
    "aws-us-gov",
    "arn:aws-us-gov:iam::111122223333:policy/" + "b" * 128,
)


def _size(statements: list[dict[str, Any]]) -> int:
    document = {"Version": "2012-10-17", "Statement": statements}
    return len(json.dumps(document, separators=(",", ":")))


def policies(values: dict[str, str]) -> list[list[dict[str, Any]]]:
    """The statements split into managed policies (first fit, in order), each within IAM's
    6,144 characters at the worst case: more than an inline policy's 10,240 in all."""
    worst = statements(WORST_CASE)
    bins: list[list[int]] = []
    for i in range(len(worst)):
        for indexes in bins:
            if _size([worst[j] for j in [*indexes, i]]) <= MANAGED_POLICY_MAX_CHARS:
                indexes.append(i)
                break
        else:
            bins.append([i])
    if len(bins) > MAX_POLICIES:
        raise ValueError(f"the service role needs {len(bins)} managed policies")
    actual = statements(values)
    return [[actual[i] for i in indexes] for indexes in bins]
