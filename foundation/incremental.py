"""Incremental synthesis: build network, data, core and only the worker stacks whose inputs
changed; take every other worker stack from the previous assembly, verified by hash, and merge
manifest.json and tree.json so the assembly is byte for byte what a cold synth writes.

Anything that cannot be shown identical falls back to a cold build: another config, env,
toolkit or CDK/cfn-lint version, a file of the previous assembly that differs from its record,
a file CDK writes that this module does not know, JSON CDK serialized differently, a reused
stack importing a value only worker stacks import (CDK exports what consumers reference), or a
cdk-nag finding recorded on a reused stack.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from foundation.project import MANIFEST_DIR, Project, shards

RECORD = "foundation-inputs.json"
FORMAT = 3  # 3: no findings (every synth checks the whole assembly; cfn-lint has its cache)
_TOOLKIT = Path(__file__).resolve().parents[1]
# What a template and its checks' findings depend on besides the project and the toolkit's code.
_VERSIONED = ("aws-cdk-lib", "constructs", "cdk-nag", "jsii", "cfn-lint")
# The app-wide files CDK writes; everything else is a stack's or the runtime files.
_REPORT = "validation-report.json"  # cdk-nag's, written only if a plugin ran
_APP_FILES = ("cdk.out", "manifest.json", "tree.json", _REPORT)
_RUNTIME_DIR = "airflow/"
_STACK = "aws:cloudformation:stack"

Synthesize = Callable[[Project, Path, Collection[int] | None], None]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_folder(digest: Any, folder: Path) -> None:
    digest.update(folder.name.encode() + b"\0")
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".yaml", ".yml"):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())


def base_key(root: Path, env: str | None) -> str:
    """A hash of everything a synth reads but the manifests: env, config, the toolkit's code,
    and the versions of CDK, cdk-nag and cfn-lint."""
    digest = hashlib.sha256(f"env={env}".encode())
    for package in _VERSIONED:
        digest.update(f"{package}={version(package)}\0".encode())
    for folder in (root / "config", _TOOLKIT / "foundation", _TOOLKIT / "stacks"):
        _digest_folder(digest, folder)
    return digest.hexdigest()


def fingerprint(root: Path, env: str | None) -> str:
    """A hash of everything a synth reads: base_key and every file under dag_permissions/."""
    digest = hashlib.sha256(base_key(root, env).encode())
    _digest_folder(digest, root / MANIFEST_DIR)
    return digest.hexdigest()


def stack_inputs(project: Project, base: str) -> dict[int, str]:
    """Each worker shard's inputs: base_key, its number and its DAGs' manifests, in order."""
    keys = {}
    for shard, dags in shards(project).items():
        digest = hashlib.sha256(f"{base}\0{shard}".encode())
        for dag in dags:
            digest.update(dag.file.name.encode() + b"\0" + dag.file.read_bytes())
        keys[shard] = digest.hexdigest()
    return keys


@dataclass
class Record:
    """What a written assembly was built from and its files' hashes."""

    inputs: str  # fingerprint
    base: str  # base_key
    stacks: dict[str, str]  # worker stack -> its inputs (stack_inputs)
    files: dict[str, str]  # every file of the assembly but this record -> sha256

    def to_json(self) -> str:
        data = asdict(self)
        data["format"] = FORMAT
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> Record | None:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                return None
            return cls(
                data["inputs"],
                data["base"],
                dict(data["stacks"]),
                dict(data["files"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def _files(root: Path) -> list[str]:
    """Every file under `root`, as sorted relative paths (as the record's keys sort)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Previous:
    """The assembly already at --out and its record."""

    root: Path
    record: Record

    @classmethod
    def read(cls, root: Path) -> Previous | None:
        try:
            record = Record.parse((root / RECORD).read_text())
        except OSError:
            return None
        return cls(root, record) if record else None

    def intact(self, relative: str) -> bool:
        path = self.root / relative
        recorded = self.record.files.get(relative)
        return recorded is not None and path.is_file() and _sha(path.read_bytes()) == recorded

    def unchanged(self, inputs: str) -> bool:
        """Built from these inputs, and every file as recorded, with none added."""
        files = [f for f in _files(self.root) if f != RECORD]
        return (
            self.record.inputs == inputs
            and files == sorted(self.record.files)
            and all(self.intact(f) for f in files)
        )


def _stack_files(name: str) -> tuple[str, str]:
    return f"{name}.template.json", f"{name}.metadata.json"


@dataclass
class Built:
    """What a synth built and what it took from the previous assembly, and why."""

    base: str  # base_key of the inputs
    rebuilt: list[str]
    reused: list[str] = field(default_factory=list)
    cold: str = ""  # why every stack was built ("" when some were reused)


def build(
    project: Project,
    env: str | None,
    staging: Path,
    previous: Previous | None,
    synthesize: Synthesize,
) -> Built:
    """Synthesize the project into `staging`, reusing what the previous assembly proves equal."""
    ns = project.deployment.namespace
    order = [*ns.cluster_stacks, *(ns.worker_stack(s) for s in shards(project))]
    base = base_key(project.root, env)
    reused, why = _reusable(project, base, previous)
    if previous and reused:
        keep = set(reused)
        changed = [s for s in shards(project) if ns.worker_stack(s) not in keep]
        synthesize(project, staging, changed)
        why = _merge(staging, previous, reused, order, ns.cluster_stacks)
        if not why:
            return Built(base, [n for n in order if n not in keep], reused)
        _empty(staging)
    synthesize(project, staging, None)
    return Built(base, order, cold=why)


def _reusable(project: Project, base: str, previous: Previous | None) -> tuple[list[str], str]:
    """Worker stacks whose inputs and files are as recorded, or why none can be reused."""
    if previous is None:
        return [], "nothing to reuse at --out (no assembly there with a record, or --cold)"
    if previous.record.base != base:
        return [], "the config, env, toolkit or CDK/cfn-lint version changed"
    for shared in ("manifest.json", "tree.json", _REPORT):
        if (shared != _REPORT or shared in previous.record.files) and not previous.intact(shared):
            return [], f"the previous assembly's {shared} differs from its record"
    ns = project.deployment.namespace
    reused = [
        ns.worker_stack(shard)
        for shard, key in stack_inputs(project, base).items()
        if previous.record.stacks.get(ns.worker_stack(shard)) == key
        and all(previous.intact(f) for f in _stack_files(ns.worker_stack(shard)))
    ]
    return reused, "" if reused else "no worker stack's inputs are unchanged"


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
    built = [n for n in order if n not in reused]
    if unknown := _unknown_files(_files(staging), built):
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
        reused,
        lambda name, entry: entry.get("type") == _STACK,
    )
    tree = _merge_entries(
        parts["new", "tree.json"]["tree"]["children"],
        parts["old", "tree.json"]["tree"]["children"],
        order,
        reused,
        lambda name, entry: name in order,
    )
    if manifest is None or tree is None:
        return "the stacks of manifest.json or tree.json are not in the app's order"
    why = (
        _reused_artifacts(manifest, reused)
        or _imports_only_shared(staging, cluster, previous, reused)
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
    reused: list[str],
    is_stack: Callable[[str, Any], bool],
) -> dict[str, Any] | None:
    """The stacks in the app's order, then the rest as the partial build has them; None unless
    the partial build lists its stacks first and in the app's order."""
    stacks = [n for n, e in new.items() if is_stack(n, e)]
    rest = [n for n, e in new.items() if not is_stack(n, e)]
    if list(new) != stacks + rest or stacks != [n for n in order if n not in reused]:
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


def _imports(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::ImportValue":
                yield value
            else:
                yield from _imports(value)
    elif isinstance(node, list):
        for value in node:
            yield from _imports(value)


def _imports_only_shared(
    staging: Path, cluster: list[str], previous: Previous, reused: list[str]
) -> str:
    """A cross-stack export exists while some stack imports it, in the order consumers first
    reference it: a reused stack that imports only what network, data and core import changes
    neither the exports nor their order."""
    shared: set[Any] = set()
    for name in cluster:
        template = json.loads((staging / f"{name}.template.json").read_text())
        shared |= {v for v in _imports(template) if isinstance(v, str)}
    for name in reused:
        template = json.loads((previous.root / f"{name}.template.json").read_text())
        for value in _imports(template):
            if not isinstance(value, str) or value not in shared:
                return f"{name} imports {value!r}, which network, data and core do not"
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


def write_record(staging: Path, project: Project, env: str | None, built: Built) -> None:
    ns = project.deployment.namespace
    record = Record(
        fingerprint(project.root, env),
        built.base,
        {ns.worker_stack(s): key for s, key in stack_inputs(project, built.base).items()},
        {f: _sha((staging / f).read_bytes()) for f in _files(staging) if f != RECORD},
    )
    (staging / RECORD).write_text(record.to_json())
