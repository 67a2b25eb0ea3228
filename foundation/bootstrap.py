"""`foundation bootstrap`: the toolkit's own stack in the account (artifacts bucket and the
CloudFormation service role), deployed with the caller's credentials through a change set."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from foundation.checks.model import ERROR, Assembly
from foundation.checks.rules.fa301_cdk_nag import CdkNag
from foundation.cloudformation import actions
from foundation.cloudformation.plan import ResourceChange, StackPlan, template_changes
from foundation.cloudformation.target import connect_to
from foundation.deploy import Confirm, Outcome, Refused, Reporter, follow
from foundation.errors import InvalidInput
from foundation.project import Project, load_project
from foundation.synth import NodeMissing


def template_body(project: Project) -> str:
    """The bootstrap stack's template, after cdk-nag and cfn-lint found nothing in it."""
    if shutil.which("node") is None:
        raise NodeMissing("Node.js (node) is not on PATH: aws-cdk-lib needs it to synthesize")
    from foundation.checks import cfn_lint  # imports cfnlint and sympy: only when needed
    from stacks.app import build_bootstrap_app  # starts Node: only when needed

    with tempfile.TemporaryDirectory() as out:
        build_bootstrap_app(project.deployment, out).synth()
        assembly = Assembly.read(Path(out), {"region": project.deployment.region})
        errors = [
            f
            for f in [*CdkNag().check(assembly), *cfn_lint.run(assembly).findings]
            if f.severity == ERROR
        ]
        if errors:
            raise Refused("the bootstrap template fails its checks: " + "; ".join(map(str, errors)))
        name = project.deployment.namespace.bootstrap_stack
        return (Path(out) / f"{name}.template.json").read_text()


def _require_boundary(project: Project) -> None:
    if project.deployment.iam.permissions_boundary_arn or project.config is None:
        return
    problem = project.config.problem(
        ("iam", "permissions_boundary_arn"),
        "foundation bootstrap needs a permissions boundary: the CloudFormation service role may "
        "create roles only with it (set the ARN of a managed policy your organisation uses)",
    )
    raise InvalidInput([problem])


def run(
    root: Path,
    env: str | None,
    profile: str | None,
    region: str | None,
    yes: bool,
    reporter: Reporter,
    confirm: Confirm | None,
) -> Outcome:
    project = load_project(root, env)
    _require_boundary(project)
    aws = connect_to(project, profile, region)  # wrong credentials are told before a synth
    body = template_body(project)
    name = project.deployment.namespace.bootstrap_stack
    state = actions.describe_stack(aws.cfn, name)
    if state and state.in_progress:
        raise Refused(f"{name} is {state.status}; wait for it to end")
    if state and state.status == "ROLLBACK_COMPLETE":
        reporter.status(name, "deleting the stack a failed create left behind")
        deleted = _follow(
            aws, name, reporter, lambda: actions.delete_stack(aws, name, None), "deleted"
        )
        if not deleted.ok:
            return deleted
        state = None
    create = state is None or state.status == "REVIEW_IN_PROGRESS"
    new = json.loads(body)
    deployed = None if create else actions.deployed_template(aws.cfn, name)
    change_set = actions.create_change_set(aws, name, template=body, role_arn=None, create=create)
    executed = False
    try:
        changes = (
            template_changes(None, new)
            if create
            else [
                ResourceChange.from_aws(c)
                for c in change_set.changes
                if c.get("Type") == "Resource"
            ]
        )
        action = "none" if change_set.empty else ("create" if create else "update")
        plan = StackPlan(name, action, new, deployed, changes)
        reporter.plan([plan], None)
        if change_set.empty:
            return Outcome(name, "no changes", state.status if state else "")
        reasons = plan.approval_reasons
        if reasons and not yes and not (confirm and confirm(reasons)):
            raise Refused(
                f"{len(reasons)} change(s) need approval; nothing was changed. "
                "Run again with --yes."
            )
        executed = True
        done = "created" if create else "updated"
        return _follow(
            aws, name, reporter, lambda: actions.execute_change_set(aws, change_set.id), done
        )
    finally:
        if not executed and not change_set.empty:
            actions.delete_change_set(aws, change_set.id)
            if create:  # the empty stack a CREATE change set makes goes too: nothing is left
                actions.delete_stack(aws, name, None)


def _follow(
    aws: actions.Aws, name: str, reporter: Reporter, start: Callable[[], None], done: str
) -> Outcome:
    after = actions.newest_event(aws, name)
    start()
    return follow(aws, name, after, done, reporter)
