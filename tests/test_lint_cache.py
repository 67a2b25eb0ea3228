"""cfn-lint with its rules loaded once, in worker processes, and its findings kept by content:
exactly what `cfnlint.api.lint` finds, cold or warm, and a changed byte is linted again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint
from cfnlint.version import __version__ as cfnlint_version

from foundation.checks import cfn_lint
from foundation.checks.cache import CACHE_ENV, FindingsCache
from foundation.checks.model import ERROR, WARNING, Assembly, Finding, StackTemplate
from tests.conftest import ROOT, ProjectDir

FIXTURES = Path(__file__).parent / "fixtures" / "templates" / "cfn-lint"
REGION = "us-east-1"
PATTERN = "'^([a-z,A-Z,0-9,. _\\\\-:/()#,@[\\\\]+=&;\\\\{\\\\}!$*])*$'"
FINDINGS = [
    Finding(
        "E3031", ERROR, "bad", "Resources/Group", f'"it\'s not allowed" does not match {PATTERN}'
    ),
    Finding(
        "W3005",
        WARNING,
        "bad",
        "Resources/Queue",
        "'Topic' dependency already enforced by a 'Ref' at "
        "'Resources/Queue/Properties/Tags/0/Value'",
    ),
    Finding("E3012", ERROR, "bad", "Resources/Queue", "'ten' is not of type 'integer'"),
    Finding(
        "E3002",
        ERROR,
        "bad",
        "Resources/Topic",
        "Additional properties are not allowed ('Colour' was unexpected)",
    ),
]


def template(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def assembly(**stacks: dict) -> Assembly:
    templates = [StackTemplate(name, t, json.dumps(t, indent=1)) for name, t in stacks.items()]
    return Assembly(FIXTURES, {}, templates, {"region": REGION})


def cfn_lint_itself(stack: StackTemplate) -> list[Finding]:
    """cfn-lint's own API, which loads every rule again for each call: the reference."""
    config = ManualArgs(regions=[REGION], ignore_checks=cfn_lint.IGNORED)
    return [
        Finding(*row[:2], stack.name, *row[2:])
        for row in map(cfn_lint._row, lint(stack.text, config=config))
    ]


def test_rules_loaded_once_find_what_cfn_lint_finds_with_rules_loaded_per_call() -> None:
    checked = assembly(
        bad=template("findings"), clean=template("clean"), again=template("findings")
    )
    found = cfn_lint.run(checked).findings
    assert found == [f for stack in checked.stacks for f in cfn_lint_itself(stack)]
    assert [f for f in found if f.stack == "bad"] == FINDINGS


def test_the_rules_are_loaded_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cfnlint.api.lint` loads them from disk for every template; here, once."""
    from cfnlint.rules import Rules

    loads = []
    real = Rules.create_from_directory.__func__

    def counted(cls: type, rulesdir: str) -> Rules:
        loads.append(rulesdir)
        return real(cls, rulesdir)

    monkeypatch.setattr(Rules, "create_from_directory", classmethod(counted))
    cfn_lint._linter.cache_clear()
    cfn_lint.run(
        assembly(bad=template("findings"), clean=template("clean"), more=template("clean"))
    )
    assert len(loads) == 1
    lint(assembly(clean=template("clean")).stacks[0].text)
    assert len(loads) == 2  # what cfn-lint's own API does on each call


def test_a_warm_cache_gives_the_cold_findings_without_linting(tmp_path: Path) -> None:
    checked = assembly(bad=template("findings"), clean=template("clean"))
    cold = cfn_lint.run(checked, FindingsCache(tmp_path))
    assert (cold.linted, cold.cached) == (["bad", "clean"], [])
    assert cold.findings == FINDINGS
    assert len(list(tmp_path.glob("*.json"))) == 2

    warm = cfn_lint.run(checked, FindingsCache(tmp_path))
    assert (warm.linted, warm.cached) == ([], ["bad", "clean"])
    assert warm.findings == FINDINGS


def test_the_cache_holds_findings_not_stacks(tmp_path: Path) -> None:
    """The same template under another stack's name: the cache's findings, named for it."""
    cfn_lint.run(assembly(bad=template("findings")), FindingsCache(tmp_path))
    renamed = cfn_lint.run(assembly(other=template("findings")), FindingsCache(tmp_path))
    assert renamed.cached == ["other"]
    assert renamed.findings == [
        Finding(f.rule, f.severity, "other", f.resource, f.message) for f in FINDINGS
    ]


def test_a_changed_byte_is_linted_again(tmp_path: Path) -> None:
    cfn_lint.run(
        assembly(bad=template("findings"), clean=template("clean")), FindingsCache(tmp_path)
    )
    fixed = template("findings")
    fixed["Resources"]["Queue"]["Properties"]["DelaySeconds"] = 10  # "ten" -> 10
    run = cfn_lint.run(assembly(bad=fixed, clean=template("clean")), FindingsCache(tmp_path))
    assert (run.linted, run.cached) == (["bad"], ["clean"])
    assert run.findings == [f for f in FINDINGS if f.rule != "E3012"]
    one_byte = template("clean")
    one_byte["Resources"]["Topic"]["Properties"]["DisplayName"] = "alertS"  # "alerts"
    run = cfn_lint.run(assembly(bad=fixed, clean=one_byte), FindingsCache(tmp_path))
    assert (run.linted, run.cached) == (["clean"], ["bad"])


@pytest.mark.parametrize(
    "change",
    ["cfn-lint version", "toolkit checks", "options", "settings file"],
)
def test_what_else_findings_depend_on_is_in_the_key(
    change: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another cfn-lint, changed check code, other options or a .cfnlintrc: nothing cached is
    found, and the findings are cfn-lint's under that change."""
    checked = assembly(bad=template("findings"))
    cfn_lint.run(checked, FindingsCache(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    expected = FINDINGS
    if change == "cfn-lint version":
        assert cfn_lint.cfn_lint_version().endswith(f'__version__ = "{cfnlint_version}"\n')
        monkeypatch.setattr(cfn_lint, "cfn_lint_version", lambda: '__version__ = "0.0.0"\n')
    elif change == "toolkit checks":
        monkeypatch.setattr(cfn_lint, "checks_version", lambda: "changed")
    elif change == "options":
        monkeypatch.setattr(cfn_lint, "IGNORED", ["W3010", "W3005"])
        cfn_lint._linter.cache_clear()
        expected = [f for f in FINDINGS if f.rule != "W3005"]
    else:
        (tmp_path / ".cfnlintrc").write_text("include_checks:\n  - I\n")  # informational too
        expected = cfn_lint_itself(checked.stacks[0])
        rules = ["E3031", "W3005", "I3011", "I3011", "E3012", "I3013", "E3002"]
        assert [f.rule for f in expected] == rules
    try:
        run = cfn_lint.run(checked, FindingsCache(tmp_path / "cache"))
    finally:
        cfn_lint._linter.cache_clear()
    assert (run.linted, run.findings) == (["bad"], expected)


@pytest.mark.parametrize(
    "damage",
    [
        '[["E3031", "err',  # cut short
        '{"E3031": "error"}',  # JSON, but not rows
        '[["E3031", "error", "Resources/Group"]]',  # a row cut short
        "[[3031, 1, 2, 3]]",  # not strings
    ],
)
def test_a_damaged_entry_is_linted_again(damage: str, tmp_path: Path) -> None:
    checked = assembly(bad=template("findings"))
    cfn_lint.run(checked, FindingsCache(tmp_path))
    (entry,) = tmp_path.glob("*.json")
    entry.write_text(damage)
    run = cfn_lint.run(checked, FindingsCache(tmp_path))
    assert (run.linted, run.findings) == (["bad"], FINDINGS)
    assert json.loads(entry.read_text())[0][0] == "E3031"


def test_a_cache_folder_that_cannot_be_written_keeps_nothing(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file, not a folder")
    run = cfn_lint.run(assembly(bad=template("findings")), FindingsCache(tmp_path / "cache"))
    assert (run.linted, run.findings) == (["bad"], FINDINGS)


def test_worker_processes_find_the_same_in_the_same_order(tmp_path: Path) -> None:
    """Workers warm up in processes of their own before any template exists; templates go to
    them largest first; findings come back in the stacks' order."""
    stacks = {"clean": template("clean"), "bad": template("findings"), "more": template("clean")}
    stacks["more"]["Resources"]["Topic"]["Properties"]["Colour"] = "red"
    checked = assembly(**stacks)
    serial = cfn_lint.run(checked)
    with cfn_lint.workers("us-east-1", 2) as pool:
        assert pool is not None
        pool.ready()  # what `synth --watch` waits for before it says it is watching
        assert all(w.done() for w in pool.warming)
        warmed = {w.result() for w in pool.warming}
        parallel = cfn_lint.run(checked, FindingsCache(tmp_path), pool)
    assert len(warmed) == 2 and os.getpid() not in warmed
    assert parallel.linted == ["clean", "bad", "more"]
    assert parallel.findings == serial.findings
    assert [(f.stack, f.rule) for f in parallel.findings] == [
        *(("bad", f.rule) for f in FINDINGS),
        ("more", "E3002"),
    ]


def test_templates_started_early_are_linted_once_and_cached_ones_not_at_all(
    tmp_path: Path,
) -> None:
    """A two-app build starts linting its first app's templates before the assembly exists
    (`start_early`); `start` then takes their findings rather than linting them again, and a
    template the cache holds is not started at all."""
    stacks = {"clean": template("clean"), "bad": template("findings")}
    checked = assembly(**stacks)
    texts = {s.name: s.text for s in checked.stacks}
    cache = FindingsCache(tmp_path)
    cfn_lint.run(assembly(clean=template("clean")), cache)  # the cache holds "clean"
    with cfn_lint.workers(REGION, 1) as pool:
        assert pool is not None
        submitted = []
        submit = pool.pool.submit
        pool.pool.submit = lambda fn, job: submitted.append(job[0]) or submit(fn, job)
        cfn_lint.start_early(texts, REGION, cache, pool)
        assert submitted == [texts["bad"]]
        run = cfn_lint.run(checked, cache, pool)
        assert submitted == [texts["bad"]] and pool.early == {}
    assert (run.linted, run.cached, run.findings) == (["bad"], ["clean"], FINDINGS)


def test_rows_found_with_other_settings_than_their_key_are_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `.cfnlintrc` written while a synth runs: a template linted early with the settings
    before it is reported as linted, but not cached under a key of the settings after it, so
    the next synth with those lints it again and finds what they find."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # and no settings file at home
    checked = assembly(bad=template("findings"))
    cache = FindingsCache(tmp_path / "cache")
    with cfn_lint.workers(REGION, 1) as pool:
        assert pool is not None
        cfn_lint.start_early({"bad": checked.stacks[0].text}, REGION, cache, pool)
        (early,) = pool.early.values()
        rows = [[f.rule, f.severity, f.resource, f.message] for f in FINDINGS]
        assert early.result() == ((b"", b""), rows)  # no settings file yet
        (tmp_path / ".cfnlintrc").write_text("include_checks:\n  - I\n")
        during = cfn_lint.run(checked, cache, pool)
    assert (during.linted, during.findings) == (["bad"], FINDINGS)
    after = cfn_lint.run(checked, cache)
    assert (after.linted, after.findings) == (["bad"], cfn_lint_itself(checked.stacks[0]))
    assert after.findings != FINDINGS
    assert cfn_lint.run(checked, cache).cached == ["bad"]  # found with its key's settings


def test_early_lints_that_start_did_not_take_are_forgotten() -> None:
    """After a build that failed, or whose templates another process cached meanwhile: none is
    kept for a later synth, and with none running the workers are ended at once."""
    with cfn_lint.workers(REGION, 1) as pool:
        assert pool is not None
        cfn_lint.start_early({"bad": json.dumps(template("findings"))}, REGION, None, pool)
        (early,) = pool.early.values()
        early.result()
        assert pool.linting
        pool.forget_early()
        assert (pool.early, pool.linting) == ({}, False)


def test_templates_the_cache_holds_leave_the_workers_free_to_be_ended(tmp_path: Path) -> None:
    """An edit put back: its template's findings are cached, so nothing is started early, and
    the workers are not waited for at the end (asked to exit, each would first tear cfn-lint
    down, half a second)."""
    cache = FindingsCache(tmp_path)
    checked = assembly(clean=template("clean"))
    cfn_lint.run(checked, cache)
    with cfn_lint.workers(REGION, 1) as pool:
        assert pool is not None
        cfn_lint.start_early({"clean": checked.stacks[0].text}, REGION, cache, pool)
        assert (pool.early, pool.linting) == ({}, False)


@pytest.mark.parametrize("yielding", [True, False])
def test_workers_beside_a_cold_build_yield_the_cores_to_it(yielding: bool) -> None:
    """Started for a cold build, workers run at a lower priority than the build they fill in
    for; for an edit, whose lint is what the synth waits for, at the synth's own."""
    from foundation import synth

    with cfn_lint.workers(REGION, 1, yielding) as pool:
        assert pool is not None
        worker = pool.warming[0].result()
        niceness = os.getpriority(os.PRIO_PROCESS, worker) - os.getpriority(os.PRIO_PROCESS, 0)
    assert niceness == (cfn_lint.YIELDING_NICENESS if yielding else 0) == (10 if yielding else 0)
    if cfn_lint.cores() > 1:
        assert synth._lint_processes("base", None) == (cfn_lint.cores(), True)


def test_a_worker_collects_garbage_less_often_than_python_by_default() -> None:
    """Linting allocates millions of short-lived objects: a worker's young collections run
    every 50,000 allocations, not Python's 700 (a sixth of its CPU, measured); this process
    keeps Python's own."""
    import gc

    with cfn_lint.workers(REGION, 1) as pool:
        assert pool is not None
        in_worker = pool.pool.submit(gc.get_threshold).result()
    assert in_worker == cfn_lint.GC_THRESHOLDS == (50_000, 20, 20)
    assert gc.get_threshold() == (700, 10, 10)


STAGES = [
    "compare with the record",
    "start Node.js",
    "load the project",
    "import CDK",
    "build the app",
    "synthesize, cdk-nag",
    "read the assembly",
    "toolkit rules",
    "cfn-lint",
    "write",
    "all stages",
]


def test_synth_says_what_it_linted_and_what_the_cache_held(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's own cache (.foundation/cache): a second, cold synth of the same project
    (every stack built again) lints nothing, finds the same and writes the same assembly."""
    monkeypatch.delenv(CACHE_ENV)
    cache = project.root / ".foundation" / "cache"
    cold = project.run("synth", "--timings")
    assert cold.exit_code == 0, cold.stderr
    first = {p.name: p.read_bytes() for p in (project.root / "cdk.out").glob("*.template.json")}
    warm = project.run("synth", "--cold")
    assert warm.exit_code == 0, warm.stderr
    said = [" ".join(run.stdout.split()) for run in (cold, warm)]
    assert f"cfn-lint: 8 of 8 templates linted, 0 from the cache ({cache})" in said[0]
    assert f"cfn-lint: 0 of 8 templates linted, 8 from the cache ({cache})" in said[1]
    assert warm.stderr == cold.stderr
    assert [line for line in cold.stderr.splitlines() if line.startswith("warning")] == [
        f"warning: FA100 project: {project.root}/dag_permissions/sales_daily.yaml:16: "
        "network.egress[0]: adds nothing: every task may already open tcp 443 to 0.0.0.0/0 (the "
        "workers security group all DAGs' tasks share, for AWS APIs, while "
        "network.private_endpoints is false)",
        "warning: W3005 acme-airflow-core/Resources/ApiServerServiceBEB56465: "
        "'LoadBalancerHttpsApiServerGroup88BF76B3' dependency already enforced by a 'Ref' at "
        "'Resources/ApiServerServiceBEB56465/Properties/LoadBalancers/0/TargetGroupArn'",
    ]
    second = {p.name: p.read_bytes() for p in (project.root / "cdk.out").glob("*.template.json")}
    assert second == first
    assert len(list(cache.glob("*.json"))) == 8
    rows = re.findall(r"^│ ([\w .,-]+?) +│ +\d+\.\d\d │$", cold.stdout, re.MULTILINE)
    assert rows == STAGES
    assert "time per stage" not in warm.stdout


def run_program(folder: Path, source: str) -> subprocess.CompletedProcess[str]:
    """`source` run as a program's main module (main.py in `folder`) with this checkout."""
    script = folder / "main.py"
    script.write_text(source)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )


def test_workers_do_not_import_the_programs_main_module(tmp_path: Path) -> None:
    """A spawned process imports its parent's main module first; cfn-lint's workers skip it
    (for the `foundation` command that would be the whole CLI in each worker)."""
    marks = tmp_path / "imported"
    done = run_program(
        tmp_path,
        "import os\n"
        f"with open({str(marks)!r}, 'a') as f:\n"
        "    f.write(f'{__name__}\\n')\n"
        "if __name__ == '__main__':\n"
        "    from foundation.checks import cfn_lint\n"
        "    with cfn_lint.workers('us-east-1', 2) as pool:\n"
        "        print(len({w.result() for w in pool.warming}))\n",
    )
    assert (done.returncode, done.stdout) == (0, "2\n"), done.stderr
    assert marks.read_text() == "__main__\n"


def test_workers_end_when_the_synth_that_started_them_is_killed(tmp_path: Path) -> None:
    """A synth killed mid-way (SIGKILL: no shutdown, no exit hook) leaves no worker behind."""
    done = run_program(
        tmp_path,
        "import os, signal\n"
        "from foundation.checks import cfn_lint\n"
        "with cfn_lint.workers('us-east-1', 2) as pool:\n"
        "    print(' '.join(str(w.result()) for w in pool.warming), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n",
    )
    workers = [int(pid) for pid in done.stdout.split()]
    assert (done.returncode, len(workers)) == (-9, 2), done.stderr
    deadline = time.monotonic() + 10
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in workers if running(pid)] == []


def running(pid: int) -> bool:
    """Alive, not ended and waiting to be reaped (a zombie, state Z)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("given", [[], ["clean"]])
def test_workers_are_ended_not_waited_for(given: list[str]) -> None:
    """Given nothing (every template cached) or once they have linted, workers are terminated:
    a clean shutdown would wait for cfn-lint's import and rules, or for its teardown."""
    pool = cfn_lint.Workers(REGION, 1)
    processes = list(pool.pool._processes.values())
    texts = [json.dumps(template(name), indent=1) for name in given]
    settings = tuple(cfn_lint.settings_files())
    assert pool.start(texts, REGION)() == [(settings, []) for _ in given]
    pool.close()
    assert [p.exitcode for p in processes] == [-signal.SIGTERM]


def test_a_ctrl_c_leaves_ending_the_workers_to_the_synth(capfd: pytest.CaptureFixture) -> None:
    """A terminal's Ctrl-C reaches every process of its group: the cfn-lint workers too. They
    leave it to the synth that started them (which ends them, `Workers.close`): interrupted
    themselves, each printed a KeyboardInterrupt traceback (`synth --watch` stopped by Ctrl-C
    while waiting, every time)."""
    # as `synth --watch` starts them: with Python's own Ctrl-C handler, not an inherited ignore
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        pool = cfn_lint.Workers(REGION, 1)
    finally:
        signal.signal(signal.SIGINT, saved)
    worker = pool.warming[0].result()
    capfd.readouterr()
    os.kill(worker, signal.SIGINT)
    time.sleep(1)
    assert running(worker)
    texts = [json.dumps(template("clean"), indent=1)]
    assert pool.start(texts, REGION)() == [(tuple(cfn_lint.settings_files()), [])]
    pool.close()
    assert capfd.readouterr() == ("", "")


# One process linting a template under each settings file in turn, as a warm worker does
WARM_LINTS = """
import json, sys
from pathlib import Path
from foundation.checks import cfn_lint
template = json.dumps({"Resources": {
    "Parameter": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": "v"}},
    "Thing": {"Type": "Acme::Test::Thing", "Properties": {"Size": 1}},
}})
said = []
for step in json.loads(sys.argv[1]):
    for name, text in step.items():
        Path(name).write_text(text)
    rows = cfn_lint._lint(template, "us-east-1", tuple(cfn_lint.settings_files()))
    said.append(sorted(f"{r[0]} {r[2]}" for r in rows))
print(json.dumps(said))
"""


def _thing_schema(*properties: str) -> str:
    return json.dumps(
        {
            "typeName": "Acme::Test::Thing",
            "description": "a registry type",
            "properties": {name: {"type": "integer"} for name in properties},
            "additionalProperties": False,
            "primaryIdentifier": ["/properties/Name"],
        }
    )


def test_a_warm_process_lints_each_settings_file_as_a_fresh_one_does(tmp_path: Path) -> None:
    """cfn-lint's schemas are one per process, and `override_spec` and `registry_schemas` change
    them: a process that has linted under such settings must lint under the next ones (none, or
    a registry schema edited) with the schemas cfn-lint ships, else it finds what a fresh
    process does not and the findings cache keeps that."""
    (tmp_path / "schemas").mkdir()
    steps = [
        {
            ".cfnlintrc": "override_spec: spec.json\n",
            "spec.json": '{"ExcludeResourceTypes": ["AWS::SSM::Parameter"]}',
        },
        {
            ".cfnlintrc": "registry_schemas: [schemas]\n",
            "schemas/thing.json": _thing_schema("Name", "Size"),
        },
        {"schemas/thing.json": _thing_schema("Name")},
        {".cfnlintrc": "{}\n"},
    ]

    def lint(run: list[dict[str, str]], folder: Path) -> list[list[str]]:
        done = subprocess.run(
            [sys.executable, "-c", WARM_LINTS, json.dumps(run)],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    warm = lint(steps, tmp_path)
    fresh = []
    for i in range(len(steps)):
        folder = tmp_path / f"fresh-{i}"
        (folder / "schemas").mkdir(parents=True)
        fresh += lint([dict(pair for step in steps[: i + 1] for pair in step.items())], folder)[-1:]
    assert warm == fresh
    thing, parameter = "E3006 Resources/Thing", "E3006 Resources/Parameter"
    assert fresh == [[parameter, thing], [], [], [thing]]


def test_the_settings_key_holds_the_files_a_settings_file_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What cfn-lint loads with its rules, by the settings file's names: an edit of any of them
    is new settings (a new findings key, rules loaded again), as an edit of the file itself."""
    monkeypatch.chdir(tmp_path)
    for name, text in {
        "rules/a.py": "A = 1\n",
        "rules/sub/b.py": "B = 2\n",
        "rules/notes.txt": "not a rule\n",
        "schemas/t.json": "{}\n",
        "custom.txt": "AWS::S3::Bucket Name EQUALS x WARN\n",
        "spec.json": "{}\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    settings = (
        b"append_rules: [rules, missing]\nregistry_schemas: [schemas]\n"
        b"custom_rules: custom.txt\noverride_spec: spec.json\n"
    )
    assert cfn_lint._named_files(settings) == [
        b"rules/a.py", b"A = 1\n",
        b"rules/sub/b.py", b"B = 2\n",
        b"schemas/t.json", b"{}\n",
        b"custom.txt", b"AWS::S3::Bucket Name EQUALS x WARN\n",
        b"spec.json", b"{}\n",
    ]  # fmt: skip
    assert cfn_lint._named_files(b"append_rules: [" + b"x" * 300 + b"]\n") == [
        b"OSError: [Errno 36] File name too long: '" + b"x" * 300 + b"'"
    ]
    assert cfn_lint._named_files(b"- a list\n") == []
