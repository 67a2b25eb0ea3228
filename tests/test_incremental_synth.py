"""Incremental synthesis (foundation/incremental.py): what it reuses is byte for byte what a cold
synth writes, and a previous assembly that differs from its record is never trusted.

Each test starts from a copy of the example and of its cold assembly (the session's
`example_synth`): the record in it holds for the copy, whose files are the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from foundation import incremental, record, synth
from foundation import project as project_module
from foundation.errors import Problem
from foundation.naming import worker_shard
from foundation.project import cluster_inputs, load_project
from foundation.record import RECORD, Record
from tests.conftest import ROOT, ProjectDir

PROJECT = load_project(ROOT)
NS = PROJECT.deployment.namespace
NAME = PROJECT.deployment.name
NETWORK, DATA, CORE = NS.cluster_stacks
EXISTING = sorted(p.stem for p in (ROOT / "dag_permissions").glob("*.yaml"))
NEW = ["alpha_etl", "beta_report", "gamma_sync"]
PERMISSIONS = [
    "",
    "permissions:\n  secrets: [teams/platform/token]\n",
    "permissions:\n  s3:\n    - {bucket: acme-raw, prefix: alpha/, access: read}\n",
    "permissions:\n  sqs:\n    - {queue: q-alpha, access: send}\n",
]


def stack_of(dag_id: str) -> str:
    return NS.worker_stack(worker_shard(dag_id, PROJECT.deployment.worker_stacks))


def relative(findings: list, root: Path) -> list:
    """Findings as the example's synth (run from the repo root) words them: a project finding
    names its file from the current folder, which holds the example but not a copy of it."""
    return [replace(f, message=f.message.replace(f"{root}/", "")) for f in findings]


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def with_previous(project: ProjectDir, example_synth) -> Path:
    out = project.root / "cdk.out"
    shutil.copytree(example_synth.out, out)
    return out


def manifest(dag_id: str, variant: int) -> str:
    return f"dag_id: {dag_id}\nowner: data@example.com\n{PERMISSIONS[variant]}"


def apply(project: ProjectDir, edit: tuple) -> None:
    kind, *args = edit
    folder = project.root / "dag_permissions"
    if kind in ("add", "change"):
        dag_id, variant = args
        (folder / f"{dag_id}.yaml").write_text(manifest(dag_id, variant))
    elif kind == "remove":
        (folder / f"{args[0]}.yaml").unlink(missing_ok=True)
    else:  # config: the tags reach every stack
        config = project.root / "config" / "foundation.yaml"
        config.write_text(config.read_text().replace("team: data-platform", f"team: {args[0]}"))


def cold(project: ProjectDir, tmp: Path) -> dict[str, bytes]:
    """The edited project synthesized from nothing, as `foundation synth --cold` builds it."""
    out = tmp / "cold"
    shutil.rmtree(out, ignore_errors=True)
    synth.synthesize(load_project(project.root), out)
    return files(out)


edits = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(NEW), st.integers(0, len(PERMISSIONS) - 1)),
    st.tuples(st.just("change"), st.sampled_from(EXISTING), st.integers(0, len(PERMISSIONS) - 1)),
    st.tuples(st.just("remove"), st.sampled_from(EXISTING + NEW)),
    st.tuples(st.just("config"), st.sampled_from(["analytics", "data-eng"])),
)


@settings(
    max_examples=3,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(edits, min_size=1, max_size=2))
@example(steps=[("change", "housekeeping", 1), ("remove", "marketing_athena_report")])
@example(steps=[("add", "alpha_etl", 2), ("config", "analytics")])
@example(steps=[("change", "finance_redshift_load", 3), ("add", "beta_report", 1)])
def test_an_incremental_assembly_is_byte_identical_to_a_cold_one(
    steps: list[tuple], example_synth, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Random edits, each followed by an incremental synth of the previous step's assembly;
    every file equals a cold synth's, and the record names each file's hash. The pinned
    examples empty a worker stack, add one between two reused ones (workers-11), change the
    config (a cold build) and chain two incremental synths."""
    tmp = tmp_path_factory.mktemp("incremental")
    project = ProjectDir(tmp / "project")
    for folder in ("config", "dag_permissions"):
        shutil.copytree(ROOT / folder, project.root / folder)
    out = with_previous(project, example_synth)
    for step in steps:
        before = cluster_inputs(load_project(project.root)).key()
        apply(project, step)
        result = synth.run(project.root, None, out)
        assert result.written, [str(f) for f in result.errors]
        cluster_changed = before != cluster_inputs(load_project(project.root)).key()
        assert (CORE in result.built.rebuilt) == (step[0] == "config" or cluster_changed)
        built = files(out)
        record = Record.parse(built.pop(RECORD))
        expected = cold(project, tmp)
        assert sorted(built) == sorted(expected)
        for name, data in expected.items():
            assert built[name] == data, f"after {step}: {name} differs from a cold synth's"
        assert record.files == {n: hashlib.sha256(d).hexdigest() for n, d in expected.items()}


def test_another_process_synthesizes_the_same_bytes(tmp_path: Path, example_synth) -> None:
    """Reuse crosses processes (the previous assembly is an earlier run's): a synth must not
    depend on anything a process makes up, such as the folder jsii unpacks CDK into."""
    out = tmp_path / "out"
    code = (
        "import sys; from pathlib import Path; from foundation import synth; "
        "from foundation.project import cluster_inputs, load_project; "
        "synth.synthesize(load_project(Path(sys.argv[1])), Path(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(out)], check=True, env=env)
    expected = files(example_synth.out)
    del expected[RECORD]
    assert files(out) == expected


def build_in_two(out: Path, early: incremental.Early) -> record.Built:
    out.mkdir()
    return incremental.build(
        PROJECT, "base", out, None, lambda p, o, s, c: synth.synthesize(p, o, s, None, c), early
    )


def test_a_cold_build_in_two_apps_tells_the_first_and_writes_what_one_app_writes(
    tmp_path: Path, example_synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With something to start early (cfn-lint's workers), a cold build is two apps: the first
    third of the worker stacks, told as soon as they are written, then network, data, core and
    the others; merged, the bytes of one app's build (the session's `example_synth` is built so
    too, and test_another_process_synthesizes_the_same_bytes holds it to one app's)."""
    told, merged = [], []
    merge = incremental._merge
    monkeypatch.setattr(incremental, "_merge", lambda *a: merged.append(merge(*a)) or merged[-1])

    def early(folder: Path, stacks: list[str]) -> None:
        assert list((tmp_path / "out").iterdir()) == []  # before the second app builds
        told.append({n: (folder / f"{n}.template.json").read_bytes() for n in stacks})

    built = build_in_two(tmp_path / "out", early)
    assert merged == [""]  # the two apps were merged, not built again as one
    expected = files(example_synth.out)
    del expected[RECORD]
    assert files(tmp_path / "out") == expected
    stacks = [*NS.cluster_stacks, *(NS.worker_stack(s) for s in project_module.shards(PROJECT))]
    assert [list(t) for t in told] == [stacks[3 : 3 + 2]]  # 5 worker stacks: the first 2
    assert told[0] == {n: expected[f"{n}.template.json"] for n in told[0]}
    assert (built.rebuilt, built.reused) == (stacks, [])
    assert built.cold == "nothing to reuse at --out (no assembly there with a record, or --cold)"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the first app's folder: removed


def test_a_two_app_build_the_merge_cannot_show_equal_is_built_again_as_one(
    tmp_path: Path, example_synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incremental, "_merge", lambda *args: "not shown equal")
    told = []
    built = build_in_two(tmp_path / "out", lambda folder, stacks: told.append(stacks))
    expected = files(example_synth.out)
    del expected[RECORD]
    assert files(tmp_path / "out") == expected
    assert len(told) == 1 and built.reused == []


def test_an_incremental_build_tells_the_stacks_it_built_before_it_merges(
    project: ProjectDir, example_synth, tmp_path: Path
) -> None:
    """The edited DAG's worker stack is told as soon as it is written (cfn-lint's worker lints
    it while the merge and the toolkit's rules run), before the reused stacks are copied in."""
    out = with_previous(project, example_synth)
    apply(project, ("change", "housekeeping", 1))
    edited = stack_of("housekeeping")
    staging = tmp_path / "staging"
    staging.mkdir()
    told = []

    def early(folder: Path, stacks: list[str]) -> None:
        workers = sorted(p.name for p in folder.glob(f"{NAME}-workers-*.template.json"))
        assert workers == [f"{edited}.template.json"]  # no reused stack copied in yet
        told.append({n: (folder / f"{n}.template.json").read_bytes() for n in stacks})

    built = incremental.build(
        load_project(project.root),
        record.base_key(project.root, None),
        staging,
        record.Previous.read(out),
        lambda p, o, s, c: synth.synthesize(p, o, s, None, c),
        early,
    )
    assert built.rebuilt == [edited]
    assert told == [{edited: (staging / f"{edited}.template.json").read_bytes()}]


def test_nothing_changed_reuses_the_assembly_and_its_findings_without_building(
    project: ProjectDir, example_synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = with_previous(project, example_synth)
    before = files(out)

    def refuse(*args: object) -> None:
        raise AssertionError("nothing changed: the app must not be built")

    monkeypatch.setattr(synth, "synthesize", refuse)
    result = synth.run(project.root, None, out)
    assert result.built.rebuilt == []
    assert result.built.reused == [s.name for s in example_synth.stacks]
    assert relative(result.findings, project.root) == example_synth.findings
    assert [(s.name, s.findings) for s in result.stacks] == [
        (s.name, s.findings) for s in example_synth.stacks
    ]
    assert files(out) == before


def test_a_hand_edited_template_is_detected_by_hash_and_rebuilt(
    project: ProjectDir, example_synth
) -> None:
    out = with_previous(project, example_synth)
    victim = stack_of("housekeeping")
    template = out / f"{victim}.template.json"
    template.write_text(template.read_text().replace('"Effect": "Allow"', '"Effect": "Deny"', 1))
    assert not synth.is_up_to_date(out, project.root, None)  # deploy would synthesize again
    result = synth.run(project.root, None, out)
    assert result.built.rebuilt == [victim]
    assert files(out) == files(example_synth.out)  # the record included
    assert synth.is_up_to_date(out, project.root, None)


def test_a_previous_manifest_that_differs_from_its_record_means_a_cold_build(
    project: ProjectDir, example_synth
) -> None:
    out = with_previous(project, example_synth)
    (out / "manifest.json").write_text((out / "manifest.json").read_text() + "\n")
    result = synth.run(project.root, None, out)
    assert result.built.cold == "the previous assembly's manifest.json differs from its record"
    assert result.built.rebuilt == [s.name for s in example_synth.stacks]
    assert files(out) == files(example_synth.out)


def forge(out: Path, relative: str, data: bytes) -> None:
    """Change a file of the previous assembly and its hash in the record, as a synth that made
    it would have: only the merge's own checks can then refuse it."""
    (out / relative).write_bytes(data)
    record = json.loads((out / RECORD).read_text())
    record["files"][relative] = hashlib.sha256(data).hexdigest()
    (out / RECORD).write_text(json.dumps(record))


def test_a_reused_stack_importing_what_only_workers_import_means_a_cold_build(
    project: ProjectDir, example_synth
) -> None:
    """CDK exports a value while some stack imports it: reusing a worker stack that imports
    something network, data and core do not would leave network's exports unproven."""
    out = with_previous(project, example_synth)
    reused = stack_of("orders_glue_transform")
    template = json.loads((out / f"{reused}.template.json").read_text())
    template["Outputs"] = {"Probe": {"Value": {"Fn::ImportValue": f"{NETWORK}:OnlyWorkers"}}}
    forge(out, f"{reused}.template.json", json.dumps(template, indent=1).encode())
    apply(project, ("change", "housekeeping", 1))
    assert stack_of("housekeeping") != reused
    result = synth.run(project.root, None, out)
    assert result.built.cold == (
        f"{reused} imports '{NETWORK}:OnlyWorkers', which network, data and core neither export "
        "by name nor import"
    )
    assert (out / f"{reused}.template.json").read_bytes() == (
        example_synth.out / f"{reused}.template.json"
    ).read_bytes()


def test_a_cdk_nag_finding_recorded_on_a_reused_stack_means_a_cold_build(
    project: ProjectDir, example_synth
) -> None:
    out = with_previous(project, example_synth)
    reused = stack_of("orders_glue_transform")
    report = {
        "version": "55.0.0",
        "title": "Validation Report",
        "pluginReports": [
            {"violations": [{"violatingConstructs": [{"constructPath": f"{reused}/Probe"}]}]}
        ],
    }
    forge(out, "validation-report.json", json.dumps(report, indent=2).encode())
    apply(project, ("change", "housekeeping", 1))
    result = synth.run(project.root, None, out)
    assert result.built.cold == f"cdk-nag reported on {reused} in the previous assembly"


def test_json_cdk_did_not_write_means_a_cold_build(project: ProjectDir, example_synth) -> None:
    """Merging re-serializes manifest.json and tree.json: only when that gives CDK's bytes."""
    out = with_previous(project, example_synth)
    tree = json.loads((out / "tree.json").read_text())
    forge(out, "tree.json", json.dumps(tree, indent=1).encode())
    apply(project, ("change", "housekeeping", 1))
    result = synth.run(project.root, None, out)
    assert result.built.cold == (
        "CDK's manifest.json or tree.json is not serialized as this toolkit writes it"
    )


def test_a_file_the_merge_does_not_know_means_a_cold_build(
    project: ProjectDir, example_synth
) -> None:
    out = with_previous(project, example_synth)
    forge(out, "trees-1.json", b"{}")
    apply(project, ("change", "housekeeping", 1))
    result = synth.run(project.root, None, out)
    assert result.built.cold == (
        "the previous assembly has files this toolkit does not merge (trees-1.json)"
    )
    assert not (out / "trees-1.json").exists()


def test_another_cfn_lint_version_means_a_cold_build(
    project: ProjectDir, example_synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same templates, another cfn-lint: nothing is reused (the findings cache keys by cfn-lint's
    version as well: tests/test_lint_cache.py)."""
    out = with_previous(project, example_synth)
    installed = record.version
    monkeypatch.setattr(record, "version", lambda p: "99.0.0" if p == "cfn-lint" else installed(p))
    result = synth.run(project.root, None, out)
    assert result.built.cold == (
        "the config, env, toolkit, CDK/cfn-lint version or cfn-lint settings changed"
    )
    assert relative(result.findings, project.root) == example_synth.findings


def test_nothing_changed_replays_the_record_without_loading_the_project(
    project: ProjectDir, example_synth
) -> None:
    """With nothing changed, a synth in a fresh process reads the record alone: no project, no
    rules, no CDK, no cfn-lint; and says exactly what the synth that wrote it said. The checks'
    findings are replayed, not found again: the record's inputs hash the toolkit's code and
    cfn-lint's version and settings, so checking the same bytes again finds the same, and
    anyone who could edit the record could edit the templates and their hashes too (`foundation
    deploy` trusts an up-to-date record as well)."""
    out = with_previous(project, example_synth)
    code = (
        "import json, sys; from dataclasses import asdict; from pathlib import Path; "
        "from foundation import synth; "
        "r = synth.run(Path(sys.argv[1]), None, None); "
        "heavy = ['foundation.project', 'foundation.checks.rules', 'aws_cdk', 'cfnlint', "
        "'pydantic', 'botocore']; "
        "print(json.dumps({'imported': [m for m in heavy if m in sys.modules], "
        "'result': synth.as_data(r), 'warnings': [[str(w.file), w.line, w.field, w.message] "
        "for w in r.warnings]}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", code, str(project.root)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        cwd=project.root,
    )
    replayed = json.loads(run.stdout)
    assert replayed["imported"] == []
    expected = synth.as_data(example_synth)
    data = replayed["result"]
    assert list(data.pop("timings")) == ["compare with the record"]
    assert (data.pop("out"), data.pop("rebuilt"), data.pop("reused")) == (
        str(out),
        [],
        [s.name for s in example_synth.stacks],
    )
    for key in ("timings", "out", "rebuilt", "reused"):
        del expected[key]
    assert data == expected
    assert replayed["warnings"] == [
        [str(project.root / w.file.relative_to(ROOT)), w.line, w.field, w.message]
        for w in example_synth.warnings
    ]
    assert replayed["warnings"]  # the example has one: it must be there
    assert files(out) == files(example_synth.out)


def test_a_record_whose_report_is_not_one_means_a_build(project: ProjectDir, example_synth) -> None:
    out = with_previous(project, example_synth)
    text = json.loads((out / RECORD).read_text())
    text["report"]["stacks"] = [{"name": NETWORK, "resources": "34"}]
    (out / RECORD).write_text(json.dumps(text))
    result = synth.run(project.root, None, out)
    assert result.built.rebuilt == []  # every stack's inputs and files are as recorded
    assert relative(result.findings, project.root) == example_synth.findings
    assert files(out) == files(example_synth.out)


def synth_says(project: ProjectDir, *options: str) -> list[str]:
    """The lines `foundation synth` printed, once it succeeded."""
    run = project.run("synth", *options)
    assert run.exit_code == 0, run.stderr
    return run.stdout.splitlines()


def test_synth_says_what_it_rebuilt_and_what_it_reused(project: ProjectDir, example_synth) -> None:
    with_previous(project, example_synth)
    unchanged = synth_says(project)
    assert (
        "Nothing changed: all 8 stack(s) reused from the previous synth (verified by hash), with "
        "its findings."
    ) in unchanged
    # the last lines before the next steps
    assert unchanged[-4] == f"Cloud assembly up to date at {project.root}/cdk.out"
    apply(project, ("change", "housekeeping", 1))  # services other DAGs use already
    assert (
        f"Rebuilt 1 stack(s) ({stack_of('housekeeping')}); reused 7 unchanged from the previous "
        "assembly (verified by hash)."
    ) in synth_says(project)
    # the only DAG granted Athena, alone in its worker stack, which goes
    apply(project, ("remove", "marketing_athena_report"))
    assert (
        f"Rebuilt 3 stack(s) ({NETWORK}, {DATA}, {CORE}); reused 4 unchanged from the previous "
        "assembly (verified by hash)."
    ) in synth_says(project)
    assert not (
        project.root / "cdk.out" / f"{stack_of('marketing_athena_report')}.template.json"
    ).exists()
    assert (
        "Built all 7 stack(s): nothing to reuse at --out (no assembly there with a record, or "
        "--cold)."
    ) in synth_says(project, "--cold")


def test_every_file_under_the_manifests_folder_is_an_input(
    project: ProjectDir, example_synth
) -> None:
    """The loader reads `*.YAML` as a manifest and warns about files it does not read: an edit
    to either is never "nothing changed"."""
    out = with_previous(project, example_synth)
    upper = project.root / "dag_permissions" / "extra.YAML"
    upper.write_text(manifest("extra", 0))
    assert synth.run(project.root, None, out).built.rebuilt == [stack_of("extra")]
    upper.write_text(manifest("extra", 1))
    assert synth.run(project.root, None, out).built.rebuilt == [stack_of("extra")]
    notes = project.root / "dag_permissions" / "NOTES.md"
    notes.write_text("notes\n")
    result = synth.run(project.root, None, out)
    message = "not read: only <dag_id>.yaml (or .yml) files are DAG manifests"
    assert Problem(notes, 1, "", message) in result.warnings
    notes.unlink()
    assert Problem(notes, 1, "", message) not in synth.run(project.root, None, out).warnings


@pytest.mark.parametrize(
    "damage",
    [
        b"\xff",
        b"[" * 100_000,
        json.dumps(
            {
                "format": 5,
                "inputs": "",
                "base": "",
                "cluster": "",
                "stacks": {},
                "files": [[1, "x"], ["a", "y"]],
                "report": {},
            }
        ).encode(),
    ],
    ids=["not utf-8", "deep", "files not names"],
)
def test_a_damaged_record_means_a_cold_build(
    project: ProjectDir, example_synth, damage: bytes
) -> None:
    out = with_previous(project, example_synth)
    (out / RECORD).write_bytes(damage)
    result = synth.run(project.root, None, out)
    assert result.built.cold == (
        "nothing to reuse at --out (no assembly there with a record, or --cold)"
    )
    assert files(out) == files(example_synth.out)


def test_a_manifest_edited_during_a_synth_is_built_by_the_next(
    project: ProjectDir, example_synth, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A manifest edited after the project was loaded: the synth sees it before writing its
    record and records that its inputs changed, so the next synth replays nothing; it rebuilds
    that DAG's worker stack alone (its key hashes the manifest as read), and every file is a
    cold synth's."""
    out = with_previous(project, example_synth)
    build = incremental.build

    def edited_midway(*args: object) -> object:
        built = build(*args)
        apply(project, ("change", "housekeeping", 1))
        return built

    monkeypatch.setattr(incremental, "build", edited_midway)
    apply(project, ("change", "housekeeping", 2))
    assert synth.run(project.root, None, out).written
    monkeypatch.undo()
    assert not synth.is_up_to_date(out, project.root, None)
    result = synth.run(project.root, None, out)
    assert (result.built.rebuilt, result.built.cold) == ([stack_of("housekeeping")], "")
    built = files(out)
    del built[RECORD]
    assert built == cold(project, tmp_path)


CHANGED_WHILE = "its inputs changed while the previous synth ran"


@pytest.mark.parametrize(
    ("edited", "why"),
    [("dag_permissions/housekeeping.yaml", ""), ("config/foundation.yaml", CHANGED_WHILE)],
    ids=["manifest", "config"],
)
def test_a_file_edited_and_put_back_while_a_synth_loads_is_never_taken_as_built(
    project: ProjectDir,
    example_synth,
    monkeypatch: pytest.MonkeyPatch,
    edited: str,
    why: str,
) -> None:
    """The synth loads the edited file, then it is put back (an editor's undo): its fingerprint,
    taken before loading, matches again, but what it built is not what the files say. It
    records that its inputs changed; the next synth rebuilds the stacks built from the edited
    manifest, or every stack for the config."""
    out = with_previous(project, example_synth)
    path = project.root / edited
    original = path.read_text()
    load = project_module.load_project

    def edited_while_loading(*args: object) -> object:
        path.write_text(original + "# edited\n")
        try:
            return load(*args)
        finally:
            path.write_text(original)

    monkeypatch.setattr(project_module, "load_project", edited_while_loading)
    assert synth.run(project.root, None, out, cold=True).written
    monkeypatch.undo()
    assert not synth.is_up_to_date(out, project.root, None)
    result = synth.run(project.root, None, out)
    every = [s.name for s in example_synth.stacks]
    rebuilt = every if why else [stack_of("housekeeping")]
    assert (result.built.rebuilt, result.built.cold) == (rebuilt, why)
    assert files(out) == files(example_synth.out)


@pytest.mark.parametrize(
    ("moved", "kept"),
    [("dag_permissions/housekeeping.yaml", None), (None, "dag_permissions/notes.txt")],
    ids=["manifest-away-while-loading", "other-file-only-while-loading"],
)
def test_a_listing_that_differs_only_while_a_synth_loads_is_never_taken_as_built(
    project: ProjectDir,
    example_synth,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    moved: str | None,
    kept: str | None,
) -> None:
    """A manifest moved away while the synth loads and put back with the same bytes (an
    editor's save that renames the original first), or a file that is no manifest there only
    while it loads (vim's 4913, an editor's backup): the fingerprints before and after match,
    and every file loaded is as read, but what the load saw is not what the folder holds. The
    next synth, with nothing edited, must give a cold synth's files and findings."""
    out = with_previous(project, example_synth)
    load = project_module.load_project

    def listing_differs_while_loading(*args: object) -> object:
        if moved:
            path = project.root / moved
            aside = tmp_path / "aside"
            path.rename(aside)
        else:
            path = project.write(kept, "notes\n")
        try:
            return load(*args)
        finally:
            aside.rename(path) if moved else path.unlink()

    monkeypatch.setattr(project_module, "load_project", listing_differs_while_loading)
    assert synth.run(project.root, None, out, cold=True).written
    monkeypatch.undo()
    result = synth.run(project.root, None, out)
    assert relative(result.findings, project.root) == example_synth.findings
    built = files(out)
    del built[RECORD]
    assert built == cold(project, tmp_path)


def test_a_file_gone_between_listing_and_hashing_is_hashed_as_gone(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor's swap file deleted after the folder was listed and before it was read: the
    fingerprint is taken all the same (no crash), and is neither the one with the file nor the
    one without it, so nothing is ever recorded as built from a folder in the middle of a
    change."""
    swap = project.write("dag_permissions/.housekeeping.yaml.swp", "b0VIM 9.0")
    base = record.base_key(project.root, None)
    with_swap = record.fingerprint(project.root, base)
    read_bytes = Path.read_bytes

    def deleted_meanwhile(path: Path) -> bytes:
        if path == swap:
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", deleted_meanwhile)
    racing = record.fingerprint(project.root, base)
    monkeypatch.undo()
    swap.unlink()
    assert len({with_swap, racing, record.fingerprint(project.root, base)}) == 3
