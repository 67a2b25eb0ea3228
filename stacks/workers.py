"""Worker stacks: each holds the DAGs whose dag_id hashes to its shard.

Shards are fixed (config `worker_stacks`), so adding or removing a DAG never moves another DAG
between stacks. Worker stacks read core's shared pieces by their fixed names; core never reads
a worker stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from foundation.airflow import settings as airflow_settings
from foundation.config import Deployment
from foundation.iam.policy import ArnContext
from foundation.project import Dag
from stacks.base import FoundationStack
from stacks.constructs.airflow_service import tasks_principal
from stacks.constructs.dag_worker import (
    CeleryPieces,
    DagWorker,
    SharedPieces,
    WorkerSpec,
    bundle_secrets,
)
from stacks.constructs.delivery import Deliveries
from stacks.network import imported_vpc


class WorkersStack(FoundationStack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        deployment: Deployment,
        shard: int,
        dags: list[Dag],
    ) -> None:
        super().__init__(scope, id, deployment=deployment)
        shared = shared_pieces(self, deployment, shard)
        for dag in dags:
            DagWorker(self, f"Dag-{dag.dag_id}", spec=dag_spec(deployment, dag), shared=shared)
        if shared.celery:
            shared.celery.services.write(self)


def dag_spec(deployment: Deployment, dag: Dag) -> WorkerSpec:
    manifest = dag.manifest
    return WorkerSpec(
        label=f"DAG {dag.dag_id}",
        names=deployment.dag_names(dag.dag_id),
        parameter=deployment.namespace.identity_parameter(dag.dag_id),
        size=manifest.worker or deployment.worker_defaults,
        settings=airflow_settings.dag_worker(deployment, dag.dag_id, manifest.bundle),
        policies=dag.policy.policies,
        egress=list(manifest.network.egress),
        bundle=deployment.bundle_of(manifest.bundle),
        dag_id=dag.dag_id,
    )


def shared_pieces(scope: Construct, deployment: Deployment, shard: int) -> SharedPieces:
    """Core's shared pieces and the network, named rather than referenced: no export ties a
    worker to core, and only the network stack's fixed exports tie it to the network. What the
    stack delivers to its containers is its own (Namespace.deliveries)."""
    ns = deployment.namespace
    vpc = imported_vpc(scope, deployment)
    arn = ArnContext.of(deployment).role(ns.role_root, ns.worker_execution_role)
    return SharedPieces(
        namespace=ns,
        ctx=ArnContext.of(deployment),
        stack=cdk.Stack.of(scope),
        principal=tasks_principal(deployment.account),
        image=ecs.ContainerImage.from_registry(deployment.airflow.image),
        execution_role=iam.Role.from_role_arn(scope, "WorkerExecutionRole", arn, mutable=False),
        log_group=logs.LogGroup.from_log_group_name(scope, "WorkersLogs", ns.workers_log_group),
        vpc=vpc,
        subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids,
        secrets=bundle_secrets(scope, deployment),
        deliveries=Deliveries(scope, ns.deliveries(shard), ArnContext.of(deployment)),
        celery=celery_pieces(scope, deployment, vpc) if deployment.celery else None,
    )


def celery_pieces(scope: Construct, deployment: Deployment, vpc: ec2.IVpc) -> CeleryPieces:
    """The cluster by name and the shared workers security group by the id core publishes in
    SSM (resolved by CloudFormation at deploy time: no export ties a worker stack to core)."""
    ns = deployment.namespace
    sg_id = ssm.StringParameter.value_for_string_parameter(
        scope, ns.workers_security_group_parameter
    )
    return CeleryPieces(
        cluster=ecs.Cluster.from_cluster_attributes(
            scope, "Cluster", cluster_name=ns.cluster, vpc=vpc
        ),
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        workers_security_group=ec2.SecurityGroup.from_security_group_id(
            scope, "WorkersSecurityGroup", sg_id, mutable=False
        ),
    )
