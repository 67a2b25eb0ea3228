"""The bootstrap's CloudFormation service role: its permissions are data, checked against
policy_sentry's IAM database and against the resource types the stacks really use."""

from __future__ import annotations

import fnmatch
import json
from functools import cache
from pathlib import Path

import cfnlint
import pytest
from policy_sentry.querying.actions import get_action_data

from foundation.iam.catalog import lookup
from foundation.iam.deployer import (
    MANAGED_POLICY_MAX_CHARS,
    MAX_POLICIES,
    WORST_CASE,
    deployer,
    policies,
    statements,
    values,
)
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


@pytest.mark.parametrize("group", sorted(g for g in GROUPS if GROUPS[g].condition))
def test_condition_keys_apply_to_every_action(group: str) -> None:
    """A condition key an action does not support would make its statement never match."""
    spec = GROUPS[group]
    keys = {k for operator in spec.condition.values() for k in operator}  # type: ignore[union-attr]
    for action in spec.actions:
        service, name = action.split(":")
        supported = {
            key
            for entry in get_action_data(service, name)[service]
            for key in entry["condition_keys"]
        }
        assert keys <= supported, f"{group}: {action} does not support {keys - supported}"


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
            matching = [p for p in patterns if fnmatch.fnmatchcase(action, p)]
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
                "arn:aws:iam::111122223333:role/acme-airflow/*",
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
