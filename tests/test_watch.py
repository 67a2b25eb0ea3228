"""`foundation synth --watch` (foundation/watch.py): one process that synthesizes again each time
an input changes, keeping Node.js and cfn-lint's workers; run here as the `foundation` command
is, in a process of its own, and its waiting in-process."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from foundation import synth, triggers, watch
from foundation.checks import cfn_lint
from foundation.errors import InvalidInput
from foundation.project import Memo, load_project
from foundation.record import RECORD, look, toolkit_key
from tests.conftest import ProjectDir
from tests.test_incremental_synth import files, stack_of, with_previous

WATCHING = "Watching config/, dag_permissions/ and the toolkit; Ctrl-C stops."


class Watcher:
    """`foundation synth --watch` in a process of its own, its output read line by line."""

    def __init__(self, root: Path, out: Path, env: dict[str, str], cwd: Path | None = None) -> None:
        command = ["synth", "--watch", "--project", str(root), "--out", str(out)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from foundation.cli import run; run()", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")  # the end

    def next_synth(self) -> list[str]:
        """The lines up to the next WATCHING: one synth's report."""
        found = []
        while (line := self.lines.get(timeout=120)) != WATCHING:
            assert line, f"the watch ended: {found}"
            found.append(line)
        return found

    def rest(self) -> list[str]:
        """The lines left once the process has ended."""
        found = []
        while line := self.lines.get(timeout=10):
            found.append(line)
        return found

    def children(self) -> set[int]:
        pid = self.process.pid
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def running(pid: int) -> bool:
    """Whether the process exists and has not ended (an ended one, not yet reaped by whoever
    inherited it, is a zombie: state Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def still_running(pids: set[int], within: float = 10) -> list[int]:
    """The processes still running once `within` seconds have passed (an orphan, such as
    multiprocessing's resource tracker, ends on its own once its parent's pipe closes)."""
    deadline = time.monotonic() + within
    while (left := sorted(p for p in pids if running(p))) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def grant(project: ProjectDir, secret: str) -> None:
    project.manifest(
        "housekeeping",
        f"dag_id: housekeeping\nowner: data-platform@example.com\n"
        f"permissions:\n  secrets: [{secret}]\n",
    )


def test_a_watch_rebuilds_each_edit_in_one_warm_process(
    project: ProjectDir, example_synth, tmp_path: Path
) -> None:
    """Each edit is synthesized by the same process, with the same Node.js and cfn-lint worker
    processes (started while it waited after a first synth that replayed its record, and never
    again), and gives a cold synth's files; a bad manifest is reported
    as `synth` reports it, and the watch goes on; a TERM while waiting ends it cleanly (exit 0,
    its temporary folders and processes gone)."""
    out = with_previous(project, example_synth)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    watcher = Watcher(project.root, out, os.environ | {"TMPDIR": str(temporary)})
    try:
        every = len(example_synth.stacks)
        assert (
            f"Nothing changed: all {every} stack(s) reused from the previous synth (verified by "
            "hash), with its findings."
        ) in watcher.next_synth()  # after the stacks' table
        warm = watcher.children()
        assert len(warm) >= 3  # jsii's Node.js launcher and a cfn-lint worker per core (2+)
        stack = stack_of("housekeeping")
        rebuilt = (
            f"Rebuilt 1 stack(s) ({stack}); reused {every - 1} unchanged from the previous "
            "assembly (verified by hash)."
        )
        grant(project, "teams/watch/first")
        first = watcher.next_synth()
        assert re.fullmatch(r"\d\d:\d\d:\d\d an input changed", first[0])
        assert first[1] == rebuilt
        assert first[2].startswith(f"cfn-lint: 1 of {every} templates linted, ")
        assert watcher.children() == warm

        grant(project, "teams/watch/second")
        second = watcher.next_synth()
        assert second[1:3] == [rebuilt, first[2]]
        assert watcher.children() == warm
        cold = tmp_path / "cold"
        synth.synthesize(load_project(project.root), cold)
        built = files(out)
        del built[RECORD]
        assert built == files(cold)

        bad = project.write("dag_permissions/bad.yaml", "dag_id: [oops\n")
        report = watcher.next_synth()
        assert report[1:] == [
            f"error: {bad}:2: YAML syntax error: did not find expected ',' or ']'",
            "1 problem(s); nothing was written.",
        ]
        bad.unlink()
        assert watcher.next_synth()[1].startswith("Nothing changed: ")
    finally:
        watcher.process.send_signal(signal.SIGTERM)
        watcher.process.wait(timeout=60)
    assert watcher.process.returncode == 0
    # a TERM that lands while the last WATCHING is being printed makes rich write it again
    assert watcher.rest() in (["Stopped watching."], [WATCHING, "Stopped watching."])
    assert list(temporary.iterdir()) == []
    assert still_running(warm) == []


def test_watch_and_json_are_refused_together(project: ProjectDir) -> None:
    run = project.run("synth", "--watch", "--json")
    assert (run.exit_code, run.stdout) == (2, "")
    assert run.stderr == "error: --watch prints as it goes: it cannot be used with --json\n"


def test_a_changed_toolkit_stops_the_watch(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process runs the code it loaded: once the toolkit on disk is another, it must not
    synthesize (and record) as if it ran the new one."""
    seen = look(project.root)
    grant(project, "teams/watch/toolkit")
    monkeypatch.setattr(watch, "toolkit_key", lambda: "the toolkit as changed on disk")
    with pytest.raises(watch.ToolkitChanged):
        watch.wait(project.root, seen, "the toolkit this process loaded")


@pytest.mark.parametrize("where", ["dag_permissions/extra.yaml", "config/dev.yaml"])
def test_waiting_ends_on_a_new_file_in_either_folder(project: ProjectDir, where: str) -> None:
    seen = look(project.root)
    project.write(where, "x: 1\n")
    toolkit = watch.toolkit_key()
    watch.wait(project.root, seen, toolkit)  # returns: the inputs changed
    assert look(project.root) != seen


def test_a_watch_without_a_project_says_so_and_keeps_waiting(tmp_path: Path) -> None:
    """An empty folder: the missing config is reported like `synth` reports it; the watch waits
    for it (ended here by a TERM)."""
    env = os.environ | {"TMPDIR": str(tmp_path)}
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    watcher = Watcher(tmp_path / "p", tmp_path / "out", env)
    try:
        report = watcher.next_synth()
    finally:
        watcher.process.send_signal(signal.SIGTERM)
        watcher.process.wait(timeout=60)
    config = tmp_path / "p" / "config" / "foundation.yaml"
    assert report[0].startswith(f"error: {config}: not found: a project holds")
    assert watcher.process.returncode == 0


def test_changed_cfn_lint_settings_are_linted_with(
    project: ProjectDir, example_synth, tmp_path: Path
) -> None:
    """cfn-lint's settings file in the working folder changes while the watch runs (it now adds
    a custom rule): every stack is built again (the settings are an input) and linted by workers
    that loaded the rules anew, not by the warm ones that loaded them before."""
    out = with_previous(project, example_synth)
    custom = tmp_path / "custom-rules.txt"
    custom.write_text('AWS::RDS::DBInstance StorageEncrypted EQUALS false WARN "a custom rule"\n')
    custom_finding = "warning: W9001 acme-airflow-data/Resources/DatabaseB269D8BB: a custom rule"
    watcher = Watcher(project.root, out, dict(os.environ), cwd=tmp_path)
    try:
        assert custom_finding not in watcher.next_synth()
        grant(project, "teams/watch/settings")  # the workers lint, so they have loaded the rules
        assert custom_finding not in watcher.next_synth()
        (tmp_path / ".cfnlintrc").write_text(f"custom_rules: {custom}\n")
        report = watcher.next_synth()
        every = len(example_synth.stacks)
        assert report[1] == (
            f"Built all {every} stack(s): the config, env, toolkit, CDK/cfn-lint version or "
            "cfn-lint settings changed."
        )
        assert report[2].startswith(f"cfn-lint: {every} of {every} templates linted, 0 from")
        assert custom_finding in report
    finally:
        watcher.process.send_signal(signal.SIGTERM)
        watcher.process.wait(timeout=60)
    assert watcher.process.returncode == 0


def test_a_watch_lints_with_cfn_lint_settings_as_they_are_now(
    project: ProjectDir, example_synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `.cfnlintrc` written while a watch runs is an input (the next synth builds every stack
    and keys cfn-lint's findings by it): its templates must be linted with it, as a fresh
    process lints them, not with the settings the warm workers loaded when they started (nor
    kept in the findings cache under the new settings' key)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FOUNDATION_CACHE_DIR", str(tmp_path / "cache"))
    out = with_previous(project, example_synth)
    session = synth.Session(watch.toolkit_key())
    try:
        assert synth.run(project.root, None, out, cold=True, session=session).written
        (tmp_path / ".cfnlintrc").write_text("include_checks: [I]\n")
        watched = synth.run(project.root, None, out, session=session)
    finally:
        session.close()
    monkeypatch.setenv("FOUNDATION_CACHE_DIR", str(tmp_path / "fresh-cache"))
    monkeypatch.setattr(synth.cfn_lint, "cores", lambda: 1)
    synth.cfn_lint._linter.cache_clear()
    fresh = synth.run(project.root, None, tmp_path / "fresh", cold=True)
    assert fresh.findings != example_synth.findings  # the settings find more
    assert watched.findings == fresh.findings


RULE = """
from cfnlint.rules import CloudFormationLintRule, RuleMatch


class Version(CloudFormationLintRule):
    id = "W9100"
    shortdesc = description = "the rule file's version"
    source_url = ""
    tags: list = []

    def match(self, cfn):
        return [RuleMatch(["Resources"], "custom rule VERSION-{}")]
"""


def test_a_warm_process_lints_with_the_rule_files_as_they_are_now(
    project: ProjectDir, example_synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule file in the folder a `.cfnlintrc` appends changes between two synths of one warm
    process (a watch, the daemon), nothing else does: the second lints with the new code, as a
    process of its own would (cfn-lint runs those files again each time it loads its rules)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FOUNDATION_CACHE_DIR", str(tmp_path / "cache"))
    rules = tmp_path / "rules"
    rules.mkdir()
    (tmp_path / ".cfnlintrc").write_text(f"append_rules: [{rules}]\n")
    out = with_previous(project, example_synth)
    session = synth.Session(watch.toolkit_key())
    said = []
    try:
        for version in (1, 2):
            (rules / "version.py").write_text(RULE.format(version))
            result = synth.run(project.root, None, out, session=session)
            said.append(sorted({f.message for f in result.findings if f.rule == "W9100"}))
    finally:
        session.close()
    assert said == [["custom rule VERSION-1"], ["custom rule VERSION-2"]]


@pytest.mark.parametrize("inside", ["config", "dag_permissions"])
def test_an_out_inside_the_inputs_is_refused(project: ProjectDir, inside: str) -> None:
    """The assembly (and the synth's staging folder beside it) would be an input of every
    synth: none would ever be up to date, and a watch would rebuild every stack forever."""
    out = project.root / inside / "cdk.out"
    run = project.run("synth", "--out", str(out))
    assert (run.exit_code, run.stdout) == (2, "")
    assert run.stderr == (
        f"error: --out {out} is inside the project's {inside}/, every file of which is an "
        "input of the synth; choose a folder of its own\n"
    )
    assert not out.exists()


def test_an_unsafe_out_ends_the_watch_at_once(project: ProjectDir) -> None:
    """No change of the inputs can make such an --out safe: the watch refuses it before it
    starts, as `synth` does (exit 2), rather than wait on it."""
    out = project.write("not-an-assembly.txt", "notes\n")
    run = project.run("synth", "--watch", "--out", str(out))
    assert (run.exit_code, run.stdout) == (2, "")
    assert run.stderr == (
        f"error: --out {out} exists and is not a cloud assembly; synth replaces only assemblies\n"
    )
    assert out.read_text() == "notes\n"


def test_cold_holds_until_a_watched_synth_has_written(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`synth --watch --cold`: a first synth that fails (a bad manifest) wrote nothing, so the
    next one must still ignore the assembly at --out, as --cold asked."""
    from foundation.errors import InvalidInput, Problem

    asked = []

    def refused(root: Path, env: object, out: object, cold: bool, *rest: object) -> None:
        asked.append(cold)
        raise InvalidInput([Problem(root / "dag_permissions/bad.yaml", 1, "", "bad")])

    def two_synths(root: Path, env: object, synthesize, waiting) -> None:
        synthesize(synth.Session("toolkit"))
        synthesize(synth.Session("toolkit"))
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "run", refused)
    monkeypatch.setattr(watch, "loop", two_synths)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    run = project.run("synth", "--watch", "--cold")
    assert (run.exit_code, asked) == (0, [True, True])


def test_a_watch_parses_and_builds_again_only_the_manifests_that_changed(
    project: ProjectDir,
) -> None:
    """The session's memo (project.Memo): a DAG whose manifest kept its bytes is the one the
    last load built; the edited one is built again; and each load is what a load without the
    memo gives (a changed config builds every DAG again, for the new deployment)."""
    memo = Memo()
    first = load_project(project.root, memo=memo)
    grant(project, "teams/watch/memo")
    second = load_project(project.root, memo=memo)
    again = [d.dag_id for d, before in zip(second.dags, first.dags, strict=True) if d is before]
    assert again == sorted({d.dag_id for d in first.dags} - {"housekeeping"})
    assert second.dags == load_project(project.root).dags

    config = project.root / "config" / "foundation.yaml"
    config.write_text(config.read_text().replace("name: acme-airflow", "name: other-airflow"))
    third = load_project(project.root, memo=memo)
    assert not any(d is before for d, before in zip(third.dags, second.dags, strict=True))
    assert third.dags == load_project(project.root).dags
    assert third.dags != second.dags


def test_warming_a_session_loads_the_project_into_its_memo(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a first synth that replayed its record, the watch waits with every DAG built: the
    first edit then parses and builds only its own manifest."""
    monkeypatch.setattr(cfn_lint, "cores", lambda: 1)  # no workers to start here
    session = synth.Session(toolkit_key())
    session.warm(project.root, None)
    assert session.memo
    built = sorted(dag.dag_id for dag, _ in session.memo.dags.values())
    assert built == sorted(p.stem for p in (project.root / "dag_permissions").glob("*.yaml"))


def test_a_watch_checks_each_added_trigger_class_once(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking an added trigger class starts an interpreter that imports Airflow (seconds): the
    memo keeps each class that passed and checks only a class newly added, and one refused
    again (its fix may be outside the inputs: a module installed)."""
    checked: list[str] = []

    def check(classpath: str) -> str | None:
        checked.append(classpath)
        return "refused here" if classpath.endswith("Refused") else None

    monkeypatch.setattr(triggers, "check", check)
    config = project.root / "config" / "foundation.yaml"
    text = config.read_text()
    added = text.replace(
        "airflow:\n", "airflow:\n  triggers: [my.triggers.Fine, my.triggers.Refused]\n", 1
    )
    config.write_text(added)
    memo = Memo()
    with pytest.raises(InvalidInput) as first:
        load_project(project.root, memo=memo)
    grant(project, "teams/watch/triggers")
    with pytest.raises(InvalidInput) as second:
        load_project(project.root, memo=memo)
    assert checked == ["my.triggers.Fine", "my.triggers.Refused", "my.triggers.Refused"]
    assert [str(p) for p in second.value.problems] == [str(p) for p in first.value.problems]
    assert [p.message for p in first.value.problems] == ["refused here"]

    config.write_text(added.replace("my.triggers.Refused", "my.triggers.Other"))
    load_project(project.root, memo=memo)
    assert checked[3:] == ["my.triggers.Other"]
