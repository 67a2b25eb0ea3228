"""IAM policies as they appear in templates, with CloudFormation functions made readable.

A reference to a resource (Ref, Fn::GetAtt, Fn::ImportValue) names exactly one resource, so it
becomes a placeholder that holds no wildcard; pseudo parameters become their worst-case values
(the longest partition and region), which is also what size limits are measured against. Any
other function (Fn::If, Fn::FindInMap, Fn::Split, ...) becomes UNRESOLVED: FA005 reports it,
and no rule reads it as a name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from foundation.checks.model import StackTemplate
from foundation.config import WORST_CASE_ACCOUNT, WORST_CASE_PARTITION, WORST_CASE_REGION

PSEUDO = {
    "AWS::Partition": WORST_CASE_PARTITION,
    "AWS::Region": WORST_CASE_REGION,
    "AWS::AccountId": WORST_CASE_ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com.cn",
    "AWS::StackName": "x" * 128,
}
# A resource reference stands for one ARN or id; for sizing, as long as an ARN usually gets.
REFERENCE_PLACEHOLDER = "<ref:{}>"
REFERENCE_WORST_LENGTH = 200
UNRESOLVED = "<unresolved:{}>"
# Policies of any principal: the resource types holding a policy document, and where it names
# the principals it applies to
POLICY_TYPES = {
    "AWS::IAM::Policy": ("inline", "Roles"),
    "AWS::IAM::ManagedPolicy": ("managed", "Roles"),
    "AWS::IAM::RolePolicy": ("inline", "RoleName"),
    "AWS::IAM::UserPolicy": ("inline", "UserName"),
    "AWS::IAM::GroupPolicy": ("inline", "GroupName"),
}


def resolve(value: Any) -> Any:
    """Replace CloudFormation functions by strings; leave plain data as it is."""
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return PSEUDO.get(arg, REFERENCE_PLACEHOLDER.format(arg))
        if key in ("Fn::GetAtt", "Fn::ImportValue"):
            name = ".".join(arg) if isinstance(arg, list) else str(resolve(arg))
            return REFERENCE_PLACEHOLDER.format(name)
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(str(resolve(p)) for p in parts)
        if key == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            for pseudo, worst in PSEUDO.items():
                text = text.replace("${" + pseudo + "}", worst)
            return text
        if key == "Fn::Select":
            index, items = arg
            items = resolve(items)
            return (
                items[int(index)]
                if isinstance(items, list)
                else REFERENCE_PLACEHOLDER.format("select")
            )
        if key.startswith("Fn::") or key == "Condition":
            return UNRESOLVED.format(key)
    return {k: resolve(v) for k, v in value.items()}


def worst_case_length(text: str) -> int:
    """Length with each placeholder counted as a long ARN."""
    count = text.count("<ref:")
    if not count:
        return len(text)
    stripped = text
    while "<ref:" in stripped:
        start = stripped.index("<ref:")
        end = stripped.index(">", start)
        stripped = stripped[:start] + stripped[end + 1 :]
    return len(stripped) + count * REFERENCE_WORST_LENGTH


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class PolicyDoc:
    """One policy document in a template, resolved, and the roles it applies to."""

    resource: str  # logical id of the resource holding it
    kind: str  # "inline" (AWS::IAM::Policy or a role's Policies) or "managed"
    document: dict[str, Any]
    roles: tuple[str, ...]  # logical ids (or placeholders) of the roles it is attached to


def policy_documents(stack: StackTemplate) -> tuple[PolicyDoc, ...]:
    """Every policy document in the template, resolved once for all the rules that read them
    (which must not change them)."""
    if "policies" not in stack.derived:
        stack.derived["policies"] = tuple(_documents(stack))
    return stack.derived["policies"]


def _documents(stack: StackTemplate) -> Iterator[PolicyDoc]:
    for logical_id, resource in stack.resources.items():
        kind = resource.get("Type")
        props = resource.get("Properties", {})
        if kind in POLICY_TYPES:
            how, principals = POLICY_TYPES[kind]
            roles = tuple(_role_ids(as_list(props.get(principals, []))))
            yield PolicyDoc(logical_id, how, resolve(props.get("PolicyDocument", {})), roles)
        elif kind == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield PolicyDoc(
                    logical_id, "inline", resolve(policy["PolicyDocument"]), (logical_id,)
                )


def _role_ids(roles: list[Any]) -> Iterator[str]:
    for role in roles:
        yield role["Ref"] if isinstance(role, dict) and "Ref" in role else str(resolve(role))


def statements(doc: PolicyDoc) -> Iterator[dict[str, Any]]:
    """The statements the rules can read (FA005 reports what they cannot)."""
    if isinstance(doc.document, dict):
        yield from (s for s in as_list(doc.document.get("Statement", [])) if isinstance(s, dict))


def unreadable(doc: PolicyDoc) -> Iterator[str]:
    """Each value of the document the rules cannot read: a function left unresolved, or a
    statement element that is neither a string nor a list of them."""
    if not isinstance(doc.document, dict):
        yield f"PolicyDocument is {doc.document}"
        return
    for i, st in enumerate(as_list(doc.document.get("Statement", []))):
        if not isinstance(st, dict):
            yield f"Statement[{i}] is {st}"
            continue
        for key in ("Effect", "Action", "NotAction", "Resource", "NotResource"):
            for value in as_list(st.get(key, [])):
                if not isinstance(value, str) or value.startswith("<unresolved:"):
                    yield f"Statement[{i}].{key} holds {value}"
        if "<unresolved:" in str(st.get("Condition", "")):
            yield f"Statement[{i}].Condition holds a function"
