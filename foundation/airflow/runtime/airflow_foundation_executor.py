"""AwsEcsExecutor that runs every workload as its own DAG's identity.

Delivered to the scheduler by airflow-foundation (written into $AIRFLOW_HOME/config at start; no
custom image). This is the one point every workload passes, task or callback, whatever created
it: just before RunTask, the task definition, task role and network configuration are replaced
by those the DAG's worker stack published in SSM, and whatever the DAG file or executor_config
asked for is ignored.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from airflow.providers.amazon.aws.executors.ecs.ecs_executor import AwsEcsExecutor
from foundation_identity import Gate, IdentityRefused
from foundation_workload import workload_origin


class FoundationEcsExecutor(AwsEcsExecutor):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        region = self.conf.get("aws_ecs_executor", "region_name", fallback=None)
        self.gate = Gate(boto3.client("ssm", region_name=region))

    def execute_async(self, key: Any, command: Any, queue: Any = None, executor_config: Any = None):
        # executor_config never reaches RunTask: a DAG file cannot pick an identity.
        super().execute_async(key, command, queue, executor_config=None)

    def attempt_workload_runs(self) -> None:
        # A refusal is final: fail it now instead of letting RunTask's retries repeat it. Any
        # other error reading an identity (AWS refused or throttled the read) stays with its
        # own workload: the launch below retries it with backoff and fails it alone.
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
            except Exception:
                self.log.exception("Reading the identity of workload %s failed", queued.key)
        super().attempt_workload_runs()

    def _run_task_kwargs(self, task_id: Any, cmd: Any, queue: Any, exec_config: Any) -> dict:
        identity = self.identity_for(cmd)
        kwargs = super()._run_task_kwargs(task_id, cmd, queue, {})
        kwargs["taskDefinition"] = identity["task_definition"]
        kwargs.setdefault("overrides", {})["taskRoleArn"] = identity["task_role_arn"]
        network = kwargs.setdefault("networkConfiguration", {}).setdefault(
            "awsvpcConfiguration", {}
        )
        shared = self.run_task_kwargs.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
        network["securityGroups"] = [
            *shared.get("securityGroups", []),
            *identity["security_groups"],
        ]
        network["subnets"] = list(identity["subnets"])
        kwargs["propagateTags"] = "TASK_DEFINITION"
        return kwargs

    def identity_for(self, cmd: list[str]) -> dict:
        workload = json.loads(cmd[-1])
        resolved = self.gate.resolve(workload)
        names, identity = resolved.names, resolved.identity
        # The parameter is data: accept only the names this DAG's worker stack creates.
        role_suffix = f":role{self.gate.namespace.dag_role_path}{names.role}"
        if identity.get("task_definition") != names.task_family or not str(
            identity.get("task_role_arn", "")
        ).endswith(role_suffix):
            raise Gate.not_its_own(workload_origin(workload)[0])
        return identity
