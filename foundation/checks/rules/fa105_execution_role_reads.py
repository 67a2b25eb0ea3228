"""FA105: ECS starts a task only once its execution role has read every secret the task
definition injects and opened its awslogs stream; a role that may not fails every start of the
task (ResourceInitializationError), which no template check of CloudFormation's sees.

Each task definition's execution role (a `GetAtt` of a role in its stack, or an ARN naming a
role of any stack) is looked up in the assembly, and each read is evaluated against the role's
statements by the toolkit's IAM evaluation (`catalog.execution_reads` names the actions), as a
request for one resource: a secret's own ARN (references resolved; a secret name's ARN ends in
six random characters, here a sample) and the log stream ECS opens. A statement's resource that
stays an unresolved reference allows only the same reference in the same stack. Conditions are
set aside. A secret encrypted with a customer managed key also needs kms:Decrypt, not checked:
the toolkit's secrets use the AWS managed key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.iam.catalog import catalog
from foundation.iam.effective import (
    PSEUDO,
    UNRESOLVED,
    RoleGrants,
    Scope,
    exports_of,
    render,
    roles_of,
)
from foundation.iam.evaluate import Request, allows, glob
from foundation.iam.policy import ArnContext

TASK_ID = "0123456789abcdef0123456789abcdef"  # a task's id, in the log stream ECS opens for it
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


class ExecutionRoleReads(Rule):
    id = "FA105"
    description = "Each task definition's execution role may read its secrets and write its logs"

    def check(self, assembly: Assembly) -> Iterator[Finding]:
        ctx = ArnContext(*(assembly.context[k] for k in ("partition", "region", "account")))
        reads = Reads(assembly, ctx)
        for stack in assembly.stacks:
            for logical_id, resource in stack.resources.items():
                if resource.get("Type") == "AWS::ECS::TaskDefinition":
                    for message in reads.refused(stack, resource.get("Properties", {})):
                        yield self.finding(stack.name, logical_id, message)


class Reads:
    """What the assembly's task definitions ask of their execution roles."""

    def __init__(self, assembly: Assembly, ctx: ArnContext) -> None:
        self.ctx = ctx
        self.templates = {s.name: s.template for s in assembly.stacks}
        self.pseudo = dict(zip(PSEUDO, (ctx.partition, ctx.region, ctx.account), strict=True))
        self.exports = exports_of(self.templates)
        self.by_arn = {
            self._role_arn(r["Properties"]): (stack, logical_id)
            for stack, template in self.templates.items()
            for logical_id, r in template.get("Resources", {}).items()
            if r.get("Type") == "AWS::IAM::Role"
            and isinstance(r.get("Properties", {}).get("RoleName"), str)
        }
        self._grants: dict[str, dict[str, RoleGrants]] = {}  # by stack, then logical id

    def _role_arn(self, props: dict[str, Any]) -> str:
        path = props.get("Path", "/")
        return f"arn:{self.ctx.partition}:iam::{self.ctx.account}:role{path}{props['RoleName']}"

    def refused(self, stack: StackTemplate, props: dict[str, Any]) -> Iterator[str]:
        containers = props.get("ContainerDefinitions", [])
        if not any(c.get("Secrets") or _awslogs(c) is not None for c in containers):
            return
        scope = Scope(stack.resources, self.pseudo, self.exports)
        named = props.get("ExecutionRoleArn")
        role = self._role(stack.name, named, scope)
        if role is None:
            shown = render(named, scope) if named is not None else "none"
            yield (
                f"execution role {shown}: not a role of the assembly, so what it may read "
                "cannot be checked"
            )
            return
        for container in containers:
            name = container.get("Name", "?")
            for secret in container.get("Secrets", []):
                why = f"container {name}'s secret {secret.get('Name', '?')}"
                yield from self._read(role, stack.name, secret.get("ValueFrom"), scope, why)
            if (options := _awslogs(container)) is not None:
                yield from self._logs(role, name, options, scope)

    def _role(self, stack: str, named: Any, scope: Scope) -> RoleGrants | None:
        got = named.get("Fn::GetAtt") if isinstance(named, dict) else None
        if isinstance(got, list) and len(got) == 2 and got[1] == "Arn":
            where: tuple[str, str] | None = (stack, got[0])
        else:
            where = self.by_arn.get(render(named, scope)) if named is not None else None
        if where is None:
            return None
        if where[0] not in self._grants:
            found = roles_of(self.templates, {}, self.pseudo, only={where[0]})
            self._grants[where[0]] = {r.logical_id: r for r in found}
        return self._grants[where[0]].get(where[1])

    def _read(
        self, role: RoleGrants, stack: str, value: Any, scope: Scope, why: str
    ) -> Iterator[str]:
        by_service = catalog().execution_reads["secrets"]
        arn = self._requested(value, scope)
        if arn is None:
            rendered = render(value, scope)
            every = [a for actions in by_service.values() for a in actions]
            if role.stack != stack or not any(_same_reference(role, a, rendered) for a in every):
                yield (
                    f"{why} names {rendered}, which neither resolves to a resource nor is "
                    f"named by a statement of execution role {role.name}"
                )
            return
        service = arn.split(":")[2]
        if service not in by_service:
            yield f"{why} names {arn}: ECS injects only Secrets Manager secrets and SSM parameters"
            return
        for action in by_service[service]:
            if not _allowed(role, action, arn):
                yield f"execution role {role.name} may not {action} {arn} ({why})"

    def _requested(self, value: Any, scope: Scope) -> str | None:
        """The ARN ECS asks for: a secret's own (with its random ending when named by name or
        partial ARN, without a JSON key, version stage or id), or an SSM parameter's; None when a
        reference stays unresolved."""
        text = render(value, Scope(scope.resources, scope.pseudo, scope.exports, concrete=True))
        if UNRESOLVED.search(text):
            return None
        if not text.startswith("arn:"):  # a parameter of the task's region, by name
            return self.ctx.ssm_parameter(text if text.startswith("/") else f"/{text}")
        parts = text.split(":")
        if len(parts) >= 7 and parts[2] == "secretsmanager":
            arn = ":".join(parts[:7])
            return arn if _SECRET_SUFFIX.search(arn) else f"{arn}-AbC123"
        return text

    def _logs(
        self, role: RoleGrants, container: str, options: dict[str, Any], scope: Scope
    ) -> Iterator[str]:
        group = render(options.get("awslogs-group"), scope)
        region = render(options.get("awslogs-region", self.ctx.region), scope)
        prefix = options.get("awslogs-stream-prefix")
        stream = f"{prefix}/{container}/{TASK_ID}" if isinstance(prefix, str) else TASK_ID
        arn = (
            f"arn:{self.ctx.partition}:logs:{region}:{self.ctx.account}:log-group:{group}"
            f":log-stream:{stream}"
        )
        for action in catalog().execution_reads["awslogs"]:
            if UNRESOLVED.search(arn) or not _allowed(role, action, arn):
                yield (
                    f"execution role {role.name} may not {action} {arn} (container {container}'s "
                    "awslogs driver)"
                )


def _awslogs(container: dict[str, Any]) -> dict[str, Any] | None:
    """The awslogs driver's options, if the container logs through it."""
    logging = container.get("LogConfiguration") or {}
    return logging.get("Options", {}) if logging.get("LogDriver") == "awslogs" else None


def _allowed(role: RoleGrants, action: str, arn: str) -> bool:
    """Whether a statement of the role allows `action` on `arn` through resources the templates
    resolve (conditions set aside): an unresolved reference in Resource allows nothing here,
    and one in NotResource may take out anything."""
    statements = []
    for grant in role.grants:
        resolved = [r for r in grant.resources if not UNRESOLVED.search(r)]
        if grant.unknown or (grant.not_resource and len(resolved) < len(grant.resources)):
            continue
        statement = grant.as_statement()
        statement["NotResource" if grant.not_resource else "Resource"] = resolved
        statements.append(statement)
    return allows(statements, Request(action, arn), known=frozenset())


def _same_reference(role: RoleGrants, action: str, rendered: str) -> bool:
    """Whether an Action statement of the role allows `action` on the very reference the task
    definition names."""
    return any(
        not (grant.not_action or grant.not_resource or grant.unknown)
        and rendered in grant.resources
        and any(glob(a, action, case_sensitive=False) for a in grant.actions)
        for grant in role.grants
    )
