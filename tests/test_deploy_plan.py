"""Deciding a deploy from the synthesized example, with no AWS call."""

from __future__ import annotations

import json

from foundation.cloudformation.plan import (
    ResourceChange,
    StackPlan,
    approval_reasons,
    iam_changes,
    migration_reason,
    migration_target,
    stack_layers,
)
from tests.conftest import ProjectDir

NAME = "acme-airflow"


def test_stacks_deploy_in_layers_with_worker_stacks_together(example_synth) -> None:
    manifest = json.loads((example_synth.out / "manifest.json").read_text())
    layers = stack_layers(manifest)
    assert layers[:3] == [[f"{NAME}-network"], [f"{NAME}-data"], [f"{NAME}-core"]]
    assert layers[3] == sorted(s.name for s in example_synth.stacks if "-workers-" in s.name)
    assert len(layers) == 4


def test_a_manifest_change_touches_only_that_dags_stack_and_broadens_iam(
    project: ProjectDir, templates: dict
) -> None:
    manifest = project.root / "dag_permissions" / "housekeeping.yaml"
    manifest.write_text(
        manifest.read_text()
        + "permissions:\n  s3: [{bucket: acme-raw, prefix: housekeeping/, access: read}]\n"
    )
    assert project.run("synth").exit_code == 0
    out = project.root / "cdk.out"
    changed = [
        name
        for name, template in templates.items()
        if json.loads((out / f"{name}.template.json").read_text()) != template
    ]
    assert len(changed) == 1 and "-workers-" in changed[0]
    (name,) = changed
    new = json.loads((out / f"{name}.template.json").read_text())
    changes = iam_changes(templates[name], new)
    added = [c for c in changes if c.broadens]
    assert any("arn:aws:s3:::acme-raw/housekeeping/*" in c.statement for c in added)
    # a statement the new grant folds into (same actions) shows as replaced, never lost
    removed = [json.loads(c.statement) for c in changes if not c.broadens]
    kept = [json.loads(c.statement) for c in added]
    for old in removed:
        assert any(
            old["Action"] == new["Action"] and set(_listed(old["Resource"])) < set(new["Resource"])
            for new in kept
        ), old
    assert approval_reasons([], changes)
    # the way back narrows: no approval needed, though a folded statement is rewritten
    narrowing = iam_changes(new, templates[name])
    assert any(c.added for c in narrowing) and not any(c.broadens for c in narrowing)
    assert approval_reasons([], narrowing) == []


def _listed(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_stateful_replacements_and_removals_need_approval() -> None:
    def change(action: str, kind: str, replacement: str = "False") -> ResourceChange:
        aws = {
            "ResourceChange": {
                "Action": action,
                "LogicalResourceId": "X",
                "ResourceType": kind,
                "Replacement": replacement,
            }
        }
        return ResourceChange.from_aws(aws)

    assert approval_reasons([change("Modify", "AWS::RDS::DBInstance", "True")], []) == [
        "Modify AWS::RDS::DBInstance X (replacement)"
    ]
    assert approval_reasons([change("Remove", "AWS::S3::Bucket")], []) == [
        "Remove AWS::S3::Bucket X"
    ]
    harmless = [
        change("Modify", "AWS::RDS::DBInstance", "False"),
        change("Remove", "AWS::EC2::SecurityGroup"),
        change("Add", "AWS::S3::Bucket"),
    ]
    assert approval_reasons(harmless, []) == []


def test_the_migration_runs_on_first_deploy_and_when_the_image_changes(
    project: ProjectDir, templates: dict
) -> None:
    core = templates[f"{NAME}-core"]
    first = StackPlan(f"{NAME}-core", "create", core, None)
    assert migration_reason(first, None, NAME) == "first deploy of the cluster"
    same = StackPlan(f"{NAME}-core", "update", core, core)
    assert migration_reason(same, None, NAME) is None
    config = project.root / "config" / "foundation.yaml"
    config.write_text(config.read_text().replace("apache/airflow:3.3.2", "apache/airflow:3.3.3"))
    assert project.run("synth").exit_code == 0
    upgraded = json.loads((project.root / "cdk.out" / f"{NAME}-core.template.json").read_text())
    upgrade = StackPlan(f"{NAME}-core", "update", upgraded, core)
    assert migration_reason(upgrade, None, NAME) == (
        "the Airflow image changes (apache/airflow:3.3.2 -> apache/airflow:3.3.3)"
    )
    database = StackPlan(
        f"{NAME}-data", "update", {}, {}, [ResourceChange("Modify", "Db", "AWS::RDS::DBInstance")]
    )
    assert migration_reason(same, database, NAME) == "the metadata database changes"


def test_the_migration_task_runs_where_the_scheduler_runs(templates: dict) -> None:
    core = templates[f"{NAME}-core"]
    target = migration_target(core, NAME)
    task = core["Resources"][target.task_definition]
    assert task["Properties"]["Family"] == f"{NAME}--db-migrate"
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert "check-migrations" not in container["Command"][-1]
    assert container["Command"][-1].endswith("exec airflow db migrate")
    assert core["Resources"][target.security_group]["Type"] == "AWS::EC2::SecurityGroup"
    assert len(target.subnets) == 2 and all("Fn::ImportValue" in s for s in target.subnets)
    services = [r for r in core["Resources"].values() if r["Type"] == "AWS::ECS::Service"]
    for service in services:  # every component waits for the migration before it starts
        task_def = core["Resources"][service["Properties"]["TaskDefinition"]["Ref"]]
        (container,) = task_def["Properties"]["ContainerDefinitions"]
        wait = "--wait-for-migrations 3600"  # test_sealed.py: the first airflow command's
        assert container["Command"][-1].count(wait) == 1


def test_a_migration_as_long_as_the_deploy_waits_is_never_a_failed_rollout(
    templates: dict,
) -> None:
    """The deploy waits up to an hour for `airflow db migrate`; each component waits as long
    before it starts; the api-server's load-balancer health checks start counting only after
    that wait and five minutes to start, so the circuit breaker never rolls an upgrade back
    for its own migration."""
    from foundation.deploy import MIGRATION_TIMEOUT_SECONDS

    assert MIGRATION_TIMEOUT_SECONDS == 3600
    core = templates[f"{NAME}-core"]
    graces = {
        r["Properties"]["ServiceName"]: r["Properties"].get("HealthCheckGracePeriodSeconds")
        for r in core["Resources"].values()
        if r["Type"] == "AWS::ECS::Service"
    }
    assert graces == {
        f"{NAME}-api-server": 3600 + 300,
        f"{NAME}-scheduler": None,  # no health check to fail
        f"{NAME}-dag-processor": None,
        f"{NAME}-triggerer": None,
    }


def test_attachments_boundaries_denies_and_resource_policies_broaden() -> None:
    """What widens access besides an Allow statement: a managed policy attached to a role or a
    role added to a policy, a permissions boundary or a Deny removed, a resource policy's new
    principal. Adding a boundary or removing an attachment narrows."""
    boundary = "arn:aws:iam::111122223333:policy/boundary"
    deny = {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}
    bucket_policy = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/reader"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::b/*",
    }

    def template(role: dict, policy_roles: list, denies: list, principals: list) -> dict:
        statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/x"}
        return {
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": role},
                "Policy": {
                    "Type": "AWS::IAM::Policy",
                    "Properties": {
                        "Roles": policy_roles,
                        "PolicyDocument": {"Statement": [statement, *denies]},
                    },
                },
                "BucketPolicy": {
                    "Type": "AWS::S3::BucketPolicy",
                    "Properties": {
                        "PolicyDocument": {
                            "Statement": [
                                bucket_policy | {"Principal": {"AWS": p}} for p in principals
                            ]
                        }
                    },
                },
            }
        }

    reader = "arn:aws:iam::111122223333:role/reader"
    before = template({"PermissionsBoundary": boundary}, [{"Ref": "Role"}], [deny], [reader])
    wider = template(
        {"ManagedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]},
        [{"Ref": "Role"}, {"Ref": "Other"}],
        [],
        [reader, "arn:aws:iam::999999999999:root"],
    )
    broadening = sorted((c.resource, c.statement) for c in iam_changes(before, wider) if c.broadens)
    assert broadening == [
        (
            "BucketPolicy",
            json.dumps(
                bucket_policy | {"Principal": {"AWS": "arn:aws:iam::999999999999:root"}},
                sort_keys=True,
            ),
        ),
        ("Policy", json.dumps(deny, sort_keys=True)),
        ("Policy", json.dumps({"Roles": {"Ref": "Other"}}, sort_keys=True)),
        ("Role", json.dumps({"ManagedPolicyArns": "arn:aws:iam::aws:policy/AdministratorAccess"})),
        ("Role", json.dumps({"PermissionsBoundary": boundary})),
    ]
    assert not [c for c in iam_changes(wider, before) if c.broadens]
    # a role and its policy removed with their boundary and Deny (a DAG removed) widen nothing
    assert not [c for c in iam_changes(before, {"Resources": {}}) if c.broadens]
