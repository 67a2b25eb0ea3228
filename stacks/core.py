"""The Airflow cluster: ECS cluster, api-server behind an ALB, scheduler, dag-processor, triggerer,
the one-off `airflow db migrate` task, and the shared pieces every DAG worker uses.

Nothing here references a worker stack: a DAG can be added or removed without touching core.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from foundation.airflow import settings as airflow_settings
from foundation.airflow.settings import AIRFLOW_PORT
from foundation.config import Deployment, FabAuth
from foundation.iam import cluster
from foundation.iam.catalog import catalog
from foundation.iam.policy import ArnContext, Grant, celery_worker_grants, merge, number, render
from foundation.manifest import DagAccess
from foundation.naming import DAG_PROCESSOR, UNMANAGED_PARAMETER_NAME, DagNames
from stacks import nag
from stacks.base import FoundationStack
from stacks.constructs.airflow_service import (
    AirflowService,
    ComponentSpec,
    task_role,
    tasks_principal,
)
from stacks.constructs.dag_worker import (
    CeleryPieces,
    DagWorker,
    SharedPieces,
    WorkerSpec,
    bundle_secrets,
)
from stacks.constructs.delivery import Deliveries
from stacks.data import DataStack
from stacks.image import airflow_image
from stacks.network import NetworkStack

HEALTH_PATH = "/api/v2/monitor/health"


def components(deployment: Deployment) -> list[ComponentSpec]:
    """The cluster's components, with one dag-processor per bundle, each parsing its own alone
    (with several, `--bundle-name`: Airflow's own per-bundle mode, which leaves the other
    bundles' rows active)."""
    bundles = deployment.bundles
    dag_processors = [
        ComponentSpec(
            deployment.dag_processor(b),
            ["dag-processor", *(["--bundle-name", b.name] if len(bundles) > 1 else [])],
            1024,
            2048,
            1,
            bundle=b.name,
        )
        for b in bundles
    ]
    return [
        ComponentSpec("api-server", ["api-server"], 1024, 2048, 2, AIRFLOW_PORT),
        ComponentSpec("scheduler", ["scheduler"], 1024, 2048, 1),
        *dag_processors,
        ComponentSpec("triggerer", ["triggerer"], 512, 1024, 1),
        ComponentSpec("db-migrate", ["db", "migrate"], 512, 1024, 0),
    ]


class CoreStack(FoundationStack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        deployment: Deployment,
        network: NetworkStack,
        data: DataStack,
        dag_access: dict[str, DagAccess] | None = None,
    ) -> None:
        super().__init__(scope, id, deployment=deployment)
        self.dag_access = dag_access or {}
        ns = deployment.namespace
        vpc = network.vpc
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=ns.cluster,
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        namespace = servicediscovery.PrivateDnsNamespace(
            self, "Namespace", name=ns.dns_namespace, vpc=vpc
        )
        bundles = bundle_secrets(self, deployment)
        self.secrets: dict[str, secretsmanager.ISecret] = {
            "db": data.database.secret,
            **self._cluster_secrets(),
            **bundles,
            **self._web_secrets(),
        }
        self.tasks = tasks_principal(deployment.account)  # whom every task role here trusts
        self.execution_role = task_role(
            self,
            "TaskExecutionRole",
            name=ns.execution_role,
            principal=self.tasks,
            path=ns.role_root,
        )
        self.worker_execution_role = task_role(
            self,
            "WorkerExecutionRole",
            name=ns.worker_execution_role,
            principal=self.tasks,
            path=ns.role_root,
        )
        self.workers_log_group = logs.LogGroup(
            self,
            "WorkersLogs",
            log_group_name=ns.workers_log_group,
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.workers_log_group.grant_write(self.worker_execution_role)
        for key, secret in self.secrets.items():
            secret.grant_read(self.execution_role)
            if key in bundles:
                secret.grant_read(self.worker_execution_role)

        self.alb_sg = self._security_group("AlbSecurityGroup", vpc, "Load balancer")
        self.api_sg = self._security_group("ApiSecurityGroup", vpc, "Airflow api-server")
        self.components_sg = self._security_group(
            "ComponentsSecurityGroup", vpc, "Airflow scheduler, dag-processor and triggerer"
        )
        self.workers_sg = self._security_group(
            "WorkersSecurityGroup", vpc, "Task containers of every DAG: Execution API and HTTPS"
        )
        self._wire_network(data, network)

        image = airflow_image(
            self, deployment.airflow.image, [self.execution_role, self.worker_execution_role]
        )
        self.services: dict[str, AirflowService] = {}
        self.deliveries = Deliveries(self, ns.deliveries(), self._ctx)
        for spec in components(deployment):
            settings = self._settings(spec, network)
            self.services[spec.name] = AirflowService(
                self,
                "".join(part.capitalize() for part in spec.name.split("-")),
                spec=spec,
                namespace=ns,
                principal=self.tasks,
                image=image,
                settings=settings,
                secrets=self.secrets,
                delivered={
                    env: self.deliveries(env, value) for env, value in settings.delivered.items()
                },
                execution_role=self.execution_role,
                cluster=self.cluster,
                security_group=self.api_sg if spec.name == "api-server" else self.components_sg,
                subnets=network.private_subnets,
            )
        api = self.services["api-server"]
        api_service = api.service
        if api_service is None:
            raise ValueError("the api-server runs as a service")
        api_service.enable_cloud_map(
            cloud_map_namespace=namespace,
            name="api-server",
            dns_record_type=servicediscovery.DnsRecordType.A,
        )
        self._grant(api.role, cluster.read_task_logs(deployment.logs_bucket))
        if deployment.celery:
            self._celery_pieces(network)
            self._grant(self.services["scheduler"].role, cluster.dispatch_celery(ns))
        else:
            launch = cluster.launch_dag_tasks(ns, self._ctx)
            self._grant(self.services["scheduler"].role, launch)
        for bundle in deployment.bundles:
            if bundle.bundle == "s3" and deployment.dags_bucket:
                processor = self.services[deployment.dag_processor(bundle)]
                self._grant(
                    processor.role, cluster.read_dag_bundle(deployment.dags_bucket, bundle.name)
                )
        if deployment.airflow.unmanaged_dags == "baseline":
            self._unmanaged_identity(network, image)
        self.url = self._load_balancer(vpc, network, api_service)
        cdk.CfnOutput(self, "AirflowUrl", value=self.url)

    def _celery_pieces(self, network: NetworkStack) -> None:
        """Celery mode: the results table every worker writes and the scheduler reads, and the
        shared workers security group's id for the worker stacks' services."""
        ns = self.deployment.namespace
        dynamodb.Table(
            self,
            "CeleryResults",
            table_name=ns.celery_results_table,
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="ttl",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        ssm.StringParameter(
            self,
            "WorkersSecurityGroupId",
            parameter_name=ns.workers_security_group_parameter,
            description="The security group every DAG's tasks share (Celery worker services)",
            string_value=self.workers_sg.security_group_id,
        )
        self.celery = CeleryPieces(self.cluster, network.private_subnets, self.workers_sg)
        # what each worker stack delivers to its worker services (Deliveries)
        deliveries = self._ctx.ssm_parameter(f"{ns.worker_deliveries}*")
        self.worker_execution_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(catalog().execution_reads.secrets["ssm"]), resources=[deliveries]
            )
        )
        nag.acknowledge(self.worker_execution_role, nag.worker_deliveries(deliveries))

    def _unmanaged_identity(self, network: NetworkStack, image: ecs.ContainerImage) -> None:
        """The identity DAGs without a manifest run as: no grants at all."""
        ns = self.deployment.namespace
        names = ns.unmanaged
        spec = WorkerSpec(
            label="DAGs without a manifest",
            names=names,
            parameter=ns.identity_parameter(UNMANAGED_PARAMETER_NAME),
            size=self.deployment.worker_defaults,
            settings=airflow_settings.unmanaged_worker(self.deployment),
            policies=self._baseline_policies(names),
            bundle=self.deployment.bundle_of(None),  # the only one: baseline needs one bundle
        )
        shared = SharedPieces(
            namespace=ns,
            ctx=self._ctx,
            stack=self,
            principal=self.tasks,
            image=image,
            execution_role=self.worker_execution_role,
            log_group=self.workers_log_group,
            vpc=network.vpc,
            subnet_ids=network.private_subnet_ids,
            secrets=self.secrets,
            deliveries=self.deliveries,
            celery=self.celery if self.deployment.celery else None,
        )
        DagWorker(self, "UnmanagedDags", spec=spec, shared=shared)
        if shared.celery:
            shared.celery.services.write(self)

    def _baseline_policies(self, names: DagNames) -> list:
        """Even a DAG with no grants must load its code from an S3 bundle, and run on its
        Celery worker service."""
        grants = (
            list(celery_worker_grants(self.deployment, names)) if self.deployment.celery else []
        )
        for bundle in self.deployment.bundles:  # one only: config refuses baseline with several
            if bundle.bundle == "s3" and self.deployment.dags_bucket:
                grants.append(cluster.read_dag_bundle(self.deployment.dags_bucket, bundle.name))
        statements = merge([s for g in grants for s in render(g, self._ctx)])
        number([statements])
        return [statements] if statements else []

    def _cluster_secrets(self) -> dict[str, secretsmanager.Secret]:
        def generated(id: str, secret: str, length: int) -> secretsmanager.Secret:
            return secretsmanager.Secret(
                self,
                id,
                secret_name=self.deployment.namespace.secret(secret),
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    password_length=length, exclude_punctuation=True
                ),
            )

        secrets = {
            "fernet": generated("FernetKeyMaterial", "fernet-key-material", 64),
            "jwt": generated("JwtSecret", "jwt-secret", 64),
            "api": generated("ApiSecretKey", "api-secret-key", 48),
        }
        for secret in secrets.values():
            nag.acknowledge(secret, nag.CLUSTER["secrets"])
        return secrets

    def _web_secrets(self) -> dict[str, secretsmanager.ISecret]:
        """The web login's secrets the config names; for simple auth without one, a generated
        password for its one user, as the passwords file's JSON."""
        named = {
            use: secretsmanager.Secret.from_secret_name_v2(self, f"Web-{use}", secret)
            for use, secret in self.deployment.web_secrets.items()
        }
        auth = self.deployment.web.auth
        if isinstance(auth, FabAuth) or named:
            return named
        (user,) = auth.users
        generated = secretsmanager.Secret(
            self,
            "WebPasswords",
            secret_name=self.deployment.namespace.secret("web-passwords"),
            description=f"The Airflow UI and API password of {user!r}",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",
                generate_string_key=user,
                password_length=32,
                exclude_punctuation=True,
            ),
        )
        nag.acknowledge(generated, nag.CLUSTER["secrets"])
        return {"web_passwords": generated}

    def _security_group(self, id: str, vpc: ec2.IVpc, description: str) -> ec2.SecurityGroup:
        return ec2.SecurityGroup(
            self, id, vpc=vpc, description=description, allow_all_outbound=False
        )

    def _wire_network(self, data: DataStack, network: NetworkStack) -> None:
        https = ec2.Port.tcp(443)
        api_port = ec2.Port.tcp(AIRFLOW_PORT)
        postgres = ec2.Port.tcp(5432)
        self.alb_sg.connections.allow_to(self.api_sg, api_port, "ALB to api-server")
        self.workers_sg.connections.allow_to(self.api_sg, api_port, "Tasks to the Execution API")
        self.components_sg.connections.allow_to(self.api_sg, api_port, "Components to the API")
        for sg in (self.api_sg, self.components_sg):
            sg.connections.allow_to(data.db_security_group, postgres, "Metadata database")
        public = {
            self.api_sg: "AWS APIs, image registry, DAG bundle",
            self.components_sg: "AWS APIs, image registry, DAG bundle",
            self.workers_sg: "AWS APIs and image registry",
        }
        groups = tuple(public)
        if network.endpoints_sg is None:
            # what every DAG's tasks may reach without a manifest entry (validate warns of
            # entries that repeat it), and the components alike
            for sg, why in public.items():
                for rule in self.deployment.every_task_egress:
                    sg.add_egress_rule(ec2.Peer.ipv4(rule.cidr), ec2.Port.tcp(rule.port), why)
            return
        # private endpoints: components and tasks alike reach AWS through the VPC's endpoints
        # and S3's gateway, and nothing else (the DAG bundle is in S3 then)
        prefix_list = self.deployment.network.s3_prefix_list_id or ""
        for sg in groups:
            sg.connections.allow_to(network.endpoints_sg, https, "VPC endpoints")
            sg.add_egress_rule(ec2.Peer.prefix_list(prefix_list), https, "S3 gateway")

    def _settings(
        self, spec: ComponentSpec, network: NetworkStack
    ) -> airflow_settings.ComponentSettings:
        bundle = self.deployment.bundle_named(spec.bundle) if spec.bundle else None
        component = DAG_PROCESSOR if bundle else spec.name
        settings = airflow_settings.cluster_component(
            self.deployment, component, self.dag_access, bundle
        )
        if component == "scheduler" and self.deployment.airflow.executor == "ecs":
            settings.environment |= airflow_settings.ecs_executor_network(
                network.private_subnet_ids, self.workers_sg.security_group_id
            )
        return settings

    def _grant(self, role: iam.Role, grant: Grant) -> None:
        statements = cluster.statements(grant, self._ctx)
        for statement in statements:
            role.add_to_principal_policy(iam.PolicyStatement.from_json(statement.document()))
        nag.acknowledge(role, *nag.for_statements(statements))

    @property
    def _ctx(self) -> ArnContext:
        return ArnContext.of(self.deployment)

    def _load_balancer(
        self, vpc: ec2.IVpc, network: NetworkStack, service: ecs.FargateService
    ) -> str:
        web = self.deployment.web
        alb = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=not web.internal,
            security_group=self.alb_sg,
            vpc_subnets=(
                network.private_subnets
                if web.internal
                else ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
            ),
            drop_invalid_header_fields=True,
        )
        nag.acknowledge(alb, nag.CLUSTER["load_balancer_logs"])
        if web.certificate_arn:
            port, protocol = 443, elbv2.ApplicationProtocol.HTTPS
            listener = alb.add_listener(
                "Https",
                port=port,
                protocol=protocol,
                certificates=[elbv2.ListenerCertificate.from_arn(web.certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                open=False,
            )
        else:
            port, protocol = 80, elbv2.ApplicationProtocol.HTTP
            listener = alb.add_listener("Http", port=port, protocol=protocol, open=False)
        for cidr in web.allowed_cidrs:
            self.alb_sg.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), "allowed_cidrs")
        listener.add_targets(
            "ApiServer",
            port=AIRFLOW_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service],
            health_check=elbv2.HealthCheck(path=HEALTH_PATH, healthy_http_codes="200"),
        )
        scheme = "https" if web.certificate_arn else "http"
        return f"{scheme}://{alb.load_balancer_dns_name}"
