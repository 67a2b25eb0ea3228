"""What `foundation deploy` needs in the account before the first deploy: a bucket for published
templates and a CloudFormation service role that change sets run under, so the person deploying
needs no broad rights of their own."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from foundation.config import Deployment
from foundation.iam import deployer
from foundation.iam.catalog import fill
from stacks import nag
from stacks.base import FoundationStack

TEMPLATES_PREFIX = "templates/"
LOCKS_PREFIX = "locks/"
TEMPLATE_DAYS = 30


class BootstrapStack(FoundationStack):
    def __init__(self, scope: Construct, id: str, *, deployment: Deployment) -> None:
        super().__init__(scope, id, deployment=deployment)
        boundary = deployment.iam.permissions_boundary_arn
        if boundary is None:
            raise ValueError("the bootstrap needs iam.permissions_boundary_arn")
        bucket = s3.Bucket(
            self,
            "ArtifactsBucket",
            bucket_name=deployment.artifacts_bucket,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
            lifecycle_rules=[
                s3.LifecycleRule(
                    prefix=TEMPLATES_PREFIX, expiration=cdk.Duration.days(TEMPLATE_DAYS)
                ),
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=cdk.Duration.days(1)),
            ],
        )
        ns = deployment.namespace
        values = deployer.values(ns, deployment.partition, boundary)
        role = iam.Role(
            self,
            "CloudFormationRole",
            role_name=ns.service_role,
            path=ns.bootstrap_role_path,
            description=f"CloudFormation deploys {deployment.name}'s stacks as this role",
            assumed_by=iam.ServicePrincipal(
                "cloudformation.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": deployment.account}},
            ),
        )
        for index, statements in enumerate(deployer.policies(values)):
            policy = iam.ManagedPolicy(
                self,
                f"Deploy{index + 1}",
                managed_policy_name=f"{ns.service_role}-{index + 1}",
                path=ns.bootstrap_role_path,
                document=iam.PolicyDocument.from_json(
                    {"Version": "2012-10-17", "Statement": statements}
                ),
                roles=[role],
            )
            self._acknowledge_wildcards(policy, values)
        nag.acknowledge(bucket, nag.CLUSTER["access_logs"])
        cdk.CfnOutput(self, "ArtifactsBucketName", value=bucket.bucket_name)
        cdk.CfnOutput(self, "CloudFormationRoleArn", value=role.role_arn)

    @staticmethod
    def _acknowledge_wildcards(policy: iam.ManagedPolicy, values: dict[str, str]) -> None:
        """IAM5 per wildcard resource, with the reason deployer.yaml gives for it."""
        reasons: dict[str, list[str]] = {}
        for group in deployer.deployer().groups.values():
            for resource in group.resources:
                if "*" in resource:
                    why = group.why or (
                        "no resource-level permissions"
                        if resource == "*"
                        else "only the deployment's own names"
                    )
                    reasons.setdefault(fill(resource, values), []).append(f"{group.name}: {why}")
        for resource, why in reasons.items():
            rule = nag.Acknowledgement(f"AwsSolutions-IAM5[Resource::{resource}]", "; ".join(why))
            nag.acknowledge(policy, rule)
