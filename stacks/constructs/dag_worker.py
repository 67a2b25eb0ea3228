"""One DAG's identity: its task role and policies, task definition, egress, and the SSM parameter
the scheduler reads to launch the DAG's tasks under them."""

from __future__ import annotations

from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from foundation.airflow import runtime_files
from foundation.airflow.settings import (
    CELERY_VISIBILITY_SECONDS,
    WORKER_CONTAINER,
    ComponentSettings,
    celery_worker_command,
    celery_worker_queue,
    git_secret,
)
from foundation.config import Deployment, WorkerSize
from foundation.iam.cluster import dag_queue_policy
from foundation.iam.policy import ArnContext, Statement
from foundation.manifest import Egress
from foundation.naming import (
    DAG_ID_TAG,
    EXISTING_SERVICES_METADATA,
    QUEUE_TAG,  # on the worker service and its tasks: scale-in protection's scope
    DagNames,
    Namespace,
)
from stacks import nag
from stacks.constructs.airflow_service import task_role
from stacks.constructs.delivery import Deliveries


@dataclass(frozen=True)
class WorkerSpec:
    """What one identity is made of; a DAG's comes from its manifest."""

    label: str  # the dag_id, or a description of whom the identity serves
    names: DagNames
    parameter: str
    size: WorkerSize
    settings: ComponentSettings
    policies: list[list[Statement]] = field(default_factory=list)
    egress: list[Egress] = field(default_factory=list)
    bundle: str = ""  # the one bundle its workloads may come from (the executor refuses others)
    dag_id: str | None = None  # tagged as foundation:dag_id when the identity is one DAG's


@dataclass(frozen=True)
class SharedPieces:
    """What every worker identity uses from the cluster."""

    namespace: Namespace
    ctx: ArnContext  # the deployment's partition, region and account
    stack: cdk.Stack  # the stack that holds the identities
    principal: iam.IPrincipal  # whom task roles trust: tasks_principal
    image: ecs.ContainerImage
    execution_role: iam.IRole
    log_group: logs.ILogGroup
    vpc: ec2.IVpc
    subnet_ids: list[str]
    secrets: dict[str, secretsmanager.ISecret]  # by SecretRef.secret; the execution role reads them
    deliveries: Deliveries  # settings.delivered's parameters; the execution role reads them
    celery: CeleryPieces | None = None  # executor: celery


@dataclass(frozen=True)
class CeleryPieces:
    """What a DAG's Celery worker service runs in: the cluster, its subnets, and the security
    group every DAG's tasks share (it opens the Execution API to them); one per stack, with the
    values every DAG's queue and scaling use, made once (each is a call into Node.js)."""

    cluster: ecs.ICluster
    subnets: ec2.SubnetSelection
    workers_security_group: ec2.ISecurityGroup
    minute: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(1))
    visibility: cdk.Duration = field(
        default_factory=lambda: cdk.Duration.seconds(CELERY_VISIBILITY_SECONDS)
    )
    no_value: str = field(default_factory=lambda: cdk.Aws.NO_VALUE)
    services: ExistingServices = field(default_factory=lambda: ExistingServices())


@dataclass
class ExistingServices:
    """Each Celery worker service's `ServiceExists` parameter (DagWorker._first_count), named
    in its stack's template metadata for the deploy (plan.service_parameters): listed as the
    stack's DAGs are built, written once when they all are."""

    listed: list[tuple[str, str]] = field(default_factory=list)  # logical ID (a token), service

    def write(self, stack: cdk.Stack) -> None:
        if not self.listed:
            return
        logical_ids = stack.resolve([logical_id for logical_id, _ in self.listed])
        metadata = stack.template_options.metadata or {}
        services = metadata.setdefault(EXISTING_SERVICES_METADATA, {})
        services.update(zip(logical_ids, (service for _, service in self.listed), strict=True))
        stack.template_options.metadata = metadata


def bundle_secrets(scope: Construct, deployment: Deployment) -> dict[str, secretsmanager.ISecret]:
    """Each git bundle's credentials, by SecretRef: core grants the shared execution role to
    read them; a DAG's task definition injects its own bundle's alone."""
    return {
        git_secret(b.name): secretsmanager.Secret.from_secret_name_v2(
            scope, f"GitCredentials-{b.name}", b.credentials_secret
        )
        for b in deployment.bundles
        if b.credentials_secret
    }


class DagWorker(Construct):
    def __init__(self, scope: Construct, id: str, *, spec: WorkerSpec, shared: SharedPieces):
        super().__init__(scope, id)
        names = spec.names
        # acknowledged on this construct, in one call, so they cover all of it: IAM5 for what
        # its managed policies grant, ECS2 for its task definition, SQS3 for its queue. No other
        # resource under it may have those findings (test_an_identity_holds_no_resource_...)
        acks = [nag.CLUSTER["environment"]]
        self.role = task_role(
            self,
            "TaskRole",
            name=names.role,
            principal=shared.principal,
            path=shared.namespace.dag_role_path,
            description=f"Tasks of {spec.label}"[:1000],
        )
        for index, statements in enumerate(spec.policies):
            iam.ManagedPolicy(
                self,
                f"Policy{index + 1}",
                managed_policy_name=names.managed_policy(index),
                path=shared.namespace.dag_role_path,
                document=iam.PolicyDocument.from_json(
                    {"Version": "2012-10-17", "Statement": [s.document() for s in statements]}
                ),
                roles=[self.role],
            )
            acks += nag.for_statements(statements)
        self.security_group = ec2.SecurityGroup(
            self,
            "Egress",
            vpc=shared.vpc,
            security_group_name=names.security_group,
            description=f"Egress declared for {spec.label}"[:255],
            allow_all_outbound=False,
        )
        for rule in spec.egress:
            port = ec2.Port.tcp(rule.port) if rule.protocol == "tcp" else ec2.Port.udp(rule.port)
            self.security_group.add_egress_rule(ec2.Peer.ipv4(rule.cidr), port, rule.description)
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=names.task_family,
            cpu=spec.size.cpu,
            memory_limit_mib=spec.size.memory,
            task_role=self.role,
            execution_role=shared.execution_role,
        )
        environment, command = spec.settings.environment, None
        delivered = {env: shared.deliveries(env, v) for env, v in spec.settings.delivered.items()}
        if delivered and not shared.celery:
            raise ValueError("only a Celery worker's command unpacks what is delivered")
        if shared.celery:
            self.queue = self._queue(names, shared, shared.celery)
            queue_url = self.queue.queue_url
            environment = environment | celery_worker_queue(queue_url, names)
            command = runtime_files.container_command(
                [celery_worker_command(names, spec.size.concurrency)],
                wait_for_migrations=False,
                delivered={env: len(d.parameters) for env, d in delivered.items()},
            )
        self.task_definition.add_container(
            "airflow",
            container_name=WORKER_CONTAINER,
            image=shared.image,
            command=command,
            environment=environment,
            secrets={
                env: ecs.Secret.from_secrets_manager(shared.secrets[ref.secret])
                for env, ref in spec.settings.secrets.items()
            }
            | {env: secret for d in delivered.values() for env, secret in d.secrets.items()},
            logging=ecs.LogDrivers.aws_logs(stream_prefix=names.suffix, log_group=shared.log_group),
        )
        for values in delivered.values():
            values.read_by(self.task_definition)
        if shared.celery:
            acks.append(nag.CLUSTER["celery_queue"])
            identity = {"queue": names.queue, "queue_url": queue_url}
            self._worker_service(names, spec.size, shared.celery)
        else:
            identity = {
                "task_definition": names.task_family,
                "task_role_arn": self.role.role_arn,
                "security_groups": [self.security_group.security_group_id],
                "subnets": shared.subnet_ids,
            }
        self.identity = ssm.StringParameter(
            self,
            "Identity",
            parameter_name=spec.parameter,
            description=f"Run-time identity of {spec.label}"[:1024],
            string_value=shared.stack.to_json_string(identity | {"bundle": spec.bundle}),
        )
        nag.acknowledge(self, *acks)
        if spec.dag_id is not None:
            cdk.Tags.of(self).add(DAG_ID_TAG, spec.dag_id)

    def _queue(self, names: DagNames, shared: SharedPieces, celery: CeleryPieces) -> sqs.Queue:
        """The DAG's queue: TLS only (enforce_ssl), sent to by the scheduler's role only and
        consumed by the DAG's own role only (explicit denies, dag_queue_policy), and no other
        queue's dead letters (SQS would move them in without a SendMessage the denies see)."""
        queue = sqs.Queue(
            self,
            "Queue",
            queue_name=names.queue,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=celery.visibility,
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.DENY_ALL
            ),
        )
        for statement in dag_queue_policy(shared.namespace, names, shared.ctx):
            queue.add_to_resource_policy(iam.PolicyStatement.from_json(statement))
        return queue

    def _worker_service(self, names: DagNames, size: WorkerSize, celery: CeleryPieces) -> None:
        """The DAG's Celery workers: from min_count to max_count on the queue's backlog."""
        service = ecs.FargateService(
            self,
            "Workers",
            service_name=names.service,
            cluster=celery.cluster,
            task_definition=self.task_definition,
            # DesiredCount only when new (_first_count): CloudFormation would reset the scaled
            # count on every update
            security_groups=[celery.workers_security_group, self.security_group],
            vpc_subnets=celery.subnets,
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_execute_command=False,
        )
        cdk.Tags.of(service).add(QUEUE_TAG, names.queue)
        self._first_count(service, names, size, celery)
        capacity = service.auto_scale_task_count(
            min_capacity=size.min_count, max_capacity=size.max_count
        )
        capacity.scale_on_metric(
            "Backlog",
            metric=backlog(self.queue, celery.minute),
            scaling_steps=backlog_steps(size),
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            cooldown=celery.minute,
        )
        # named in the deployment's namespace (CloudFormation would name them after the stack,
        # which no pattern can tell from another deployment's)
        for alarm in capacity.node.find_all():
            if isinstance(alarm, cloudwatch.CfnAlarm):
                kind = alarm.node.path.split("/")[-2].lower()  # .../LowerAlarm/Resource
                alarm.alarm_name = names.alarm(f"backlog-{kind.removesuffix('alarm')}")

    def _first_count(
        self, service: ecs.FargateService, names: DagNames, size: WorkerSize, celery: CeleryPieces
    ) -> None:
        """A new service starts min_count tasks (ECS would start one: a first deploy of 1,000
        DAGs, 1,000 tasks); an existing one keeps what scaling set. The deploy tells which by a
        parameter per service, named in the template's metadata (ExistingServices)."""
        exists = cdk.CfnParameter(
            self,
            "ServiceExists",
            type="String",
            allowed_values=["true", "false"],
            # a deployer that does not set it (the CDK CLI) never resets the scaled count
            default="true",
            description=f"true once the service {names.service} exists (set by foundation deploy)",
        )
        new = cdk.CfnCondition(
            self, "NewService", expression=cdk.Fn.condition_equals(exists.value_as_string, "false")
        )
        cfn_service = service.node.default_child
        cfn_service.add_property_override(
            "DesiredCount", cdk.Fn.condition_if(new.logical_id, size.min_count, celery.no_value)
        )
        celery.services.listed.append((exists.logical_id, names.service))


def backlog(queue: sqs.IQueue, period: cdk.Duration) -> cloudwatch.IMetric:
    """Messages waiting plus messages being worked on (a task's message stays in flight until
    the task ends): zero only when no worker has anything to do."""
    return cloudwatch.MathExpression(
        expression="waiting + running",
        using_metrics={
            "waiting": queue.metric_approximate_number_of_messages_visible(
                period=period, statistic="Maximum"
            ),
            "running": queue.metric_approximate_number_of_messages_not_visible(
                period=period, statistic="Maximum"
            ),
        },
        period=period,
        label="Celery backlog",
    )


def backlog_steps(size: WorkerSize) -> list[appscaling.ScalingInterval]:
    """Exact worker counts by backlog: min_count when idle, then enough workers for the backlog
    at `concurrency` tasks each, doubling per step, up to max_count. Bounds sit between whole
    numbers: AWS counts a bound in on one side of an alarm's threshold and out on the other,
    and a backlog is always whole, so no backlog falls on a bound."""

    def clamp(workers: int) -> int:
        return min(max(workers, size.min_count), size.max_count)

    steps = [appscaling.ScalingInterval(upper=0.5, change=size.min_count)]
    lower, workers = 0.5, 1
    while workers < size.max_count:
        upper = workers * size.concurrency + 0.5
        steps.append(appscaling.ScalingInterval(lower=lower, upper=upper, change=clamp(workers)))
        lower, workers = upper, workers * 2
    steps.append(appscaling.ScalingInterval(lower=lower, change=size.max_count))
    return steps
