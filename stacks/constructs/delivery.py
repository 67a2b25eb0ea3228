"""Values too large to repeat in every task definition (ECS takes 64 KiB each), delivered once
per stack as SSM parameters (runtime_files.delivery) that its containers get as ECS secrets."""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct

from foundation.airflow import runtime_files


class Deliveries:
    """The parameters of each value delivered in one stack (under `folder`:
    Namespace.deliveries), made once however many containers read them."""

    def __init__(self, scope: Construct, folder: str) -> None:
        self.scope, self.folder = scope, folder
        self._made: dict[tuple[str, str], list[ssm.IStringParameter]] = {}

    def __call__(self, env: str, value: str) -> list[ssm.IStringParameter]:
        key = (env, value)
        if key not in self._made:
            self._made[key] = [
                ssm.StringParameter(
                    self.scope,
                    f"{env.title().replace('_', '')}{name.split('/')[-2]}Part{i}",
                    parameter_name=name,
                    string_value=chunk,
                    description=f"{env}, part {i}: joined in the container before use",
                )
                for i, (name, chunk) in enumerate(runtime_files.delivery(self.folder, env, value))
            ]
        return self._made[key]
