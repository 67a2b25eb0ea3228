"""Deciding a deploy, without calling AWS: stack order, which changes need a person's approval
(IAM that broadens, stateful resources replaced or removed), when the database must be migrated
and which DAGs' tasks must drain first.

The actions that call CloudFormation feed these functions what AWS returned.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from foundation.iam.evaluate import listed
from foundation.naming import EXISTING_SERVICES_METADATA, Namespace

# Resources whose replacement or removal loses data.
STATEFUL_TYPES = {
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::DynamoDB::Table",
    "AWS::Logs::LogGroup",
    "AWS::SQS::Queue",  # a Celery queue's messages: workloads not yet run
}
# Where each type keeps policy documents (identity and resource policies alike).
POLICY_DOCUMENTS = {
    "AWS::IAM::Policy": ("PolicyDocument",),
    "AWS::IAM::ManagedPolicy": ("PolicyDocument",),
    "AWS::IAM::Role": ("AssumeRolePolicyDocument",),  # and each of its inline Policies
    "AWS::S3::BucketPolicy": ("PolicyDocument",),
    "AWS::SQS::QueuePolicy": ("PolicyDocument",),
    "AWS::SNS::TopicPolicy": ("PolicyDocument",),
    "AWS::SecretsManager::ResourcePolicy": ("ResourcePolicy",),
    "AWS::KMS::Key": ("KeyPolicy",),
}
# Properties that attach policies to identities: an entry added grants more.
ATTACHMENTS = {
    "AWS::IAM::Role": ("ManagedPolicyArns",),
    "AWS::IAM::Policy": ("Roles", "Users", "Groups"),
    "AWS::IAM::ManagedPolicy": ("Roles", "Users", "Groups"),
}
BOUNDARY = "PermissionsBoundary"


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


@dataclass(frozen=True)
class IamChange:
    """One IAM statement added to or removed from a policy, as `cdk diff` lists them."""

    resource: str  # logical id holding the policy
    added: bool
    statement: str  # the statement, as canonical JSON
    # an added statement that grants some action on some resource, under its condition, that
    # the deployed policy did not (not one that only folds in what was already granted)
    broadens: bool = False


def _grains(statement: str) -> set[str]:
    """A statement as (action, resource, everything else) triples, references kept as JSON."""
    st = json.loads(statement)
    rest = json.dumps(
        {k: v for k, v in st.items() if k not in ("Action", "Resource")}, sort_keys=True
    )
    return {
        json.dumps([action, resource, rest], sort_keys=True)
        for action in listed(st.get("Action", st.get("NotAction")))
        for resource in listed(st.get("Resource", st.get("NotResource")))
    }


def _statements(template: dict[str, Any] | None) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for logical_id, resource in ((template or {}).get("Resources") or {}).items():
        if resource.get("Type") not in POLICY_DOCUMENTS:
            continue
        props = resource.get("Properties", {})
        documents = [props.get(name) for name in POLICY_DOCUMENTS[resource["Type"]]]
        documents += [p.get("PolicyDocument") for p in props.get("Policies", [])]
        for document in filter(None, documents):
            statements = document.get("Statement", [])
            for statement in statements if isinstance(statements, list) else [statements]:
                canonical = {k: v for k, v in statement.items() if k != "Sid"}
                out.add((logical_id, json.dumps(canonical, sort_keys=True)))
    return out


def _attachments(template: dict[str, Any] | None) -> set[tuple[str, str]]:
    """Each policy attachment and permissions boundary, as canonical JSON."""
    out: set[tuple[str, str]] = set()
    for logical_id, resource in ((template or {}).get("Resources") or {}).items():
        props = resource.get("Properties", {})
        for name in ATTACHMENTS.get(resource.get("Type"), ()):
            for value in listed(props.get(name) or []):
                out.add((logical_id, json.dumps({name: value}, sort_keys=True)))
        if resource.get("Type") == "AWS::IAM::Role" and BOUNDARY in props:
            out.add((logical_id, json.dumps({BOUNDARY: props[BOUNDARY]}, sort_keys=True)))
    return out


def iam_changes(deployed: dict[str, Any] | None, new: dict[str, Any]) -> list[IamChange]:
    """Statement-level IAM differences between the deployed template and the new one: a
    statement that allows more, a Deny or permissions boundary removed, a policy attached."""
    before, after = _statements(deployed), _statements(new)
    granted: dict[str, set[str]] = {}
    for resource, statement in before:
        granted.setdefault(resource, set()).update(_grains(statement))
    changes = [
        IamChange(
            r,
            True,
            s,
            broadens=json.loads(s).get("Effect") != "Deny"
            and not _grains(s) <= granted.get(r, set()),
        )
        for r, s in sorted(after - before)
    ]
    # a Deny or boundary goes with its resource when that goes too: that widens nothing
    kept = resources_of(new)
    changes += [
        IamChange(r, False, s, broadens=r in kept and json.loads(s).get("Effect") == "Deny")
        for r, s in sorted(before - after)
    ]
    attached_before, attached_after = _attachments(deployed), _attachments(new)
    changes += [
        IamChange(r, True, a, broadens=BOUNDARY not in json.loads(a))
        for r, a in sorted(attached_after - attached_before)
    ]
    changes += [
        IamChange(r, False, a, broadens=r in kept and BOUNDARY in json.loads(a))
        for r, a in sorted(attached_before - attached_after)
    ]
    return changes


@dataclass(frozen=True)
class ResourceChange:
    """A change set's ResourceChange, as much of it as decides approval."""

    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    resource_type: str
    replacement: str = "False"  # True | False | Conditional
    causes: tuple[str, ...] = ()  # the properties whose change recreates the resource
    changed: tuple[str, ...] = ()  # every property the change set names

    @property
    def first_count_settled(self) -> bool:
        """Only an existing Celery service's first DesiredCount going (plan.service_parameters):
        nothing to deploy on its own."""
        return (
            self.action == "Modify"
            and self.resource_type == "AWS::ECS::Service"
            and self.changed == ("DesiredCount",)
        )

    @classmethod
    def from_aws(cls, change: dict[str, Any]) -> ResourceChange:
        rc = change["ResourceChange"]
        causes = sorted(
            {
                d["Target"]["Name"]
                for d in rc.get("Details", [])
                if d.get("Target", {}).get("RequiresRecreation") in ("Always", "Conditionally")
                and d["Target"].get("Name")
            }
        )
        changed = sorted(
            {d["Target"]["Name"] for d in rc.get("Details", []) if d.get("Target", {}).get("Name")}
        )
        return cls(
            rc["Action"],
            rc["LogicalResourceId"],
            rc["ResourceType"],
            rc.get("Replacement", "False"),
            tuple(causes),
            tuple(changed),
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


# The property that names a resource of each type the stacks name. CloudFormation creates a
# replacement before it deletes the old resource, so a named resource cannot be replaced: the
# update fails half-way, on the name the old one still holds.
NAME_PROPERTIES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::EC2::SecurityGroup": "GroupName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::ECS::Service": "ServiceName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::RDS::DBInstance": "DBInstanceIdentifier",
    "AWS::ServiceDiscovery::PrivateDnsNamespace": "Name",
    "AWS::ServiceDiscovery::Service": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
}


def blocked_replacements(
    changes: list[ResourceChange], template: dict[str, Any] | None
) -> list[str]:
    """Why this change set would fail half-way: each named resource it replaces."""
    resources = (template or {}).get("Resources") or {}
    out = []
    for c in changes:
        name_property = NAME_PROPERTIES.get(c.resource_type)
        props = resources.get(c.logical_id, {}).get("Properties", {})
        if c.action != "Modify" or c.replacement != "True" or name_property not in props:
            continue
        if name_property in c.causes:  # renamed: the replacement takes the new name
            continue
        changed = ", ".join(c.causes) or "a property that requires it"
        out.append(
            f"{c.resource_type} {c.logical_id} would be replaced ({changed} changed), but its "
            f"{name_property} is fixed ({props[name_property]}): CloudFormation cannot create "
            "the replacement while the old one holds the name. Undo that change, or remove the "
            "resource in one deploy and add it back in the next"
        )
    return out


Action = Literal["create", "update", "delete", "none"]


@dataclass
class StackPlan:
    """What a deploy does to one stack, and what it would change."""

    name: str
    action: Action
    template: dict[str, Any] | None  # the new template; None when the stack goes
    deployed: dict[str, Any] | None  # the live template; None when there is none
    changes: list[ResourceChange] = field(default_factory=list)
    change_set_id: str | None = None
    template_url: str | None = None
    replaces_failed_create: bool = False  # a ROLLBACK_COMPLETE stack is deleted first

    @property
    def iam(self) -> list[IamChange]:
        return iam_changes(self.deployed, self.template or {})

    @property
    def approval_reasons(self) -> list[str]:
        return approval_reasons(self.changes, self.iam)

    @property
    def blocked(self) -> list[str]:
        return blocked_replacements(self.changes, self.template)


def service_parameters(
    template: dict[str, Any], deployed: dict[str, Any] | None
) -> list[dict[str, str]]:
    """Whether each service the template lists in its metadata exists in the deployed stack: a
    new one starts its first count, an existing one keeps the count scaling set."""
    listed = (template.get("Metadata") or {}).get(EXISTING_SERVICES_METADATA) or {}
    live = {
        r.get("Properties", {}).get("ServiceName")
        for r in ((deployed or {}).get("Resources") or {}).values()
        if r.get("Type") == "AWS::ECS::Service"
    }
    return [
        {"ParameterKey": parameter, "ParameterValue": "true" if service in live else "false"}
        for parameter, service in sorted(listed.items())
    ]


def resources_of(template: dict[str, Any] | None) -> dict[str, str]:
    return {k: r["Type"] for k, r in ((template or {}).get("Resources") or {}).items()}


def template_changes(
    deployed: dict[str, Any] | None, new: dict[str, Any] | None
) -> list[ResourceChange]:
    """Added and removed resources, for stacks that get no change set (new or deleted ones)."""
    before, after = resources_of(deployed), resources_of(new)
    changes = [ResourceChange("Add", k, t) for k, t in sorted(after.items()) if k not in before]
    changes += [ResourceChange("Remove", k, t) for k, t in sorted(before.items()) if k not in after]
    return changes


def is_worker_stack(name: str, project: str) -> bool:
    """Exactly `<project>-workers-NN`: never a stack of a deployment whose name merely starts
    with this one's (`acme-workers-network` is not acme's)."""
    return re.fullmatch(rf"{re.escape(project)}-workers-\d{{2,3}}", name) is not None


def orphaned_worker_stacks(live: set[str], assembly: set[str], project: str) -> list[str]:
    """Worker stacks deployed before whose every DAG has since been removed."""
    return sorted(n for n in live - assembly if is_worker_stack(n, project))


def _task_families(template: dict[str, Any] | None, project: str) -> set[str]:
    resources = ((template or {}).get("Resources") or {}).values()
    return {
        r["Properties"]["Family"]
        for r in resources
        if r.get("Type") == "AWS::ECS::TaskDefinition"
        and str(r.get("Properties", {}).get("Family", "")).startswith(
            Namespace(project).worker_family_prefix
        )
    }


def removed_worker_families(plan: StackPlan, project: str) -> list[str]:
    """Task families of DAGs this plan removes: their running tasks drain before it executes."""
    return sorted(_task_families(plan.deployed, project) - _task_families(plan.template, project))


def _migration_task(template: dict[str, Any] | None, project: str) -> tuple[str, dict] | None:
    for logical_id, r in ((template or {}).get("Resources") or {}).items():
        props = r.get("Properties", {})
        if r.get("Type") == "AWS::ECS::TaskDefinition" and props.get("Family") == Namespace(
            project
        ).family("db-migrate"):
            return logical_id, props
    return None


def migration_reason(core: StackPlan, data: StackPlan | None, project: str) -> str | None:
    """Why `airflow db migrate` must run in this deploy, or None."""
    new = _migration_task(core.template, project)
    if new is None:
        return None
    old = _migration_task(core.deployed, project)
    if old is None:
        return "first deploy of the cluster"
    images = [[c.get("Image") for c in t[1]["ContainerDefinitions"]] for t in (old, new)]
    if images[0] != images[1]:
        return f"the Airflow image changes ({images[0][0]} -> {images[1][0]})"
    if data and any(
        c.resource_type == "AWS::RDS::DBInstance" and c.action in ("Add", "Modify")
        for c in data.changes
    ):
        return "the metadata database changes"
    return None


@dataclass(frozen=True)
class MigrationTarget:
    """Where the migration task runs, as logical ids and exports to resolve once deployed."""

    task_definition: str  # logical id in core
    security_group: str  # logical id in core
    subnets: list[Any]  # subnet ids, or {"Fn::ImportValue": export} to look up


def migration_target(core_template: dict[str, Any], project: str) -> MigrationTarget:
    """The db-migrate task definition, run like the scheduler: its subnets and security group."""
    found = _migration_task(core_template, project)
    if found is None:
        raise ValueError("the core template has no db-migrate task definition")
    for r in core_template["Resources"].values():
        props = r.get("Properties", {})
        if r.get("Type") == "AWS::ECS::Service" and props.get("ServiceName") == Namespace(
            project
        ).service("scheduler"):
            vpc = props["NetworkConfiguration"]["AwsvpcConfiguration"]
            (group,) = vpc["SecurityGroups"]
            return MigrationTarget(found[0], group["Fn::GetAtt"][0], list(vpc["Subnets"]))
    raise ValueError("the core template has no scheduler service")
