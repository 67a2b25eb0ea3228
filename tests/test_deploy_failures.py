"""Failure paths moto cannot produce, with botocore's Stubber fed responses shaped like real
CloudFormation ones: a failed update and its rollback, a stack left in ROLLBACK_COMPLETE, a failed
change set, throttling while waiting, the database migration failing, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from rich.console import Console

from foundation import deploy
from foundation.cloudformation.actions import Aws, StackState
from foundation.cloudformation.plan import ResourceChange, StackPlan
from foundation.cloudformation.target import Assembly, Bootstrap, Target, plan_stack
from foundation.project import load_project
from foundation.views import outcome_table
from tests.conftest import ROOT

NAME = "acme-airflow"
ROLE = "arn:aws:iam::111122223333:role/foundation/acme-airflow-cloudformation"
CORE, WORKERS = f"{NAME}-core", f"{NAME}-workers-07"
STACK_ID = "arn:aws:cloudformation:us-east-1:111122223333:stack/{}/0f5e3a10-0000-0000-0000-0000"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.statuses: list[tuple[str, str]] = []

    def plan(self, plans: list[StackPlan], migration: str | None) -> None:
        pass

    def event(self, stack: str, event) -> None:
        self.events.append((stack, f"{event.logical_id} {event.status}"))

    def status(self, stack: str, text: str) -> None:
        self.statuses.append((stack, text))


def client(service: str):
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


@pytest.fixture
def aws() -> Iterator[tuple[Aws, Stubber, Stubber]]:
    aws = Aws(client("cloudformation"), client("s3"), client("ecs"), client("sts"), 0.0)
    with Stubber(aws.cfn) as cfn, Stubber(aws.ecs) as ecs:
        yield aws, cfn, ecs
        cfn.assert_no_pending_responses()
        ecs.assert_no_pending_responses()


def target(aws: Aws, layers: list[list[str]], live: dict[str, str]) -> Target:
    project = load_project(ROOT)
    states = {n: StackState(n, s, "NOT_CHECKED", None) for n, s in live.items()}
    return Target(
        project,
        Assembly(Path("unused"), layers, {n: b"{}" for layer in layers for n in layer}),
        aws,
        Bootstrap("bucket", ROLE),
        states,
    )


LATER = datetime.now(UTC) + timedelta(days=1)
PREVIOUS = {
    "StackId": STACK_ID.format("any"),
    "EventId": "previous-operation",
    "StackName": "any",
    "Timestamp": datetime(2026, 11, 1, tzinfo=UTC),
}


def event(stack: str, n: int, logical: str, kind: str, status: str, reason: str = "") -> dict:
    raw = {
        "StackId": STACK_ID.format(stack),
        "EventId": f"{stack}-{n}",
        "StackName": stack,
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "Timestamp": LATER + timedelta(seconds=n),
        "ResourceStatus": status,
    }
    return raw | ({"ResourceStatusReason": reason} if reason else {})


def stack(name: str, status: str, outputs: dict[str, str] | None = None) -> dict:
    described = {
        "StackId": STACK_ID.format(name),
        "StackName": name,
        "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
        "StackStatus": status,
    }
    if outputs:
        described["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
    return {"Stacks": [described]}


def missing(cfn: Stubber, operation: str, name: str) -> None:
    cfn.add_client_error(
        operation,
        service_error_code="ValidationError",
        service_message=f"Stack with id {name} does not exist",
        http_status_code=400,
    )


def computed_change_set(cfn: Stubber, change_set_id: str, stack_name: str) -> None:
    """CreateChangeSet, then DescribeChangeSet once CloudFormation has computed it."""
    cfn.add_response(
        "create_change_set", {"Id": change_set_id, "StackId": STACK_ID.format(stack_name)}
    )
    cfn.add_response(
        "describe_change_set",
        {"ChangeSetId": change_set_id, "Status": "CREATE_COMPLETE", "Changes": []},
        {"ChangeSetName": change_set_id},
    )


def newest(cfn: Stubber) -> None:
    """The event a following operation's events come after (read before it starts)."""
    cfn.add_response("describe_stack_events", {"StackEvents": [PREVIOUS]})


def settle(cfn: Stubber, name: str, events: list[dict], final: str) -> None:
    """What waiting on a stack reads: events, status, the events again, then its outputs."""
    cfn.add_response("describe_stack_events", {"StackEvents": list(reversed(events))})
    cfn.add_response("describe_stacks", stack(name, final), {"StackName": name})
    cfn.add_response("describe_stack_events", {"StackEvents": list(reversed(events))})
    cfn.add_response("describe_stacks", stack(name, final), {"StackName": name})


def test_a_failed_update_shows_its_resources_and_reasons_and_skips_later_layers(
    aws, monkeypatch
) -> None:
    aws_, cfn, _ = aws
    core = StackPlan(CORE, "update", {}, {}, change_set_id="cs-core")
    workers = StackPlan(WORKERS, "update", {}, {}, change_set_id="cs-workers")
    newest(cfn)
    cfn.add_response("execute_change_set", {}, {"ChangeSetName": "cs-core"})
    reason = "Resource handler returned message: Invalid request provided: TaskDefinition"
    settle(
        cfn,
        CORE,
        [
            event(CORE, 1, CORE, "AWS::CloudFormation::Stack", "UPDATE_IN_PROGRESS"),
            event(CORE, 2, "SchedulerService", "AWS::ECS::Service", "UPDATE_FAILED", reason),
            event(CORE, 3, CORE, "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_COMPLETE"),
        ],
        "UPDATE_ROLLBACK_COMPLETE",
    )
    cfn.add_response("delete_change_set", {}, {"ChangeSetName": "cs-workers"})
    t = target(aws_, [[CORE], [WORKERS]], {CORE: "UPDATE_COMPLETE", WORKERS: "CREATE_COMPLETE"})
    monkeypatch.setattr(deploy, "plan_all", lambda *args: [core, workers])
    options = deploy.Options(ROOT, yes=True, migrate=False)
    result = deploy._deploy(t, options, Recorder(), None)
    outcomes = {o.stack: o for o in result.outcomes}
    assert not result.ok
    assert outcomes[CORE].result == "failed"
    assert outcomes[CORE].status == "UPDATE_ROLLBACK_COMPLETE"
    (failure,) = outcomes[CORE].failures
    assert (failure.logical_id, failure.reason) == ("SchedulerService", reason)
    assert outcomes[WORKERS].result == "skipped"  # untouched; its change set deleted
    console = Console(record=True, width=200)
    console.print(outcome_table(result.outcomes, "deploy"))
    assert f"SchedulerService (AWS::ECS::Service): {reason}" in console.export_text()


def test_a_stack_left_in_rollback_complete_is_deleted_then_created(aws) -> None:
    aws_, cfn, _ = aws
    plan = StackPlan(WORKERS, "create", {}, None, template_url="https://b.s3/t.json")
    plan.replaces_failed_create = True
    newest(cfn)
    cfn.add_response("delete_stack", {}, {"StackName": WORKERS, "RoleARN": ROLE})
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    missing(cfn, "describe_stacks", WORKERS)
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    missing(cfn, "describe_stacks", WORKERS)
    computed_change_set(cfn, "cs-new", WORKERS)
    newest(cfn)
    cfn.add_response("execute_change_set", {}, {"ChangeSetName": "cs-new"})
    settle(
        cfn,
        WORKERS,
        [event(WORKERS, 1, "Role", "AWS::IAM::Role", "CREATE_COMPLETE")],
        "CREATE_COMPLETE",
    )
    reporter = Recorder()
    t = target(aws_, [[WORKERS]], {WORKERS: "ROLLBACK_COMPLETE"})
    outcome = deploy.StackRunner(t, reporter, threading.Event(), 0).apply(plan, None)
    assert outcome.result == "created", outcome
    assert (WORKERS, "deleting the stack a failed create left behind") in reporter.statuses


def test_a_change_set_that_fails_to_compute_is_reported(aws) -> None:
    aws_, cfn, _ = aws
    plan = StackPlan(WORKERS, "create", {}, None, template_url="https://b.s3/t.json")
    cfn.add_response("create_change_set", {"Id": "cs-bad", "StackId": STACK_ID.format(WORKERS)})
    cfn.add_response(
        "describe_change_set",
        {
            "ChangeSetId": "cs-bad",
            "Status": "FAILED",
            "StatusReason": "Template error: instance of Fn::GetAtt references undefined resource",
        },
        {"ChangeSetName": "cs-bad"},
    )
    cfn.add_response("delete_change_set", {}, {"ChangeSetName": "cs-bad"})  # not left behind
    t = target(aws_, [[WORKERS]], {})
    outcome = deploy.StackRunner(t, Recorder(), threading.Event(), 0).apply(plan, None)
    assert outcome.result == "failed"
    assert "the change set failed: Template error" in outcome.message


def test_throttling_while_waiting_only_delays(aws) -> None:
    aws_, cfn, _ = aws
    plan = StackPlan(WORKERS, "update", {}, {}, change_set_id="cs-1")
    newest(cfn)
    cfn.add_response("execute_change_set", {}, {"ChangeSetName": "cs-1"})
    cfn.add_client_error(
        "describe_stack_events", "Throttling", "Rate exceeded", http_status_code=400
    )
    settle(
        cfn,
        WORKERS,
        [event(WORKERS, 1, WORKERS, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE")],
        "UPDATE_COMPLETE",
    )
    t = target(aws_, [[WORKERS]], {WORKERS: "CREATE_COMPLETE"})
    outcome = deploy.StackRunner(t, Recorder(), threading.Event(), 0).apply(plan, None)
    assert outcome.result == "updated"


MIGRATE_TASK_DEFINITION = (
    "arn:aws:ecs:us-east-1:111122223333:task-definition/acme-airflow--db-migrate:3"
)


def core_resources(status: str) -> dict:
    """list_stack_resources of core: what the migration waits for, all in `status`."""
    return {
        "StackResourceSummaries": [
            {
                "LogicalResourceId": logical,
                "PhysicalResourceId": physical,
                "ResourceType": kind,
                "LastUpdatedTimestamp": LATER,
                "ResourceStatus": status,
            }
            for logical, physical, kind in (
                ("DbMigrateTaskDefinition", MIGRATE_TASK_DEFINITION, "AWS::ECS::TaskDefinition"),
                ("ComponentsSecurityGroup", "sg-0123456789abcdef0", "AWS::EC2::SecurityGroup"),
            )
        ]
    }


def _core_template() -> dict:
    return {
        "Resources": {
            "DbMigrateTaskDefinition": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "Family": f"{NAME}--db-migrate",
                    "ContainerDefinitions": [{"Image": "apache/airflow:3.3.2"}],
                },
            },
            "ComponentsSecurityGroup": {"Type": "AWS::EC2::SecurityGroup"},
            "SchedulerService": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "ServiceName": f"{NAME}-scheduler",
                    "NetworkConfiguration": {
                        "AwsvpcConfiguration": {
                            "SecurityGroups": [
                                {"Fn::GetAtt": ["ComponentsSecurityGroup", "GroupId"]}
                            ],
                            "Subnets": [{"Fn::ImportValue": "net:Subnet1"}, "subnet-0abc1234"],
                        }
                    },
                },
            },
        }
    }


def test_a_failed_migration_fails_the_deploy_with_its_exit_code(aws) -> None:
    aws_, cfn, ecs = aws
    template = _core_template()
    plan = StackPlan(CORE, "create", template, None, template_url="https://b.s3/core.json")
    computed_change_set(cfn, "cs-core", CORE)
    newest(cfn)
    cfn.add_response("execute_change_set", {}, {"ChangeSetName": "cs-core"})
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    task_def = MIGRATE_TASK_DEFINITION
    cfn.add_response("list_stack_resources", core_resources("CREATE_COMPLETE"), {"StackName": CORE})
    cfn.add_response(
        "list_exports", {"Exports": [{"Name": "net:Subnet1", "Value": "subnet-0def5678"}]}
    )
    task = "arn:aws:ecs:us-east-1:111122223333:task/acme-airflow/4c1e"
    ecs.add_response(
        "run_task",
        {"tasks": [{"taskArn": task}], "failures": []},
        {
            "cluster": NAME,
            "taskDefinition": task_def,
            "launchType": "FARGATE",
            "count": 1,
            "startedBy": "foundation-deploy",
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": ["subnet-0def5678", "subnet-0abc1234"],
                    "securityGroups": ["sg-0123456789abcdef0"],
                    "assignPublicIp": "DISABLED",
                }
            },
        },
    )
    cfn.add_response("describe_stacks", stack(CORE, "CREATE_IN_PROGRESS"), {"StackName": CORE})
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    stopped = {
        "tasks": [
            {
                "lastStatus": "STOPPED",
                "stoppedReason": "Essential container in task exited",
                "containers": [{"exitCode": 1}],
            }
        ]
    }
    ecs.add_response("describe_tasks", stopped, {"cluster": NAME, "tasks": [task]})
    cfn.add_response("describe_stacks", stack(CORE, "CREATE_COMPLETE"), {"StackName": CORE})
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    cfn.add_response("describe_stacks", stack(CORE, "CREATE_COMPLETE"), {"StackName": CORE})
    reporter = Recorder()
    workers = StackPlan(WORKERS, "update", {}, {}, change_set_id="cs-workers")
    t = target(aws_, [[CORE], [WORKERS]], {WORKERS: "CREATE_COMPLETE"})
    reason = "first deploy of the cluster"
    result = deploy._apply(t, deploy.Options(ROOT), reporter, [plan, workers], reason)
    outcomes = {o.stack: o for o in result.outcomes}
    assert not result.ok
    assert outcomes[CORE].result == "failed"  # the stack is up, the migration is not
    assert "airflow db migrate FAILED" in outcomes[CORE].message
    assert "Essential container in task exited" in (result.migration or "")
    assert outcomes[WORKERS].result == "skipped"
    assert (CORE, "airflow db migrate: failed (exit 1: Essential container in task exited)") in (
        reporter.statuses
    )


class BusyCloudFormation:
    """Stacks that stay UPDATE_IN_PROGRESS, once executed, for as long as anyone asks."""

    def get_paginator(self, operation: str):
        class Pages:
            def paginate(self, **kwargs):
                return [{"StackEvents": []}]

        return Pages()

    def __init__(self) -> None:
        self.executed: list[str] = []

    def execute_change_set(self, ChangeSetName: str) -> dict:
        self.executed.append(ChangeSetName)
        return {}

    def describe_stack_events(self, StackName: str) -> dict:
        return {"StackEvents": [PREVIOUS]}

    def describe_stacks(self, StackName: str) -> dict:
        executing = any(StackName in c for c in self.executed)
        return stack(StackName, "UPDATE_IN_PROGRESS" if executing else "UPDATE_COMPLETE")


def test_ctrl_c_stops_waiting_and_starts_nothing_more() -> None:
    names = [f"{NAME}-workers-{i:02d}" for i in range(4)]
    plans = [StackPlan(n, "update", {}, {}, change_set_id=f"cs-{n}") for n in names]
    busy = BusyCloudFormation()
    t = target(Aws(busy, None, None, None, 0.05), [names], dict.fromkeys(names, "CREATE_COMPLETE"))
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(deploy.Interrupted) as stopped:
            deploy._apply(t, deploy.Options(ROOT, concurrency=1), Recorder(), plans, None)
    finally:
        timer.cancel()
    assert busy.executed == [f"cs-{names[0]}"]  # the queued stacks never started
    results = {o.stack: (o.result, o.status) for o in stopped.value.outcomes}
    assert results[names[0]] == ("interrupted", "UPDATE_IN_PROGRESS")
    assert {results[n][0] for n in names[1:]} == {"stopped"}
    assert all(p.change_set_id for p in plans[1:])  # left for _deploy to delete


FAMILY = f"{NAME}--worker-housekeeping-3f2a1b"
RUNNING = {"cluster": NAME, "family": FAMILY, "desiredStatus": "RUNNING"}


def removal_of_a_dag_with_a_running_task(ecs: Stubber) -> StackPlan:
    """A worker stack whose only DAG goes, while one of its tasks still runs."""
    task = {"Type": "AWS::ECS::TaskDefinition", "Properties": {"Family": FAMILY}}
    ecs.add_response("list_tasks", {"taskArns": ["arn:aws:ecs:task/acme-airflow/1"]}, RUNNING)
    return StackPlan(WORKERS, "delete", None, {"Resources": {"Task": task}})


def test_a_removed_dags_running_tasks_drain_before_its_stack_changes(aws) -> None:
    aws_, cfn, ecs = aws
    plan = removal_of_a_dag_with_a_running_task(ecs)
    ecs.add_response("list_tasks", {"taskArns": []}, RUNNING)
    newest(cfn)
    cfn.add_response("delete_stack", {}, {"StackName": WORKERS, "RoleARN": ROLE})
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    missing(cfn, "describe_stacks", WORKERS)
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    missing(cfn, "describe_stacks", WORKERS)
    reporter = Recorder()
    t = target(aws_, [], {WORKERS: "UPDATE_COMPLETE"})
    outcome = deploy.StackRunner(t, reporter, threading.Event(), 60).apply(plan, None)
    assert outcome.result == "deleted"
    assert reporter.statuses == [(WORKERS, f"waiting for 1 task(s) of {FAMILY}")]


def test_a_deploy_is_refused_while_cloudformation_works_on_a_stack(monkeypatch) -> None:
    t = target(None, [[CORE]], {CORE: "UPDATE_IN_PROGRESS"})  # type: ignore[arg-type]
    monkeypatch.setattr(deploy, "open_target", lambda *args: t)
    with pytest.raises(deploy.Refused, match=r"acme-airflow-core \(UPDATE_IN_PROGRESS\)"):
        deploy.run(deploy.Options(ROOT), Recorder(), None)  # no AWS call: aws is None


def test_a_dag_whose_tasks_keep_running_is_not_removed(aws) -> None:
    aws_, _, ecs = aws
    plan = removal_of_a_dag_with_a_running_task(ecs)
    t = target(aws_, [], {WORKERS: "UPDATE_COMPLETE"})
    outcome = deploy.StackRunner(t, Recorder(), threading.Event(), 0).apply(plan, None)
    assert outcome.result == "failed"  # and no delete_stack was called (none is stubbed)
    assert f"1 task(s) of {FAMILY} still run; not removed" in outcome.message


def test_a_database_change_migrates_with_the_deployed_task_definition(aws) -> None:
    aws_, cfn, ecs = aws
    template = _core_template()
    core = StackPlan(CORE, "update", template, template)  # its task definition is unchanged
    cfn.add_response("list_stack_resources", core_resources("UPDATE_COMPLETE"), {"StackName": CORE})
    cfn.add_response("list_exports", {"Exports": [{"Name": "net:Subnet1", "Value": "subnet-1"}]})
    task = "arn:aws:ecs:us-east-1:111122223333:task/acme-airflow/9d"
    deployed_revision = {
        "cluster": NAME,
        "taskDefinition": MIGRATE_TASK_DEFINITION,  # the one deployed: no new revision awaited
        "launchType": "FARGATE",
        "count": 1,
        "startedBy": "foundation-deploy",
        "networkConfiguration": ANY,
    }
    ecs.add_response("run_task", {"tasks": [{"taskArn": task}], "failures": []}, deployed_revision)
    done = {"tasks": [{"lastStatus": "STOPPED", "containers": [{"exitCode": 0}]}]}
    ecs.add_response("describe_tasks", done, {"cluster": NAME, "tasks": [task]})
    t = target(aws_, [[CORE]], {CORE: "UPDATE_COMPLETE"})
    reason = "the metadata database changes"
    migrator = deploy.Migrator(t, Recorder(), threading.Event(), reason, deploy.Options(ROOT))
    migrator.prepare(core)
    migrator.finish(True, lambda: None)
    assert migrator.ok and migrator.summary == f"airflow db migrate ran ({reason})"


ROLE_REPLACED = {  # DescribeChangeSet's entry for a role whose path changed
    "Type": "Resource",
    "ResourceChange": {
        "Action": "Modify",
        "LogicalResourceId": "SchedulerTaskRole",
        "ResourceType": "AWS::IAM::Role",
        "Replacement": "True",
        "Details": [
            {
                "Target": {
                    "Attribute": "Properties",
                    "Name": "Path",
                    "RequiresRecreation": "Always",
                },
                "Evaluation": "Static",
                "ChangeSource": "DirectModification",
            }
        ],
    },
}


def test_replacing_a_named_resource_is_refused_before_anything_runs(aws) -> None:
    """CloudFormation would create the new role before deleting the old one, on the same name,
    and fail half-way: the deploy refuses it, executes nothing and deletes its change set."""
    aws_, cfn, _ = aws
    role = {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "acme-airflow--scheduler"}}
    plan = StackPlan(
        CORE,
        "update",
        {"Resources": {"SchedulerTaskRole": role}},
        {"Resources": {"SchedulerTaskRole": role}},
        [ResourceChange.from_aws(ROLE_REPLACED)],
        change_set_id="cs-role",
    )
    cfn.add_response("delete_change_set", {}, {"ChangeSetName": "cs-role"})
    t = target(aws_, [[CORE]], {CORE: "UPDATE_COMPLETE"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deploy, "plan_all", lambda *args: [plan])
        with pytest.raises(deploy.Refused) as refused:
            deploy._deploy(t, deploy.Options(ROOT, yes=True), Recorder(), None)
    assert str(refused.value) == (
        "this deploy would fail half-way; nothing was changed:\n"
        "acme-airflow-core: AWS::IAM::Role SchedulerTaskRole would be replaced (Path changed), "
        "but its RoleName is fixed (acme-airflow--scheduler): CloudFormation cannot create the "
        "replacement while the old one holds the name. Undo that change, or remove the resource "
        "in one deploy and add it back in the next"
    )
    # a replacement the name allows, and a conditional one, are left to the approval rules
    unnamed = {"Resources": {"SchedulerTaskRole": {"Type": "AWS::IAM::Role", "Properties": {}}}}
    assert StackPlan(CORE, "update", unnamed, None, plan.changes).blocked == []
    conditional = ResourceChange("Modify", "SchedulerTaskRole", "AWS::IAM::Role", "Conditional")
    assert StackPlan(CORE, "update", plan.template, None, [conditional]).blocked == []


def test_each_celery_service_is_told_whether_it_exists(aws) -> None:
    """The change set of a worker stack sets each service's ServiceExists parameter from the
    live stack: "true" for a service deployed before, "false" for one this deploy adds."""
    aws_, cfn, _ = aws
    listed = {
        "OldServiceExists": "acme-airflow-dag-old-000000",
        "NewExists": "acme-airflow-dag-new-111111",
    }
    new = {"Metadata": {"foundation:existing-services": listed}, "Resources": {}}
    service = {
        "Type": "AWS::ECS::Service",
        "Properties": {"ServiceName": listed["OldServiceExists"]},
    }
    live = {"Resources": {"Old": service}}
    with Stubber(aws_.s3) as s3:
        s3.add_response("put_object", {})
        cfn.add_response(
            "get_template",
            {"TemplateBody": json.dumps(live)},
            {"StackName": WORKERS, "TemplateStage": "Original"},
        )
        cfn.add_response(
            "create_change_set",
            {"Id": "cs-workers", "StackId": STACK_ID.format(WORKERS)},
            {
                "StackName": WORKERS,
                "ChangeSetName": ANY,
                "ChangeSetType": "UPDATE",
                "TemplateURL": ANY,
                "Capabilities": ANY,
                "RoleARN": ROLE,
                "Parameters": [
                    {"ParameterKey": "NewExists", "ParameterValue": "false"},
                    {"ParameterKey": "OldServiceExists", "ParameterValue": "true"},
                ],
            },
        )
        added = {
            "Type": "Resource",
            "ResourceChange": {
                "Action": "Add",
                "LogicalResourceId": "New",
                "ResourceType": "AWS::ECS::Service",
            },
        }
        cfn.add_response(
            "describe_change_set",
            {"ChangeSetId": "cs-workers", "Status": "CREATE_COMPLETE", "Changes": [added]},
            {"ChangeSetName": "cs-workers"},
        )
        t = target(aws_, [[WORKERS]], {WORKERS: "UPDATE_COMPLETE"})
        t.assembly.bodies[WORKERS] = json.dumps(new).encode()
        plan = plan_stack(t, WORKERS)
    assert plan.action == "update" and plan.change_set_id == "cs-workers"
