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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from foundation.checks.cfn_lint import settings_files
from foundation.naming import CONFIG_DIR, MANIFEST_DIR

RECORD = "foundation-inputs.json"
FORMAT = 4  # 4: the synth's report, replayed when nothing changed
_TOOLKIT = Path(__file__).resolve().parents[1]
# What a template and its checks' findings depend on besides the project and the toolkit's code.
_VERSIONED = ("aws-cdk-lib", "constructs", "cdk-nag", "jsii", "cfn-lint")


def installed(package: str) -> str:
    """The package's dist-info folder (named for its version) that importlib.metadata would find
    first, found without importing importlib.metadata (a twentieth of a second)."""
    pattern = f"{package.replace('-', '_')}-*.dist-info"
    for entry in sys.path:
        if found := sorted(Path(entry or ".").glob(pattern)):
            return found[0].name
    return f"{package} is not installed"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_folder(digest: Any, folder: Path) -> None:
    digest.update(folder.name.encode() + b"\0")
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".yaml", ".yml"):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())


def base_key(root: Path, env: str | None) -> str:
    """A hash of everything a synth reads but the manifests: env, config, the toolkit's code,
    the versions of CDK, cdk-nag and cfn-lint, and cfn-lint's settings files."""
    digest = hashlib.sha256(f"env={env}".encode())
    for package in _VERSIONED:
        digest.update(f"{installed(package)}\0".encode())
    for settings in settings_files():
        digest.update(len(settings).to_bytes(8, "big") + settings)
    for folder in (root / CONFIG_DIR, _TOOLKIT / "foundation", _TOOLKIT / "stacks"):
        _digest_folder(digest, folder)
    return digest.hexdigest()


def fingerprint(root: Path, env: str | None) -> str:
    """A hash of everything a synth reads: base_key and every file under dag_permissions/."""
    digest = hashlib.sha256(base_key(root, env).encode())
    _digest_folder(digest, root / MANIFEST_DIR)
    return digest.hexdigest()


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
    def parse(cls, text: str) -> Record | None:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                return None
            return cls(
                data["inputs"],
                data["base"],
                str(data["cluster"]),
                dict(data["stacks"]),
                dict(data["files"]),
                dict(data["report"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


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
            record = Record.parse((root / RECORD).read_text())
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
