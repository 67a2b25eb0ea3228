"""The bootstrap's CloudFormation service role: its permissions are data, checked against
policy_sentry's IAM database and against the resource types the stacks really use."""

from __future__ import annotations

import json
import re
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
from foundation.iam.evaluate import glob
from foundation.naming import Namespace

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
