"""Calls to AWS for bootstrap, deploy, diff, status and destroy; deciding what to do is in plan.py.

Credentials and endpoints come from boto3's standard chain (profiles, environment, SSO), and
AWS_ENDPOINT_URL is honoured as boto3 honours it. Clients are thread-safe; worker stacks are
deployed from several threads with the same clients.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# CloudFormation's answers when a change set holds nothing to do.
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
SUCCESS = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"}
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
LOCK_KEY = "locks/deploy.json"
THROTTLING = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}


@dataclass(frozen=True)
class Aws:
    cfn: Any
    s3: Any
    ecs: Any
    sts: Any
    poll_seconds: float = 5.0


def connect(profile: str | None, region: str) -> Aws:
    session = boto3.Session(profile_name=profile, region_name=region)
    # Standard retries back off on CloudFormation's throttling (Rate exceeded) by themselves.
    config = Config(retries={"mode": "standard", "max_attempts": 10})
    return Aws(*(session.client(s, config=config) for s in ("cloudformation", "s3", "ecs", "sts")))


def cloudformation(profile: str | None, region: str) -> Any:
    return connect(profile, region).cfn


@dataclass(frozen=True)
class StackState:
    name: str
    status: str
    drift: str  # IN_SYNC, DRIFTED, NOT_CHECKED, UNKNOWN
    updated: datetime | None
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS") and self.status != "REVIEW_IN_PROGRESS"


def _state(stack: dict[str, Any]) -> StackState:
    return StackState(
        name=stack["StackName"],
        status=stack["StackStatus"],
        drift=stack.get("DriftInformation", {}).get("StackDriftStatus", "NOT_CHECKED"),
        updated=stack.get("LastUpdatedTime") or stack.get("CreationTime"),
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []},
    )


def _missing(err: ClientError) -> bool:
    return "does not exist" in err.response["Error"].get("Message", "")


def describe_stack(cfn: Any, name: str) -> StackState | None:
    """The stack as CloudFormation has it, or None when it was never deployed (or is gone)."""
    try:
        (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as err:
        if _missing(err):
            return None
        raise
    return _state(stack)


def project_stacks(cfn: Any, prefix: str) -> dict[str, StackState]:
    """Every live stack whose name starts with `prefix` (deleted stacks are not listed)."""
    out = {}
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            if stack["StackName"].startswith(prefix):
                out[stack["StackName"]] = _state(stack)
    return out


def deployed_template(cfn: Any, name: str) -> dict[str, Any]:
    body = cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
    return json.loads(body) if isinstance(body, str) else dict(body)


def _s3_host(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def publish_template(aws: Aws, bucket: str, stack: str, body: bytes, region: str) -> str:
    """Upload a template under its content hash; the https URL CloudFormation reads it from."""
    key = f"templates/{stack}/{hashlib.sha256(body).hexdigest()}.json"
    aws.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return f"https://{bucket}.s3.{region}.{_s3_host(region)}/{key}"


@dataclass
class ChangeSet:
    id: str
    stack: str
    changes: list[dict[str, Any]]
    empty: bool = False


class ChangeSetFailed(Exception):
    def __init__(self, stack: str, reason: str) -> None:
        super().__init__(f"{stack}: the change set failed: {reason}")
        self.stack = stack


def create_change_set(
    aws: Aws,
    stack: str,
    *,
    template: str,
    role_arn: str | None,
    create: bool,
    parameters: list[dict[str, str]] | None = None,
) -> ChangeSet:
    """Create a change set and wait for CloudFormation to compute it. An empty one is deleted.

    `template` is an https URL of a published template, or (the bootstrap's) template body.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    source = "TemplateURL" if template.startswith("https://") else "TemplateBody"
    kwargs: dict[str, Any] = {
        "StackName": stack,
        "ChangeSetName": f"foundation-{stamp}",
        "ChangeSetType": "CREATE" if create else "UPDATE",
        source: template,
        "Capabilities": CAPABILITIES,
    }
    if role_arn:
        kwargs["RoleARN"] = role_arn
    if parameters:
        kwargs["Parameters"] = parameters
    change_set_id = aws.cfn.create_change_set(**kwargs)["Id"]
    while True:
        described = aws.cfn.describe_change_set(ChangeSetName=change_set_id)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            break
        time.sleep(aws.poll_seconds)
    changes = list(described.get("Changes", []))
    token = described.get("NextToken")
    while token:
        page = aws.cfn.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
        changes += page.get("Changes", [])
        token = page.get("NextToken")
    if described["Status"] == "FAILED":
        aws.cfn.delete_change_set(ChangeSetName=change_set_id)  # never left behind
        reason = described.get("StatusReason", "")
        if any(text in reason for text in NO_CHANGES):
            return ChangeSet(change_set_id, stack, [], empty=True)
        raise ChangeSetFailed(stack, reason)
    return ChangeSet(change_set_id, stack, changes)


def delete_change_set(aws: Aws, change_set_id: str) -> None:
    aws.cfn.delete_change_set(ChangeSetName=change_set_id)


def execute_change_set(aws: Aws, change_set_id: str) -> None:
    aws.cfn.execute_change_set(ChangeSetName=change_set_id)


def delete_stack(aws: Aws, stack: str, role_arn: str | None) -> None:
    kwargs = {"StackName": stack} | ({"RoleARN": role_arn} if role_arn else {})
    aws.cfn.delete_stack(**kwargs)


@dataclass(frozen=True)
class Event:
    id: str
    time: datetime
    logical_id: str
    resource_type: str
    status: str
    reason: str

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


def newest_event(aws: Aws, stack: str) -> str | None:
    """The id of the stack's latest event: what a following operation's events come after (by
    id, not by the local clock)."""
    try:
        events = aws.cfn.describe_stack_events(StackName=stack)["StackEvents"]
    except ClientError as err:
        if _missing(err):
            return None
        raise
    return events[0]["EventId"] if events else None


def events_since(aws: Aws, stack: str, after: str | None, seen: set[str]) -> list[Event]:
    """The stack's events newer than the event `after` and not in `seen`, oldest first."""
    out: list[Event] = []
    try:
        pages = aws.cfn.get_paginator("describe_stack_events").paginate(StackName=stack)
        for page in pages:
            for raw in page["StackEvents"]:
                if raw["EventId"] == after:
                    return list(reversed(out))
                if raw["EventId"] in seen:
                    continue
                seen.add(raw["EventId"])
                out.append(
                    Event(
                        raw["EventId"],
                        raw["Timestamp"],
                        raw.get("LogicalResourceId", ""),
                        raw.get("ResourceType", ""),
                        raw.get("ResourceStatus", ""),
                        raw.get("ResourceStatusReason") or "",
                    )
                )
    except ClientError as err:
        if not _missing(err):
            raise
    return list(reversed(out))


def wait_for_stack(
    aws: Aws,
    stack: str,
    after: str | None,
    on_event: Callable[[Event], None],
    on_tick: Callable[[], None] = lambda: None,
) -> tuple[str, list[Event]]:
    """Follow a stack until it settles: its final status and every event it reported."""
    seen: set[str] = set()
    events: list[Event] = []

    def report() -> None:
        for event in events_since(aws, stack, after, seen):
            events.append(event)
            on_event(event)

    while True:
        try:
            report()
            on_tick()
            state = describe_stack(aws.cfn, stack)
        except ClientError as err:
            # botocore already retried; a throttled poll only delays the next one
            if err.response["Error"]["Code"] not in THROTTLING:
                raise
            time.sleep(aws.poll_seconds)
            continue
        status = state.status if state else "DELETE_COMPLETE"
        if not status.endswith("_IN_PROGRESS"):
            report()
            return status, events
        time.sleep(aws.poll_seconds)


def stack_resources(aws: Aws, stack: str) -> dict[str, tuple[str, str]]:
    """logical id -> (physical id, status)."""
    out = {}
    for page in aws.cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for r in page["StackResourceSummaries"]:
            out[r["LogicalResourceId"]] = (r.get("PhysicalResourceId", ""), r["ResourceStatus"])
    return out


# The deploy lock: one object in the artifacts bucket, created only if absent.


@dataclass(frozen=True)
class Lock:
    holder: str
    since: str


class Locked(Exception):
    def __init__(self, lock: Lock, location: str) -> None:
        super().__init__(
            f"another deploy holds the lock since {lock.since} ({lock.holder}); if none is "
            f"running, remove {location} and try again"
        )


def caller_account(aws: Aws) -> str:
    return aws.sts.get_caller_identity()["Account"]


def acquire_lock(aws: Aws, bucket: str) -> None:
    try:
        who = aws.sts.get_caller_identity()["Arn"]
    except ClientError:
        who = "unknown caller"
    lock = {
        "holder": f"{who} ({getpass.getuser()}@{socket.gethostname()})",
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        aws.s3.put_object(
            Bucket=bucket, Key=LOCK_KEY, Body=json.dumps(lock).encode(), IfNoneMatch="*"
        )
    except ClientError as err:
        if err.response["Error"]["Code"] not in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            raise
        body = aws.s3.get_object(Bucket=bucket, Key=LOCK_KEY)["Body"].read()
        try:
            held = json.loads(body)
            lock = Lock(str(held["holder"]), str(held["since"]))
        except (ValueError, KeyError, TypeError):
            lock = Lock("an unreadable lock object", "an unknown time")
        raise Locked(lock, f"s3://{bucket}/{LOCK_KEY}") from None


def release_lock(aws: Aws, bucket: str) -> None:
    aws.s3.delete_object(Bucket=bucket, Key=LOCK_KEY)


# ECS: the database migration task, and draining a removed DAG's tasks.


def run_task(
    aws: Aws, cluster: str, task_definition: str, subnets: list[str], security_group: str
) -> str:
    response = aws.ecs.run_task(
        cluster=cluster,
        taskDefinition=task_definition,
        launchType="FARGATE",
        count=1,
        startedBy="foundation-deploy",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": subnets,
                "securityGroups": [security_group],
                "assignPublicIp": "DISABLED",
            }
        },
    )
    if response.get("failures"):
        raise RuntimeError(f"ECS could not start the task: {response['failures']}")
    return response["tasks"][0]["taskArn"]


@dataclass(frozen=True)
class TaskOutcome:
    stopped: bool
    exit_code: int | None
    reason: str


def task_outcome(aws: Aws, cluster: str, task_arn: str) -> TaskOutcome:
    (task,) = aws.ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
    if task["lastStatus"] != "STOPPED":
        return TaskOutcome(False, None, "")
    codes = [c.get("exitCode") for c in task.get("containers", [])]
    code = codes[0] if codes else None
    return TaskOutcome(True, code, task.get("stoppedReason", ""))


def running_tasks(aws: Aws, cluster: str, family: str) -> list[str]:
    try:
        return aws.ecs.list_tasks(cluster=cluster, family=family, desiredStatus="RUNNING")[
            "taskArns"
        ]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ClusterNotFoundException":
            return []
        raise
