"""The autoscaling stand-in (foundation/local/autoscaling.py): what it reads from a synthesized
worker stack (the Celery snapshot's), the count each backlog gets, and ECS's service scheduler
leaving a protected task running at a desired count of 0."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from foundation.local.autoscaling import (
    Alarm,
    LocalAutoScaling,
    ScaledService,
    Step,
    UnsupportedScaling,
    scaled_services,
)
from foundation.local.ecs import Endpoint, LocalEcs
from tests.moto_server import ACCOUNT, REGION, MotoAws

SNAPSHOT = (
    Path(__file__).parent
    / "__snapshots__"
    / "test_celery_synth"
    / "test_template_snapshot[workers-12].json"
)
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": "111122223333"}
# each DAG's worker service, and its queue
SALES, FINANCE = (
    "acme-airflow-dag-sales-daily-c2237c",
    "acme-airflow-dag-finance-redshift-load-6dfd83",
)
SALES_QUEUE = "acme-airflow--dag-sales-daily-c2237c"


def physical(template: dict) -> dict[str, str]:
    """Physical ids as CloudFormation gives them: a queue's URL, a service's ARN."""
    out = {}
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue":
            out[logical_id] = (
                f"https://sqs.{REGION}.amazonaws.com/111122223333/{props['QueueName']}"
            )
        if resource["Type"] == "AWS::ECS::Service":
            out[logical_id] = (
                f"arn:aws:ecs:{REGION}:111122223333:service/acme-airflow/{props['ServiceName']}"
            )
    return out


def read(template: dict) -> dict[str, ScaledService]:
    return {s.service: s for s in scaled_services(template, physical(template), PSEUDO)}


def test_each_workers_service_is_read_with_its_alarms_and_steps() -> None:
    template = json.loads(SNAPSHOT.read_text())
    services = read(template)
    assert sorted(services) == [FINANCE, SALES]
    sales = services[SALES]
    assert (sales.cluster, sales.min_capacity, sales.max_capacity) == ("acme-airflow", 0, 2)
    metrics = {
        "waiting": (SALES_QUEUE, "ApproximateNumberOfMessages"),
        "running": (SALES_QUEUE, "ApproximateNumberOfMessagesNotVisible"),
    }
    lower, upper = sales.alarms
    assert lower == Alarm(
        "DagsalesdailyWorkersTaskCountTargetBacklogLowerAlarm44ADC62A",
        "LessThanOrEqualToThreshold",
        0.5,
        60,
        metrics,
        ("waiting", "running"),
        (Step(-math.inf, 0, 0),),
    )
    assert upper == Alarm(
        "DagsalesdailyWorkersTaskCountTargetBacklogUpperAlarm37EA047E",
        "GreaterThanOrEqualToThreshold",
        0.5,
        60,
        metrics,
        ("waiting", "running"),
        (Step(0, 2, 1), Step(2, math.inf, 2)),
    )


def test_each_backlog_gets_one_count_from_min_to_max() -> None:
    services = read(json.loads(SNAPSHOT.read_text()))

    def counts(service: ScaledService) -> list[int]:
        out = []
        for backlog in range(7):
            [count] = [alarm.capacity(backlog) for alarm in service.alarms if alarm.holds(backlog)]
            out.append(count)
        return out

    # concurrency 2 (the default): a worker per two tasks, up to max_count
    assert counts(services[SALES]) == [0, 1, 1, 2, 2, 2, 2]
    assert counts(services[FINANCE]) == [0, 1, 1, 1, 1, 1, 1]


def test_a_scaling_it_does_not_reproduce_is_refused() -> None:
    template = json.loads(SNAPSHOT.read_text())
    alarm = template["Resources"]["DagsalesdailyWorkersTaskCountTargetBacklogUpperAlarm37EA047E"]
    alarm["Properties"]["Metrics"][1]["MetricStat"]["Stat"] = "Average"
    with pytest.raises(UnsupportedScaling) as refused:
        read(template)
    assert str(refused.value) == (
        "DagsalesdailyWorkersTaskCountTargetBacklogUpperAlarm37EA047E: the Average statistic"
    )


def test_scale_in_stops_an_idle_task_and_leaves_a_protected_one(
    moto_aws: MotoAws, tmp_path: Path
) -> None:
    admin = moto_aws.admin
    endpoint = Endpoint(
        moto_aws.endpoint, REGION, ACCOUNT, admin.access_key_id, admin.secret_access_key
    )
    ecs_api = moto_aws.client("ecs")
    ecs_api.create_cluster(clusterName="scale")
    ecs_api.register_task_definition(
        family="scale-worker", containerDefinitions=[{"name": "c", "image": "i", "memory": 512}]
    )
    tags = [{"key": "foundation:queue", "value": "scale-q"}]
    ecs_api.create_service(
        cluster="scale",
        serviceName="scale-q",
        taskDefinition="scale-worker",
        desiredCount=0,
        tags=tags,
        propagateTags="SERVICE",
    )
    local = LocalEcs(endpoint, "scale", tmp_path)  # not started: nothing launches its tasks
    scaling = LocalAutoScaling(endpoint, local, "scale")
    scaled = ScaledService("scale", "scale-q", 0, 1, ())

    def live() -> list:
        return [
            t
            for t in local._backend.tasks.get("scale", {}).values()
            if t.desired_status == "RUNNING"
        ]

    scaling._schedule(scaled)
    assert live() == []
    ecs_api.update_service(cluster="scale", service="scale-q", desiredCount=1)
    scaling._schedule(scaled)
    scaling._schedule(scaled)  # one task, not one per evaluation
    [task] = live()
    assert (task.started_by, task.tags) == ("ecs-svc/scale-q", tags)

    ecs_api.update_task_protection(cluster="scale", tasks=[task.task_arn], protectionEnabled=True)
    ecs_api.update_service(cluster="scale", service="scale-q", desiredCount=0)
    scaling._schedule(scaled)
    assert live() == [task]
    ecs_api.update_task_protection(cluster="scale", tasks=[task.task_arn], protectionEnabled=False)
    scaling._schedule(scaled)
    assert live() == []
    deployment = local._backend.services["scale:scale-q"].deployments[0]["id"]
    assert task.stopped_reason == f"Scaling activity initiated by (deployment {deployment})"
