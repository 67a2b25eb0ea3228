"""One DAG's identity: its task role and policies, task definition, egress, and the SSM parameter
the scheduler reads to launch the DAG's tasks under them."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from foundation.airflow.settings import WORKER_CONTAINER, ComponentSettings
from foundation.config import WorkerSize
from foundation.iam.policy import DagPolicy
from foundation.manifest import DagManifest
from foundation.naming import DagNames, identity_parameter, role_path

DAG_ID_TAG = "foundation:dag_id"


class DagWorker(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project: str,
        account: str,
        manifest: DagManifest,
        policy: DagPolicy,
        size: WorkerSize,
        settings: ComponentSettings,
        image: ecs.ContainerImage,
        execution_role: iam.IRole,
        log_group: logs.ILogGroup,
        vpc: ec2.IVpc,
        subnet_ids: list[str],
    ) -> None:
        super().__init__(scope, id)
        names = DagNames(project, manifest.dag_id)
        self.role = iam.Role(
            self,
            "TaskRole",
            role_name=names.role,
            path=role_path(project),
            description=f"Tasks of DAG {manifest.dag_id}"[:1000],
            assumed_by=iam.ServicePrincipal(
                "ecs-tasks.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            ),
        )
        for index, statements in enumerate(policy.policies):
            iam.ManagedPolicy(
                self,
                f"Policy{index + 1}",
                managed_policy_name=names.managed_policy(index),
                path=role_path(project),
                document=iam.PolicyDocument.from_json(
                    {"Version": "2012-10-17", "Statement": [s.document() for s in statements]}
                ),
                roles=[self.role],
            )
        self.security_group = ec2.SecurityGroup(
            self,
            "Egress",
            vpc=vpc,
            security_group_name=names.security_group,
            description=f"Egress declared by DAG {manifest.dag_id}"[:255],
            allow_all_outbound=False,
        )
        for rule in manifest.network.egress:
            port = ec2.Port.tcp(rule.port) if rule.protocol == "tcp" else ec2.Port.udp(rule.port)
            self.security_group.add_egress_rule(ec2.Peer.ipv4(rule.cidr), port, rule.description)
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=names.task_family,
            cpu=size.cpu,
            memory_limit_mib=size.memory,
            task_role=self.role,
            execution_role=execution_role,
        )
        self.task_definition.add_container(
            "airflow",
            container_name=WORKER_CONTAINER,
            image=image,
            environment=settings.environment,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=names.suffix, log_group=log_group),
        )
        self.identity = ssm.StringParameter(
            self,
            "Identity",
            parameter_name=identity_parameter(project, manifest.dag_id),
            description=f"Run-time identity of DAG {manifest.dag_id}"[:1024],
            string_value=cdk.Stack.of(self).to_json_string(
                {
                    "task_definition": names.task_family,
                    "task_role_arn": self.role.role_arn,
                    "security_groups": [self.security_group.security_group_id],
                    "subnets": subnet_ids,
                    "bundle": manifest.bundle,
                }
            ),
        )
        cdk.Tags.of(self).add(DAG_ID_TAG, manifest.dag_id)
