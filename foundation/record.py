"""What a written assembly was built from: `foundation-inputs.json` beside its files.

It holds the hash of every input a synth reads, each worker stack's own inputs, every file's
hash, and the synth's report (stacks, findings, warnings). A synth whose inputs and files are
all as recorded has nothing to do: it replays the report without loading the project, as
`foundation deploy` already deploys an up-to-date assembly without checking it again. Light
on purpose: this is all `foundation synth` imports when nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from foundation.checks.cfn_lint import settings_files, settings_paths
from foundation.naming import CONFIG_DIR, MANIFEST_DIR

RECORD = "foundation-inputs.json"
FORMAT = 5  # 5: every file of the project's folders, by length; escalations in order
_TOOLKIT = Path(__file__).resolve().parents[1]
_TOOLKIT_FOLDERS = (_TOOLKIT / "foundation", _TOOLKIT / "stacks")
# What the templates, their checks' findings and what the project accepts depend on, besides
# the project, the toolkit's code and Python.
_VERSIONED = ("aws-cdk-lib", "constructs", "cdk-nag", "jsii", "cfn-lint", "pydantic", "pyyaml")


# The inputs and base key recorded for an assembly whose inputs changed while it was built:
# no hash is equal to it, so the next synth builds every stack.
CHANGED = "changed while the synth ran"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _update(digest: Any, *parts: bytes) -> None:
    """Each part with its length: no two sequences of parts hash alike."""
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)


def _walk(folder: Path, follow_links: bool = True) -> Iterator[tuple[bytes, Path]]:
    """Every entry under `folder` (hidden ones too) and its kind, in a fixed order: whatever
    loading the folder could read or warn about. A symlinked folder is followed at the top only,
    as the manifest loader does (foundation/project.py)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:  # not a folder, or gone since it was listed
        yield b"missing", folder
        return
    yield b"folder", folder
    for path in entries:
        if path.name == "__pycache__":
            continue
        if path.is_dir() and (follow_links or not path.is_symlink()):
            yield from _walk(path, follow_links=False)
        elif path.is_file():
            yield b"file", path
        else:
            yield b"other", path  # a dangling link, a socket...
    yield b"end", folder


def _digest_tree(digest: Any, folder: Path) -> None:
    """Every entry under `folder` by name and kind, and every file's bytes. A file gone between
    listing and reading (an editor's swap file) is hashed as gone: the inputs were changing, and
    the synth's check before writing (synth._recorded_keys) sees that they changed."""
    for kind, path in _walk(folder):
        if kind == b"end":
            _update(digest, kind)
        elif kind == b"file":
            try:
                _update(digest, kind, path.name.encode(), path.read_bytes())
            except OSError:
                _update(digest, b"gone", path.name.encode())
        else:
            _update(digest, kind, path.name.encode())


def toolkit_key() -> str:
    """A hash of what this process runs: Python's version, the packages' versions above and
    the toolkit's code."""
    digest = hashlib.sha256()
    _update(digest, sys.version.encode())
    for package in _VERSIONED:
        _update(digest, package.encode(), version(package).encode())
    for folder in _TOOLKIT_FOLDERS:
        _digest_tree(digest, folder)
    return digest.hexdigest()


def base_key(root: Path, env: str | None, toolkit: str | None = None) -> str:
    """A hash of everything a synth reads but the manifests: env, config, cfn-lint's settings
    files and the toolkit (`toolkit_key`, unless given: `foundation synth --watch` gives the
    code it has loaded)."""
    digest = hashlib.sha256()
    _update(digest, json.dumps(env).encode(), (toolkit or toolkit_key()).encode())
    for settings in settings_files():
        _update(digest, settings)
    _digest_tree(digest, root / CONFIG_DIR)
    return digest.hexdigest()


def fingerprint(root: Path, base: str) -> str:
    """A hash of everything a synth reads: its base_key and everything under dag_permissions/."""
    digest = hashlib.sha256(base.encode())
    _digest_tree(digest, root / MANIFEST_DIR)
    return digest.hexdigest()


def look(root: Path) -> tuple[tuple[object, ...], ...]:
    """What the files a synth reads look like from outside (kind, path, size, times, inode),
    cheap enough to compare a few times a second: when it changes, some input may have."""
    folders = (root / CONFIG_DIR, root / MANIFEST_DIR, *_TOOLKIT_FOLDERS)
    settings = [path for candidates in settings_paths() for path in candidates]
    entries = [entry for folder in folders for entry in _walk(folder)]
    return tuple((kind, str(path), *_outside(path)) for kind, path in entries) + tuple(
        (b"settings", str(path), *_outside(path)) for path in settings
    )


def _outside(path: Path) -> tuple[int, ...]:
    try:
        stat = path.stat()
    except OSError:
        return ()
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


@dataclass
class Record:
    """What a written assembly was built from, its files' hashes and the synth's report."""

    inputs: str  # fingerprint
    base: str  # base_key
    cluster: str  # the cluster stacks' inputs (incremental.cluster_key)
    stacks: dict[str, str]  # worker stack -> its inputs (incremental.stack_inputs)
    files: dict[str, str]  # every file of the assembly but this record -> sha256
    report: dict[str, Any] = field(default_factory=dict)  # synth.report_data

    def to_json(self) -> str:
        data = asdict(self)
        data["format"] = FORMAT
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def parse(cls, data: bytes) -> Record | None:
        """The record, or None for anything else: a damaged or foreign file is no record."""
        try:
            found = json.loads(data.decode("utf-8"))
            if found.get("format") != FORMAT:
                return None
            record = cls(
                found["inputs"],
                found["base"],
                found["cluster"],
                found["stacks"],
                found["files"],
                found["report"],
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None
        keys = (record.inputs, record.base, record.cluster)
        tables = (record.stacks, record.files)
        if not all(isinstance(k, str) for k in keys) or not all(map(_strings, tables)):
            return None
        return record if isinstance(record.report, dict) else None


def _strings(table: Any) -> bool:
    return isinstance(table, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    )


def files_under(root: Path) -> list[str]:
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
            record = Record.parse((root / RECORD).read_bytes())
        except OSError:
            return None
        return cls(root, record) if record else None

    def intact(self, relative: str) -> bool:
        path = self.root / relative
        recorded = self.record.files.get(relative)
        return recorded is not None and path.is_file() and sha(path.read_bytes()) == recorded

    def unchanged(self, inputs: str) -> bool:
        """Built from these inputs, and every file as recorded, with none added."""
        files = [f for f in files_under(self.root) if f != RECORD]
        return (
            self.record.inputs == inputs
            and files == sorted(self.record.files)
            and all(self.intact(f) for f in files)
        )


@dataclass
class Built:
    """What a synth built and what it took from the previous assembly, and why."""

    base: str  # base_key of the inputs
    rebuilt: list[str]
    reused: list[str] = field(default_factory=list)
    cold: str = ""  # why every stack was built ("" when some were reused)
