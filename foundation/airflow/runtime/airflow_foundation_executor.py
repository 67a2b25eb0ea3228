"""AwsEcsExecutor that runs every workload as its own DAG's identity.

Delivered to the scheduler by airflow-foundation (written into $AIRFLOW_HOME/config at start; no
custom image). This is the one point every workload passes, task or callback, whatever created
it: just before RunTask, the task definition, task role and network configuration are replaced
by those the DAG's worker stack published in SSM, and whatever the DAG file or executor_config
asked for is ignored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import boto3
from airflow.providers.amazon.aws.executors.ecs.ecs_executor import AwsEcsExecutor
from foundation_names import UNMANAGED_PARAMETER_NAME, DagNames, role_path, unmanaged_names

IDENTITY_PATH_ENV = "FOUNDATION_IDENTITY_PATH"
PROJECT_ENV = "FOUNDATION_PROJECT"
ROLE_PATH_ENV = "FOUNDATION_ROLE_PATH"  # config iam.role_path, when not "/"
ROLE_PREFIX_ENV = "FOUNDATION_ROLE_PREFIX"  # config iam.role_name_prefix, when set
UNMANAGED_ENV = "FOUNDATION_UNMANAGED_DAGS"
CACHE_SECONDS = 60.0


class IdentityRefused(Exception):
    """The workload may not run: its DAG has no identity, or comes from the wrong bundle."""


@dataclass(frozen=True)
class Identity:
    task_definition: str
    task_role_arn: str
    security_groups: list[str]
    subnets: list[str]
    bundle: str | None = None


def workload_origin(command: list[str]) -> tuple[str | None, str | None]:
    """(dag_id, bundle name) of the serialized workload the ECS executor is about to send."""
    workload = json.loads(command[-1])
    bundle = (workload.get("bundle_info") or {}).get("name")
    if workload.get("type") == "ExecuteCallback":
        return (workload.get("callback") or {}).get("data", {}).get("dag_id"), bundle
    return (workload.get("ti") or {}).get("dag_id"), bundle


class IdentitySource:
    """Reads `<path><dag_id>` SSM parameters, each cached for a minute."""

    def __init__(self, path: str, client: Any):
        self.path, self.client = path, client
        self._cache: dict[str, tuple[float, Identity | None]] = {}

    def get(self, dag_id: str) -> Identity | None:
        now = time.monotonic()
        cached = self._cache.get(dag_id)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            value = self.client.get_parameter(Name=f"{self.path}{dag_id}")["Parameter"]["Value"]
            identity: Identity | None = Identity(**json.loads(value))
        except self.client.exceptions.ParameterNotFound:
            identity = None
        self._cache[dag_id] = (now, identity)
        return identity


class FoundationEcsExecutor(AwsEcsExecutor):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.identities = IdentitySource(
            os.environ[IDENTITY_PATH_ENV],
            boto3.client(
                "ssm", region_name=self.conf.get("aws_ecs_executor", "region_name", fallback=None)
            ),
        )
        self.project = os.environ[PROJECT_ENV]
        self.role_path = os.environ.get(ROLE_PATH_ENV, "/")
        self.role_prefix = os.environ.get(ROLE_PREFIX_ENV, "")
        self.unmanaged = os.environ.get(UNMANAGED_ENV, "refuse")

    def execute_async(self, key: Any, command: Any, queue: Any = None, executor_config: Any = None):
        # executor_config never reaches RunTask: a DAG file cannot pick an identity.
        super().execute_async(key, command, queue, executor_config=None)

    def attempt_workload_runs(self) -> None:
        # A refusal is final: fail it now instead of letting RunTask's retries repeat it.
        for queued in list(self.pending_workloads):
            try:
                self.identity_for(queued.command)
            except IdentityRefused as refused:
                self.pending_workloads.remove(queued)
                self.log.error("Refusing workload %s: %s", queued.key, refused)
                self.log_task_event(
                    event="foundation refused", extra=str(refused), ti_key=queued.key
                )
                self.fail(queued.key)
        super().attempt_workload_runs()

    def _run_task_kwargs(self, task_id: Any, cmd: Any, queue: Any, exec_config: Any) -> dict:
        identity = self.identity_for(cmd)
        kwargs = super()._run_task_kwargs(task_id, cmd, queue, {})
        kwargs["taskDefinition"] = identity.task_definition
        kwargs.setdefault("overrides", {})["taskRoleArn"] = identity.task_role_arn
        network = kwargs.setdefault("networkConfiguration", {}).setdefault(
            "awsvpcConfiguration", {}
        )
        shared = self.run_task_kwargs.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
        network["securityGroups"] = [*shared.get("securityGroups", []), *identity.security_groups]
        network["subnets"] = list(identity.subnets)
        kwargs["propagateTags"] = "TASK_DEFINITION"
        return kwargs

    def identity_for(self, cmd: list[str]) -> Identity:
        dag_id, bundle = workload_origin(cmd)
        if not dag_id:
            raise IdentityRefused("workload names no dag_id")
        identity = self.identities.get(dag_id)
        names = DagNames(self.project, dag_id, self.role_prefix)
        if identity is None and self.unmanaged == "baseline":
            identity = self.identities.get(UNMANAGED_PARAMETER_NAME)
            names = unmanaged_names(self.project, self.role_prefix)
        if identity is None:
            raise IdentityRefused(f"DAG {dag_id!r} has no permission manifest")
        # The parameter is data: accept only the names this DAG's worker stack creates.
        if identity.task_definition != names.task_family or not identity.task_role_arn.endswith(
            f":role{role_path(self.project, self.role_path)}{names.role}"
        ):
            raise IdentityRefused(f"the identity published for DAG {dag_id!r} is not its own")
        if identity.bundle and bundle != identity.bundle:
            raise IdentityRefused(
                f"DAG {dag_id!r} may only come from bundle {identity.bundle!r}, not {bundle!r}"
            )
        return identity
