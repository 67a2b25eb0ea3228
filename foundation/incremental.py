"""Incremental synthesis: build only the stacks whose inputs changed (network, data and core
together, as what they read of the manifests changed; each worker stack by its DAGs'
manifests); take every other stack from the previous assembly, verified by hash, and merge
manifest.json and tree.json so the assembly is byte for byte what a cold synth writes.

Anything that cannot be shown identical falls back to a cold build: another config, env,
toolkit, CDK/cfn-lint version or cfn-lint settings, a file of the previous assembly that
differs from its record, a file CDK writes that this module does not know, JSON CDK serialized
differently, a worker stack importing a value neither the network's fixed exports nor the
cluster stacks' own imports hold (CDK exports what consumers reference), or a cdk-nag finding
recorded on a reused stack.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from foundation.project import Project, cluster_inputs, shards
from foundation.record import (
    CHANGED,
    RECORD,
    Built,
    Previous,
    Record,
    files_under,
    sha,
)

# The app-wide files CDK writes; everything else is a stack's or the runtime files.
_REPORT = "validation-report.json"  # cdk-nag's, written only if a plugin ran
_APP_FILES = ("cdk.out", "manifest.json", "tree.json", _REPORT)
_RUNTIME_DIR = "airflow/"
_STACK = "aws:cloudformation:stack"
_CDK_EXPORT = "ExportsOutput"  # the outputs CDK makes for a cross-stack reference

# project, folder, the worker shards to build (None: all), whether to build the cluster stacks
Synthesize = Callable[[Project, Path, Collection[int] | None, bool], None]
# a folder and the stacks built into it, told before the rest are built (to start checks early)
Early = Callable[[Path, list[str]], None]


def stack_inputs(project: Project, base: str) -> dict[int, str]:
    """Each worker shard's inputs: base_key, its number and its DAGs' manifests as loaded (not
    as the files are now: one edited during the synth was not built), in order."""
    keys = {}
    for shard, dags in shards(project).items():
        digest = hashlib.sha256(f"{base}\0{shard}".encode())
        for dag in dags:
            digest.update(f"{dag.file.name}\0{dag.document.sha256}\0".encode())
        keys[shard] = digest.hexdigest()
    return keys


def cluster_key(project: Project, base: str) -> str:
    """The cluster stacks' inputs: base_key and what they read of the manifests."""
    return sha(f"{base}\0{cluster_inputs(project).key()}".encode())


def _stack_files(name: str) -> tuple[str, str]:
    return f"{name}.template.json", f"{name}.metadata.json"


def build(
    project: Project,
    base: str,
    staging: Path,
    previous: Previous | None,
    synthesize: Synthesize,
    early: Early | None = None,
) -> Built:
    """Synthesize the project into `staging`, reusing what the previous assembly proves equal;
    with nothing to reuse and `early`, in two parts (`_in_two`). `early` is told the stacks
    built as soon as they are, before the merge, so that their checks start beside it."""
    ns = project.deployment.namespace
    order = [*ns.cluster_stacks, *(ns.worker_stack(s) for s in shards(project))]
    reused, why = _reusable(project, base, previous)
    if previous and reused:
        keep = set(reused)
        changed = [s for s in shards(project) if ns.worker_stack(s) not in keep]
        synthesize(project, staging, changed, not keep.issuperset(ns.cluster_stacks))
        if early:
            early(staging, [n for n in order if n not in keep])
        why = _merge(staging, previous, reused, order, ns.cluster_stacks)
        if not why:
            return Built(base, [n for n in order if n not in keep], reused)
        _empty(staging)
    elif early and _in_two(project, base, staging, order, synthesize, early):
        return Built(base, order, cold=why)
    synthesize(project, staging, None, True)
    return Built(base, order, cold=why)


def _in_two(
    project: Project,
    base: str,
    staging: Path,
    order: list[str],
    synthesize: Synthesize,
    early: Early,
) -> bool:
    """A cold build as two apps, so that `early` can start on the first's templates while the
    second builds: the first third of the worker stacks, then network, data, core and the
    other worker stacks, merged as an incremental build merges them (the first app's stacks
    reused), into the bytes one app writes. The cluster stacks go second: core takes longest to
    build, and the first templates reach cfn-lint's idle workers sooner without it (1,000 DAGs
    cold: 37.7 s against 43.3 s, medians of 7 rounds side by side, measured). False, with
    nothing in `staging`, when the merge cannot show that (a one-app build follows)."""
    ns = project.deployment.namespace
    numbers = list(shards(project))
    first = numbers[: -(-len(numbers) // 3)]
    if len(first) == len(numbers):
        return False
    part = Path(tempfile.mkdtemp(prefix=".synth-first-", dir=staging.parent))
    try:
        synthesize(project, part, first, False)
        names = [ns.worker_stack(s) for s in first]
        early(part, names)
        keys = stack_inputs(project, base)
        record = Record(
            CHANGED,
            base,
            CHANGED,
            {ns.worker_stack(s): keys[s] for s in first},
            {f: sha((part / f).read_bytes()) for f in files_under(part)},
        )
        synthesize(project, staging, numbers[len(first) :], True)
        if _merge(staging, Previous(part, record), names, order, ns.cluster_stacks):
            _empty(staging)
            return False
        return True
    finally:
        shutil.rmtree(part, ignore_errors=True)


def _reusable(project: Project, base: str, previous: Previous | None) -> tuple[list[str], str]:
    """The stacks whose inputs and files are as recorded, or why none can be reused."""
    if previous is None:
        return [], "nothing to reuse at --out (no assembly there with a record, or --cold)"
    if previous.record.base == CHANGED:
        return [], "its inputs changed while the previous synth ran"
    if previous.record.base != base:
        return [], "the config, env, toolkit, CDK/cfn-lint version or cfn-lint settings changed"
    for shared in ("manifest.json", "tree.json", _REPORT):
        if (shared != _REPORT or shared in previous.record.files) and not previous.intact(shared):
            return [], f"the previous assembly's {shared} differs from its record"
    ns = project.deployment.namespace
    cluster = ns.cluster_stacks
    reused = [
        ns.worker_stack(shard)
        for shard, key in stack_inputs(project, base).items()
        if previous.record.stacks.get(ns.worker_stack(shard)) == key
        and _intact(previous, ns.worker_stack(shard))
    ]
    if previous.record.cluster == cluster_key(project, base) and all(
        _intact(previous, n) for n in cluster
    ):
        reused = [*cluster, *reused]
    return reused, "" if reused else "no stack's inputs are unchanged"


def _intact(previous: Previous, stack: str) -> bool:
    return all(previous.intact(f) for f in _stack_files(stack))


def _empty(folder: Path) -> None:
    for path in folder.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _unknown_files(files: Collection[str], stacks: Collection[str]) -> list[str]:
    known = set(_APP_FILES) | {f for s in stacks for f in _stack_files(s)}
    return [f for f in files if f not in known and not f.startswith(_RUNTIME_DIR)]


def _load_as_written(path: Path, indent: int | None) -> dict[str, Any] | None:
    """The JSON file, if serializing it again gives its exact bytes (else merging could not)."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    return data if _dump(data, indent) == text else None


def _dump(data: dict[str, Any], indent: int | None) -> str:
    """JSON as CDK writes it (JSON.stringify): manifest.json indented by 2, tree.json compact."""
    if indent is None:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(data, ensure_ascii=False, indent=indent)


def _merge(
    staging: Path, previous: Previous, reused: list[str], order: list[str], cluster: list[str]
) -> str:
    """Add the reused stacks to the partial assembly in `staging`; say why not if it cannot be
    shown to equal a cold build."""
    # the built stacks, and empty ones in place of the cluster stacks when those are reused
    present = [n for n in order if n not in reused or n in cluster]
    if unknown := _unknown_files(files_under(staging), present):
        return f"CDK wrote files this toolkit does not merge ({', '.join(unknown)})"
    if unknown := _unknown_files(previous.record.files, [*previous.record.stacks, *cluster]):
        return f"the previous assembly has files this toolkit does not merge ({', '.join(unknown)})"
    parts = {
        (where, name): _load_as_written(root / name, indent)
        for where, root in (("new", staging), ("old", previous.root))
        for name, indent in (("manifest.json", 2), ("tree.json", None))
    }
    if any(p is None for p in parts.values()):
        return "CDK's manifest.json or tree.json is not serialized as this toolkit writes it"
    manifest = _merge_entries(
        parts["new", "manifest.json"]["artifacts"],
        parts["old", "manifest.json"]["artifacts"],
        order,
        present,
        reused,
        lambda name, entry: entry.get("type") == _STACK,
    )
    tree = _merge_entries(
        parts["new", "tree.json"]["tree"]["children"],
        parts["old", "tree.json"]["tree"]["children"],
        order,
        present,
        reused,
        lambda name, entry: name in order,
    )
    if manifest is None or tree is None:
        return "the stacks of manifest.json or tree.json are not in the app's order"
    why = (
        _reused_artifacts(manifest, reused)
        or _imports_only_shared(staging, previous, reused, order, cluster)
        or _nag_findings_on(previous, reused)
    )
    if why:
        return why
    parts["new", "manifest.json"]["artifacts"] = manifest
    parts["new", "tree.json"]["tree"]["children"] = tree
    for name, indent in (("manifest.json", 2), ("tree.json", None)):
        (staging / name).write_text(_dump(parts["new", name], indent), encoding="utf-8")
    for name in reused:
        for file in _stack_files(name):
            shutil.copyfile(previous.root / file, staging / file)
    return ""


def _merge_entries(
    new: dict[str, Any],
    old: dict[str, Any],
    order: list[str],
    present: list[str],
    reused: list[str],
    is_stack: Callable[[str, Any], bool],
) -> dict[str, Any] | None:
    """The stacks in the app's order, then the rest as the partial build has them; None unless
    the partial build lists its stacks (`present`) first and in the app's order."""
    stacks = [n for n, e in new.items() if is_stack(n, e)]
    rest = [n for n, e in new.items() if not is_stack(n, e)]
    if list(new) != stacks + rest or stacks != present:
        return None
    if any(n not in old for n in reused):
        return None
    merged = {n: (old[n] if n in reused else new[n]) for n in order}
    return merged | {n: new[n] for n in rest}


def _reused_artifacts(artifacts: dict[str, Any], reused: list[str]) -> str:
    for name in reused:
        properties = artifacts[name].get("properties", {})
        files = (properties.get("templateFile"), artifacts[name].get("additionalMetadataFile"))
        if files != _stack_files(name):
            return f"{name}'s artifact names files this toolkit does not copy"
    return ""


_IMPORT = re.compile(r'"Fn::ImportValue":\s*')


def _imports(text: str) -> Iterator[Any]:
    """Every Fn::ImportValue's argument in a template's JSON text. A match is always the key:
    a quote inside a JSON string is escaped."""
    decoder = json.JSONDecoder()
    for match in _IMPORT.finditer(text):
        yield decoder.raw_decode(text, match.end())[0]


def _imports_only_shared(
    staging: Path, previous: Previous, reused: list[str], order: list[str], cluster: list[str]
) -> str:
    """A cross-stack export CDK makes exists while some stack imports it, in the order
    consumers first reference it. A worker stack that imports only what the cluster stacks
    export by a fixed name or import themselves changes neither their exports nor the order:
    checked for each reused worker stack, and for every worker stack when the cluster stacks
    are reused (they were built without these workers)."""

    def text(name: str) -> str:
        root = previous.root if name in reused else staging
        return (root / f"{name}.template.json").read_text()

    shared: set[Any] = set()
    for name in cluster:
        template = text(name)
        shared |= {v for v in _imports(template) if isinstance(v, str)}
        shared |= {
            output.get("Export", {}).get("Name")
            for key, output in json.loads(template).get("Outputs", {}).items()
            if not key.startswith(_CDK_EXPORT)
        }
    cluster_reused = set(cluster) <= set(reused)
    for name in order:
        if name in cluster or not (name in reused or cluster_reused):
            continue
        for value in _imports(text(name)):
            if not isinstance(value, str) or value not in shared:
                return (
                    f"{name} imports {value!r}, which network, data and core neither export "
                    "by name nor import"
                )
    return ""


def _nag_findings_on(previous: Previous, reused: list[str]) -> str:
    """cdk-nag reports for the whole app: a reused stack must have had nothing to report."""
    if _REPORT not in previous.record.files:
        return ""
    report = previous.root / _REPORT
    for plugin in json.loads(report.read_text()).get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                stack = construct.get("constructPath", "").partition("/")[0]
                if stack in reused:
                    return f"cdk-nag reported on {stack} in the previous assembly"
    return ""


def write_record(
    staging: Path,
    project: Project,
    keys: tuple[str, str],
    built: Built,
    report: dict[str, Any],
) -> None:
    """The record of what was built: `keys`, the base key and fingerprint of the inputs as
    they were before the project was loaded (synth.py checks them again before writing)."""
    ns = project.deployment.namespace
    base, inputs = keys
    record = Record(
        inputs,
        base,
        cluster_key(project, built.base),
        {ns.worker_stack(s): key for s, key in stack_inputs(project, built.base).items()},
        {f: sha((staging / f).read_bytes()) for f in files_under(staging) if f != RECORD},
        report,
    )
    (staging / RECORD).write_text(record.to_json())
