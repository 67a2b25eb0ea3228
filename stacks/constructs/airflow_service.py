"""One Airflow cluster component on Fargate: its task definition, role, logs and service."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from foundation.airflow import runtime_files
from foundation.airflow.settings import ComponentSettings
from foundation.naming import Namespace
from stacks import nag
from stacks.constructs.delivery import Delivered


@dataclass(frozen=True)
class ComponentSpec:
    # api-server, scheduler, dag-processor (or dag-processor-<bundle>), triggerer, db-migrate
    name: str
    command: list[str]
    cpu: int
    memory: int
    desired_count: int  # 0: a task definition only, run on demand (db-migrate)
    port: int | None = None
    bundle: str | None = None  # a dag-processor's: the one bundle it parses


def tasks_principal(account: str) -> iam.ServicePrincipal:
    """ECS tasks, only on behalf of this account: whom a task role trusts (one object may serve
    every role of a stack)."""
    return iam.ServicePrincipal(
        "ecs-tasks.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
    )


def task_role(
    scope: Construct,
    id: str,
    *,
    name: str,
    principal: iam.IPrincipal,
    path: str | None = None,
    description: str | None = None,
) -> iam.Role:
    """A role ECS tasks assume (`principal`: tasks_principal)."""
    return iam.Role(
        scope, id, role_name=name, path=path, description=description, assumed_by=principal
    )


class AirflowService(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        spec: ComponentSpec,
        namespace: Namespace,
        principal: iam.IPrincipal,  # whom its task role trusts: tasks_principal
        image: ecs.ContainerImage,
        settings: ComponentSettings,
        secrets: dict[str, secretsmanager.ISecret],
        delivered: dict[str, Delivered],
        execution_role: iam.IRole,
        cluster: ecs.ICluster,
        security_group: ec2.ISecurityGroup,
        subnets: ec2.SubnetSelection,
    ) -> None:
        super().__init__(scope, id)
        self.role = task_role(
            self,
            "TaskRole",
            name=namespace.role(spec.name),
            principal=principal,
            path=namespace.role_root,
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=namespace.log_group(spec.name),
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=namespace.family(spec.name),
            cpu=spec.cpu,
            memory_limit_mib=spec.memory,
            task_role=self.role,
            execution_role=execution_role,
        )
        self.container = self.task_definition.add_container(
            "airflow",
            container_name=spec.name,
            image=image,
            entry_point=runtime_files.init_entry_point() if settings.sealed else None,
            command=runtime_files.container_command(
                [*settings.before, spec.command, *settings.then],
                wait_for_migrations=settings.waits,
                setup=tuple(settings.setup),
                delivered={env: len(d.parameters) for env, d in delivered.items()},
                sealed=settings.sealed,
            ),
            environment=settings.environment,
            secrets={
                env: ecs.Secret.from_secrets_manager(secrets[ref.secret])
                for env, ref in settings.secrets.items()
            }
            | {env: secret for d in delivered.values() for env, secret in d.secrets.items()},
            logging=ecs.LogDrivers.aws_logs(stream_prefix=spec.name, log_group=self.log_group),
            port_mappings=[ecs.PortMapping(container_port=spec.port)] if spec.port else None,
            readonly_root_filesystem=False,
        )
        for values in delivered.values():
            values.read_by(self.task_definition)
        nag.acknowledge(self.task_definition, nag.CLUSTER["environment"])
        self.service: ecs.FargateService | None = None
        if spec.desired_count:
            self.service = ecs.FargateService(
                self,
                "Service",
                service_name=namespace.service(spec.name),
                cluster=cluster,
                task_definition=self.task_definition,
                desired_count=spec.desired_count,
                security_groups=[security_group],
                vpc_subnets=subnets,
                assign_public_ip=False,
                circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
                # Behind the load balancer, a new task is unhealthy until it serves, and it
                # serves only after the migration: the grace outlasts the longest migration
                # wait, so a long migration is never counted as a failed rollout.
                health_check_grace_period=(
                    cdk.Duration.seconds(
                        runtime_files.MIGRATION_WAIT_SECONDS + runtime_files.STARTUP_SECONDS
                    )
                    if spec.port
                    else None
                ),
                min_healthy_percent=100 if spec.desired_count > 1 else 0,
                propagate_tags=ecs.PropagatedTagSource.SERVICE,
                enable_execute_command=False,
            )
