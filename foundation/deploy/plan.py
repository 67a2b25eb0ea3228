"""Deciding a deploy, without calling AWS: stack order, how templates travel, and which changes
need a person's approval (IAM that broadens, stateful resources replaced or removed).

The actions that call CloudFormation feed these functions what AWS returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# CloudFormation takes a TemplateBody up to this size; larger templates go by TemplateURL.
TEMPLATE_BODY_MAX_BYTES = 51_200

# Resources whose replacement or removal loses data.
STATEFUL_TYPES = {
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::DynamoDB::Table",
    "AWS::Logs::LogGroup",
}
POLICY_TYPES = {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"}


def stack_layers(manifest: dict[str, Any]) -> list[list[str]]:
    """Stacks in dependency order; the stacks of one layer can deploy at the same time."""
    stacks = {
        name: set(artifact.get("dependencies") or [])
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    for needs in stacks.values():
        needs &= stacks.keys()  # dependencies on non-stack artifacts order nothing here
    layers: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(stacks):
        ready = sorted(name for name, needs in stacks.items() if name not in done and needs <= done)
        if not ready:
            raise ValueError(
                f"stacks depend on each other in a cycle: {sorted(stacks.keys() - done)}"
            )
        layers.append(ready)
        done.update(ready)
    return layers


def needs_template_url(template_bytes: int) -> bool:
    return template_bytes > TEMPLATE_BODY_MAX_BYTES


@dataclass(frozen=True)
class IamChange:
    """One IAM statement added to or removed from a policy, as `cdk diff` lists them."""

    resource: str  # logical id holding the policy
    added: bool
    statement: str  # the statement, as canonical JSON

    @property
    def broadens(self) -> bool:
        return self.added


def _statements(template: dict[str, Any] | None) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for logical_id, resource in ((template or {}).get("Resources") or {}).items():
        if resource.get("Type") not in POLICY_TYPES:
            continue
        props = resource.get("Properties", {})
        documents = [props.get("PolicyDocument"), props.get("AssumeRolePolicyDocument")]
        documents += [p.get("PolicyDocument") for p in props.get("Policies", [])]
        for document in filter(None, documents):
            statements = document.get("Statement", [])
            for statement in statements if isinstance(statements, list) else [statements]:
                canonical = {k: v for k, v in statement.items() if k != "Sid"}
                out.add((logical_id, json.dumps(canonical, sort_keys=True)))
    return out


def iam_changes(deployed: dict[str, Any] | None, new: dict[str, Any]) -> list[IamChange]:
    """Statement-level IAM differences between the deployed template and the new one."""
    before, after = _statements(deployed), _statements(new)
    changes = [IamChange(r, True, s) for r, s in sorted(after - before)]
    changes += [IamChange(r, False, s) for r, s in sorted(before - after)]
    return changes


@dataclass(frozen=True)
class ResourceChange:
    """A change set's ResourceChange, as much of it as decides approval."""

    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    resource_type: str
    replacement: str = "False"  # True | False | Conditional

    @classmethod
    def from_aws(cls, change: dict[str, Any]) -> ResourceChange:
        rc = change["ResourceChange"]
        return cls(
            rc["Action"],
            rc["LogicalResourceId"],
            rc["ResourceType"],
            rc.get("Replacement", "False"),
        )

    @property
    def loses_data(self) -> bool:
        if self.resource_type not in STATEFUL_TYPES:
            return False
        return self.action == "Remove" or (
            self.action == "Modify" and self.replacement in ("True", "Conditional")
        )


def approval_reasons(changes: list[ResourceChange], iam: list[IamChange]) -> list[str]:
    """Why a change set needs confirmation (or --yes); empty when it may go ahead alone."""
    reasons = [
        f"{c.action} {c.resource_type} {c.logical_id}"
        + (" (replacement)" if c.action == "Modify" else "")
        for c in changes
        if c.loses_data
    ]
    reasons += [f"IAM broadens in {c.resource}: {c.statement}" for c in iam if c.broadens]
    return reasons
