"""Effective permissions, read from the synthesized templates: every role, every policy attached to
it (including what CDK adds on its own: policies naming the role, its inline policies, its
ManagedPolicyArns), and IAM's wildcard matching to answer "who can reach this resource". Sources
come from the generated policy (manifest line or baseline) by Sid. NotAction and NotResource are
read as what they are (every action, or resource, but the listed); a managed policy the
templates do not hold (an AWS managed policy) is reported as one that may grant anything."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from foundation.iam.catalog import lookup
from foundation.iam.evaluate import Request, allows, glob, listed
from foundation.iam.policy import ArnContext
from foundation.naming import DAG_ID_TAG

POLICY_TYPES = ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::RolePolicy")


@dataclass(frozen=True)
class Grant:
    """One Allow statement of a role, as the template has it."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: dict[str, Any] | None
    source: str  # manifest line, baseline, or "added by CDK"
    not_action: bool = False  # NotAction: every action but `actions`
    not_resource: bool = False  # NotResource: every resource but `resources`
    unknown: bool = False  # a managed policy outside the templates: it may grant anything
    policy: str = ""  # the policy holding the statement (its name, or logical id)
    sid: str = ""
    index: int = 0  # the statement's place in its policy

    @property
    def services(self) -> list[str]:
        if self.not_action or self.unknown:
            return ["*"]
        return sorted({a.split(":", 1)[0] for a in self.actions})

    def as_statement(self) -> dict[str, Any]:
        """The grant as policy JSON (for evaluation)."""
        actions = "NotAction" if self.not_action else "Action"
        resources = "NotResource" if self.not_resource else "Resource"
        return {"Effect": "Allow", actions: list(self.actions), resources: list(self.resources)} | (
            {"Condition": self.condition} if self.condition else {}
        )


@dataclass
class RoleGrants:
    stack: str
    logical_id: str
    name: str
    dag_id: str | None  # None for the cluster's own roles
    grants: list[Grant] = field(default_factory=list)
    path: str = "/"
    denies: list[Grant] = field(default_factory=list)  # its Deny statements, read as Grants are

    @property
    def label(self) -> str:
        return f"DAG {self.dag_id}" if self.dag_id else f"cluster role {self.name}"

    def statements(self) -> list[dict[str, Any]]:
        """The role's Allow statements as policy JSON, references rendered (for evaluation)."""
        return [g.as_statement() for g in self.grants]


@dataclass(frozen=True)
class Export:
    """A template's export: its value, and the stack and resources that resolve it."""

    value: Any
    stack: str
    resources: dict[str, Any]


@dataclass(frozen=True)
class Scope:
    """What resolves a template's references: its resources, the deployment's pseudo parameters
    and every other template's exports."""

    resources: dict[str, Any]
    pseudo: dict[str, str]  # AWS::Partition, AWS::Region, AWS::AccountId
    exports: dict[str, Export]  # by name
    # a secret's reference rendered as the ARN of the secret itself (the one a request names),
    # not as the pattern of every ARN it may have (six random characters end it)
    concrete: bool = False

    def within(self, resources: dict[str, Any]) -> Scope:
        return Scope(resources, self.pseudo, self.exports, self.concrete)


PSEUDO = ("AWS::Partition", "AWS::Region", "AWS::AccountId")
SECRET_SAMPLE = "AbC123"  # stands for the six random characters (arns.SECRET_SUFFIX's '??????')


def secret_arn(name: str, partition: str, region: str, account: str) -> str:
    """A secret's ARN: Secrets Manager ends it with six random characters, here a sample."""
    return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-{SECRET_SAMPLE}"


def exports_of(templates: dict[str, dict[str, Any]]) -> dict[str, Export]:
    """Every export of the templates (by stack), by name."""
    exports = {}
    for stack, template in templates.items():
        outputs = as_object(as_object(template).get("Outputs"))
        named = {
            name: output["Value"]
            for output in outputs.values()
            if isinstance(name := as_object(as_object(output).get("Export")).get("Name"), str)
            and "Value" in output
        }
        if named:
            resources = resources_of(template)
            exports |= {name: Export(value, stack, resources) for name, value in named.items()}
    return exports


def render(value: Any, scope: Scope) -> str:
    """An ARN as text, references resolved where the templates say enough; what stays
    unresolved is written `${...}` (and read as "may reach" by the audit)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return str(value)
    if "Ref" in value:
        ref = value["Ref"]
        if not isinstance(ref, str):
            return _unresolved(value)
        if ref in scope.pseudo:
            return scope.pseudo[ref]
        target = scope.resources.get(ref, {})
        props = target.get("Properties", {})
        if target.get("Type") == "AWS::SecretsManager::Secret" and props.get("Name"):
            if scope.concrete:
                return secret_arn(props["Name"], *(scope.pseudo[p] for p in PSEUDO))
            return f"arn:*:secretsmanager:*:*:secret:{props['Name']}-??????"
        if target.get("Type") == "AWS::SecretsManager::SecretTargetAttachment":
            return render(props.get("SecretId"), scope)
        if target.get("Type") == "AWS::SSM::Parameter" and isinstance(props.get("Name"), str):
            return props["Name"]  # a parameter's Ref is its name
        group = props.get("LogGroupName")
        if target.get("Type") == "AWS::Logs::LogGroup" and isinstance(group, str):
            return group  # so is a log group's
        return _unresolved(ref)
    if "Fn::GetAtt" in value:
        got = value["Fn::GetAtt"]
        got = got.split(".", 1) if isinstance(got, str) else got
        if not (isinstance(got, list) and len(got) == 2 and all(isinstance(g, str) for g in got)):
            return _unresolved(value)
        logical_id, attribute = got
        target = scope.resources.get(logical_id, {})
        name = target.get("Properties", {}).get("LogGroupName")
        if target.get("Type") == "AWS::Logs::LogGroup" and attribute == "Arn" and name:
            if scope.concrete:
                return ArnContext(*(scope.pseudo[p] for p in PSEUDO)).log_group(name) + ":*"
            return f"arn:*:logs:*:*:log-group:{name}:*"
        return _unresolved(f"{logical_id}.{attribute}")
    joined = value.get("Fn::Join")
    if isinstance(joined, list) and len(joined) == 2 and isinstance(joined[1], list):
        return str(joined[0]).join(render(p, scope) for p in joined[1])
    if "Fn::ImportValue" in value:
        name = value["Fn::ImportValue"]
        if isinstance(name, str) and name in scope.exports:
            exported = scope.exports[name]
            return render(exported.value, scope.within(exported.resources))
        return _unresolved(f"import:{name}")
    return _unresolved(value)


def _unresolved(what: Any) -> str:
    """`${...}` naming what stays unresolved, with no brace inside (UNRESOLVED finds it)."""
    text = what if isinstance(what, str) else json.dumps(what, sort_keys=True)
    return "${" + text.replace("{", "(").replace("}", ")") + "}"


def _role_refs(props: dict[str, Any]) -> list[Any]:
    """The roles a policy applies to: `Roles` (Policy, ManagedPolicy) or `RoleName` (RolePolicy),
    each a `Ref` or a role's name."""
    roles = props.get("Roles", [])
    roles = (roles if isinstance(roles, list) else []) + (
        [props["RoleName"]] if "RoleName" in props else []
    )
    return [r.get("Ref") if isinstance(r, dict) else r for r in roles]


def _tag(props: dict[str, Any], key: str) -> str | None:
    tags = props.get("Tags", [])
    return next(
        (t.get("Value") for t in tags if isinstance(t, dict) and t.get("Key") == key)
        if isinstance(tags, list)
        else (),
        None,
    )


def resources_of(template: Any) -> dict[str, dict[str, Any]]:
    """A template's resources that are objects (with their Properties an object too)."""
    resources = template.get("Resources") if isinstance(template, dict) else None
    return {
        logical_id: {**r, "Properties": as_object(r.get("Properties"))}
        for logical_id, r in (resources.items() if isinstance(resources, dict) else [])
        if isinstance(r, dict)
    }


def as_object(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty one (templates are read as they come)."""
    return value if isinstance(value, dict) else {}


def roles_of(
    templates: dict[str, dict[str, Any]],
    sources: dict[tuple[str, str], str],
    pseudo: dict[str, str],
    only: Collection[str] | None = None,
    concrete: bool = False,
) -> list[RoleGrants]:
    """Every role in the templates (with `only`, in those stacks) with the Allow and Deny
    statements of every policy attached to it: by `Ref` in its own template, or by its name in
    any (`concrete`: references rendered as Scope.concrete has them).

    `sources` maps (dag_id, Sid) to where the generated statement came from.
    """
    exports = exports_of(templates)
    resources = {stack: resources_of(template) for stack, template in templates.items()}
    roles = {
        (stack, logical_id): RoleGrants(
            stack,
            logical_id,
            r["Properties"].get("RoleName", logical_id),
            _tag(r["Properties"], DAG_ID_TAG),
            path=r["Properties"].get("Path", "/"),
        )
        for stack in templates
        if only is None or stack in only
        for logical_id, r in resources[stack].items()
        if r.get("Type") == "AWS::IAM::Role"
    }
    by_name = {role.name: role for role in roles.values() if isinstance(role.name, str)}
    attached: set[tuple[str, str, str]] = set()  # (stack, policy, role) read
    for stack, found in resources.items():
        scope = Scope(found, pseudo, exports, concrete)
        for policy_id, r in found.items():
            if r.get("Type") not in POLICY_TYPES:
                continue
            for ref in _role_refs(r["Properties"]):
                role = roles.get((stack, ref)) if isinstance(ref, str) else None
                role = role or (by_name.get(ref) if isinstance(ref, str) else None)
                if role is not None:
                    name = _policy_name(policy_id, r["Properties"])
                    _read(r["Properties"].get("PolicyDocument"), scope, role, sources, name)
                    attached.add((stack, policy_id, role.logical_id))
    for (stack, logical_id), role in roles.items():
        scope = Scope(resources[stack], pseudo, exports, concrete)
        props = resources[stack][logical_id]["Properties"]
        for inline in _listed_objects(props.get("Policies")):
            name = inline.get("PolicyName", logical_id)
            _read(inline.get("PolicyDocument"), scope, role, sources, name)
        for arn in props.get("ManagedPolicyArns") or []:
            _managed(arn, scope, role, sources, attached)
    return list(roles.values())


def _listed_objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _managed(
    arn: Any,
    scope: Scope,
    role: RoleGrants,
    sources: dict[tuple[str, str], str],
    attached: set[tuple[str, str, str]],
) -> None:
    """A role's ManagedPolicyArns entry: a managed policy of the same template is read (once,
    if it also names the role); any other is reported, never dropped."""
    ref = arn.get("Ref") if isinstance(arn, dict) else None
    target = scope.resources.get(ref, {}) if isinstance(ref, str) else {}
    if target.get("Type") == "AWS::IAM::ManagedPolicy":
        if (role.stack, ref, role.logical_id) not in attached:
            props = target["Properties"]
            _read(props.get("PolicyDocument"), scope, role, sources, _policy_name(ref, props))
        return
    name = render(arn, scope)
    source = (
        f"managed policy {name}: not in the templates, its statements unknown (may grant anything)"
    )
    role.grants.append(Grant(("*",), ("*",), None, source, unknown=True, policy=name))


def _read(
    document: Any,
    scope: Scope,
    role: RoleGrants,
    sources: dict[tuple[str, str], str],
    policy: str,
) -> None:
    """A policy document's Allow statements into the role's grants, its Deny ones into its
    denies."""
    document = as_object(document)
    role.grants += _grants(document, scope, role, sources, policy)
    role.denies += _grants(document, scope, role, sources, policy, effect="Deny")


def _policy_name(logical_id: str, props: dict[str, Any]) -> str:
    name = props.get("ManagedPolicyName") or props.get("PolicyName")
    return name if isinstance(name, str) else logical_id


def _grants(
    document: dict[str, Any],
    scope: Scope,
    role: RoleGrants,
    sources: dict[tuple[str, str], str],
    policy: str,
    effect: str = "Allow",
) -> list[Grant]:
    grants = []
    for index, st in enumerate(listed(document.get("Statement", []))):
        if not isinstance(st, dict) or st.get("Effect") != effect:
            continue
        source = sources.get((role.dag_id or "", st.get("Sid", "")), "added by CDK")
        if role.dag_id is None:
            source = "the toolkit's cluster grants"
        not_action, not_resource = "NotAction" in st, "NotResource" in st
        if not_action:
            source += " (NotAction: every action but these)"
        if not_resource:
            source += " (NotResource: every resource but these)"
        actions = st["NotAction"] if not_action else st.get("Action", [])
        resources = st["NotResource"] if not_resource else st.get("Resource", [])
        grants.append(
            Grant(
                tuple(a for a in listed(actions) if isinstance(a, str)),
                tuple(render(v, scope) for v in listed(resources)),
                st.get("Condition"),
                source,
                not_action,
                not_resource,
                policy=policy,
                sid=st.get("Sid", ""),
                index=index,
            )
        )
    return grants


UNRESOLVED = re.compile(r"\$\{[^}]*\}")


def head(pattern: str) -> str:
    """The literal start of a pattern, up to its first wildcard or unresolved reference."""
    return re.split(r"[*?]|\$\{", pattern, maxsplit=1)[0]


def reaches(resource_pattern: str, arn: str, prefix: bool = False) -> bool:
    """Whether a statement's resource reaches `arn`; with `prefix`, any ARN starting with it
    (an s3:// question about everything under a prefix)."""
    # an unresolved reference could be anything: it matches as `*` does
    if glob(UNRESOLVED.sub("*", resource_pattern), arn):
        return True
    if not prefix:
        return False
    start = head(resource_pattern)
    wild = start != resource_pattern
    return start.startswith(arn) or (wild and arn.startswith(start))


@dataclass(frozen=True)
class Access:
    role: RoleGrants
    actions: tuple[str, ...]
    levels: tuple[str, ...]
    condition: dict[str, Any] | None
    source: str
    unresolved: bool = False  # reached only through a reference the templates leave open


def access_level(action: str) -> str:
    info = lookup(action)
    return info.access_level if info else "Unknown"


def _prefix_allows(grant: Grant, arn: str, key: str | None) -> bool:
    """A bucket-level statement limited by `s3:prefix` reaches the bucket only for listings
    that overlap the prefix asked about."""
    if key is None or arn.count(":") != 5 or "/" in arn.split(":", 5)[5]:
        return True  # not a bucket ARN from an s3:// question
    for operator, keys in (grant.condition or {}).items():
        if "s3:prefix" in keys and operator in ("StringLike", "StringEquals"):
            return any(reaches(p, key, prefix=True) for p in listed(keys["s3:prefix"]))
    return True


def _is_object(arn: str) -> bool:
    return arn.count(":") >= 5 and "/" in arn.split(":", 5)[5]


def who_can(roles: list[RoleGrants], arns: list[str], s3_key: str | None = None) -> list[Access]:
    """Each role's statements whose resources reach any of `arns` (for an s3:// question,
    `s3_key` is the prefix asked about)."""
    found = []
    for role in roles:
        for grant in role.grants:
            reached = [
                arn
                for arn in arns
                if _names(grant, grant.resources, arn, s3_key)
                and _prefix_allows(grant, arn, s3_key)
            ]
            # an action acts on its own service's resources only (`*` for redshift-data is not
            # a way into Secrets Manager); NotAction may be any action but those listed
            services = {arn.split(":")[2] for arn in reached}
            if grant.not_action:
                services = {s for s in services if not _all_of(grant.actions, s)}
            actions = (
                ("*",)
                if services and (grant.not_action or grant.unknown)
                else tuple(
                    a for a in grant.actions if a == "*" or a.split(":", 1)[0].lower() in services
                )
            )
            if actions:
                levels = tuple(sorted({access_level(a) for a in actions}))
                resolved = [r for r in grant.resources if not UNRESOLVED.search(r)]
                certain = not grant.unknown and any(
                    _names(grant, resolved, arn, s3_key) for arn in reached
                )
                found.append(
                    Access(role, actions, levels, grant.condition, grant.source, not certain)
                )
    return found


def _all_of(actions: tuple[str, ...], service: str) -> bool:
    """Whether NotAction's list takes out every action of a service (`*`, `<service>:*`)."""
    return any(a == "*" or a.lower() == f"{service}:*" for a in actions)


def _names(grant: Grant, resources: list[str] | tuple[str, ...], arn: str, key: str | None) -> bool:
    """Whether the grant's Resource (or, NotResource, everything else) reaches `arn`."""
    if grant.not_resource:  # reached unless a listed resource takes it out for certain
        return not any(glob(r, arn) for r in resources if not UNRESOLVED.search(r))
    return any(reaches(r, arn, prefix=_is_object(arn) and key is not None) for r in resources)


def through_pass_role(
    roles: list[RoleGrants], direct: list[Access], partition: str, account: str
) -> list[Access]:
    """Roles that reach the resource by passing a role that does: the scheduler, launching a
    DAG's task definition with that DAG's role, reaches whatever the DAG reaches."""
    found = []
    reachers = {id(a.role): a.role for a in direct}.values()
    for role in roles:
        for grant in role.grants:
            if not (grant.not_action or grant.unknown) and not any(
                glob(a, "iam:PassRole", case_sensitive=False) for a in grant.actions
            ):
                continue
            for target in reachers:
                arn = ArnContext(partition, "", account).role(target.path, target.name)
                if target is not role and _names(grant, grant.resources, arn, None):
                    found.append(
                        Access(
                            role,
                            ("iam:PassRole",),
                            ("Permissions management",),
                            grant.condition,
                            f"passes {target.label}'s role, which reaches it",
                            grant.unknown,
                        )
                    )
    return found


def resource_arns(text: str, partition: str, region: str, account: str) -> list[str]:
    """What `--who-can` was given, as the ARNs a policy would name: an ARN, s3://bucket/prefix
    (the bucket and an object under the prefix), or a secret's name."""
    if text.startswith("arn:"):
        parts = text.split(":", 5)
        if len(parts) != 6 or not parts[2]:
            raise ValueError(
                f"{text!r} is not an ARN (arn:partition:service:region:account:resource)"
            )
        return [text]
    if text.startswith("s3://"):
        bucket, _, key = text[5:].partition("/")
        return [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/{key}"]
    return [secret_arn(text, partition, region, account)]


def request_arn(text: str, partition: str, region: str, account: str) -> str:
    """What `--can` was given, as the one ARN a request names: an ARN, s3://bucket (the bucket)
    or s3://bucket/key (the object), or a secret's name."""
    if text.startswith("s3://"):
        bucket, _, key = text[5:].partition("/")
        return f"arn:{partition}:s3:::{bucket}" + (f"/{key}" if key else "")
    return resource_arns(text, partition, region, account)[0]


def _evaluable(grant: Grant) -> dict[str, Any]:
    """The grant as policy JSON for the evaluator: an unresolved reference in Resource could be
    anything (it matches as `*` does); in NotResource it takes nothing out for certain."""
    statement = grant.as_statement()
    if grant.not_resource:
        statement["NotResource"] = [r for r in grant.resources if not UNRESOLVED.search(r)]
    else:
        statement["Resource"] = [UNRESOLVED.sub("*", r) for r in grant.resources]
    return statement


def allowing(role: RoleGrants, action: str, arn: str) -> list[Grant]:
    """The role's statements that allow `action` on `arn`, by the toolkit's IAM evaluation,
    conditions set aside (the caller shows them): those without a condition first."""
    request = Request(action, arn)
    found = [g for g in role.grants if allows([_evaluable(g)], request, known=frozenset())]
    return sorted(found, key=lambda g: g.condition is not None)
