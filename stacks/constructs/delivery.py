"""Values too large to repeat in every task definition (ECS takes 64 KiB each), delivered once
per stack as SSM parameters (runtime_files.delivery) that its containers get as ECS secrets."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from foundation.airflow import runtime_files
from foundation.iam.policy import ArnContext


@dataclass(frozen=True)
class Delivered:
    """One value's parameters, and the ECS secrets `<ENV>_<i>` that inject them: named by
    literal ARN (a `Fn::Join` of the partition and a `Ref` costs cfn-lint 8 ms each, two per
    Celery DAG), so a task definition that reads them depends on `parameters` explicitly."""

    parameters: list[ssm.StringParameter]
    secrets: dict[str, ecs.Secret]

    def read_by(self, task_definition: ecs.TaskDefinition) -> None:
        task_definition.node.add_dependency(*self.parameters)


class Deliveries:
    """The parameters of each value delivered in one stack (under `folder`:
    Namespace.deliveries), made once however many containers read them."""

    def __init__(self, scope: Construct, folder: str, ctx: ArnContext) -> None:
        self.scope, self.folder, self.ctx = scope, folder, ctx
        self._made: dict[tuple[str, str], Delivered] = {}

    def __call__(self, env: str, value: str) -> Delivered:
        key = (env, value)
        if key not in self._made:
            digest, parts = runtime_files.delivery(self.folder, env, value)
            prefix = f"{env.title().replace('_', '')}{digest}Part"
            parameters = [
                ssm.StringParameter(
                    self.scope,
                    f"{prefix}{i}",
                    parameter_name=name,
                    string_value=chunk,
                    description=f"{env}, part {i}: joined in the container before use",
                )
                for i, (name, chunk) in enumerate(parts)
            ]
            secrets = {
                f"{env}_{i}": ecs.Secret.from_ssm_parameter(
                    ssm.StringParameter.from_string_parameter_arn(
                        self.scope, f"{prefix}{i}Arn", self.ctx.ssm_parameter(name)
                    )
                )
                for i, (name, _) in enumerate(parts)
            }
            self._made[key] = Delivered(parameters, secrets)
        return self._made[key]
