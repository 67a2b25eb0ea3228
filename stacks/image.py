"""The Airflow image: from a public registry, or from ECR, whose pulls need the execution roles
to hold ECR's read actions (a repository policy cannot grant ecr:GetAuthorizationToken)."""

from __future__ import annotations

import re

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks import nag

ECR_IMAGE = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?"
)


def airflow_image(scope: Construct, image: str, pullers: list[iam.IRole]) -> ecs.ContainerImage:
    """The image for task definitions; an ECR image's pull is granted to `pullers`."""
    found = ECR_IMAGE.fullmatch(image)
    if found is None:
        return ecs.ContainerImage.from_registry(image)
    partition = "aws-cn" if image.split("/", 1)[0].endswith(".cn") else "aws"
    repository = ecr.Repository.from_repository_attributes(
        scope,
        "AirflowRepository",
        repository_arn=f"arn:{partition}:ecr:{found['region']}:{found['account']}:repository/"
        f"{found['repository']}",
        repository_name=found["repository"],
    )
    for role in pullers:
        repository.grant_pull(role)
        why = "ecr:GetAuthorizationToken takes no resource-level permissions"
        nag.acknowledge(role, nag.Acknowledgement("AwsSolutions-IAM5[Resource::*]", why))
    return ecs.ContainerImage.from_registry(image)
