"""Calls to AWS for deploy, diff, status and destroy; deciding what to do is in plan.py.

Credentials and endpoints come from boto3's standard chain (profiles, environment, SSO), and
AWS_ENDPOINT_URL is honoured as boto3 honours it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError


def cloudformation(profile: str | None, region: str) -> Any:
    return boto3.Session(profile_name=profile, region_name=region).client("cloudformation")


@dataclass(frozen=True)
class StackState:
    name: str
    status: str
    drift: str  # IN_SYNC, DRIFTED, NOT_CHECKED, UNKNOWN
    updated: datetime | None
    outputs: dict[str, str] = field(default_factory=dict)


def describe_stack(cfn: Any, name: str) -> StackState | None:
    """The stack as CloudFormation has it, or None when it was never deployed (or is gone)."""
    try:
        (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as err:
        if "does not exist" in err.response["Error"].get("Message", ""):
            return None
        raise
    return StackState(
        name=name,
        status=stack["StackStatus"],
        drift=stack.get("DriftInformation", {}).get("StackDriftStatus", "NOT_CHECKED"),
        updated=stack.get("LastUpdatedTime") or stack.get("CreationTime"),
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
    )
