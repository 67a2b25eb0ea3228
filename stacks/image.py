"""The Airflow image: from a public registry, or from ECR, whose pulls need the execution roles
to hold ECR's read actions (a repository policy cannot grant ecr:GetAuthorizationToken)."""

from __future__ import annotations

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from constructs import Construct

from foundation.iam.arns import ecr_repository
from stacks import nag


def airflow_image(scope: Construct, image: str, pullers: list[iam.IRole]) -> ecs.ContainerImage:
    """The image for task definitions; an ECR image's pull is granted to `pullers`."""
    arn = ecr_repository(image)
    if arn is None:
        return ecs.ContainerImage.from_registry(image)
    repository = ecr.Repository.from_repository_attributes(
        scope, "AirflowRepository", repository_arn=arn, repository_name=arn.split("/", 1)[1]
    )
    for role in pullers:
        repository.grant_pull(role)
        why = "ecr:GetAuthorizationToken takes no resource-level permissions"
        nag.acknowledge(role, nag.Acknowledgement("AwsSolutions-IAM5[Resource::*]", why))
    return ecs.ContainerImage.from_registry(image)
