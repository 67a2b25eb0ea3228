"""The VPC: created from config, or an existing one from explicit ids (never a lookup)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from foundation.config import Deployment
from stacks.base import FoundationStack

# What tasks and components call: queues, logs, image pulls, secrets, credentials, keys, their
# SSM identity and ECS (the scheduler's RunTask).
INTERFACE_ENDPOINTS = {
    "SqsEndpoint": ec2.InterfaceVpcEndpointAwsService.SQS,
    "LogsEndpoint": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "EcrApiEndpoint": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDockerEndpoint": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "SecretsManagerEndpoint": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "StsEndpoint": ec2.InterfaceVpcEndpointAwsService.STS,
    "KmsEndpoint": ec2.InterfaceVpcEndpointAwsService.KMS,
    "SsmEndpoint": ec2.InterfaceVpcEndpointAwsService.SSM,
    "EcsEndpoint": ec2.InterfaceVpcEndpointAwsService.ECS,
}


# The interface endpoint of each service DAGs may be granted (config.DAG_ENDPOINT_SERVICES),
# made only when some DAG is granted it.
DAG_SERVICE_ENDPOINTS = {
    "athena": ec2.InterfaceVpcEndpointAwsService.ATHENA,
    "glue": ec2.InterfaceVpcEndpointAwsService.GLUE,
    "elasticmapreduce": ec2.InterfaceVpcEndpointAwsService.EMR,
    "redshift-data": ec2.InterfaceVpcEndpointAwsService.REDSHIFT_DATA,
    "redshift": ec2.InterfaceVpcEndpointAwsService.REDSHIFT,
    "redshift-serverless": ec2.InterfaceVpcEndpointAwsService.REDSHIFT_SERVERLESS,
    "sns": ec2.InterfaceVpcEndpointAwsService.SNS,
    "lambda": ec2.InterfaceVpcEndpointAwsService.LAMBDA_,
    "dynamodb": ec2.InterfaceVpcEndpointAwsService.DYNAMODB,
}


VPC_ID = "vpc-id"


def private_subnet(index: int) -> str:
    return f"private-subnet-{index}"


def imported_vpc(scope: Construct, deployment: Deployment) -> ec2.IVpc:
    """The deployment's VPC in another stack, by name: the ids the config holds, or the network
    stack's fixed exports. A stack that uses it needs no network stack object, so worker stacks
    build without the cluster stacks (foundation/incremental.py)."""
    net = deployment.network
    if net.creates_vpc:
        ns = deployment.namespace
        vpc_id = cdk.Fn.import_value(ns.network_export(VPC_ID))
        subnets = [
            cdk.Fn.import_value(ns.network_export(private_subnet(i)))
            for i in range(len(net.availability_zones))
        ]
    else:
        vpc_id, subnets = net.vpc_id, net.private_subnet_ids
    return ec2.Vpc.from_vpc_attributes(
        scope,
        "Vpc",
        vpc_id=vpc_id,
        availability_zones=net.availability_zones,
        private_subnet_ids=subnets,
    )


class NetworkStack(FoundationStack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        deployment: Deployment,
        dag_services: set[str] = frozenset(),
    ) -> None:
        super().__init__(scope, id, deployment=deployment)
        self.dag_services = dag_services
        net = deployment.network
        if net.creates_vpc:
            self.vpc: ec2.IVpc = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(net.vpc_cidr),
                availability_zones=net.availability_zones,
                nat_gateways=net.nat_gateway_count,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                    ),
                    ec2.SubnetConfiguration(
                        name="private",
                        subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                        cidr_mask=20,
                    ),
                    ec2.SubnetConfiguration(
                        name="database",
                        subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                        cidr_mask=24,
                    ),
                ],
                flow_logs={
                    "all": ec2.FlowLogOptions(
                        destination=self._flow_log_destination(),
                        traffic_type=ec2.FlowLogTrafficType.ALL,
                    )
                },
                # The restriction is a custom resource (a Lambda asset); nothing here uses the
                # default security group.
                restrict_default_security_group=False,
            )
            self._export_for_workers()
        else:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=net.vpc_id,
                availability_zones=net.availability_zones,
                private_subnet_ids=net.private_subnet_ids,
                public_subnet_ids=net.public_subnet_ids or None,
            )

        self.endpoints_sg: ec2.SecurityGroup | None = None
        if net.private_endpoints:
            self._endpoints()

        # Where the network can be found after deploy; this also keeps the stack non-empty when
        # it only names an existing VPC (CloudFormation refuses a template without resources).
        ssm.StringParameter(
            self,
            "VpcIdParameter",
            parameter_name=f"/{deployment.name}/network/vpc-id",
            string_value=self.vpc.vpc_id,
        )

    def _export_for_workers(self) -> None:
        """The VPC and its private subnets under fixed names (`imported_vpc`)."""
        ns = self.deployment.namespace
        cdk.CfnOutput(
            self, "VpcIdExport", value=self.vpc.vpc_id, export_name=ns.network_export(VPC_ID)
        )
        for index, subnet in enumerate(self.vpc.private_subnets):
            cdk.CfnOutput(
                self,
                f"PrivateSubnet{index}Export",
                value=subnet.subnet_id,
                export_name=ns.network_export(private_subnet(index)),
            )

    def _flow_log_destination(self) -> ec2.FlowLogDestination:
        """CloudWatch Logs, through a role named and placed like every other role here."""
        deployment = self.deployment
        group = logs.LogGroup(
            self,
            "FlowLogs",
            log_group_name=deployment.namespace.log_group("vpc-flow-logs"),
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        role = iam.Role(
            self,
            "FlowLogsRole",
            role_name=deployment.namespace.role("vpc-flow-logs"),
            path=deployment.namespace.role_root,
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": deployment.account}},
            ),
        )
        return ec2.FlowLogDestination.to_cloud_watch_logs(group, role)

    def _endpoints(self) -> None:
        """S3 by its gateway; the other AWS APIs the cluster and its tasks call by interface
        endpoints with private DNS, reachable on 443 from inside the VPC only."""
        self.vpc.add_gateway_endpoint(
            "S3Endpoint",
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[self.private_subnets],
        )
        self.endpoints_sg = ec2.SecurityGroup(
            self,
            "EndpointsSecurityGroup",
            vpc=self.vpc,
            description="VPC interface endpoints: HTTPS from inside the VPC",
            allow_all_outbound=False,
        )
        cidr = self.deployment.network.vpc_cidr  # literal: cdk-nag's EC23 cannot read a token
        self.endpoints_sg.add_ingress_rule(
            ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from the VPC"
        )
        endpoints = dict(INTERFACE_ENDPOINTS)
        for service in sorted(self.dag_services & DAG_SERVICE_ENDPOINTS.keys()):
            name = "".join(part.capitalize() for part in service.split("-"))
            endpoints[f"{name}Endpoint"] = DAG_SERVICE_ENDPOINTS[service]
        for id, service in endpoints.items():
            self.vpc.add_interface_endpoint(
                id,
                service=service,
                subnets=self.private_subnets,
                security_groups=[self.endpoints_sg],
                private_dns_enabled=True,
                open=False,
            )

    @property
    def private_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

    @property
    def private_subnet_ids(self) -> list[str]:
        return self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids

    @property
    def database_subnets(self) -> ec2.SubnetSelection:
        if self.vpc.isolated_subnets:
            return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        return self.private_subnets
