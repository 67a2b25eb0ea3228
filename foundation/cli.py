"""The `foundation` command: one small function per verb; formatting only, no decisions."""

from __future__ import annotations

import atexit
import importlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from foundation import output
from foundation.errors import InvalidInput, Problem
from foundation.exit_codes import ExitCode

if TYPE_CHECKING:
    from foundation.iam.coverage import Reach
    from foundation.iam.effective import Access, RoleGrants
    from foundation.project import Project


class _Module:
    """A module imported when first used: each verb needs a part of what all of them import
    (most of a second, measured), and `synth` with nothing changed needs almost none."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> object:
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attribute)


bootstrap_verb = _Module("foundation.bootstrap")
check_dags_verb = _Module("foundation.check_dags")
check_dags_parse = _Module("foundation.check_dags.parse")
check_dags_report = _Module("foundation.check_dags.report")
config_module = _Module("foundation.config")
daemon_module = _Module("foundation.daemon")
deploy_verb = _Module("foundation.deploy")
destroy_verb = _Module("foundation.destroy")
dev_verb = _Module("foundation.dev")
diff_verb = _Module("foundation.diff")
init_verb = _Module("foundation.init")
naming = _Module("foundation.naming")
permissions_verb = _Module("foundation.permissions")
publish_verb = _Module("foundation.publish")
sarif = _Module("foundation.sarif")
schema_verb = _Module("foundation.schema")
status_verb = _Module("foundation.status")
synth_verb = _Module("foundation.synth")
validate_verb = _Module("foundation.validate")
views = _Module("foundation.views")
watch_module = _Module("foundation.watch")

app = typer.Typer(
    help="Airflow 3 on AWS ECS with a least-privilege AWS identity per DAG.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help: flags without a fake <bool> argument, nothing cut in a narrow terminal
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Made again for each run (main): rich reads NO_COLOR, FORCE_COLOR and whether the stream is a
# terminal when a console is made.
console = output.stdout_console()
err = output.stderr_console()

ProjectOption = Annotated[
    Path,
    typer.Option("--project", metavar="DIR", help="Folder holding config/ and dag_permissions/."),
]
EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env", metavar="NAME", help="Overlay config/NAME.yaml on config/foundation.yaml."
    ),
]

ProfileOption = Annotated[
    str | None, typer.Option("--profile", metavar="NAME", help="AWS profile (else AWS_PROFILE).")
]
RegionOption = Annotated[
    str | None,
    typer.Option("--region", metavar="REGION", help="AWS region (default: the config's)."),
]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", metavar="DIR", help="Cloud assembly folder (default: PROJECT/cdk.out)."),
]
YesOption = Annotated[
    bool, typer.Option("--yes", help="Approve changes that broaden IAM or lose data.")
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the result, or the errors, as JSON on stdout."),
]

# How each way a verb stops early exits (foundation/exit_codes.py; InvalidInput apart: it
# carries its problems' files and lines), as module:class names: see `_raised`.
INPUT_ERRORS = (
    "foundation.deploy:UsageError",
    "foundation.synth:UnsafeOutput",
    "foundation.synth:ChecksFailed",
    "foundation.dev:DevUnavailable",
    "foundation.daemon:BadSwitch",
)
AWS_ERRORS = ("botocore.exceptions:BotoCoreError", "botocore.exceptions:ClientError")
RUN_ERRORS = (
    "foundation.cloudformation.target:NotReady",
    "foundation.cloudformation.actions:Locked",
    "foundation.cloudformation.actions:ChangeSetFailed",
    "foundation.deploy:Refused",
    "foundation.synth:NodeMissing",
    "foundation.synth:SynthesisFailed",
    "foundation.watch:ToolkitChanged",
    "foundation.dev:BootFailed",
    "foundation.local.cluster:ClusterFailed",
)


def _raised(error: BaseException, names: tuple[str, ...]) -> bool:
    """Whether `error` is one of the named classes. Only imported modules are looked at: a
    class whose module was never imported cannot have been raised."""
    for name in names:
        module, _, cls = name.partition(":")
        found = getattr(sys.modules.get(module), cls, None)
        if isinstance(found, type) and isinstance(error, found):
            return True
    return False


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
        from importlib.metadata import version

        print(f"{PACKAGE} {version(PACKAGE)}")
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
    global console, err
    console, err = output.stdout_console(), output.stderr_console()


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="The project's folder, made if missing.")] = Path(
        "."
    ),
    as_json: JsonOption = False,
) -> None:
    """Start a project here or in FOLDER (config, example manifest, schemas); overwrites nothing."""
    with failures(as_json):
        written = init_verb.run(folder)
    if as_json:
        output.print_json({"folder": str(folder), "written": [str(n) for n in written]})
        return
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


def fail(code: ExitCode, problems: list[Problem] | list[str], as_json: bool) -> typer.Exit:
    output.print_errors(err, problems, as_json)
    return typer.Exit(code)


def fail_on_invalid_input(error: InvalidInput, as_json: bool = False) -> typer.Exit:
    output.print_errors(err, error.problems, as_json)
    if not as_json:
        err.print(f"{len(error.problems)} problem(s); nothing was written.")
    return typer.Exit(ExitCode.INVALID_INPUT)


def usage_error(message: str, as_json: bool = False) -> typer.Exit:
    return fail(ExitCode.INVALID_INPUT, [message], as_json)


@contextmanager
def failures(as_json: bool = False) -> Iterator[None]:
    """Every way a verb stops early, as one message (text on stderr, or JSON on stdout) and
    its exit code; never a traceback."""
    try:
        yield
    except InvalidInput as error:
        raise fail_on_invalid_input(error, as_json) from None
    except KeyboardInterrupt:
        raise fail(ExitCode.INTERRUPTED, ["interrupted"], as_json) from None
    except Exception as error:
        if _raised(error, INPUT_ERRORS):
            raise fail(ExitCode.INVALID_INPUT, [str(error)], as_json) from None
        if _raised(error, AWS_ERRORS):
            raise fail(ExitCode.ERROR, [output.aws_error_text(error)], as_json) from None
        if _raised(error, RUN_ERRORS):
            raise fail(ExitCode.ERROR, [str(error)], as_json) from None
        raise


def report_error(problem: object) -> None:
    output.report_error(err, problem)


def _formats(output_format: str, as_json: bool, allowed: tuple[str, ...]) -> str:
    """--format, with --json as the same as --format json."""
    chosen = "json" if as_json else output_format
    if chosen not in allowed:
        raise usage_error(f"--format {output_format!r}: use {', '.join(allowed)}", as_json)
    return chosen


def report_warning(problem: object) -> None:
    err.print(Text.assemble(("warning", "yellow"), f": {problem}"), soft_wrap=True)


@app.command()
def validate(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    as_json: JsonOption = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="table, json, or sarif (code scanning annotations)."
        ),
    ] = "table",
) -> None:
    """Check the config and every manifest, and show each DAG's generated permissions."""
    chosen = _formats(output_format, as_json, ("table", "json", "sarif"))
    try:
        loaded = validate_verb.run(project, env)
    except InvalidInput as error:
        if chosen != "sarif":
            raise fail_on_invalid_input(error, chosen == "json") from None
        output.print_json(sarif.report(error.problems, sarif.INVALID_INPUT))
        raise typer.Exit(ExitCode.INVALID_INPUT) from None
    if chosen == "json":
        output.print_json(validate_verb.as_json(loaded))
    elif chosen == "sarif":
        output.print_json(sarif.report(loaded.findings, sarif.CHECK_FAILED))
    else:
        _print_summary(loaded)
        for warning in loaded.warnings:
            report_warning(warning)
        for finding in loaded.findings:
            report_error(finding)
    if loaded.findings:
        raise typer.Exit(ExitCode.INVALID_INPUT)


@app.command()
def synth(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
    cold: Annotated[
        bool, typer.Option("--cold", help="Build every stack; reuse nothing from --out.")
    ] = False,
    timings: Annotated[
        bool, typer.Option("--timings", help="Show the seconds each stage took.")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep running: synthesize again each time config/, dag_permissions/ or the "
            "toolkit changes, with CDK and cfn-lint kept loaded. Ctrl-C stops.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate, synthesize the CloudFormation cloud assembly and check every template."""
    if watch:
        if as_json:
            raise usage_error("--watch prints as it goes: it cannot be used with --json")
        _watch(project, env, out, cold, timings)
        return
    with failures(as_json), output.progress(err, "synth") as stage:
        result = _synthesize(project, env, out, cold, stage)
    if as_json:
        output.print_json(synth_verb.as_data(result))
    else:
        _print_synth(result, timings)
    if not result.written:
        if not as_json:
            err.print(f"{len(result.errors)} error(s); the assembly was not written.")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    if not as_json:
        for line in _next_steps(project, env, out):
            console.print(Text(line), soft_wrap=True)


def _synthesize(
    project: Path, env: str | None, out: Path | None, cold: bool, stage: Callable[[str], None]
) -> synth_verb.SynthResult:
    """The project's daemon's synth (foundation/daemon.py) when there may be one; else a synth
    here, which then starts one for the next."""
    if not daemon_module.wanted():
        return synth_verb.run(project, env, out, cold, stage)
    daemon_module.idle_seconds()  # a bad value is said now, not in the daemon's log
    where = daemon_module.address(project, env)
    result = daemon_module.synth(where, out, cold, stage) if where else None
    if result is not None:
        return result
    try:
        return synth_verb.run(project, env, out, cold, stage)
    except KeyboardInterrupt:
        where = None  # the user stopped it: start nothing more
        raise
    finally:
        if where:
            daemon_module.start(where, project, env)


def _watch(project: Path, env: str | None, out: Path | None, cold: bool, timings: bool) -> None:
    """`synth --watch`: each synth reported as `synth` reports it (the stacks' table only the
    first time); a synth that fails waits for the next change. Ctrl-C while waiting stops it
    (exit 0), while synthesizing interrupts it (130)."""
    # Ctrl-C, or a TERM: the same clean stop (Node's folder removed, workers ended), even when
    # started with SIGINT ignored (a background job of a shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    synths = 0
    written = False  # --cold holds until a synth has written

    def synthesize(session: synth_verb.Session) -> None:
        nonlocal synths, written
        if synths:
            console.print(Text(time.strftime("%H:%M:%S") + " an input changed", style="dim"))
        try:
            with failures(), output.progress(err, "synth") as stage:
                result = synth_verb.run(project, env, out, cold and not written, stage, session)
            written = written or result.written
            _print_synth(result, timings, table=not synths)
            if not result.written:
                err.print(f"{len(result.errors)} error(s); the assembly was not written.")
        except typer.Exit as stopped:
            if stopped.exit_code == ExitCode.INTERRUPTED:
                raise
        synths += 1

    def waiting() -> None:
        console.print(
            Text("Watching config/, dag_permissions/ and the toolkit; Ctrl-C stops.", style="dim")
        )

    with failures():
        synth_verb.output_folder(project, out)  # only another command line can make it safe
        try:
            watch_module.loop(project.resolve(), env, synthesize, waiting)
        except KeyboardInterrupt:
            console.print("Stopped watching.")


def _print_synth(result: synth_verb.SynthResult, timings: bool, table: bool = True) -> None:
    if table:
        console.print(views.synth_table(result))
    console.print(_what_was_built(result.built), soft_wrap=True)
    if result.built.rebuilt:
        console.print(Text(views.lint_summary(result.lint, result.cache)), soft_wrap=True)
    quota = result.role_quota
    console.print(f"IAM roles: {result.roles} of the account quota {quota} (iam.role_quota)")
    for dag_id, escalations in result.escalations.items():
        console.print(
            Text.assemble(
                ("escalation allowed", "yellow"),
                f" (iam.allow_escalation_for): {dag_id}: {', '.join(escalations)}",
            )
        )
    if timings:
        console.print(views.timings_table(result.timings))
    for finding in result.findings:
        style = "red" if finding.severity == "error" else "yellow"
        err.print(Text.assemble((finding.severity, style), f": {finding}"), soft_wrap=True)
    if result.written:
        done = "written to" if result.built.rebuilt else "up to date at"
        console.print(Text(f"Cloud assembly {done} {result.out}"), soft_wrap=True)


def _next_steps(project: Path, env: str | None, out: Path | None) -> list[str]:
    """The commands to run after a synth, with the options this one was given."""
    options = "".join(
        f" {flag} {shlex.quote(str(value))}"
        for flag, value in (("--project", project), ("--env", env), ("--out", out))
        if value is not None and value != Path(".")
    )
    return [
        "Next:",
        f"  foundation diff{options}     what a deploy would change (exit 3 when something would)",
        f"  foundation deploy{options}   deploy it (foundation bootstrap once per account first)",
    ]


def _what_was_built(built: synth_verb.Built) -> Text:
    if not built.rebuilt:
        return Text(
            f"Nothing changed: all {len(built.reused)} stack(s) reused from the previous synth "
            "(verified by hash), with its findings."
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
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show each stack's state, drift status where known, last update and outputs."""
    with failures(as_json):
        stacks = status_verb.run(project, env, profile, region)
    if as_json:
        output.print_json(status_verb.as_data(stacks))
    else:
        console.print(views.status_table(stacks))


def interrupted(
    reporter: views.LiveReporter, stopped: deploy_verb.Interrupted, as_json: bool
) -> typer.Exit:
    reporter.close()
    if as_json:
        output.print_json({"ok": False, "outcomes": [o.as_data() for o in stopped.outcomes]})
    else:
        console.print(views.outcome_table(stopped.outcomes, "interrupted"))
    err.print(
        "Stopped waiting. CloudFormation carries on with the stacks marked interrupted; "
        "`foundation status` shows how they end."
    )
    return typer.Exit(ExitCode.INTERRUPTED)


def confirmer() -> Callable[[list[str]], bool] | None:
    """Ask on a terminal (on stderr: stdout holds the result); in a non-interactive shell
    nothing can approve but --yes."""
    if not sys.stdin.isatty():
        return None

    def ask(reasons: list[str]) -> bool:
        question = f"{len(reasons)} change(s) need approval. Deploy?"
        return typer.confirm(question, default=False, err=True)

    return ask


def reporter_for(as_json: bool) -> views.LiveReporter:
    """With --json, plans and live progress go to stderr: stdout holds only the result."""
    return views.LiveReporter(err if as_json else console)


def finish(outcomes: list[deploy_verb.Outcome], title: str, data: dict | None) -> None:
    """The outcome table, or `data` with --json; exit 1 when a stack failed."""
    if data is not None:
        output.print_json(data)
    else:
        console.print(views.outcome_table(outcomes, title))
    if not all(o.ok for o in outcomes):
        raise typer.Exit(ExitCode.ERROR)


@app.command()
def bootstrap(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update the artifacts bucket and the CloudFormation service role."""
    reporter = reporter_for(as_json)
    try:
        with failures(as_json):
            outcome = bootstrap_verb.run(project, env, profile, region, yes, reporter, confirmer())
    finally:
        reporter.close()
    data = {"ok": outcome.ok, "outcomes": [outcome.as_data()]} if as_json else None
    finish([outcome], "bootstrap", data)


@app.command()
def deploy(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
    stack: Annotated[
        list[str] | None,
        typer.Option("--stack", metavar="NAME", help="Deploy only this stack (repeatable)."),
    ] = None,
    yes: YesOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", min=1, max=16, metavar="N", help="Worker stacks deployed at once."
        ),
    ] = 4,
    skip_db_migrate: Annotated[
        bool, typer.Option("--skip-db-migrate", help="Never run airflow db migrate.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Synthesize (or reuse the assembly), show each stack's change set, then deploy."""
    options = deploy_verb.Options(
        project, env, out, profile, region, stack or [], yes, not skip_db_migrate, concurrency
    )
    reporter = reporter_for(as_json)
    try:
        with failures(as_json):
            result = deploy_verb.run(options, reporter, confirmer())
    except deploy_verb.Interrupted as stopped:
        raise interrupted(reporter, stopped, as_json) from None
    finally:
        reporter.close()
    if not as_json:
        if result.migration:
            console.print(Text(result.migration))
        if not result.changed:
            console.print("No changes: no change set was executed.")
    finish(result.outcomes, "deploy", result.as_data() if as_json else None)


@app.command()
def diff(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="table, markdown (a pull-request comment) or json."
        ),
    ] = "table",
    as_json: JsonOption = False,
) -> None:
    """Show what a deploy would change; exit 3 when something would, 0 when nothing would."""
    chosen = _formats(output_format, as_json, ("table", "markdown", "json"))
    with failures(chosen == "json"), output.progress(err, "diff") as stage:
        plans = diff_verb.run(project, env, out, profile, region, on_stage=stage)
    if chosen == "json":
        output.print_json(diff_verb.as_data(plans))
    elif chosen == "markdown":
        print(diff_verb.markdown(plans), end="")
    else:
        views.show_plans(console, plans, None)
    if any(p.action != "none" for p in plans):
        raise typer.Exit(ExitCode.CHANGES)


@app.command()
def destroy(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
    yes: YesOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete every stack in reverse order; list the stateful resources kept or snapshotted."""
    reporter = reporter_for(as_json)
    try:
        with failures(as_json):
            outcomes, kept = destroy_verb.run(
                project, env, out, profile, region, yes, reporter, confirmer()
            )
    except deploy_verb.Interrupted as stopped:
        raise interrupted(reporter, stopped, as_json) from None
    finally:
        reporter.close()
    if not as_json:
        for k in kept:
            console.print(Text(f"kept ({k.policy}): {k.stack} {k.logical_id} {k.resource_type}"))
    finish(outcomes, "destroy", destroy_verb.as_data(outcomes, kept) if as_json else None)


@app.command()
def permissions(
    dag_id: Annotated[
        str | None, typer.Argument(metavar="DAG_ID", help="The DAG whose permissions to show.")
    ] = None,
    who_can: Annotated[
        str | None,
        typer.Option(
            "--who-can", metavar="RESOURCE", help="An ARN, s3://bucket/prefix or a secret name."
        ),
    ] = None,
    can: Annotated[
        tuple[str, str, str] | None,
        typer.Option(
            "--can",
            metavar="DAG ACTION RESOURCE",
            help="Whether DAG may do ACTION on RESOURCE (an ARN, s3://bucket/key or a secret "
            "name): exit 0 yes, 4 no.",
        ),
    ] = None,
    show_matrix: Annotated[
        bool, typer.Option("--matrix", help="DAGs x resources: access levels and conditions.")
    ] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="table, markdown, html (--matrix) or json."
        ),
    ] = "table",
    as_json: JsonOption = False,
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    out: OutOption = None,
) -> None:
    """Effective permissions from the synthesized templates: a DAG's, who can reach a resource,
    whether a DAG can do something, or the matrix of every DAG's."""
    chosen = _formats(output_format, as_json, ("table", "markdown", "html", "json"))
    modes = [dag_id is not None, who_can is not None, can is not None, show_matrix]
    if sum(modes) != 1 or (chosen == "html" and not show_matrix):
        raise usage_error(
            "give one of DAG_ID, --who-can RESOURCE, --can DAG ACTION RESOURCE or --matrix "
            "[--format FORMAT]",
            chosen == "json",
        )
    with failures(chosen == "json"):
        with output.progress(err, "permissions") as stage:
            audit = permissions_verb.load(project, env, out, stage)
        if dag_id is not None:
            _show_role(dag_id, audit.dag_role(dag_id), audit.overlaps(dag_id), chosen)
        elif who_can is not None:
            _show_who_can(who_can, audit.who_can(who_can), chosen)
        elif can is not None:
            answer = audit.can(*can)
        else:
            _show_matrix(audit, chosen)
    if can is not None:
        _show_answer(answer, chosen)


def _show_role(
    dag_id: str, role: RoleGrants, overlaps: list[tuple[Reach, Reach]], chosen: str
) -> None:
    grouped = permissions_verb.by_service(role)
    if chosen == "json":
        shared = [permissions_verb.overlap_as_data(*pair) for pair in overlaps]
        data = {"dag_id": dag_id, "role": role.name, "services": grouped, "overlaps": shared}
        output.print_json(data)
        return
    console.print(views.permissions_table(role.name, grouped))
    for pair in overlaps:
        text = f"overlapping S3 grant: {permissions_verb.overlap_text(*pair)}"
        console.print(Text(text), soft_wrap=True)


def _show_who_can(resource: str, reached: list[Access], chosen: str) -> None:
    found = [permissions_verb.access_as_data(a) for a in reached]
    if chosen == "json":
        output.print_json({"resource": resource, "reachable": bool(found), "access": found})
    elif found:
        console.print(views.who_can_table(resource, found))
    else:
        console.print(
            Text(
                f"Nobody can reach {resource}: no statement of any DAG role or cluster role in "
                "the templates names it."
            ),
            soft_wrap=True,
        )


def _show_answer(answer: permissions_verb.Answer, chosen: str) -> None:
    if chosen == "json":
        output.print_json(answer.as_data())
    else:
        for line in views.answer_lines(answer):
            console.print(Text(line), soft_wrap=True)
    if not answer.allowed:
        raise typer.Exit(ExitCode.DENIED)


def _show_matrix(audit: permissions_verb.Audit, chosen: str) -> None:
    if chosen == "json":
        output.print_json(permissions_verb.matrix_data(audit))
    elif chosen == "html":
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
    as_json: JsonOption = False,
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
    """Check DAG files against their manifests; exit 4 when a task needs an ungranted call."""
    if output_format not in ("text", "markdown") or (as_json and output_format != "text"):
        raise usage_error("--format takes text or markdown, and not with --json", as_json)
    with failures(as_json):
        try:
            result = check_dags_verb.run(project, env, dag_folder)
        except check_dags_parse.ParseFailed as error:
            raise usage_error(str(error), as_json) from None
    if as_json:
        output.print_json(check_dags_report.as_data(result))
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
        raise typer.Exit(ExitCode.DENIED)


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
        with failures():  # Ctrl-C while it boots: exit 130
            session = dev_verb.boot(options, reporter)
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


@app.command()
def daemon(
    action: Annotated[
        str,
        typer.Argument(
            metavar="[status|stop]",
            help="status (the default): the synth daemons running; stop: end them all.",
        ),
    ] = "status",
    as_json: JsonOption = False,
) -> None:
    """The synth daemons: one per project keeps CDK and cfn-lint loaded between synths (ended
    after FOUNDATION_DAEMON_IDLE seconds unused, 1800 by default; FOUNDATION_DAEMON=off: none)."""
    if action not in ("status", "stop"):
        raise usage_error(f"{action!r}: use status or stop", as_json)
    running = daemon_module.running()
    if action == "stop":
        stopped = [d for d in running if daemon_module.stop(d)]
        if as_json:
            output.print_json({"stopped": [d.pid for d in stopped]})
        else:
            console.print(f"Stopped {len(stopped)} daemon(s).")
        return
    if as_json:
        output.print_json([views.daemon_data(d) for d in running])
        return
    if not running:
        console.print("No synth daemon is running.")
    for line in views.daemon_lines(running, time.time()):
        console.print(Text(line), soft_wrap=True)


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
    as_json: JsonOption = False,
) -> None:
    """Upload DAG files to their S3 bundle, refusing any whose dag_id has no manifest there."""
    with failures(as_json):
        try:
            done = publish_verb.run(project, env, folder, bundle, delete, profile, region)
        except publish_verb.UsageError as error:
            raise usage_error(str(error), as_json) from None
        except InvalidInput as error:  # found before any upload: nothing is in S3
            output.print_errors(err, error.problems, as_json)
            if not as_json:
                err.print(f"{len(error.problems)} problem(s); nothing was uploaded.")
            raise typer.Exit(ExitCode.INVALID_INPUT) from None
    where = f"s3://{done.plan.bucket}/{naming.bundle_prefix(done.plan.bundle)}"
    if as_json:
        data = {"bundle": done.plan.bundle, "location": where, "uploaded": list(done.plan.uploads)}
        output.print_json(data | {"stale": done.stale, "deleted": done.deleted})
        return
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
        raise usage_error(f"schema {kind!r}: use one of {', '.join(schema_verb.KINDS)}")
    text = schema_verb.text(kind)
    if output is None:
        print(text, end="")
        return
    try:
        output.write_text(text)
    except OSError as error:
        raise usage_error(f"{output}: {error.strerror}") from None


def _print_summary(loaded: Project) -> None:
    deployment = loaded.deployment
    table = views.table(
        f"{deployment.name}: {deployment.account} {deployment.region} "
        f"({deployment.airflow.executor} executor)",
        ["DAG", "owner", "worker", "services granted", "statements", "policies"],
        ("statements", "policies"),
    )
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
            f"{config_module.CELERY_IMAGE_CONTENTS} (docker/Dockerfile, written by "
            "`foundation init`, builds one)."
        )
