"""State that outlives deploys: the metadata database, the task-log bucket, the DAG bucket."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from constructs import Construct

from foundation.airflow.settings import DB_NAME
from foundation.config import Deployment
from stacks import nag
from stacks.base import FoundationStack
from stacks.network import NetworkStack

POSTGRES = rds.PostgresEngineVersion.VER_17_9


class DataStack(FoundationStack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        deployment: Deployment,
        network: NetworkStack,
    ) -> None:
        super().__init__(scope, id, deployment=deployment)
        db = deployment.database
        self.db_security_group = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=network.vpc,
            description="Airflow metadata database: reachable from cluster components only",
            allow_all_outbound=False,
        )
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES),
            instance_type=ec2.InstanceType(db.instance_class.removeprefix("db.")),
            vpc=network.vpc,
            vpc_subnets=network.database_subnets,
            security_groups=[self.db_security_group],
            database_name=DB_NAME,
            credentials=rds.Credentials.from_generated_secret(
                "airflow", secret_name=deployment.namespace.secret("database")
            ),
            allocated_storage=db.allocated_storage_gb,
            storage_encrypted=True,
            multi_az=db.multi_az,
            deletion_protection=db.deletion_protection,
            removal_policy=cdk.RemovalPolicy.SNAPSHOT,
            backup_retention=cdk.Duration.days(7),
            auto_minor_version_upgrade=True,
            publicly_accessible=False,
        )
        nag.acknowledge(self.database, nag.CLUSTER["database_port"])
        nag.acknowledge(self.database, nag.CLUSTER["secrets"])
        if not db.deletion_protection:
            rule = nag.config_choice("AwsSolutions-RDS10", "database.deletion_protection")
            nag.acknowledge(self.database, rule)
        if not db.multi_az:
            nag.acknowledge(
                self.database, nag.config_choice("AwsSolutions-RDS3", "database.multi_az")
            )
        self.logs_bucket = _private_bucket(self, "LogsBucket", deployment.logs_bucket)
        self.dags_bucket = (
            _private_bucket(self, "DagsBucket", deployment.dags_bucket)
            if deployment.dags_bucket
            else None
        )


def _private_bucket(scope: Construct, id: str, name: str) -> s3.Bucket:
    bucket = s3.Bucket(
        scope,
        id,
        bucket_name=name,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=True,
        removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        lifecycle_rules=[
            s3.LifecycleRule(noncurrent_version_expiration=cdk.Duration.days(30)),
        ],
    )
    nag.acknowledge(bucket, nag.CLUSTER["access_logs"])
    return bucket
