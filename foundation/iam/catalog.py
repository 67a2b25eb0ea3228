"""IAM knowledge, queried by small functions.

Two sources: `catalog.yaml` (what each manifest grant turns into, our decisions) and
policy_sentry's database of every IAM action (what AWS says exists, its access level, and which
resource types it supports). Nothing else in the toolkit spells IAM actions as literals.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from policy_sentry.querying.actions import get_actions_for_service, get_privilege_info
from policy_sentry.querying.all import get_all_service_prefixes

from foundation import yamlio
from foundation.iam.evaluate import arn_like

READ_LEVELS = {"Read", "List"}


@dataclass(frozen=True)
class StatementTemplate:
    actions: tuple[str, ...]
    resources: tuple[str, ...]  # keys of `arns`
    condition: dict[str, dict[str, str]] | None


@dataclass(frozen=True)
class DenyTemplate:
    """A resource policy's explicit Deny of `actions` to everyone but the `allowed` roles."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]  # keys of `arns`
    allowed: tuple[str, ...]  # keys of `arns`: the roles the Deny spares


@dataclass(frozen=True)
class ActionInfo:
    """One IAM action as policy_sentry's database describes it."""

    name: str  # canonical spelling, e.g. "s3:GetObject"
    access_level: str
    arn_formats: tuple[str, ...]  # empty when the action takes no resource-level permissions


@dataclass(frozen=True)
class ExecutionReads:
    """What ECS calls with a task definition's execution role before its task starts."""

    secrets: dict[str, tuple[str, ...]]  # by the service a secret's ARN names
    awslogs: tuple[str, ...]  # on the task's log stream
    awslogs_create_group: tuple[str, ...]  # on its log group
    ecr_image: tuple[str, ...]  # on an ECR image's repository
    ecr_login: tuple[str, ...]  # on "*"

    @classmethod
    def of(cls, data: dict[str, Any]) -> ExecutionReads:
        return cls(
            {service: tuple(actions) for service, actions in data["secrets"].items()},
            *(
                tuple(data[k])
                for k in ("awslogs", "awslogs_create_group", "ecr_image", "ecr_login")
            ),
        )

    def actions(self) -> set[str]:
        return {
            *(a for actions in self.secrets.values() for a in actions),
            *self.awslogs,
            *self.awslogs_create_group,
            *self.ecr_image,
            *self.ecr_login,
        }


@dataclass(frozen=True)
class Catalog:
    arns: dict[str, str]
    actions: dict[str, str]
    grants: dict[str, dict[str, list[Any]]]
    cluster_grants: dict[str, dict[str, list[Any]]]
    resource_policies: dict[str, list[dict[str, Any]]]
    escalation: dict[str, list[str]]
    execution_reads: ExecutionReads

    def templates(self, kind: str, access: str) -> list[StatementTemplate]:
        out: list[StatementTemplate] = []
        levels = self.grants.get(kind) or self.cluster_grants[kind]
        for entry in levels[access]:
            if isinstance(entry, str):
                out.extend(self.templates(kind, entry))
            else:
                out.append(
                    StatementTemplate(
                        tuple(entry["actions"]), tuple(entry["resources"]), entry.get("condition")
                    )
                )
        return out

    def denies(self, resource: str) -> list[DenyTemplate]:
        return [
            DenyTemplate(
                entry["sid"],
                tuple(entry["actions"]),
                tuple(entry["resources"]),
                tuple(entry["except"]),
            )
            for entry in self.resource_policies[resource]
        ]

    def granted_actions(self, kind: str, access: str) -> list[str]:
        return sorted({a for t in self.templates(kind, access) for a in t.actions})


@cache
def catalog() -> Catalog:
    # Read like user input: a duplicated key in the catalog is an error, not a silent override.
    with resources.as_file(resources.files("foundation.iam").joinpath("catalog.yaml")) as path:
        data = yamlio.load(path).data
    return Catalog(
        data["arns"],
        data["actions"],
        data["grants"],
        data["cluster_grants"],
        data["resource_policies"],
        data["escalation"],
        ExecutionReads.of(data["execution_reads"]),
    )


_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_VARIABLE = re.compile(r"\$\{\w+\}")


def fill(template: str, values: dict[str, str]) -> str:
    """Replace {name} placeholders; IAM policy variables like ${aws:userid} are left alone."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


@cache
def _service_actions(service: str) -> dict[str, str]:
    """lowercase action name -> canonical name, for one service."""
    return {a.lower(): a for a in get_actions_for_service(service)}


@cache
def _services() -> frozenset[str]:
    return frozenset(get_all_service_prefixes())


def lookup(action: str) -> ActionInfo | None:
    """The database entry for `service:Action` (case-insensitive, as IAM is), or None."""
    service, _, name = action.partition(":")
    service = service.lower()
    if service not in _services():
        return None
    canonical = _service_actions(service).get(f"{service}:{name}".lower())
    if canonical is None:
        return None
    info = get_privilege_info(service, canonical.split(":", 1)[1])
    arn_types = info["service_resources"]
    formats = tuple(
        arn_types[rtype]["arn"] for rtype in info["resource_types"] if rtype and rtype in arn_types
    )
    return ActionInfo(canonical, info["access_level"], formats)


def suggest(action: str) -> str | None:
    """The closest real action name, for did-you-mean messages."""
    service, _, _ = action.partition(":")
    service = service.lower()
    if service not in _services():
        match = difflib.get_close_matches(service, _services(), n=1)
        return f"{match[0]}:..." if match else None
    names = _service_actions(service)
    match = difflib.get_close_matches(action.lower(), names, n=1, cutoff=0.7)
    return names[match[0]] if match else None


def is_escalation(info: ActionInfo) -> bool:
    rules = catalog().escalation
    service = info.name.split(":", 1)[0]
    return (
        info.access_level in rules["access_levels"]
        or (service in rules["services"] and info.access_level not in READ_LEVELS)
        or info.name in rules["actions"]
    )


def arn_matches_format(arn: str, arn_format: str) -> bool:
    """Whether a concrete or wildcard ARN names a resource of the type `arn_format` describes.

    `arn_format` is policy_sentry's form, e.g. arn:${Partition}:s3:::${BucketName}/${ObjectName}:
    each variable becomes IAM's `*` and the ARN is matched part by part as ArnLike does (the
    toolkit's one matcher, evaluate.arn_like). A bucket name holds no '/', so a bucket's format
    takes no object.
    """
    pattern = _VARIABLE.sub("*", arn_format)
    if arn_format.endswith(":::${BucketName}") and "/" in arn.split(":", 5)[-1]:
        return False
    return arn_like(pattern, arn)
