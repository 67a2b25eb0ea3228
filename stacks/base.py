"""What every stack of the toolkit shares."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from foundation.config import Deployment


class FoundationStack(cdk.Stack):
    """A stack in the deployment's account and region whose AZs come from config.

    CDK would otherwise look the AZs up (a context lookup that in-process synthesis answers with
    dummy values).
    """

    def __init__(self, scope: Construct, id: str, *, deployment: Deployment) -> None:
        super().__init__(
            scope,
            id,
            env=cdk.Environment(account=deployment.account, region=deployment.region),
            synthesizer=cdk.BootstraplessSynthesizer(),
        )
        self.deployment = deployment

    @property
    def availability_zones(self) -> list[str]:
        return list(self.deployment.network.availability_zones)
