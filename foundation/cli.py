"""The `foundation` command: one small function per verb; formatting only, no decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from foundation import status as status_verb
from foundation import synth as synth_verb
from foundation import validate as validate_verb
from foundation.errors import InvalidInput
from foundation.project import Project

app = typer.Typer(
    help="Airflow 3 on AWS ECS with a least-privilege AWS identity per DAG.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(emoji=False)
err = Console(stderr=True, emoji=False, highlight=False)

ProjectOption = Annotated[
    Path,
    typer.Option("--project", help="Folder holding config/ and dag_permissions/."),
]
EnvOption = Annotated[
    str | None,
    typer.Option("--env", help="Overlay config/NAME.yaml on config/foundation.yaml."),
]

EXIT_FINDINGS = 1
EXIT_INVALID_INPUT = 2


@app.callback()
def main() -> None:
    """Validate, synthesize and deploy an Airflow cluster from config/ and dag_permissions/."""


def fail_on_invalid_input(error: InvalidInput) -> typer.Exit:
    for problem in error.problems:
        report_error(problem)
    err.print(f"{len(error.problems)} problem(s); nothing was written.")
    return typer.Exit(EXIT_INVALID_INPUT)


def report_error(problem: object) -> None:
    """User text is printed as text: never read as rich markup."""
    err.print(Text.assemble(("error", "red"), f": {problem}"), soft_wrap=True)


@app.command()
def validate(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check the config and every manifest, and show each DAG's generated permissions."""
    try:
        loaded = validate_verb.run(project, env)
    except InvalidInput as error:
        raise fail_on_invalid_input(error) from None
    if as_json:
        print(json.dumps(validate_verb.as_json(loaded), indent=2))
    else:
        _print_summary(loaded)
    for finding in loaded.findings:
        report_error(finding)
    if loaded.findings:
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def synth(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Cloud assembly folder (default: PROJECT/cdk.out).")
    ] = None,
) -> None:
    """Validate, synthesize the CloudFormation cloud assembly and check every template."""
    try:
        result = synth_verb.run(project, env, out)
    except InvalidInput as error:
        raise fail_on_invalid_input(error) from None
    except (
        synth_verb.NodeMissing,
        synth_verb.NotSupportedYet,
        synth_verb.UnsafeOutput,
        synth_verb.SynthesisFailed,
    ) as error:
        report_error(error)
        raise typer.Exit(EXIT_FINDINGS) from None
    table = Table(title=f"{result.project.deployment.name}: cloud assembly")
    for column in ("stack", "resources", "template", "errors", "warnings"):
        table.add_column(column, justify="left" if column == "stack" else "right")
    for stack in result.stacks:
        errors = sum(f.severity == "error" for f in stack.findings)
        table.add_row(
            stack.name,
            str(stack.resources),
            f"{stack.template_bytes / 1024:.1f} KiB",
            str(errors),
            str(len(stack.findings) - errors),
        )
    console.print(table)
    quota = result.project.deployment.iam.role_quota
    console.print(f"IAM roles: {result.roles} of the account quota {quota} (iam.role_quota)")
    for finding in result.findings:
        style = "red" if finding.severity == "error" else "yellow"
        err.print(Text.assemble((finding.severity, style), f": {finding}"), soft_wrap=True)
    if not result.written:
        err.print(f"{len(result.errors)} error(s); the assembly was not written.")
        raise typer.Exit(EXIT_FINDINGS)
    console.print(f"Cloud assembly written to {result.out}")


@app.command()
def status(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile.")] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="AWS region (default: the config's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Show each stack's state, drift status where known, last update and outputs."""
    try:
        stacks = status_verb.run(project, env, profile, region)
    except InvalidInput as error:
        raise fail_on_invalid_input(error) from None
    except (BotoCoreError, ClientError) as error:
        report_error(f"AWS: {error}")
        raise typer.Exit(EXIT_FINDINGS) from None
    if as_json:
        print(json.dumps([status_verb.as_data(name, state) for name, state in stacks], indent=2))
        return
    table = Table(title="stacks")
    for column in ("stack", "status", "drift", "last update", "outputs"):
        table.add_column(column)
    for name, state in stacks:
        if state is None:
            table.add_row(name, "not deployed", "-", "-", "")
            continue
        outputs = "\n".join(f"{k} = {v}" for k, v in sorted(state.outputs.items()))
        updated = state.updated.isoformat(timespec="seconds") if state.updated else "-"
        table.add_row(name, state.status, state.drift, updated, Text(outputs))
    console.print(table)


def _print_summary(loaded: Project) -> None:
    deployment = loaded.deployment
    table = Table(
        title=f"{deployment.name}: {deployment.account} {deployment.region} "
        f"({deployment.airflow.executor} executor)"
    )
    for column in ("DAG", "owner", "worker", "services granted", "statements", "policies"):
        table.add_column(column, justify="right" if column in ("statements", "policies") else None)
    for dag in loaded.dags:
        row = validate_verb.dag_summary(loaded, dag)
        worker = row["worker"]
        name = Text(dag.dag_id)
        if row["escalations"]:
            name.append(" (escalation allowed)", style="yellow")
        table.add_row(
            name,
            Text(row["owner"]),
            f"{worker['cpu']}/{worker['memory']} x{worker['min_count']}-{worker['max_count']}",
            ", ".join(row["services"]) or "-",
            str(row["statement_count"]),
            str(row["managed_policies"] or "-"),
        )
    console.print(table)
