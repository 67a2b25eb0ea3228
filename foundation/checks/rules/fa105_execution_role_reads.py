"""FA105: ECS starts a task only once its execution role has read every secret the task
definition names (a container's Secrets, its log driver's SecretOptions, its registry
credentials), pulled its ECR image and opened its awslogs stream; a role that may not fails
every start of the task (ResourceInitializationError, CannotPullContainerError), which no check
of CloudFormation's sees.

Each task definition's execution role (a `GetAtt` of a role, in its stack or through an
export, or an ARN naming a role of any stack) is looked up in the assembly, and each read is
evaluated against the role's statements by the toolkit's IAM evaluation, as a request for one
resource (`catalog.execution_reads` names the actions): a secret's own ARN, references
resolved in the deployment's partition, region and account (a secret declared in a template
ends in a sample of its six random characters; one named by a literal ARN is named by name, as
the toolkit's config names secrets, so its random ending is added), and the log stream ECS
opens.

The rule proves, so it is strict: a read counts as allowed only through a statement with no
condition whose resource the templates resolve; a Deny of the role that may apply refuses it,
whatever its condition; anything it cannot resolve is a finding, and so is a secret named by a
partial ARN whose name ends as a complete ARN does (Secrets Manager would not find it).
Not read: the permissions boundary (the deployment owner's policy, outside the templates),
resource policies, and kms:Decrypt for a secret under a customer managed key (the toolkit's
secrets use the AWS managed key).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.iam.arns import SECRET_SUFFIX, ecr_repository
from foundation.iam.catalog import catalog
from foundation.iam.effective import (
    PSEUDO,
    SECRET_SAMPLE,
    UNRESOLVED,
    Grant,
    RoleGrants,
    Scope,
    as_object,
    exports_of,
    render,
    resources_of,
    roles_of,
)
from foundation.iam.evaluate import Request, allows
from foundation.iam.policy import ArnContext

TASK_ID = "0123456789abcdef0123456789abcdef"  # a task's id, in the log stream ECS opens for it
# what Secrets Manager takes for the random ending of a complete ARN
_LOOKS_COMPLETE = re.compile(r"-[A-Za-z0-9]{6}$")


@dataclass(frozen=True)
class Read:
    """One call ECS makes with the execution role: the actions on one resource, and why."""

    actions: tuple[str, ...]
    arn: str
    why: str


class ExecutionRoleReads(Rule):
    id = "FA105"
    description = "Each task definition's execution role may read its secrets and write its logs"

    def check(self, assembly: Assembly) -> Iterator[Finding]:
        ctx = ArnContext(*(assembly.context[k] for k in ("partition", "region", "account")))
        roles = ExecutionRoles(assembly, ctx)
        for stack in assembly.stacks:
            for logical_id, resource in resources_of(stack.template).items():
                if resource.get("Type") == "AWS::ECS::TaskDefinition":
                    for message in roles.refused(stack, resource["Properties"]):
                        yield self.finding(stack.name, logical_id, message)


class ExecutionRoles:
    """The assembly's roles, found as task definitions name them, with their statements."""

    def __init__(self, assembly: Assembly, ctx: ArnContext) -> None:
        self.ctx = ctx
        self.reads = catalog().execution_reads
        self.templates = {s.name: s.template for s in assembly.stacks}
        self.pseudo = dict(zip(PSEUDO, (ctx.partition, ctx.region, ctx.account), strict=True))
        self.exports = exports_of(self.templates)
        self.by_arn = dict(self._named_roles())
        self._roles: dict[str, dict[str, RoleGrants]] = {}  # by stack, then logical id

    def _named_roles(self) -> Iterator[tuple[str, tuple[str, str]]]:
        """Each role with a literal name: its ARN, its stack and logical id."""
        for stack, template in self.templates.items():
            for logical_id, resource in resources_of(template).items():
                name = resource["Properties"].get("RoleName")
                if resource.get("Type") == "AWS::IAM::Role" and isinstance(name, str):
                    path = resource["Properties"].get("Path", "/")
                    yield self.ctx.role(path, name), (stack, logical_id)

    def refused(self, stack: StackTemplate, props: dict[str, Any]) -> Iterator[str]:
        scope = Scope(as_object(stack.template.get("Resources")), self.pseudo, self.exports, True)
        containers = props.get("ContainerDefinitions", [])
        if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
            yield "ContainerDefinitions is not a list of containers: its reads cannot be checked"
            return
        reads: list[Read | str] = [r for c in containers for r in self._reads(c, scope)]
        if not reads:
            return
        named = props.get("ExecutionRoleArn")
        role = self._role(stack.name, named, scope)
        if named is None:
            yield "no execution role: ECS could not read its secrets or write its logs"
            return
        if role is None:
            yield (
                f"execution role {render(named, scope)}: not a role of the assembly, so its "
                "reads cannot be checked"
            )
            return
        for read in reads:
            if isinstance(read, str):
                yield read
            else:
                yield from _refusals(role, read)

    def _role(self, stack: str, named: Any, scope: Scope) -> RoleGrants | None:
        imported = named.get("Fn::ImportValue") if isinstance(named, dict) else None
        if isinstance(imported, str) and imported in self.exports:
            export = self.exports[imported]
            stack, named, scope = export.stack, export.value, scope.within(export.resources)
        got = named.get("Fn::GetAtt") if isinstance(named, dict) else None
        if isinstance(got, str):
            got = got.split(".", 1)
        if isinstance(got, list) and len(got) == 2 and got[1] == "Arn":
            where: tuple[str, str] | None = (stack, got[0])
        else:
            where = self.by_arn.get(render(named, scope)) if named is not None else None
        if where is None:
            return None
        if where[0] not in self._roles:
            found = roles_of(self.templates, {}, self.pseudo, only={where[0]}, concrete=True)
            self._roles[where[0]] = {r.logical_id: r for r in found}
        return self._roles[where[0]].get(where[1])

    def _reads(self, container: dict[str, Any], scope: Scope) -> Iterator[Read | str]:
        """Each call ECS makes with the execution role for the container, or why FA105 cannot
        tell what one would ask for."""
        name = container.get("Name", "?")
        logging = as_object(container.get("LogConfiguration"))
        for field, secrets in (
            ("Secrets", container.get("Secrets", [])),
            ("LogConfiguration.SecretOptions", logging.get("SecretOptions", [])),
        ):
            if not isinstance(secrets, list):
                yield f"container {name}'s {field} is not a list: its reads cannot be checked"
                continue
            for secret in secrets:
                env = as_object(secret).get("Name", "?")
                yield self._secret(
                    as_object(secret).get("ValueFrom"), scope, f"container {name}'s secret {env}"
                )
        credentials = as_object(container.get("RepositoryCredentials")).get("CredentialsParameter")
        if credentials is not None:  # a private registry's: a Secrets Manager secret
            yield self._secret(credentials, scope, f"container {name}'s repository credentials")
        yield from self._image(name, container.get("Image"), scope)
        if logging.get("LogDriver") == "awslogs":
            yield from self._awslogs(name, as_object(logging.get("Options")), scope)

    def _secret(self, value: Any, scope: Scope, why: str) -> Read | str:
        """The read of a secret or parameter ECS injects: its own ARN (a secret's without a JSON
        key, version stage or id), or why there is none to check."""
        if value is None:
            return f"{why} has no ValueFrom"
        if not isinstance(value, str | dict):
            return f"{why} names {value!r}, neither an ARN nor a name"
        text = render(value, scope)
        if UNRESOLVED.search(text):
            return f"{why} names {text}, which FA105 cannot resolve to a resource"
        if not text.startswith("arn:"):  # a parameter of the task's region, by name
            text = self.ctx.ssm_parameter(text if text.startswith("/") else f"/{text}")
        parts = text.split(":")
        service = parts[2] if len(parts) > 2 else ""
        if service not in self.reads.secrets:
            return (
                f"{why} names {text}: ECS injects only Secrets Manager secrets and SSM parameters"
            )
        if service == "secretsmanager":
            text = ":".join(parts[:7])
            declared = render(value, dataclasses.replace(scope, concrete=False))
            if not ":".join(declared.split(":")[:7]).endswith(SECRET_SUFFIX):  # a partial ARN
                if _LOOKS_COMPLETE.search(text):
                    return (
                        f"{why} names {text} by partial ARN, and its name ends as a complete "
                        "ARN does (a dash and six characters): Secrets Manager reads it as "
                        "complete and finds no secret; rename the secret"
                    )
                text += f"-{SECRET_SAMPLE}"
        return Read(self.reads.secrets[service], text, why)

    def _image(self, container: str, image: Any, scope: Scope) -> Iterator[Read | str]:
        """An ECR image's pull (a public registry's asks the role for nothing)."""
        why = f"container {container}'s image"
        text = render(image, scope)
        if UNRESOLVED.search(text):
            yield f"{why} is {text}, which FA105 cannot resolve"
        elif repository := ecr_repository(text):
            yield Read(self.reads.ecr_image, repository, why)
            yield Read(self.reads.ecr_login, "*", why)

    def _awslogs(
        self, container: str, options: dict[str, Any], scope: Scope
    ) -> Iterator[Read | str]:
        why = f"container {container}'s awslogs driver"
        group, region, prefix = (
            render(options.get(k, default), scope)
            for k, default in (
                ("awslogs-group", None),
                ("awslogs-region", self.ctx.region),
                ("awslogs-stream-prefix", None),
            )
        )
        if "awslogs-group" not in options or UNRESOLVED.search(group + region + prefix):
            yield f"{why}: its log group, region or stream prefix is not one FA105 can resolve"
            return
        stream = (
            f"{prefix}/{container}/{TASK_ID}" if "awslogs-stream-prefix" in options else TASK_ID
        )
        log_group = ArnContext(self.ctx.partition, region, self.ctx.account).log_group(group)
        yield Read(self.reads.awslogs, f"{log_group}:log-stream:{stream}", why)
        if str(options.get("awslogs-create-group")).lower() == "true":
            yield Read(self.reads.awslogs_create_group, log_group, why)


def _refusals(role: RoleGrants, read: Read) -> Iterator[str]:
    for action in read.actions:
        request = Request(action, read.arn)
        denied = [d for d in role.denies if allows([_may_apply(d)], request, known=frozenset())]
        if denied:
            by = denied[0].policy
            yield f"execution role {role.name} is denied {action} {read.arn} by {by} ({read.why})"
        elif not allows([s for g in role.grants if (s := _certain(g))], request):
            unknown = [g.policy for g in role.grants if g.unknown]
            note = f"; its {', '.join(unknown)} is not in the templates" if unknown else ""
            yield f"execution role {role.name} may not {action} {read.arn} ({read.why}{note})"


def _certain(grant: Grant) -> dict[str, Any] | None:
    """The grant as a statement that allows for certain: none with a condition (ECS's request
    carries keys FA105 cannot know), nothing through a resource the templates leave unresolved
    (in NotResource, one could take out anything)."""
    resolved = [r for r in grant.resources if not UNRESOLVED.search(r)]
    if (
        grant.unknown
        or grant.condition
        or (grant.not_resource and resolved != list(grant.resources))
    ):
        return None
    return grant.as_statement() | {"NotResource" if grant.not_resource else "Resource": resolved}


def _may_apply(deny: Grant) -> dict[str, Any]:
    """A Deny as an Allow statement that applies wherever the Deny may (for `allows`): its
    conditions set aside, an unresolved resource matching anything, and taking out nothing in
    NotResource."""
    statement = {k: v for k, v in deny.as_statement().items() if k != "Condition"}
    if deny.not_resource:
        statement["NotResource"] = [r for r in deny.resources if not UNRESOLVED.search(r)]
    else:
        statement["Resource"] = [UNRESOLVED.sub("*", r) for r in deny.resources]
    return statement
