"""The `foundation` command: one small function per verb; formatting only, no decisions."""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from foundation import bootstrap as bootstrap_verb
from foundation import check_dags as check_dags_verb
from foundation import deploy as deploy_verb
from foundation import destroy as destroy_verb
from foundation import dev as dev_verb
from foundation import diff as diff_verb
from foundation import init as init_verb
from foundation import permissions as permissions_verb
from foundation import publish as publish_verb
from foundation import schema as schema_verb
from foundation import status as status_verb
from foundation import synth as synth_verb
from foundation import validate as validate_verb
from foundation import views
from foundation.check_dags import report as check_dags_report
from foundation.check_dags.parse import ParseFailed
from foundation.cloudformation.actions import ChangeSetFailed, Locked
from foundation.cloudformation.target import NotReady
from foundation.config import CELERY_IMAGE_CONTENTS
from foundation.errors import InvalidInput
from foundation.local.cluster import ClusterFailed
from foundation.naming import bundle_prefix
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

ProfileOption = Annotated[str | None, typer.Option("--profile", help="AWS profile.")]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="AWS region (default: the config's).")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Cloud assembly folder (default: PROJECT/cdk.out).")
]
YesOption = Annotated[
    bool, typer.Option("--yes", help="Approve changes that broaden IAM or lose data.")
]

EXIT_FINDINGS = 1
EXIT_INVALID_INPUT = 2
EXIT_NOT_GRANTED = 3  # check-dags: a task needs what its DAG's manifest does not grant
EXIT_INTERRUPTED = 130


def run() -> None:
    """The `foundation` command. Once a command has returned, the process ends without tearing
    the interpreter down: freeing aws-cdk-lib's Python bindings takes one to several seconds
    after every synth (measured) and changes nothing. Exit hooks still run; an unexpected
    exception still ends the ordinary way, with its traceback."""
    try:
        app()
    except SystemExit as done:
        if not isinstance(done.code, int | None):
            raise
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code or 0)


PACKAGE = "airflow-foundation"


def _print_version(asked: bool) -> None:
    if asked:
        print(f"{PACKAGE} {package_version(PACKAGE)}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Validate, synthesize and deploy an Airflow cluster from config/ and dag_permissions/."""


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="The project's folder, made if missing.")] = Path(
        "."
    ),
) -> None:
    """Start a project here or in FOLDER (config, example manifest, schemas); overwrites nothing."""
    try:
        written = init_verb.run(folder)
    except InvalidInput as error:
        raise fail_on_invalid_input(error) from None
    console.print(Text(f"Wrote {len(written)} files in {folder}:"), soft_wrap=True)
    for name in written:
        console.print(Text(f"  {name}"), soft_wrap=True)
    project = "" if folder == Path(".") else f" --project {folder}"
    console.print(
        Text(
            "Next: set name, region, account and web.certificate_arn in "
            f"config/foundation.yaml, then\n  foundation validate{project}\n"
            f"  foundation synth{project}"
        ),
        soft_wrap=True,
    )


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
    cold: Annotated[
        bool, typer.Option("--cold", help="Build every stack; reuse nothing from --out.")
    ] = False,
    timings: Annotated[
        bool, typer.Option("--timings", help="Show the seconds each stage took.")
    ] = False,
) -> None:
    """Validate, synthesize the CloudFormation cloud assembly and check every template."""
    try:
        result = synth_verb.run(project, env, out, cold)
    except InvalidInput as error:
        raise fail_on_invalid_input(error) from None
    except (
        synth_verb.NodeMissing,
        synth_verb.UnsafeOutput,
        synth_verb.SynthesisFailed,
    ) as error:
        report_error(error)
        raise typer.Exit(EXIT_FINDINGS) from None
    console.print(views.synth_table(result))
    console.print(_what_was_built(result.built), soft_wrap=True)
    if result.built.rebuilt:
        console.print(Text(views.lint_summary(result.lint, result.cache)), soft_wrap=True)
    quota = result.project.deployment.iam.role_quota
    console.print(f"IAM roles: {result.roles} of the account quota {quota} (iam.role_quota)")
    for dag in result.project.dags:
        if dag.policy.escalations:
            escalating = ", ".join(dag.policy.escalations)
            console.print(
                Text.assemble(
                    ("escalation allowed", "yellow"),
                    f" (iam.allow_escalation_for): {dag.dag_id}: {escalating}",
                )
            )
    if timings:
        console.print(views.timings_table(result.timings))
    for finding in result.findings:
        style = "red" if finding.severity == "error" else "yellow"
        err.print(Text.assemble((finding.severity, style), f": {finding}"), soft_wrap=True)
    if not result.written:
        err.print(f"{len(result.errors)} error(s); the assembly was not written.")
        raise typer.Exit(EXIT_FINDINGS)
    done = "written to" if result.built.rebuilt else "up to date at"
    console.print(f"Cloud assembly {done} {result.out}", soft_wrap=True)


def _what_was_built(built: synth_verb.Built) -> Text:
    if not built.rebuilt:
        return Text(
            f"Nothing changed: all {len(built.reused)} stack(s) reused from the previous synth "
            "(verified by hash) and checked again."
        )
    if built.reused:
        return Text(
            f"Rebuilt {len(built.rebuilt)} stack(s) ({', '.join(built.rebuilt)}); reused "
            f"{len(built.reused)} unchanged from the previous assembly (verified by hash)."
        )
    return Text(f"Built all {len(built.rebuilt)} stack(s): {built.cold}.")


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


@contextmanager
def aws_errors() -> Iterator[None]:
    """Every way a deploy verb stops early, as one message and an exit code, never a traceback."""
    try:
        yield
    except InvalidInput as error:
        raise fail_on_invalid_input(error) from None
    except deploy_verb.UsageError as error:
        report_error(error)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    except (
        BotoCoreError,
        ClientError,
        NotReady,
        Locked,
        ChangeSetFailed,
        deploy_verb.Refused,
        synth_verb.NodeMissing,
        synth_verb.UnsafeOutput,
        synth_verb.SynthesisFailed,
    ) as error:
        prefix = "AWS: " if isinstance(error, (BotoCoreError, ClientError)) else ""
        report_error(f"{prefix}{error}")
        raise typer.Exit(EXIT_FINDINGS) from None


def interrupted(reporter: views.LiveReporter, stopped: deploy_verb.Interrupted) -> typer.Exit:
    reporter.close()
    console.print(views.outcome_table(stopped.outcomes, "interrupted"))
    err.print(
        "Stopped waiting. CloudFormation carries on with the stacks marked interrupted; "
        "`foundation status` shows how they end."
    )
    return typer.Exit(EXIT_INTERRUPTED)


def confirmer() -> Callable[[list[str]], bool] | None:
    """Ask on a terminal; in a non-interactive shell nothing can approve but --yes."""
    if not sys.stdin.isatty():
        return None

    def ask(reasons: list[str]) -> bool:
        return typer.confirm(f"{len(reasons)} change(s) need approval. Deploy?", default=False)

    return ask


def finish(outcomes: list[deploy_verb.Outcome], title: str) -> None:
    console.print(views.outcome_table(outcomes, title))
    if not all(o.ok for o in outcomes):
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def bootstrap(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    yes: YesOption = False,
) -> None:
    """Create or update the artifacts bucket and the CloudFormation service role."""
    reporter = views.LiveReporter(console)
    try:
        with aws_errors():
            outcome = bootstrap_verb.run(project, env, profile, region, yes, reporter, confirmer())
    finally:
        reporter.close()
    finish([outcome], "bootstrap")


@app.command()
def deploy(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
    stack: Annotated[
        list[str] | None, typer.Option("--stack", help="Deploy only this stack (repeatable).")
    ] = None,
    yes: YesOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=16, help="Worker stacks deployed at once.")
    ] = 4,
    skip_db_migrate: Annotated[
        bool, typer.Option("--skip-db-migrate", help="Never run airflow db migrate.")
    ] = False,
) -> None:
    """Synthesize (or reuse the assembly), show each stack's change set, then deploy."""
    options = deploy_verb.Options(
        project, env, out, profile, region, stack or [], yes, not skip_db_migrate, concurrency
    )
    reporter = views.LiveReporter(console)
    try:
        with aws_errors():
            result = deploy_verb.run(options, reporter, confirmer())
    except deploy_verb.Interrupted as stopped:
        raise interrupted(reporter, stopped) from None
    finally:
        reporter.close()
    if result.migration:
        console.print(Text(result.migration))
    if not result.changed:
        console.print("No changes: no change set was executed.")
    finish(result.outcomes, "deploy")


@app.command()
def diff(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table or markdown (for a pull-request comment).")
    ] = "table",
) -> None:
    """Show what a deploy would change; exit 1 when something would, 0 when nothing would."""
    if output_format not in ("table", "markdown"):
        report_error(f"--format {output_format!r}: use table or markdown")
        raise typer.Exit(EXIT_INVALID_INPUT)
    with aws_errors():
        plans = diff_verb.run(project, env, out, profile, region)
    if output_format == "markdown":
        print(diff_verb.markdown(plans), end="")
    else:
        views.show_plans(console, plans, None)
    if any(p.action != "none" for p in plans):
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def destroy(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
    yes: YesOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
) -> None:
    """Delete every stack in reverse order; list the stateful resources kept or snapshotted."""
    reporter = views.LiveReporter(console)
    try:
        with aws_errors():
            outcomes, kept = destroy_verb.run(
                project, env, out, profile, region, yes, reporter, confirmer()
            )
    except deploy_verb.Interrupted as stopped:
        raise interrupted(reporter, stopped) from None
    finally:
        reporter.close()
    for k in kept:
        console.print(Text(f"kept ({k.policy}): {k.stack} {k.logical_id} {k.resource_type}"))
    finish(outcomes, "destroy")


@app.command()
def permissions(
    dag_id: Annotated[str | None, typer.Argument(help="The DAG whose permissions to show.")] = None,
    who_can: Annotated[
        str | None,
        typer.Option("--who-can", help="An ARN, s3://bucket/prefix or a secret name."),
    ] = None,
    show_matrix: Annotated[
        bool, typer.Option("--matrix", help="DAGs x resources with access levels.")
    ] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="table, markdown or html (--matrix).")
    ] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
) -> None:
    """Effective permissions from the synthesized templates: a DAG's, who can reach a resource,
    or the matrix of every DAG's."""
    modes = [dag_id is not None, who_can is not None, show_matrix]
    if sum(modes) != 1 or output_format not in ("table", "markdown", "html"):
        report_error("give one of DAG_ID, --who-can RESOURCE or --matrix [--format FORMAT]")
        raise typer.Exit(EXIT_INVALID_INPUT)
    with aws_errors():
        audit = permissions_verb.load(project, env, out)
        if dag_id is not None:
            role = audit.dag_role(dag_id)
        reached = audit.who_can(who_can) if who_can is not None else []
    if dag_id is not None:
        grouped = permissions_verb.by_service(role)
        if as_json:
            print(json.dumps({"dag_id": dag_id, "role": role.name, "services": grouped}, indent=2))
        else:
            console.print(views.permissions_table(role.name, grouped))
    elif who_can is not None:
        found = [permissions_verb.access_as_data(a) for a in reached]
        if as_json:
            print(json.dumps({"resource": who_can, "access": found}, indent=2))
        else:
            console.print(views.who_can_table(who_can, found))
    elif output_format == "html":
        print(permissions_verb.matrix_html(audit), end="")
    else:
        print(permissions_verb.matrix_markdown(audit), end="")


@app.command("check-dags")
def check_dags(
    dag_folder: Annotated[
        Path | None, typer.Argument(help="The DAG files (default: PROJECT/dags).")
    ] = None,
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="text or markdown (for a pull-request comment).")
    ] = "text",
    suggest: Annotated[
        bool, typer.Option("--suggest", help="Print the manifest entries to add, or drafts.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on unknown, ignored and unused too.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show covered tasks and tasks without AWS calls.")
    ] = False,
) -> None:
    """Check DAG files against their manifests; exit 3 when a task needs an ungranted call."""
    if output_format not in ("text", "markdown") or (as_json and output_format != "text"):
        report_error("--format takes text or markdown, and not with --json")
        raise typer.Exit(EXIT_INVALID_INPUT)
    try:
        result = check_dags_verb.run(project, env, dag_folder)
    except InvalidInput as error:
        raise fail_on_invalid_input(error) from None
    except ParseFailed as error:
        report_error(error)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    if as_json:
        print(json.dumps(check_dags_report.as_data(result), indent=2))
    elif output_format == "markdown":
        print(check_dags_report.markdown(result, suggest), end="")
    else:
        for line in check_dags_report.lines(result, verbose):
            console.print(line, soft_wrap=True)
        if suggest:
            for s in result.suggestions:
                root = result.project.root
                console.print(Text(check_dags_report.suggestion_title(s, root)), soft_wrap=True)
                console.print(Text(check_dags_report.suggestion_text(s)), soft_wrap=True)
        console.print(Text(check_dags_report.summary(result)), soft_wrap=True)
    if result.failed(strict):
        raise typer.Exit(EXIT_NOT_GRANTED)


@app.command()
def dev(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    dags: Annotated[
        Path | None,
        typer.Option("--dags", help="DAG folder synced into the bundle (default: PROJECT/dags)."),
    ] = None,
) -> None:
    """Run the project's cluster on this machine from its own templates: each task under its
    DAG's generated role against a local AWS, every refused call reported. Ctrl-C stops it."""
    options = dev_verb.Options(project, env, dags)
    # Ctrl-C, or a TERM (a terminal closed, a container stopped): the same clean stop, even
    # when started with SIGINT ignored (a background job of a shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    reporter = views.LiveReporter(console)
    try:
        with aws_errors():
            session = dev_verb.boot(options, reporter)
    except dev_verb.DevUnavailable as error:
        report_error(error)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    except (dev_verb.BootFailed, ClusterFailed) as error:
        report_error(error)
        raise typer.Exit(EXIT_FINDINGS) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        reporter.close()
    synth_verb.release_node()
    try:
        console.print()
        for line in views.dev_banner(session):
            console.print(Text(line), soft_wrap=True)
        while True:
            for line in [*session.sync(), *session.exited(), *session.denials()]:
                style = "red" if line.startswith("denied") else None
                console.print(Text(line), style=style, soft_wrap=True)
            time.sleep(dev_verb.WATCH_SECONDS)
    except KeyboardInterrupt:
        console.print("Stopping the cluster; its local state goes with it.")
    finally:
        # a second Ctrl-C must not leave processes behind half-way through the stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        session.stop()


@app.command("publish-dags")
def publish_dags(
    folder: Annotated[Path, typer.Argument(help="The folder of DAG files to publish.")],
    bundle: Annotated[
        str | None,
        typer.Option("--bundle", help="The S3 bundle (needed when there are several)."),
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete the bundle's files that FOLDER lacks.")
    ] = False,
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
) -> None:
    """Upload DAG files to their S3 bundle, refusing any whose dag_id has no manifest there."""
    with aws_errors():
        try:
            done = publish_verb.run(project, env, folder, bundle, delete, profile, region)
        except publish_verb.UsageError as error:
            report_error(error)
            raise typer.Exit(EXIT_INVALID_INPUT) from None
        except InvalidInput as error:  # found before any upload: nothing is in S3
            for problem in error.problems:
                report_error(problem)
            err.print(f"{len(error.problems)} problem(s); nothing was uploaded.")
            raise typer.Exit(EXIT_INVALID_INPUT) from None
    where = f"s3://{done.plan.bucket}/{bundle_prefix(done.plan.bundle)}"
    console.print(Text(f"Uploaded {len(done.plan.uploads)} file(s) to {where}:"), soft_wrap=True)
    for key in done.plan.uploads:
        console.print(Text(f"  {key}"), soft_wrap=True)
    if done.stale:
        kept = "deleted" if done.deleted else "kept (--delete removes them)"
        lacking = f"{len(done.stale)} file(s) of the bundle not in {folder}, {kept}:"
        console.print(Text(lacking), soft_wrap=True)
        for key in done.stale:
            console.print(Text(f"  {key}"), soft_wrap=True)
    console.print(
        Text(
            "Tasks load these files when they start; the bundle's dag-processor parses them "
            "at its next refresh ([dag_processor] refresh_interval, 300 s by default)."
        ),
        soft_wrap=True,
    )


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="config, overlay (config/<env>.yaml) or manifest.")],
    output: Annotated[
        Path | None, typer.Option("--output", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the config, a config overlay or a DAG manifest."""
    if kind not in schema_verb.KINDS:
        report_error(f"schema {kind!r}: use one of {', '.join(schema_verb.KINDS)}")
        raise typer.Exit(EXIT_INVALID_INPUT)
    text = schema_verb.text(kind)
    if output is None:
        print(text, end="")
        return
    try:
        output.write_text(text)
    except OSError as error:
        report_error(f"{output}: {error.strerror}")
        raise typer.Exit(EXIT_INVALID_INPUT) from None


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
    if deployment.celery:
        console.print(
            f"Celery mode: the image {deployment.airflow.image} must contain "
            f"{CELERY_IMAGE_CONTENTS} (docker/Dockerfile, written by `foundation init`, builds "
            "one)."
        )
