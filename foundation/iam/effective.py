"""Effective permissions, read from the synthesized templates: every role, every policy attached to
it (including what CDK adds on its own), and IAM's wildcard matching to answer "who can reach
this resource". Sources come from the generated policy (manifest line or baseline) by Sid."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from foundation.iam.catalog import lookup

DAG_ID_TAG = "foundation:dag_id"
POLICY_TYPES = ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy")


@dataclass(frozen=True)
class Grant:
    """One Allow statement of a role, as the template has it."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: dict[str, Any] | None
    source: str  # manifest line, baseline, or "added by CDK"

    @property
    def services(self) -> list[str]:
        return sorted({a.split(":", 1)[0] for a in self.actions})


@dataclass
class RoleGrants:
    stack: str
    logical_id: str
    name: str
    dag_id: str | None  # None for the cluster's own roles
    grants: list[Grant] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"DAG {self.dag_id}" if self.dag_id else f"cluster role {self.name}"


def render(value: Any, resources: dict[str, Any]) -> str:
    """An ARN as text: intrinsic functions resolved where the template says enough."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        target = resources.get(value["Ref"], {})
        name = target.get("Properties", {}).get("Name")
        if target.get("Type") == "AWS::SecretsManager::Secret" and name:
            return f"arn:*:secretsmanager:*:*:secret:{name}-??????"
        return f"${{{value['Ref']}}}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        target = resources.get(logical_id, {})
        name = target.get("Properties", {}).get("LogGroupName")
        if target.get("Type") == "AWS::Logs::LogGroup" and attribute == "Arn" and name:
            return f"arn:*:logs:*:*:log-group:{name}:*"
        return f"${{{logical_id}.{attribute}}}"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(p, resources) for p in parts)
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return f"${{import:{value['Fn::ImportValue']}}}"
    return str(value)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_refs(props: dict[str, Any]) -> list[str]:
    return [r["Ref"] for r in props.get("Roles", []) if isinstance(r, dict) and "Ref" in r]


def _tag(props: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in props.get("Tags", []) if t.get("Key") == key), None)


def roles_of(
    templates: dict[str, dict[str, Any]], sources: dict[tuple[str, str], str]
) -> list[RoleGrants]:
    """Every role in the templates with the Allow statements of every policy attached to it.

    `sources` maps (dag_id, Sid) to where the generated statement came from.
    """
    out = []
    for stack, template in templates.items():
        resources = template.get("Resources", {})
        roles = {
            logical_id: RoleGrants(
                stack,
                logical_id,
                r["Properties"].get("RoleName", logical_id),
                _tag(r["Properties"], DAG_ID_TAG),
            )
            for logical_id, r in resources.items()
            if r["Type"] == "AWS::IAM::Role"
        }
        for r in resources.values():
            if r["Type"] not in POLICY_TYPES:
                continue
            for ref in _role_refs(r["Properties"]):
                if ref in roles:
                    role = roles[ref]
                    role.grants += _grants(
                        r["Properties"]["PolicyDocument"], resources, role, sources
                    )
        for logical_id, role in roles.items():
            for inline in resources[logical_id]["Properties"].get("Policies", []):
                role.grants += _grants(inline["PolicyDocument"], resources, role, sources)
        out += roles.values()
    return out


def _grants(
    document: dict[str, Any],
    resources: dict[str, Any],
    role: RoleGrants,
    sources: dict[tuple[str, str], str],
) -> list[Grant]:
    grants = []
    for st in _listed(document.get("Statement", [])):
        if st.get("Effect") != "Allow" or "Action" not in st:
            continue
        source = sources.get((role.dag_id or "", st.get("Sid", "")), "added by CDK")
        if role.dag_id is None:
            source = "the toolkit's cluster grants"
        grants.append(
            Grant(
                tuple(_listed(st["Action"])),
                tuple(render(v, resources) for v in _listed(st.get("Resource", []))),
                st.get("Condition"),
                source,
            )
        )
    return grants


UNRESOLVED = re.compile(r"\$\{[^}]*\}")


def _pattern(arn_pattern: str) -> re.Pattern[str] | None:
    """IAM's `*` and `?`, matched case-sensitively. A reference the template leaves unresolved
    (`${Logical.Attr}`) names one resource this audit cannot place: it matches nothing."""
    if UNRESOLVED.search(arn_pattern):
        return None
    return re.compile(fnmatch.translate(arn_pattern))


def reaches(resource_pattern: str, arn: str) -> bool:
    pattern = _pattern(resource_pattern)
    return pattern is not None and pattern.match(arn) is not None


@dataclass(frozen=True)
class Access:
    role: RoleGrants
    actions: tuple[str, ...]
    levels: tuple[str, ...]
    condition: dict[str, Any] | None
    source: str


def access_level(action: str) -> str:
    info = lookup(action)
    return info.access_level if info else "Unknown"


def _prefix_allows(grant: Grant, arn: str, key: str | None) -> bool:
    """A bucket-level statement limited by `s3:prefix` reaches the bucket only for listings
    inside that prefix."""
    if key is None or arn.count(":") != 5 or "/" in arn.split(":", 5)[5]:
        return True  # not a bucket ARN from an s3:// question
    for operator, keys in (grant.condition or {}).items():
        if "s3:prefix" in keys and operator in ("StringLike", "StringEquals"):
            patterns = _listed(keys["s3:prefix"])
            return any(fnmatch.fnmatchcase(key, p) or p.startswith(key) for p in patterns)
    return True


def who_can(roles: list[RoleGrants], arns: list[str], s3_key: str | None = None) -> list[Access]:
    """Each role's statements whose resources reach any of `arns` (for an s3:// question,
    `s3_key` is the prefix asked about)."""
    found = []
    for role in roles:
        for grant in role.grants:
            reached = [
                arn
                for arn in arns
                if any(reaches(r, arn) for r in grant.resources)
                and _prefix_allows(grant, arn, s3_key)
            ]
            # an action acts on its own service's resources only (`*` for redshift-data is not
            # a way into Secrets Manager)
            services = {arn.split(":")[2] for arn in reached}
            actions = tuple(a for a in grant.actions if a.split(":", 1)[0] in services)
            if actions:
                levels = tuple(sorted({access_level(a) for a in actions}))
                found.append(Access(role, actions, levels, grant.condition, grant.source))
    return found


def resource_arns(text: str, partition: str, region: str, account: str) -> list[str]:
    """What `--who-can` was given, as the ARNs a policy would name: an ARN, s3://bucket/prefix
    (the bucket and an object under the prefix), or a secret's name."""
    if text.startswith("arn:"):
        return [text]
    if text.startswith("s3://"):
        bucket, _, key = text[5:].partition("/")
        return [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/{key}"]
    # a secret: Secrets Manager appends six random characters to the name in its ARN
    return [f"arn:{partition}:secretsmanager:{region}:{account}:secret:{text}-AbC123"]
