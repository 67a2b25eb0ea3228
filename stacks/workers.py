"""Worker stacks: each holds the DAGs whose dag_id hashes to its shard.

Shards are fixed (config `worker_stacks`), so adding or removing a DAG never moves another DAG
between stacks. Worker stacks read core's shared pieces by their fixed names; core never reads
a worker stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from foundation.airflow import settings as airflow_settings
from foundation.config import Deployment
from foundation.naming import execution_role_name, workers_log_group_name
from foundation.project import Dag
from stacks.base import FoundationStack
from stacks.constructs.dag_worker import DagWorker
from stacks.network import NetworkStack


class WorkersStack(FoundationStack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        deployment: Deployment,
        network: NetworkStack,
        dags: list[Dag],
    ) -> None:
        super().__init__(scope, id, deployment=deployment)
        name = deployment.name
        execution_role = iam.Role.from_role_name(
            self, "TaskExecutionRole", execution_role_name(name), mutable=False
        )
        log_group = logs.LogGroup.from_log_group_name(
            self, "WorkersLogs", workers_log_group_name(name)
        )
        image = ecs.ContainerImage.from_registry(deployment.airflow.image)
        subnet_ids = network.vpc.select_subnets(
            subnet_type=cdk.aws_ec2.SubnetType.PRIVATE_WITH_EGRESS
        ).subnet_ids
        for dag in dags:
            DagWorker(
                self,
                f"Dag-{dag.dag_id}",
                project=name,
                account=deployment.account,
                manifest=dag.manifest,
                policy=dag.policy,
                size=dag.manifest.worker or deployment.worker_defaults,
                settings=airflow_settings.dag_worker(deployment, dag.dag_id),
                image=image,
                execution_role=execution_role,
                log_group=log_group,
                vpc=network.vpc,
                subnet_ids=subnet_ids,
            )
