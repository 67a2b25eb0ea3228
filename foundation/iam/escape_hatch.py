"""Checks for a manifest's raw `statements`: the same rules every generated grant obeys."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from foundation.iam import arns
from foundation.iam.arns import WILDCARD
from foundation.iam.catalog import ActionInfo, arn_matches_format, is_escalation, lookup, suggest
from foundation.iam.policy import Statement
from foundation.manifest import RawStatement

RESERVED_BUCKET_MESSAGE = (
    "is the toolkit's (a deployment's task logs, DAG code or templates); each DAG already gets "
    "exactly what it needs of its own"
)


@dataclass
class Rules:
    """What the deployment decides about a DAG's escape hatch."""

    partition: str
    reserved: Callable[[str, str], bool]  # (service, resource part) -> the cluster's own?
    allow_escalation: bool
    dag_secrets_root: str


@dataclass
class Checked:
    statement: Statement | None
    problems: list[tuple[tuple[str | int, ...], str]] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)


def check(raw: RawStatement, rules: Rules, source: str) -> Checked:
    """Validate one raw statement; `problems` hold (sub-path, message) pairs."""
    out = Checked(None)
    infos: list[ActionInfo] = []
    for i, action in enumerate(raw.actions):
        info, message = _check_action(action)
        if message:
            out.problems.append((("actions", i), message))
            continue
        assert info is not None
        if info.name == "iam:PassRole":
            out.problems.append((("actions", i), "iam:PassRole is granted through pass_roles only"))
        elif is_escalation(info):
            if rules.allow_escalation:
                out.escalations.append(info.name)
            else:
                out.problems.append((("actions", i), _escalation_message(info)))
        infos.append(info)
    for i, resource in enumerate(raw.resources):
        message = _check_resource(resource, rules)
        if message:
            out.problems.append((("resources", i), message))
    if not out.problems:
        out.problems.extend(_check_pairing(infos, raw.resources))
    if not out.problems:
        actions = tuple(sorted({info.name for info in infos}))
        out.statement = Statement(actions, tuple(raw.resources), None, (source,))
    return out


def _check_action(action: str) -> tuple[ActionInfo | None, str]:
    if WILDCARD.search(action):
        return None, f"wildcard action {action!r}: list each action by its full name"
    if ":" not in action:
        return None, f"{action!r} is not of the form service:Action"
    info = lookup(action)
    if info is None:
        hint = suggest(action)
        more = f"; did you mean {hint!r}?" if hint else ""
        return None, f"{action!r} is not in the IAM action database{more}"
    return info, ""


def _escalation_message(info: ActionInfo) -> str:
    return (
        f"{info.name} ({info.access_level}) can escalate privileges; list this DAG in "
        "iam.allow_escalation_for in the config to allow it"
    )


def _check_resource(resource: str, rules: Rules) -> str:
    if resource == "*":
        return ""
    if "${" in resource:
        return f"{resource!r}: IAM policy variables are not allowed"
    arn = arns.parse(resource)
    if arn is None:
        return f"{resource!r} is not an ARN (arn:partition:service:region:account:resource)"
    partition, service, region, account = arn.partition, arn.service, arn.region, arn.account
    if WILDCARD.search(":".join((partition, service, region, account))):
        return f"{resource!r}: wildcards are allowed only in the resource part of an ARN"
    if partition != rules.partition:
        return f"{resource!r}: partition {partition!r} is not this deployment's ({rules.partition})"
    if account and not re.fullmatch(r"\d{12}", account):
        return f"{resource!r}: account {account!r} is not a 12-digit account id"
    if region and not re.fullmatch(r"[a-z]{2,4}(-[a-z]+)+-\d{1,2}", region):
        return f"{resource!r}: {region!r} is not a region"
    if arns.wider_than_one_resource(arn):
        return f"{resource!r} matches more than one resource; name one (a path after it may be *)"
    return _reserved(service, arn.resource, rules)


def _reserved(service: str, rest: str, rules: Rules) -> str:
    if not rules.reserved(service, rest):
        return ""
    if service == "s3":
        return f"this bucket {RESERVED_BUCKET_MESSAGE}"
    return (
        "this is the cluster's own (its secrets, identities, logs, ECS or IAM names); "
        f"a DAG's own secrets are under {rules.dag_secrets_root}<dag_id>/ already"
    )


def _check_pairing(infos: list[ActionInfo], resources: list[str]) -> list:
    """Every action gets a resource of a type it takes, and every resource serves an action."""
    problems: list = []
    if "*" in resources:
        scoped = [info.name for info in infos if info.arn_formats]
        if scoped:
            problems.append(
                (
                    ("resources",),
                    f"'*' is not allowed for {', '.join(scoped)}: these actions "
                    "support resource-level permissions; name their resources",
                )
            )
        return problems
    for info in infos:
        if not info.arn_formats:
            problems.append(
                (
                    ("actions",),
                    f"{info.name} takes no resource ARN; put it in a statement of its "
                    "own with resources: ['*']",
                )
            )
        elif not any(arn_matches_format(r, f) for r in resources for f in info.arn_formats):
            problems.append((("resources",), f"no resource here is of a type {info.name} takes"))
    for i, resource in enumerate(resources):
        if not any(arn_matches_format(resource, f) for info in infos for f in info.arn_formats):
            problems.append((("resources", i), f"{resource!r} is not taken by any action here"))
    return problems
