"""Celery mode, synthesized once: the shipped example with `executor: celery` (an ECR image that
carries pycurl) and unmanaged DAGs on the baseline identity. Snapshots, then per-component
checks: each DAG's queue, worker service and scaling, and who may send to or consume which
queue under real IAM semantics."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from typing import Any

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from foundation.airflow import runtime_files
from foundation.airflow.settings import (
    CELERY_EXECUTOR,
    CELERY_VISIBILITY_SECONDS,
    celery_worker_command,
)
from foundation.checks.rules.fa105_execution_role_reads import ExecutionRoleReads
from foundation.cloudformation.plan import ResourceChange, service_parameters
from foundation.iam.effective import roles_of
from foundation.iam.evaluate import Request, allows, decide
from foundation.naming import EXISTING_SERVICES_METADATA, DagNames
from foundation.project import load_project, stack_loads
from foundation.synth import run as synth
from tests.conftest import ROOT, ProjectDir, identity_resources, mutated

IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/airflow-celery:3.3.2"
ACCOUNT, REGION = "111122223333", "us-east-1"


def celery_project(root) -> ProjectDir:
    for folder in ("config", "dag_permissions"):
        shutil.copytree(ROOT / folder, root / folder)
    config = root / "config" / "foundation.yaml"
    text = config.read_text().replace("executor: ecs", "executor: celery")
    text = text.replace("image: apache/airflow:3.3.2", f"image: {IMAGE}")
    config.write_text(text.replace("unmanaged_dags: refuse", "unmanaged_dags: baseline"))
    return ProjectDir(root)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    project = celery_project(tmp_path_factory.mktemp("celery"))
    result = synth(project.root, None, None)
    # every check passes (cfn-lint, cdk-nag, the FA rules): errors would keep it unwritten
    assert result.written and not result.errors, [str(f) for f in result.errors]
    manifest = json.loads((result.out / "manifest.json").read_text())
    templates = {
        name: json.loads((result.out / a["properties"]["templateFile"]).read_text())
        for name, a in manifest["artifacts"].items()
        if a["type"] == "aws:cloudformation:stack"
    }
    return load_project(project.root), templates


@pytest.fixture(scope="module")
def templates(built) -> dict[str, dict]:
    return built[1]


@pytest.fixture(scope="module")
def deployment(built):
    return built[0].deployment


def of_type(templates: dict[str, dict], kind: str) -> dict[str, tuple[str, dict]]:
    return {
        logical_id: (stack, r)
        for stack, t in templates.items()
        for logical_id, r in t["Resources"].items()
        if r["Type"] == kind
    }


def env_of(task_definition: dict) -> dict[str, Any]:
    [container] = task_definition["Properties"]["ContainerDefinitions"]
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def worker_of(templates: dict[str, dict], names: DagNames) -> tuple[str, dict, dict]:
    """(stack, service, task definition) of a DAG's worker service."""
    for stack, service in of_type(templates, "AWS::ECS::Service").values():
        if service["Properties"].get("ServiceName") == names.service:
            task_def_id = service["Properties"]["TaskDefinition"]["Ref"]
            return stack, service, templates[stack]["Resources"][task_def_id]
    raise AssertionError(f"no worker service {names.service}")


@pytest.mark.parametrize("stack", ["core", "workers-12"])
def test_template_snapshot(templates: dict, stack: str, snapshot) -> None:
    assert templates[f"acme-airflow-{stack}"] == snapshot(extension_class=JSONSnapshotExtension)


def test_each_dag_has_an_encrypted_tls_only_queue_of_its_own(built) -> None:
    project, templates = built
    queues = {
        r["Properties"]["QueueName"]: (stack, lid, r)
        for lid, (stack, r) in of_type(templates, "AWS::SQS::Queue").items()
    }
    expected = {project.deployment.dag_names(d.dag_id).queue for d in project.dags}
    expected.add("acme-airflow--dag-unmanaged")
    assert set(queues) == expected
    policies = of_type(templates, "AWS::SQS::QueuePolicy")
    for stack, logical_id, queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        assert queue["Properties"]["VisibilityTimeout"] == CELERY_VISIBILITY_SECONDS
        # No queue may redrive its dead letters into a DAG's queue: SQS would move them in
        # without a SendMessage the queue policy's denies could refuse.
        assert queue["Properties"]["RedriveAllowPolicy"] == {"redrivePermission": "denyAll"}
        (policy,) = [
            p
            for s, p in policies.values()
            if s == stack and p["Properties"]["Queues"] == [{"Ref": logical_id}]
        ]
        role = queue["Properties"]["QueueName"].removeprefix("acme-airflow--")
        assert policy["Properties"]["PolicyDocument"] == queue_policy(logical_id, role)


def queue_policy(queue_id: str, role: str) -> dict:
    """The policy of the queue `acme-airflow--<role>`, consumed by the role of that name."""
    queue = queue_arn(f"acme-airflow--{role}")
    consumer = f"arn:aws:iam::{ACCOUNT}:role/acme-airflow/dags/acme-airflow--{role}"
    scheduler = f"arn:aws:iam::{ACCOUNT}:role/acme-airflow--scheduler"
    anyone = {"Effect": "Deny", "Principal": {"AWS": "*"}}
    return {
        "Statement": [
            anyone
            | {
                "Action": "sqs:*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
            },
            anyone
            | {
                "Action": "sqs:SendMessage",
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [scheduler]}},
                "Resource": queue,
                "Sid": "OnlyTheSchedulerSends",
            },
            anyone
            | {
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                ],
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [consumer]}},
                "Resource": queue,
                "Sid": "OnlyTheDagsWorkersConsume",
            },
        ],
        "Version": "2012-10-17",
    }


def test_sales_dailys_queue_policy_is_exactly_this(templates: dict) -> None:
    [policy] = [
        r["Properties"]["PolicyDocument"]
        for r in templates["acme-airflow-workers-12"]["Resources"].values()
        if r["Type"] == "AWS::SQS::QueuePolicy"
        and r["Properties"]["Queues"] == [{"Ref": "DagsalesdailyQueue7A81C2D0"}]
    ]
    queue = "arn:aws:sqs:us-east-1:111122223333:acme-airflow--dag-sales-daily-c2237c"
    assert policy["Statement"][1:] == [
        {
            "Action": "sqs:SendMessage",
            "Condition": {
                "ArnNotEquals": {
                    "aws:PrincipalArn": ["arn:aws:iam::111122223333:role/acme-airflow--scheduler"]
                }
            },
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": queue,
            "Sid": "OnlyTheSchedulerSends",
        },
        {
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
            "Condition": {
                "ArnNotEquals": {
                    "aws:PrincipalArn": [
                        "arn:aws:iam::111122223333:role/acme-airflow/dags/"
                        "acme-airflow--dag-sales-daily-c2237c"
                    ]
                }
            },
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": queue,
            "Sid": "OnlyTheDagsWorkersConsume",
        },
    ]


def test_each_worker_service_consumes_only_its_queue_under_its_dags_role(built) -> None:
    project, templates = built
    for dag in project.dags:
        names = project.deployment.dag_names(dag.dag_id)
        stack, service, task_def = worker_of(templates, names)
        resources = templates[stack]["Resources"]
        role = resources[task_def["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]]
        assert role["Properties"]["RoleName"] == names.role
        [container] = task_def["Properties"]["ContainerDefinitions"]
        command = container["Command"][-1]
        assert f"airflow celery worker --queues {names.queue} " in command
        env = env_of(task_def)
        queue_id = next(
            lid
            for lid, r in resources.items()
            if r["Type"] == "AWS::SQS::Queue" and r["Properties"]["QueueName"] == names.queue
        )
        predefined = env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__PREDEFINED_QUEUES"]
        assert json.dumps(predefined).count('"Ref"') == 1, "exactly one queue: its own"
        assert {"Ref": queue_id} in predefined["Fn::Join"][1]
        # the provider's executor for `airflow celery worker`; no metadata credentials
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        secrets = {s["Name"] for s in container.get("Secrets", [])}
        assert not secrets & {"FOUNDATION_DB_SECRET", "AIRFLOW__API_AUTH__JWT_SECRET"}
        assert service["Properties"]["PropagateTags"] == "SERVICE"
        assert {"Key": "foundation:queue", "Value": names.queue} in service["Properties"]["Tags"]


def test_each_service_scales_from_min_to_max_on_its_backlog(built) -> None:
    project, templates = built
    targets = of_type(templates, "AWS::ApplicationAutoScaling::ScalableTarget")
    for dag in project.dags:
        size = dag.manifest.worker or project.deployment.worker_defaults
        names = project.deployment.dag_names(dag.dag_id)
        stack, service, _ = worker_of(templates, names)
        service_id = next(lid for lid, r in templates[stack]["Resources"].items() if r is service)
        (target,) = [
            t
            for s, t in targets.values()
            if s == stack and service_id in json.dumps(t["Properties"]["ResourceId"])
        ]
        assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
            size.min_count,
            size.max_count,
        )
        # a new service starts min_count tasks; once it exists, the scalable target owns the
        # count and no deploy resets it (the deploy says which: service_parameters)
        template = templates[stack]
        [parameter] = [
            p
            for p, name in template["Metadata"][EXISTING_SERVICES_METADATA].items()
            if name == names.service
        ]
        assert template["Parameters"][parameter] == {
            "Type": "String",
            "Default": "true",  # the CDK CLI, which does not set it, never resets the count
            "AllowedValues": ["true", "false"],
            "Description": (
                f"true once the service {names.service} exists (set by foundation deploy)"
            ),
        }
        condition, count, otherwise = service["Properties"]["DesiredCount"]["Fn::If"]
        assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": parameter}, "false"]}
        assert (count, otherwise) == (size.min_count, {"Ref": "AWS::NoValue"})
        listed = template["Metadata"][EXISTING_SERVICES_METADATA]
        assert service_parameters(template, None) == [
            {"ParameterKey": p, "ParameterValue": "false"} for p in sorted(listed)
        ]
        assert service_parameters(template, template) == [
            {"ParameterKey": p, "ParameterValue": "true"} for p in sorted(listed)
        ]
    alarms = [a for _, a in of_type(templates, "AWS::CloudWatch::Alarm").values()]
    for alarm in alarms:
        [expression] = [m for m in alarm["Properties"]["Metrics"] if "Expression" in m]
        assert expression["Expression"] == "waiting + running"
        metrics = {
            m["MetricStat"]["Metric"]["MetricName"]
            for m in alarm["Properties"]["Metrics"]
            if "MetricStat" in m
        }
        assert metrics == {
            "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible",
        }


def test_an_existing_services_first_count_going_is_no_change_of_its_own() -> None:
    """The deploy after a service's first: its parameter flips to "true", DesiredCount goes
    from the template; CloudFormation reports a Modify of DesiredCount alone."""
    entry = {
        "Type": "Resource",
        "ResourceChange": {
            "Action": "Modify",
            "LogicalResourceId": "DagsalesdailyWorkersServiceD3782C2B",
            "ResourceType": "AWS::ECS::Service",
            "Replacement": "False",
            "Details": [
                {
                    "Target": {
                        "Attribute": "Properties",
                        "Name": "DesiredCount",
                        "RequiresRecreation": "Never",
                    },
                    "Evaluation": "Static",
                    "ChangeSource": "ParameterReference",
                }
            ],
        },
    }
    assert ResourceChange.from_aws(entry).first_count_settled
    entry["ResourceChange"]["Details"].append(
        {"Target": {"Attribute": "Properties", "Name": "TaskDefinition"}}
    )
    assert not ResourceChange.from_aws(entry).first_count_settled


def test_idle_is_min_count_and_a_full_backlog_is_max_count() -> None:
    from foundation.config import WorkerSize
    from stacks.constructs.dag_worker import backlog_steps

    steps = backlog_steps(WorkerSize(min_count=0, max_count=4, concurrency=2))
    bounds = [(s.lower, s.upper, s.change) for s in steps]
    assert bounds == [(None, 0.5, 0), (0.5, 2.5, 1), (2.5, 4.5, 2), (4.5, None, 4)]
    single = backlog_steps(WorkerSize(min_count=1, max_count=1, concurrency=8))
    assert [(s.lower, s.upper, s.change) for s in single] == [(None, 0.5, 1), (0.5, None, 1)]


def capacity(template: dict, target_id: str, backlog: int) -> list[int]:
    """What Application Auto Scaling sets for this backlog: every alarm of the target that is in
    ALARM, with its step chosen as AWS documents (above the threshold a step's lower bound is
    inclusive, below it its upper bound is)."""
    resources = template["Resources"]
    out = []
    for alarm in resources.values():
        if alarm["Type"] != "AWS::CloudWatch::Alarm":
            continue
        [policy_ref] = alarm["Properties"]["AlarmActions"]
        policy = resources[policy_ref["Ref"]]["Properties"]
        if policy["ScalingTargetId"] != {"Ref": target_id}:
            continue
        threshold, above = (
            alarm["Properties"]["Threshold"],
            alarm["Properties"]["ComparisonOperator"].startswith("Greater"),
        )
        if (backlog >= threshold) if above else (backlog <= threshold):
            delta = backlog - threshold
            for step in policy["StepScalingPolicyConfiguration"]["StepAdjustments"]:
                low = step.get("MetricIntervalLowerBound", float("-inf"))
                high = step.get("MetricIntervalUpperBound", float("inf"))
                if (low <= delta < high) if above else (low < delta <= high):
                    out.append(step["ScalingAdjustment"])
    return out


def test_each_backlog_sets_exactly_one_worker_count(built) -> None:
    project, templates = built
    for dag in project.dags:
        size = dag.manifest.worker or project.deployment.worker_defaults
        stack, _, _ = worker_of(templates, project.deployment.dag_names(dag.dag_id))
        template = templates[stack]
        [target_id] = [
            lid
            for lid, r in template["Resources"].items()
            if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
            and dag.dag_id in json.dumps(r["Properties"]["Tags"])
        ]
        counts = []
        for backlog in range(0, 4 * size.max_count * size.concurrency):
            [count] = capacity(template, target_id, backlog)  # one alarm, one step: no flapping
            counts.append(count)
        assert counts[0] == size.min_count, dag.dag_id
        assert counts[1] >= 1, f"{dag.dag_id}: a lone task gets a worker"
        assert counts == sorted(counts) and counts[-1] == size.max_count
        for backlog, count in enumerate(counts[1:], start=1):
            # enough workers for the backlog, up to max_count
            wanted = min(backlog, size.max_count * size.concurrency)
            assert count * size.concurrency >= wanted, (dag.dag_id, backlog, count)


def roles(templates: dict, deployment) -> dict[str, list[dict]]:
    pseudo = {
        "AWS::Partition": "aws",
        "AWS::Region": deployment.region,
        "AWS::AccountId": deployment.account,
    }
    return {
        r.name: [
            {"Effect": "Allow", "Action": list(g.actions), "Resource": list(g.resources)}
            | ({"Condition": g.condition} if g.condition else {})
            for g in r.grants
        ]
        for r in roles_of(templates, {}, pseudo)
    }


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def test_a_dag_may_consume_its_own_queue_and_no_other(built) -> None:
    project, templates = built
    by_role = roles(templates, project.deployment)
    dags = [project.deployment.dag_names(d.dag_id) for d in project.dags]
    for names in dags:
        statements = by_role[names.role]
        for other in dags:
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage"):
                allowed = allows(statements, Request(action, queue_arn(other.queue)))
                assert allowed == (other == names and action != "sqs:SendMessage"), (
                    names.role,
                    action,
                    other.queue,
                )


def test_the_scheduler_sends_to_every_dag_queue_and_launches_nothing(built) -> None:
    project, templates = built
    by_role = roles(templates, project.deployment)
    scheduler = by_role["acme-airflow--scheduler"]
    for dag in project.dags:
        queue = queue_arn(project.deployment.dag_names(dag.dag_id).queue)
        assert allows(scheduler, Request("sqs:SendMessage", queue))
        assert not allows(scheduler, Request("sqs:ReceiveMessage", queue))
    assert not allows(scheduler, Request("sqs:SendMessage", queue_arn("acme-airflow-other")))
    for statements in by_role.values():
        assert not any(
            allows(statements, Request("ecs:RunTask", arn))
            for arn in (f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/acme-airflow--worker-x:1",)
        )
    env = next(
        env_of(t)
        for _, t in of_type(templates, "AWS::ECS::TaskDefinition").values()
        if t["Properties"]["Family"] == "acme-airflow--scheduler"
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == CELERY_EXECUTOR
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "sqs://"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith(
        f"dynamodb://@{REGION}/acme-airflow-celery-results?"
    )
    assert "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__PREDEFINED_QUEUES" not in env


def deployed_queue_policy(templates: dict, queue: str) -> list[dict]:
    """The statements of a queue's policy, its own ARN in place of CloudFormation's GetAtt."""
    for t in templates.values():
        resources = t["Resources"]
        for r in resources.values():
            if r["Type"] != "AWS::SQS::QueuePolicy":
                continue
            [ref] = r["Properties"]["Queues"]
            if resources[ref["Ref"]]["Properties"]["QueueName"] == queue:
                return [
                    st | {"Resource": queue_arn(queue)} if "Fn::GetAtt" in st["Resource"] else st
                    for st in r["Properties"]["PolicyDocument"]["Statement"]
                ]
    raise AssertionError(f"no policy on {queue}")


def by(role_arn: str, tls: str = "true") -> dict[str, str]:
    return {"aws:PrincipalArn": role_arn, "aws:SecureTransport": tls}


CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")


def test_only_the_scheduler_sends_to_a_dags_queue_and_only_the_dag_consumes_it(built) -> None:
    """An attacker in the account with broad SQS grants, and the cluster's own roles, against
    one DAG's deployed queue policy. moto evaluates no resource policy: this is the toolkit's
    own evaluation (evaluate.decide) of the synthesized policies, with the condition keys
    aws:PrincipalArn and aws:SecureTransport of each request."""
    project, templates = built
    by_role = roles(templates, project.deployment)
    own, other = (project.deployment.dag_names(d) for d in ("sales_daily", "housekeeping"))
    policy = deployed_queue_policy(templates, own.queue)
    queue = queue_arn(own.queue)
    role = f"arn:aws:iam::{ACCOUNT}:role"
    scheduler, foreign = f"{role}/acme-airflow--scheduler", f"{role}/ops-automation"
    own_role, other_role = (f"{role}/acme-airflow/dags/{n.role}" for n in (own, other))
    send = [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]
    broad = [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]

    def may(identity: list[dict], action: str, caller: str, tls: str = "true") -> bool:
        return decide(identity, policy, Request(action, queue, by(caller, tls)))

    # a principal of the account whose own policy allows sqs:SendMessage on "*"
    assert not may(send, "sqs:SendMessage", foreign)
    assert not may(broad, "sqs:SendMessage", foreign)
    # another DAG's role, even if its policy allowed it everything on SQS
    for action in ("sqs:SendMessage", *CONSUME):
        assert not may(by_role[other.role] + broad, action, other_role), action
    # the scheduler sends (kombu reads the attributes first), with its own grants only
    assert may(by_role["acme-airflow--scheduler"], "sqs:SendMessage", scheduler)
    assert may(by_role["acme-airflow--scheduler"], "sqs:GetQueueAttributes", scheduler)
    assert not may(by_role["acme-airflow--scheduler"] + broad, "sqs:ReceiveMessage", scheduler)
    # the DAG's own role consumes, and sends nothing even if its policy allowed it
    for action in (*CONSUME, "sqs:GetQueueAttributes"):
        assert may(by_role[own.role], action, own_role), action
    assert not may(by_role[own.role] + broad, "sqs:SendMessage", own_role)
    # the account's admins and CloudFormation still manage the queue
    for action in ("sqs:SetQueueAttributes", "sqs:GetQueueAttributes", "sqs:PurgeQueue"):
        assert may(broad, action, foreign), action
    # and nobody, the scheduler included, without TLS
    assert not may(by_role["acme-airflow--scheduler"], "sqs:SendMessage", scheduler, "false")


def test_scale_in_protection_reaches_only_the_dags_own_tasks(built) -> None:
    project, templates = built
    by_role = roles(templates, project.deployment)
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/acme-airflow/0123456789abcdef"
    cluster = {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/acme-airflow"}
    a, b = (project.deployment.dag_names(d.dag_id) for d in project.dags[:2])
    own = cluster | {"aws:ResourceTag/foundation:queue": a.queue}
    other = cluster | {"aws:ResourceTag/foundation:queue": b.queue}
    assert allows(by_role[a.role], Request("ecs:UpdateTaskProtection", task, own))
    assert not allows(by_role[a.role], Request("ecs:UpdateTaskProtection", task, other))


def test_results_table_is_written_by_workers_and_read_by_the_scheduler(built) -> None:
    project, templates = built
    ((_, table),) = of_type(templates, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["TableName"] == "acme-airflow-celery-results"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/acme-airflow-celery-results"
    by_role = roles(templates, project.deployment)
    assert allows(by_role["acme-airflow--scheduler"], Request("dynamodb:GetItem", arn))
    assert not allows(by_role["acme-airflow--scheduler"], Request("dynamodb:PutItem", arn))
    worker = by_role[project.deployment.dag_names(project.dags[0].dag_id).role]
    assert allows(worker, Request("dynamodb:PutItem", arn))
    # no component but the api-server, scheduler, dag-processor, triggerer and db-migrate
    # reads the database secret: every one of them is a cluster component
    for _, t in of_type(templates, "AWS::ECS::TaskDefinition").values():
        secrets = {
            s["Name"] for c in t["Properties"]["ContainerDefinitions"] for s in c.get("Secrets", [])
        }
        if "FOUNDATION_DB_SECRET" in secrets:
            assert not t["Properties"]["Family"].startswith("acme-airflow--worker-")


def test_every_worker_service_gets_its_runtime_from_its_stacks_parameters(built) -> None:
    """The Celery settings every DAG's worker unpacks are in each stack once, as SSM parameters
    (4 KB each) under the stack's own folder, which only the workers' execution role reads: not
    inlined in each task definition, and never read across stacks (a stack's update or
    rollback cannot leave a task definition naming a parameter another stack deleted)."""
    project, templates = built
    value = runtime_files.archive(runtime_files.FOR_CELERY_WORKERS)
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    folders = {"acme-airflow-core": "/acme-airflow/cluster"} | {
        f"acme-airflow-workers-{shard}": f"/acme-airflow/cluster/workers/{shard}"
        for shard in ("07", "12", "19", "24", "25")
    }
    workers = [project.deployment.dag_names(d.dag_id) for d in project.dags]
    workers.append(project.deployment.namespace.unmanaged)
    by_role = roles(templates, project.deployment)
    read = []
    for names_of in workers:
        stack, _, task_def = worker_of(templates, names_of)
        names = [f"{folders[stack]}/foundation-runtime/{digest}/{i}" for i in (0, 1)]
        made = {
            r["Properties"]["Name"]: (logical_id, r["Properties"]["Value"])
            for logical_id, r in templates[stack]["Resources"].items()
            if r["Type"] == "AWS::SSM::Parameter" and r["Properties"]["Name"] in names
        }
        assert "".join(made[name][1] for name in names) == value
        [container] = task_def["Properties"]["ContainerDefinitions"]
        assert runtime_files.RUNTIME_ENV not in env_of(task_def)
        delivered = [s for s in container["Secrets"] if s["Name"].startswith("FOUNDATION_RUNTIME")]
        arns = [f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}" for name in names]
        assert delivered == [
            {"Name": f"FOUNDATION_RUNTIME_{i}", "ValueFrom": arn} for i, arn in enumerate(arns)
        ]
        # named by ARN: created before the task definition that reads them, by DependsOn
        assert {made[name][0] for name in names} <= set(task_def["DependsOn"])
        assert container["Command"] == runtime_files.container_command(
            [celery_worker_command(names_of, 2)],
            wait_for_migrations=False,
            delivered={runtime_files.RUNTIME_ENV: 2},
        )
        execution_role = task_def["Properties"]["ExecutionRoleArn"]
        if stack == "acme-airflow-core":
            logical_id = execution_role["Fn::GetAtt"][0]
            execution_role = templates[stack]["Resources"][logical_id]["Properties"]["RoleName"]
        assert execution_role.rpartition("/")[2] == "acme-airflow--worker-execution"
        for arn in arns:
            assert allows(
                by_role["acme-airflow--worker-execution"], Request("ssm:GetParameters", arn)
            )
            for other in workers:  # a task's own role never needs them
                assert not allows(by_role[other.role], Request("ssm:GetParameters", arn))
        read += arns
    assert len(set(read)) == 2 * len(folders)  # each stack's own
    # nothing else of the cluster's: the components' runtime, the workers' security group
    for _, r in of_type(templates, "AWS::SSM::Parameter").values():
        arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{r['Properties']['Name']}"
        if arn not in read:
            assert not allows(
                by_role["acme-airflow--worker-execution"], Request("ssm:GetParameters", arn)
            ), arn


def test_validate_counts_each_worker_stacks_resources_as_synth_makes_them(built) -> None:
    """What validate counts against CloudFormation's 500 per stack (its DAGs' resources and the
    stack's delivered parameters) is what each worker stack holds."""
    project, templates = built
    counted = {
        int(stack.rsplit("-", 1)[1]): len(t["Resources"])
        for stack, t in templates.items()
        if "-workers-" in stack
    }
    assert counted == dict(stack_loads(project, project.deployment.worker_stacks))


def test_the_stock_image_is_refused_for_celery_naming_what_it_lacks(project: ProjectDir) -> None:
    config = project.root / "config" / "foundation.yaml"
    config.write_text(config.read_text().replace("executor: ecs", "executor: celery"))
    result = project.run("synth")
    assert result.exit_code == 2
    assert "foundation.yaml:7: airflow.image:" in result.stderr
    assert "pycurl" in result.stderr and "docker/Dockerfile" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project.root / "cdk.out").exists()


def test_a_manifest_may_not_reach_a_celery_queue_or_the_results_table(
    project: ProjectDir,
) -> None:
    project.manifest(
        "thief",
        """
        dag_id: thief
        owner: x
        permissions:
          sqs:
            - {queue: acme-airflow--dag-sales-daily-c2237c, access: consume}
          dynamodb:
            - {table: acme-airflow-celery-results, access: read_write}
        """,
    )
    result = project.run("validate")
    assert result.exit_code == 2
    assert "thief.yaml:5: permissions.sqs[0].queue" in result.stderr
    assert "thief.yaml:7: permissions.dynamodb[0].table" in result.stderr


def test_the_bootstrap_service_role_covers_every_celery_resource_type(templates: dict) -> None:
    from foundation.iam.deployer import deployer

    used = {r["Type"] for t in templates.values() for r in t["Resources"].values()}
    assert used - set(deployer().resource_types) == set()


def test_the_celery_dockerfile_extends_the_default_image_with_what_validate_asks_for() -> None:
    from foundation.config import CELERY_IMAGE_NEEDS, DEFAULT_IMAGE

    # written into a project by `foundation init` (docker/Dockerfile there)
    text = (ROOT / "foundation" / "templates" / "project" / "docker" / "Dockerfile").read_text()
    version = DEFAULT_IMAGE.split(":")[1]
    assert f"ARG AIRFLOW_VERSION={version}\n" in text
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}\n" in text
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in text, "pip may not move Airflow itself"
    # the versions the test suite runs the worker and scheduler with (pyproject.toml)
    pyproject = (ROOT / "pyproject.toml").read_text()
    for requirement in ('"pycurl>=7.45.3,<8"', '"celery>=5.5,<5.7"'):
        assert requirement in text and requirement in pyproject
    assert "import pycurl, kombu.asynchronous.http.curl" in text
    assert "docker/Dockerfile" in CELERY_IMAGE_NEEDS and "pycurl" in CELERY_IMAGE_NEEDS


def test_validate_says_what_a_celery_image_must_contain(tmp_path) -> None:
    project = celery_project(tmp_path)
    result = project.run("validate")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert f"the image {IMAGE} must contain pycurl" in text
    assert "apache-airflow-providers-celery >= 3.26 and celery < 5.7" in text


def test_too_many_dags_for_the_worker_stacks_is_named_before_cdk_refuses(tmp_path) -> None:
    project = celery_project(tmp_path)
    config = project.root / "config" / "foundation.yaml"
    config.write_text(config.read_text() + "worker_stacks: 1\n")
    for i in range(60):
        project.manifest(f"bulk_{i}", f"dag_id: bulk_{i}\nowner: x\n")
    result = project.run("validate")
    assert result.exit_code == 2
    assert "worker_stacks: a worker stack would hold" in result.stderr
    assert (
        "(CloudFormation's limit is 500) with 67 DAGs in 1 stack(s): raise it to 2" in result.stderr
    )


# A Celery DAG's identity besides its managed policies: its acknowledgements (IAM5, ECS2 and
# SQS3, made on the construct: stacks/nag.py) cover no finding of another resource only while
# it holds no inline policy, one task definition and one queue (tests/test_synth.py for ECS).
CELERY_IDENTITY = Counter(
    {
        "AWS::IAM::Role": 1,
        "AWS::EC2::SecurityGroup": 1,
        "AWS::ECS::TaskDefinition": 1,
        "AWS::SSM::Parameter": 1,
        "AWS::SQS::Queue": 1,
        "AWS::SQS::QueuePolicy": 1,
        "AWS::ECS::Service": 1,
        "AWS::ApplicationAutoScaling::ScalableTarget": 1,
        "AWS::ApplicationAutoScaling::ScalingPolicy": 2,
        "AWS::CloudWatch::Alarm": 2,
    }
)


def test_an_identity_holds_no_resource_its_acknowledgements_could_cover(built) -> None:
    project = built[0]
    identities = identity_resources(project.root / "cdk.out")
    name = project.deployment.name
    assert f"{name}-core/UnmanagedDags" in identities  # unmanaged_dags: baseline
    assert len(identities) == len(project.dags) + 1
    for path, resources in identities.items():
        kinds = Counter(kind for kind, _ in resources)
        assert kinds.pop("AWS::IAM::ManagedPolicy") >= 1, path
        assert kinds == CELERY_IDENTITY, path
        roles = [props for kind, props in resources if kind == "AWS::IAM::Role"]
        assert [sorted(r) for r in roles] == [
            ["assumeRolePolicyDocument", "description", "path", "roleName", "tags"]
        ], path


@pytest.mark.parametrize("grant", [None, "ssm:GetParameter"])
def test_fa105_names_every_worker_whose_runtime_the_shared_role_may_not_read(
    built, grant: str | None
) -> None:
    """Core's grant of the workers' delivered parameters, taken out or narrowed to
    ssm:GetParameter (ECS's agent calls GetParameters): FA105 names both parameters of every
    DAG's worker, which ECS could no longer start, and not the unmanaged DAGs' worker's (in
    core: it reads core's own parameters, granted apart). The local ECS refuses the same (the
    GetParameter mutation fails test_e2e_celery); here the toolkit's IAM evaluation stands in
    for ECS."""
    project, templates = built
    prefix = "arn:aws:ssm:us-east-1:111122223333:parameter/acme-airflow/cluster/workers/*"

    def change(name: str, resources: dict) -> None:
        for resource in resources.values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            for statement in [s for s in statements if s["Resource"] == prefix]:
                statements.remove(statement)
                if grant:
                    statements.append(statement | {"Action": grant})

    findings = ExecutionRoleReads().check(mutated(templates, change))
    digest = hashlib.sha256(
        runtime_files.archive(runtime_files.FOR_CELERY_WORKERS).encode()
    ).hexdigest()[:12]
    workers = [project.deployment.dag_names(d.dag_id) for d in project.dags]
    expected = []
    for names in workers:
        stack, service, _ = worker_of(templates, names)
        logical_id = service["Properties"]["TaskDefinition"]["Ref"]
        folder = f"/acme-airflow/cluster/workers/{stack[-2:]}"
        expected += [
            (
                stack,
                logical_id,
                "execution role acme-airflow--worker-execution may not ssm:GetParameters "
                f"arn:aws:ssm:us-east-1:111122223333:parameter{folder}/foundation-runtime/"
                f"{digest}/{i} (container airflow-worker's secret FOUNDATION_RUNTIME_{i})",
            )
            for i in (0, 1)
        ]
    assert sorted((f.stack, f.resource, f.message) for f in findings) == sorted(expected)
    assert len(expected) == 2 * 7


def test_fa105_names_every_task_whose_role_may_not_pull_the_ecr_image(built) -> None:
    """Celery mode runs an ECR image, which each execution role must be allowed to pull. With
    core's ECR statements taken out of both execution roles' policies, FA105 names the pull's
    four calls for every task definition of the cluster (components, db-migrate, every DAG's
    worker and the unmanaged DAGs'): ECS would fail each with CannotPullContainerError."""
    _, templates = built

    def without_ecr(name: str, resources: dict) -> None:
        for resource in resources.values():
            if resource["Type"] == "AWS::IAM::Policy":
                document = resource["Properties"]["PolicyDocument"]
                document["Statement"] = [s for s in document["Statement"] if "ecr:" not in str(s)]

    repository = "arn:aws:ecr:us-east-1:111122223333:repository/airflow-celery"
    calls = [
        (action, repository)
        for action in (
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchGetImage",
        )
    ] + [("ecr:GetAuthorizationToken", "*")]
    expected = []
    for stack, template in templates.items():
        for logical_id, r in template["Resources"].items():
            if r["Type"] != "AWS::ECS::TaskDefinition":
                continue
            role = r["Properties"]["ExecutionRoleArn"]
            if isinstance(role, dict):
                role = template["Resources"][role["Fn::GetAtt"][0]]["Properties"]["RoleName"]
            role = role.rpartition("/")[2]
            [container] = r["Properties"]["ContainerDefinitions"]
            expected += [
                (
                    stack,
                    logical_id,
                    f"execution role {role} may not {action} {arn} "
                    f"(container {container['Name']}'s image)",
                )
                for action, arn in calls
            ]
    findings = ExecutionRoleReads().check(mutated(templates, without_ecr))
    assert sorted((f.stack, f.resource, f.message) for f in findings) == sorted(expected)
    # api-server, scheduler, dag-processor, triggerer and db-migrate under the components' role;
    # 7 DAGs' workers and the unmanaged DAGs' under the workers'
    roles = Counter(m.split()[2] for *_, m in expected)
    assert roles == {"acme-airflow--task-execution": 4 * 5, "acme-airflow--worker-execution": 4 * 8}
