"""Every verb scriptable (issue 15): exit codes, --json errors, SARIF, help, completion,
NO_COLOR, tables that never cut what they show, and progress on a terminal only."""

from __future__ import annotations

import importlib
import io
import json
import re
import shutil

import pytest
from rich.console import Console
from typer.testing import CliRunner

from foundation import output, views
from foundation.cli import app
from foundation.exit_codes import ExitCode
from tests.conftest import ROOT, ProjectDir

VERBS = ["validate", "synth", "diff", "deploy", "status", "bootstrap", "destroy", "permissions"]
FIXTURES = ROOT / "tests" / "fixtures" / "sarif"


def test_the_exit_code_table() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "ERROR": 1,
        "INVALID_INPUT": 2,
        "CHANGES": 3,
        "DENIED": 4,
        "INTERRUPTED": 130,
    }


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], prog_name="foundation")
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("verb", ["", *VERBS, "dev"])
def test_dash_h_is_help_and_no_flag_shows_a_fake_argument(verb: str) -> None:
    args = [verb] if verb else []
    short = CliRunner().invoke(app, [*args, "-h"], prog_name="foundation")
    assert short.exit_code == 0
    assert short.stdout == _help(*args)
    assert "<bool>" not in short.stdout
    assert re.search(r"^  -h, --help +Show this message and exit\.$", short.stdout, re.M)


def test_flags_are_shown_bare_and_values_named() -> None:
    text = _help("deploy")
    for line in (
        "  --yes              Approve changes that broaden IAM or lose data.",
        "  --skip-db-migrate  Never run airflow db migrate.",
        "  --stack NAME       Deploy only this stack (repeatable).",
        "  --profile NAME     AWS profile (else AWS_PROFILE).",
        "  --json             Print the result, or the errors, as JSON on stdout.",
    ):
        assert line in text.splitlines()
    assert "  --can DAG ACTION RESOURCE  Whether DAG may do ACTION on RESOURCE (an ARN," in (
        _help("permissions").splitlines()
    )


def test_shell_completion_is_offered_and_completes_verbs_and_options() -> None:
    text = _help()
    assert "  --install-completion  Install completion for the current shell." in text
    env = {"_FOUNDATION_COMPLETE": "complete_bash", "COMP_WORDS": "foundation dep"}
    verbs = CliRunner(env=env | {"COMP_CWORD": "1"}).invoke(app, [], prog_name="foundation")
    assert verbs.stdout == "deploy\n"
    env["COMP_WORDS"] = "foundation permissions --ma"
    options = CliRunner(env=env | {"COMP_CWORD": "2"}).invoke(app, [], prog_name="foundation")
    assert options.stdout == "--matrix\n"


def test_no_color_is_kept(tmp_path) -> None:
    missing = str(tmp_path / "nothing")
    args = ["validate", "--project", missing]
    colored = CliRunner(env={"FORCE_COLOR": "1"}).invoke(app, args)
    assert colored.stderr.startswith("\x1b[31merror\x1b[0m: ")
    plain = CliRunner(env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).invoke(app, args)
    assert plain.exit_code == 2
    assert "\x1b[" not in plain.stderr
    assert plain.stderr.startswith(f"error: {missing}/config/foundation.yaml: not found: ")


@pytest.mark.parametrize("verb", VERBS)
def test_invalid_input_is_exit_2_and_json_with_json(project: ProjectDir, verb: str) -> None:
    """Every verb, before it reaches AWS: the config's problems as JSON on stdout."""
    project.write("config/foundation.yaml", "name: acme-airflow\nnetwork: []\n")
    args = [verb, "--json"] + (["sales_daily"] if verb == "permissions" else [])
    result = project.run(*args)
    assert result.exit_code == ExitCode.INVALID_INPUT, result.stdout + result.stderr
    errors = json.loads(result.stdout)["errors"]
    assert errors and all(set(e) == {"file", "line", "field", "message"} for e in errors)
    assert {e["file"] for e in errors} == {str(project.root / "config" / "foundation.yaml")}
    text = project.run(verb, *args[2:])
    assert text.exit_code == ExitCode.INVALID_INPUT and text.stdout == ""
    assert text.stderr.startswith(f"error: {project.root}/config/foundation.yaml:")


@pytest.mark.parametrize("verb", ["diff", "permissions", "validate"])
def test_an_unknown_format_is_a_usage_error(project: ProjectDir, verb: str) -> None:
    result = project.run(verb, "--format", "yaml")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert result.stderr.startswith("error: --format 'yaml': use ")


def test_validate_json_errors_exact(
    empty_project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(FIXTURES / "two_errors.yaml", empty_project.root / "dag_permissions")
    monkeypatch.chdir(empty_project.root)
    result = empty_project.run("validate", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "errors": [
            {
                "file": "dag_permissions/two_errors.yaml",
                "line": 5,
                "field": "permissions.s3[0].access",
                "message": "Input should be 'read', 'write' or 'read_write'",
            },
            {
                "file": "dag_permissions/two_errors.yaml",
                "line": 6,
                "field": "permissions.secret",
                "message": "unknown field 'secret'; did you mean 'secrets'?",
            },
        ]
    }


def _rules() -> list[dict]:
    return [
        {
            "id": "invalid-input",
            "shortDescription": {
                "text": "The config or a manifest does not read as the toolkit's schema says."
            },
        },
        {
            "id": "check-failed",
            "shortDescription": {
                "text": "The project reads, but a check refuses it (a policy that cannot fit "
                "IAM's limits, a service the DAG's tasks cannot reach, a worker stack too full)."
            },
        },
    ]


def _location(line: int) -> list[dict]:
    uri = "dag_permissions/two_errors.yaml"
    return [
        {
            "physicalLocation": {
                "artifactLocation": {"uri": uri},
                "region": {"startLine": line},
            }
        }
    ]


def test_validate_sarif_for_two_errors(
    empty_project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(FIXTURES / "two_errors.yaml", empty_project.root / "dag_permissions")
    monkeypatch.chdir(empty_project.root)
    result = empty_project.run("validate", "--format", "sarif")
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "foundation", "rules": _rules()}},
                "results": [
                    {
                        "ruleId": "invalid-input",
                        "level": "error",
                        "message": {
                            "text": "permissions.s3[0].access: Input should be 'read', 'write' "
                            "or 'read_write'"
                        },
                        "locations": _location(5),
                    },
                    {
                        "ruleId": "invalid-input",
                        "level": "error",
                        "message": {
                            "text": "permissions.secret: unknown field 'secret'; did you mean "
                            "'secrets'?"
                        },
                        "locations": _location(6),
                    },
                ],
            }
        ],
    }


def test_validate_sarif_of_a_valid_project_has_no_results(project: ProjectDir) -> None:
    result = project.run("validate", "--format", "sarif")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["runs"][0]["results"] == []


def test_validate_json_keys(project: ProjectDir) -> None:
    result = project.run("validate", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) == {
        "project",
        "name",
        "region",
        "account",
        "partition",
        "executor",
        "dags",
        "errors",
        "warnings",
    }
    assert data["errors"] == []
    assert set(data["dags"][0]) == {
        "dag_id",
        "owner",
        "file",
        "worker",
        "services",
        "statement_count",
        "managed_policies",
        "worst_case_policy_chars",
        "escalations",
        "statements",
        "sources",
    }


LONG_ARN = "arn:aws:s3:::acme-raw-a-bucket-with-a-long-name/salesforce/exports/daily/2026/11/30/*"


def _column(rendered: str, index: int) -> str:
    """The text of one column of a rich table's body, its folded lines joined again."""
    lines = rendered.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("┡")) + 1 :]
    return "".join(line.split("│")[index + 1].strip() for line in body if "│" in line)


def test_a_narrow_terminal_folds_an_arn_and_keeps_all_of_it() -> None:
    grouped = {
        "s3": [
            {
                "actions": ["s3:GetObject"],
                "access": ["Read"],
                "resources": [LONG_ARN],
                "condition": None,
                "source": "x",
            }
        ]
    }
    screen = io.StringIO()
    Console(file=screen, width=40).print(views.permissions_table("role", grouped))
    rendered = screen.getvalue()
    assert "…" not in rendered
    assert max(len(line) for line in rendered.splitlines()) <= 40
    assert _column(rendered, 3) == LONG_ARN


def test_outside_a_terminal_an_arn_is_never_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    piped = io.StringIO()
    console = output.console_for(piped)
    assert console.width == output.UNLIMITED_WIDTH
    found = [
        {
            "who": "DAG sales_daily",
            "access": ["Read"],
            "actions": ["s3:GetObject"],
            "condition": None,
            "source": "dag_permissions/sales_daily.yaml:8 permissions.s3[0]",
        }
    ]
    console.print(views.who_can_table(LONG_ARN, found))
    lines = piped.getvalue().splitlines()
    assert [line for line in lines if "dag_permissions/sales_daily.yaml:8" in line]
    assert lines[0].strip() == f"who can reach {LONG_ARN}"


def test_progress_only_on_a_terminal() -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=80)
    with output.progress(terminal, "synth") as stage:
        stage("cfn-lint")
    assert "synth: cfn-lint" in screen.getvalue()
    piped = io.StringIO()
    with output.progress(Console(file=piped), "synth") as stage:
        stage("cfn-lint")
    assert piped.getvalue() == ""


def test_synth_json_progress_next_steps_and_exit_codes(project: ProjectDir) -> None:
    out = project.root / "cdk.out"
    result = project.run_with_env({"FORCE_COLOR": "1"}, "synth", "--json", "--out", str(out))
    assert result.exit_code == ExitCode.OK, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "name",
        "out",
        "written",
        "rebuilt",
        "reused",
        "roles",
        "role_quota",
        "stacks",
        "findings",
        "escalations",
        "timings",
    }
    assert set(data["stacks"][0]) == {
        "stack",
        "resources",
        "template_bytes",
        "roles",
        "errors",
        "warnings",
    }
    assert set(data["findings"][0]) == {"rule", "severity", "stack", "resource", "message"}
    assert data["written"] is True and data["out"] == str(out)
    for stage in ("load the project", "build the app", "toolkit rules", "cfn-lint", "write"):
        assert f"synth: {stage}" in result.stderr  # a spinner on a terminal (FORCE_COLOR)
    again = project.run("synth", "--out", str(out))  # up to date; stderr is no terminal
    assert again.exit_code == ExitCode.OK
    assert "synth:" not in again.stderr
    assert again.stdout.splitlines()[-3:] == [
        "Next:",
        f"  foundation diff --project {project.root} --out {out}     what a deploy would change "
        "(exit 3 when something would)",
        f"  foundation deploy --project {project.root} --out {out}   deploy it (foundation "
        "bootstrap once per account first)",
    ]
    no_node = project.run_with_env({"PATH": str(project.root)}, "synth", "--cold", "--json")
    assert no_node.exit_code == ExitCode.ERROR
    assert json.loads(no_node.stdout) == {
        "errors": [
            {
                "file": None,
                "line": None,
                "field": None,
                "message": "Node.js (node) is not on PATH: aws-cdk-lib needs it to synthesize",
            }
        ]
    }


@pytest.mark.parametrize("verb", ["deploy", "destroy"])
def test_ctrl_c_while_stacks_deploy_exits_130_with_their_outcomes(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch, verb: str
) -> None:
    from foundation import deploy, destroy

    def stopped(*args: object) -> None:
        raise deploy.Interrupted([deploy.Outcome("acme-airflow-core", "interrupted", "X")])

    monkeypatch.setattr(deploy if verb == "deploy" else destroy, "run", stopped)
    result = project.run(verb, "--json")
    assert result.exit_code == ExitCode.INTERRUPTED
    assert json.loads(result.stdout) == {
        "ok": False,
        "outcomes": [
            {
                "stack": "acme-airflow-core",
                "result": "interrupted",
                "ok": False,
                "status": "X",
                "outputs": {},
                "failures": [],
                "message": "",
            }
        ],
    }
    assert "Stopped waiting." in result.stderr


def test_ctrl_c_anywhere_else_exits_130(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from foundation import synth

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "run", interrupted)
    result = project.run("synth")
    assert (result.exit_code, result.stderr) == (ExitCode.INTERRUPTED, "error: interrupted\n")


def test_validate_findings_are_json_errors_with_exit_2(
    empty_project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = ["dag_id: big", "owner: x", "permissions:", "  s3:"] + [
        f"    - {{bucket: bucket-{i:04d}-long-name, prefix: a/long/prefix/{i}/, access: read}}"
        for i in range(400)
    ]
    empty_project.manifest("big", "\n".join(lines) + "\n")
    monkeypatch.chdir(empty_project.root)
    result = empty_project.run("validate", "--json")
    assert result.exit_code == ExitCode.INVALID_INPUT
    (error,) = json.loads(result.stdout)["errors"]
    assert (error["file"], error["line"], error["field"]) == (
        "dag_permissions/big.yaml",
        None,
        "permissions",
    )
    sarif = json.loads(empty_project.run("validate", "--format", "sarif").stdout)
    (finding,) = sarif["runs"][0]["results"]
    assert finding["ruleId"] == "check-failed"
    assert finding["locations"] == [
        {"physicalLocation": {"artifactLocation": {"uri": "dag_permissions/big.yaml"}}}
    ]
    assert finding["message"]["text"] == f"permissions: {error['message']}"


def test_every_error_the_cli_names_is_an_exception_class() -> None:
    """The CLI names the errors it turns into messages and exit codes by module and class (it
    imports each verb when used): a moved or renamed class would escape as a traceback."""
    from foundation import cli

    for name in (*cli.INPUT_ERRORS, *cli.AWS_ERRORS, *cli.RUN_ERRORS):
        module, _, cls = name.partition(":")
        assert issubclass(getattr(importlib.import_module(module), cls), Exception), name
