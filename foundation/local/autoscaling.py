"""Application Auto Scaling of ECS services on CloudWatch alarms over SQS queue metrics, locally
(the Celery workers': each DAG's service scales on its queue's backlog), and what ECS's service
scheduler then does with the count. moto has neither: its CloudFormation skips
AWS::ApplicationAutoScaling::* and AWS::CloudWatch::Alarm. What scales, and how, is read from
the worker stacks' templates deployed when it starts (GetTemplate), resolved against their
resources: each ScalableTarget of an ECS service (MinCapacity, MaxCapacity), its StepScaling
policies, and the alarm whose AlarmActions name each policy (ComparisonOperator, Threshold,
EvaluationPeriods, each metric's Period and statistic, and its math over SQS's queue metrics).

Every `interval` seconds each metric is sampled from its queue (GetQueueAttributes) and, for
each scaled service:
- each alarm's datapoint is its expression (a sum of metric ids: any other expression is refused
  when the template is read) over each metric's Maximum (the only statistic read) of the samples
  of the last EvaluationPeriods x Period x `time_scale` seconds; until that much has been
  sampled the alarm has insufficient data and does nothing;
- an alarm whose comparison holds runs its policy, and again at each evaluation while it holds,
  as Application Auto Scaling is invoked while an alarm stays in ALARM: the step is chosen as
  AWS documents (above the threshold a step's lower bound is inclusive and its upper bound
  exclusive, below it the other way round), ExactCapacity only, clamped to [MinCapacity,
  MaxCapacity]; of several policies at once, the largest capacity; the service's desired count
  is set by UpdateService;
- ECS's service scheduler: a service with a desired count and no live task gets one
  (LocalEcs.run_service_task); at a desired count of 0, each of its tasks whose scale-in
  protection is off is stopped (StopTask, ECS's reason), and a protected one is left running.

So a message scales its service out at the next evaluation, and a service scales in once its
queue has been empty for the whole window, as with one-minute Maximum datapoints.

What differs from AWS: the window slides with each evaluation, where CloudWatch publishes a
datapoint per whole period a little late and evaluates the alarm once a period (so AWS scales out
up to a period or two later); periods are shortened by `time_scale` (1 is AWS's pace);
DatapointsToAlarm and cooldowns are not applied; at most one task per service (as LocalEcs runs
services); the count is set with the local endpoint's admin identity, not the service-linked
role the ScalableTarget names; no scaling activity history (DescribeScalingActivities) is kept,
only `activities` for tests.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from foundation.cloudformation.plan import is_worker_stack
from foundation.local.ecs import Endpoint, LocalEcs

# CloudWatch's SQS metric -> the queue attribute it samples
SQS_METRICS = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}
OPERATORS = {
    "GreaterThanOrEqualToThreshold": (True, lambda value, threshold: value >= threshold),
    "GreaterThanThreshold": (True, lambda value, threshold: value > threshold),
    "LessThanThreshold": (False, lambda value, threshold: value < threshold),
    "LessThanOrEqualToThreshold": (False, lambda value, threshold: value <= threshold),
}


class UnsupportedScaling(ValueError):
    """A template scales in a way this stand-in does not reproduce."""


@dataclass(frozen=True)
class Step:
    lower: float
    upper: float
    capacity: int


@dataclass(frozen=True)
class Alarm:
    name: str  # its logical id
    operator: str
    threshold: float
    window: float  # seconds of samples each datapoint covers: EvaluationPeriods x Period
    queues: dict[str, tuple[str, str]]  # metric id -> (queue name, queue attribute)
    summed: tuple[str, ...]  # the expression's metric ids
    steps: tuple[Step, ...]  # its policy's

    def value(self, maximum: Any) -> float:
        """The datapoint, from each metric's Maximum over the window."""
        return sum(maximum(*self.queues[metric]) for metric in self.summed)

    def holds(self, value: float) -> bool:
        return OPERATORS[self.operator][1](value, self.threshold)

    def capacity(self, value: float) -> int | None:
        above = OPERATORS[self.operator][0]
        delta = value - self.threshold
        for step in self.steps:
            if (step.lower <= delta < step.upper) if above else (step.lower < delta <= step.upper):
                return step.capacity
        return None


@dataclass(frozen=True)
class ScaledService:
    cluster: str
    service: str
    min_capacity: int
    max_capacity: int
    alarms: tuple[Alarm, ...]


@dataclass(frozen=True)
class Activity:
    service: str
    desired: int
    at: float  # time.monotonic()


def _resolve(value: Any, physical: dict[str, str], pseudo: dict[str, str]) -> Any:
    """A template value, its intrinsic functions resolved against the stack's resources."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return pseudo[argument] if argument in pseudo else physical[argument]
        if function == "Fn::GetAtt":
            logical, attribute = argument
            if attribute in ("Name", "QueueName"):  # an ECS service's ARN, a queue's URL
                return physical[logical].rsplit("/", 1)[-1]
            raise UnsupportedScaling(f"Fn::GetAtt {logical}.{attribute}")
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(_resolve(p, physical, pseudo)) for p in parts)
        raise UnsupportedScaling(function)
    return value


def _alarm(logical_id: str, alarm: dict, steps: tuple[Step, ...], resolve: Any) -> Alarm:
    props = alarm["Properties"]
    if props["ComparisonOperator"] not in OPERATORS:
        raise UnsupportedScaling(f"{logical_id}: {props['ComparisonOperator']}")
    queues, periods, summed = {}, [], ()
    for metric in props["Metrics"]:
        if "Expression" in metric:
            summed = tuple(part.strip() for part in metric["Expression"].split("+"))
            if not all(re.fullmatch(r"[a-z][A-Za-z0-9_]*", part) for part in summed):
                raise UnsupportedScaling(f"{logical_id}: {metric['Expression']}")
            continue
        stat = metric["MetricStat"]
        dimensions = {d["Name"]: resolve(d["Value"]) for d in stat["Metric"]["Dimensions"]}
        name = stat["Metric"]["MetricName"]
        if stat["Metric"]["Namespace"] != "AWS/SQS" or name not in SQS_METRICS:
            raise UnsupportedScaling(f"{logical_id}: {stat['Metric']['Namespace']} {name}")
        if stat["Stat"] != "Maximum":
            raise UnsupportedScaling(f"{logical_id}: the {stat['Stat']} statistic")
        queues[metric["Id"]] = (dimensions["QueueName"], SQS_METRICS[name])
        periods.append(stat["Period"])
    if not summed or set(summed) - set(queues):
        raise UnsupportedScaling(f"{logical_id}: its expression names no metric it has")
    window = int(props["EvaluationPeriods"]) * max(periods)
    operator, threshold = props["ComparisonOperator"], float(props["Threshold"])
    return Alarm(logical_id, operator, threshold, window, queues, summed, steps)


def scaled_services(template: dict, physical: dict[str, str], pseudo: dict[str, str]) -> list:
    """Every ECS service this template scales, with its alarms and their steps."""
    resources = template["Resources"]

    def resolve(value: Any) -> Any:
        return _resolve(value, physical, pseudo)

    out = []
    for target_id, target in resources.items():
        if target["Type"] != "AWS::ApplicationAutoScaling::ScalableTarget":
            continue
        props = target["Properties"]
        if (props["ServiceNamespace"], props["ScalableDimension"]) != (
            "ecs",
            "ecs:service:DesiredCount",
        ):
            continue
        _, cluster, service = resolve(props["ResourceId"]).split("/")
        alarms = []
        for policy_id, policy in resources.items():
            policy_props = policy.get("Properties", {})
            if policy["Type"] != "AWS::ApplicationAutoScaling::ScalingPolicy" or policy_props.get(
                "ScalingTargetId"
            ) != {"Ref": target_id}:
                continue
            config = policy_props["StepScalingPolicyConfiguration"]
            if policy_props["PolicyType"] != "StepScaling" or config["AdjustmentType"] != (
                "ExactCapacity"
            ):
                raise UnsupportedScaling(f"{policy_id}: only ExactCapacity step scaling")
            steps = tuple(
                Step(
                    float(s.get("MetricIntervalLowerBound", -math.inf)),
                    float(s.get("MetricIntervalUpperBound", math.inf)),
                    int(s["ScalingAdjustment"]),
                )
                for s in config["StepAdjustments"]
            )
            alarms += [
                _alarm(alarm_id, alarm, steps, resolve)
                for alarm_id, alarm in resources.items()
                if alarm["Type"] == "AWS::CloudWatch::Alarm"
                and {"Ref": policy_id} in alarm["Properties"].get("AlarmActions", [])
            ]
        out.append(
            ScaledService(
                cluster,
                service,
                int(props["MinCapacity"]),
                int(props["MaxCapacity"]),
                tuple(sorted(alarms, key=lambda a: a.name)),
            )
        )
    return out


@dataclass
class LocalAutoScaling:
    endpoint: Endpoint
    ecs: LocalEcs
    project: str
    time_scale: float = 1.0
    interval: float = 0.5
    services: list[ScaledService] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # evaluations that failed, for tests
    _samples: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    _started: float = 0.0
    _urls: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LocalAutoScaling:
        """Reads what the deployed worker stacks scale, then evaluates it in a thread."""
        cloudformation = self.endpoint.client("cloudformation")
        pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": self.endpoint.region,
            "AWS::AccountId": self.endpoint.account,
        }
        for stack in cloudformation.describe_stacks()["Stacks"]:
            if not is_worker_stack(stack["StackName"], self.project):
                continue
            template = cloudformation.get_template(StackName=stack["StackName"])["TemplateBody"]
            physical = {
                r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                for page in cloudformation.get_paginator("list_stack_resources").paginate(
                    StackName=stack["StackName"]
                )
                for r in page["StackResourceSummaries"]
            }
            self.services += scaled_services(template, physical, pseudo)
        self._thread = threading.Thread(target=self._loop, name="local-autoscaling", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as error:  # the next evaluation tries again, as AWS's would
                self.errors.append(repr(error))

    def tick(self) -> None:
        now = time.monotonic()
        self._started = self._started or now
        for queue in {
            q for scaled in self.services for a in scaled.alarms for q, _ in a.queues.values()
        }:
            for attribute, value in self._attributes(queue).items():
                samples = self._samples.setdefault((queue, attribute), [])
                samples.append((now, float(value)))
        longest = max((a.window for scaled in self.services for a in scaled.alarms), default=0.0)
        for samples in self._samples.values():
            samples[:] = [(t, v) for t, v in samples if t >= now - longest * self.time_scale]
        for scaled in self.services:
            capacities = []
            for alarm in scaled.alarms:
                since = now - alarm.window * self.time_scale
                if self._started > since:
                    continue  # insufficient data

                def maximum(queue: str, attribute: str, since: float = since) -> float:
                    return max(v for t, v in self._samples[(queue, attribute)] if t >= since)

                value = alarm.value(maximum)
                capacity = alarm.capacity(value) if alarm.holds(value) else None
                if capacity is not None:
                    capacities.append(min(max(capacity, scaled.min_capacity), scaled.max_capacity))
            if capacities:
                self._set(scaled, max(capacities), now)
            self._schedule(scaled)

    def _attributes(self, queue: str) -> dict[str, str]:
        sqs = self.endpoint.client("sqs")
        if queue not in self._urls:
            self._urls[queue] = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        names = sorted(SQS_METRICS.values())
        return sqs.get_queue_attributes(QueueUrl=self._urls[queue], AttributeNames=names)[
            "Attributes"
        ]

    def _set(self, scaled: ScaledService, desired: int, now: float) -> None:
        service = self.ecs._backend.services[f"{scaled.cluster}:{scaled.service}"]
        if service.desired_count != desired:
            self.endpoint.client("ecs").update_service(
                cluster=scaled.cluster, service=scaled.service, desiredCount=desired
            )
            self.activities.append(Activity(scaled.service, desired, now))

    def _schedule(self, scaled: ScaledService) -> None:
        from foundation.local.moto_gaps import protected

        backend = self.ecs._backend
        with self.ecs._lock:
            service = backend.services[f"{scaled.cluster}:{scaled.service}"]
            live = [
                t
                for t in backend.tasks.get(scaled.cluster, {}).values()
                if t.started_by == f"ecs-svc/{scaled.service}" and t.desired_status == "RUNNING"
            ]
            if service.desired_count and not live:
                self.ecs.run_service_task(service)
            elif not service.desired_count:
                deployment = service.deployments[0]["id"]
                reason = f"Scaling activity initiated by (deployment {deployment})"
                for task in live:
                    if not protected(task):
                        backend.stop_task(scaled.cluster, task.task_arn, reason)
