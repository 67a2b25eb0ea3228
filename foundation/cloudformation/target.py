"""What deploy, diff and destroy share: the synthesized assembly, the account's bootstrap, and the
plan of every stack against what is live."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation import synth
from foundation.cloudformation import actions
from foundation.cloudformation.actions import Aws, StackState
from foundation.cloudformation.plan import (
    ResourceChange,
    StackPlan,
    is_worker_stack,
    orphaned_worker_stacks,
    service_parameters,
    stack_layers,
    template_changes,
)
from foundation.project import Project, load_project

ARTIFACTS_OUTPUT = "ArtifactsBucketName"
ROLE_OUTPUT = "CloudFormationRoleArn"


class NotReady(Exception):
    """The account or the assembly is not in a state to deploy from (exit 1)."""


@dataclass(frozen=True)
class Assembly:
    out: Path
    layers: list[list[str]]
    bodies: dict[str, bytes]  # stack -> template file bytes

    def template(self, stack: str) -> dict[str, Any]:
        return json.loads(self.bodies[stack])

    @classmethod
    def read(cls, out: Path) -> Assembly:
        manifest = json.loads((out / "manifest.json").read_text())
        bodies = {
            name: (out / artifact["properties"]["templateFile"]).read_bytes()
            for name, artifact in manifest["artifacts"].items()
            if artifact["type"] == "aws:cloudformation:stack"
        }
        return cls(out, stack_layers(manifest), bodies)


def assembly_for(
    project: Project,
    env: str | None,
    out: Path | None,
    on_stage: Callable[[str], None] | None = None,
) -> Assembly:
    """The project's assembly: reused when synthesized from the same inputs, else synthesized."""
    target = (out or project.root / "cdk.out").resolve()
    if not synth.is_up_to_date(target, project.root, env):
        result = synth.run(project.root, env, target, on_stage=on_stage)
        if not result.written:
            errors = "; ".join(str(f) for f in result.errors)
            raise synth.ChecksFailed(f"synth found {len(result.errors)} error(s): {errors}")
    return Assembly.read(target)


@dataclass(frozen=True)
class Bootstrap:
    bucket: str
    role_arn: str


def bootstrap_of(aws: Aws, project: Project) -> Bootstrap:
    """The bootstrap stack's outputs, checked against what `foundation bootstrap` makes for this
    deployment: a stack of that name without them, or with others, is named, never a KeyError."""
    namespace = project.deployment.namespace
    name = namespace.bootstrap_stack
    state = actions.describe_stack(aws.cfn, name)
    if state is None or state.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        found = f"it is {state.status}" if state else "it does not exist"
        raise NotReady(
            f"the account is not bootstrapped ({name}: {found}); run foundation bootstrap"
        )
    d = project.deployment
    expected = {
        ARTIFACTS_OUTPUT: namespace.artifacts_bucket,
        ROLE_OUTPUT: f"arn:{d.partition}:iam::{d.account}:role"
        f"{namespace.bootstrap_role_path}{namespace.service_role}",
    }
    wrong = [
        f"{key} is {state.outputs[key]!r}, expected {value!r}"
        if key in state.outputs
        else f"it has no output {key}"
        for key, value in expected.items()
        if state.outputs.get(key) != value
    ]
    if wrong:
        raise NotReady(
            f"{name} is not this deployment's bootstrap stack as foundation bootstrap makes it: "
            f"{'; '.join(wrong)}. Run foundation bootstrap to update it (or delete a stack of "
            "that name that is not the toolkit's)"
        )
    return Bootstrap(state.outputs[ARTIFACTS_OUTPUT], state.outputs[ROLE_OUTPUT])


@dataclass
class Target:
    """One deployment as it stands: project, assembly, account and live stacks."""

    project: Project
    assembly: Assembly
    aws: Aws
    bootstrap: Bootstrap
    live: dict[str, StackState]

    @property
    def name(self) -> str:
        return self.project.deployment.name

    @property
    def orphans(self) -> list[str]:
        return orphaned_worker_stacks(set(self.live), set(self.assembly.bodies), self.name)

    @property
    def busy(self) -> list[StackState]:
        return [s for s in self.live.values() if s.in_progress]


def connect_to(project: Project, profile: str | None, region: str | None) -> Aws:
    """Clients for the account and region the config names, and only those: the templates
    carry the config's account and region in their ARNs."""
    deployment = project.deployment
    if region and region != deployment.region:
        raise NotReady(f"--region {region}, but the config's region is {deployment.region}")
    aws = actions.connect(profile, deployment.region)
    account = actions.caller_account(aws)
    if account != deployment.account:
        raise NotReady(
            f"the credentials are for account {account}, but the config's account is "
            f"{deployment.account}; choose the profile of that account"
        )
    return aws


def open_target(
    root: Path,
    env: str | None,
    out: Path | None,
    profile: str | None,
    region: str | None,
    on_stage: Callable[[str], None] | None = None,
) -> Target:
    project = load_project(root, env)
    # the account first: wrong credentials or a missing bootstrap are told before a synth
    aws = connect_to(project, profile, region)
    bootstrap = bootstrap_of(aws, project)
    assembly = assembly_for(project, env, out, on_stage)
    name = project.deployment.name
    live = {
        stack: state
        for stack, state in actions.project_stacks(aws.cfn, f"{name}-").items()
        if stack in assembly.bodies or is_worker_stack(stack, name)
    }
    return Target(project, assembly, aws, bootstrap, live)


def plan_stack(target: Target, name: str) -> StackPlan:
    """Publish the stack's template and, for a live stack, compute its change set."""
    aws, assembly = target.aws, target.assembly
    state = target.live.get(name)
    if name not in assembly.bodies:
        deployed = actions.deployed_template(aws.cfn, name)
        return StackPlan(name, "delete", None, deployed, template_changes(deployed, None))
    template = assembly.template(name)
    url = actions.publish_template(
        aws, target.bootstrap.bucket, name, assembly.bodies[name], target.project.deployment.region
    )
    if state is None or state.status in ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE"):
        plan = StackPlan(name, "create", template, None, template_changes(None, template))
        plan.template_url = url
        plan.replaces_failed_create = state is not None and state.status == "ROLLBACK_COMPLETE"
        return plan
    deployed = actions.deployed_template(aws.cfn, name)
    change_set = actions.create_change_set(
        aws,
        name,
        template=url,
        role_arn=target.bootstrap.role_arn,
        create=False,
        parameters=service_parameters(template, deployed),
    )
    changes = [
        ResourceChange.from_aws(c) for c in change_set.changes if c.get("Type") == "Resource"
    ]
    empty = change_set.empty or all(c.first_count_settled for c in changes)
    if empty and not change_set.empty:
        actions.delete_change_set(aws, change_set.id)
    plan = StackPlan(
        name,
        "none" if empty else "update",
        template,
        deployed,
        [] if empty else changes,
        None if empty else change_set.id,
    )
    plan.template_url = url
    return plan


def plan_all(target: Target, selected: list[str] | None, concurrency: int) -> list[StackPlan]:
    """A plan for every selected stack (all, and removed worker stacks, by default)."""
    names = [n for layer in target.assembly.layers for n in layer] + target.orphans
    if selected:
        names = [n for n in names if n in selected]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(plan_stack, target, n) for n in names]
    errors = [f.exception() for f in futures if f.exception()]
    plans = [f.result() for f in futures if not f.exception()]
    if errors:
        discard(target, plans)
        raise errors[0]  # type: ignore[misc]
    return plans


def discard(target: Target, plans: list[StackPlan]) -> None:
    """Delete change sets that will not be executed: none is left behind."""
    for plan in plans:
        if plan.change_set_id:
            actions.delete_change_set(target.aws, plan.change_set_id)
            plan.change_set_id = None
