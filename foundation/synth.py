"""`foundation synth`: build the CDK app in-process, synthesize into a temporary folder, check
every template, and only then move the assembly into place."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from foundation.airflow import runtime_files
from foundation.checks import cfn_lint
from foundation.checks.cache import FindingsCache, cache_folder
from foundation.checks.model import ERROR, Assembly, Finding
from foundation.checks.rules import ALL
from foundation.checks.rules.fa103_role_quota import role_count
from foundation.project import Project, load_project


@dataclass
class StackSummary:
    name: str
    resources: int
    template_bytes: int
    roles: int
    findings: list[Finding] = field(default_factory=list)


class Timings:
    """Seconds per stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start


@dataclass
class SynthResult:
    project: Project
    out: Path
    stacks: list[StackSummary]
    findings: list[Finding]
    written: bool
    lint: cfn_lint.LintResult
    cache: Path
    timings: dict[str, float]

    @property
    def roles(self) -> int:
        return sum(s.roles for s in self.stacks)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]


def check_context(project: Project) -> dict[str, str]:
    deployment = project.deployment
    return {
        "project": deployment.name,
        "partition": deployment.partition,
        "region": deployment.region,
        "account": deployment.account,
        "max_managed_policies_per_role": str(deployment.iam.max_managed_policies_per_role),
        "role_quota": str(deployment.iam.role_quota),
        "role_path": deployment.iam.role_path,
        "role_prefix": deployment.iam.role_name_prefix,
    }


class NodeMissing(Exception):
    """aws-cdk-lib runs its constructs in Node.js; without it nothing can be synthesized."""


def synthesize(project: Project, outdir: Path, timings: Timings) -> Assembly:
    if shutil.which("node") is None:
        raise NodeMissing("Node.js (node) is not on PATH: aws-cdk-lib needs it to synthesize")
    with timings.stage("import CDK"):
        from stacks.app import build_app  # imports aws_cdk, which starts Node: only when needed
    try:
        with timings.stage("build the app"):
            app = build_app(project, str(outdir))
        with timings.stage("synthesize, cdk-nag"):
            app.synth()
    except RuntimeError as err:  # jsii raises a construct's validation error as RuntimeError
        raise SynthesisFailed(f"CDK could not synthesize the app: {err}") from None
    with timings.stage("read the assembly"):
        runtime_files.write(outdir / "airflow", project.deployment.airflow.executor)
        return Assembly.read(outdir, check_context(project))


def release_node() -> None:
    """Stop aws-cdk-lib's Node.js process (jsii's) now, in a process that will synthesize no
    more. Ctrl-C reaches Node as well (one process group); jsii's exit hook would then print a
    traceback writing to the ended process."""
    import sys

    if "jsii._runtime" in sys.modules:
        from jsii._runtime import kernel

        kernel.provider._process.stop()


class UnsafeOutput(Exception):
    """--out points at something that is not a cloud assembly: it would be replaced."""


class SynthesisFailed(Exception):
    """CDK refused the app (a construct's own validation)."""


def _check_target(target: Path, project_root: Path) -> None:
    if project_root == target or project_root.is_relative_to(target):
        raise UnsafeOutput(f"--out {target} holds the project; choose a folder of its own")
    if target.exists() and not (target.is_dir() and (target / "manifest.json").is_file()):
        raise UnsafeOutput(
            f"--out {target} exists and is not a cloud assembly; synth replaces only assemblies"
        )


def run(root: Path, env: str | None, out: Path | None) -> SynthResult:
    timings = Timings()
    with timings.stage("load the project"):
        project = load_project(root, env)
    target = (out or project.root / "cdk.out").resolve()
    _check_target(target, project.root)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synth-", dir=target.parent))
    cache = FindingsCache(cache_folder(project.root))
    try:
        assembly = synthesize(project, staging, timings)
        with timings.stage("toolkit rules"):
            findings = [*project_findings(project), *(f for r in ALL for f in r.check(assembly))]
        with timings.stage("cfn-lint"):
            lint = cfn_lint.run(assembly, cache, cfn_lint.idle_cores())
        findings += lint.findings
        stacks = [
            StackSummary(
                s.name,
                len(s.resources),
                s.size,
                role_count(s),
                [f for f in findings if f.stack == s.name],
            )
            for s in assembly.stacks
        ]
        written = not any(f.severity == ERROR for f in findings)
        if written:
            with timings.stage("write"):
                inputs = fingerprint(project.root, env)
                (staging / INPUTS_FILE).write_text(json.dumps({"inputs": inputs}))
                _replace(target, staging)
        return SynthResult(
            project, target, stacks, findings, written, lint, cache.folder, timings.stages
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


INPUTS_FILE = "foundation-inputs.json"
_TOOLKIT = Path(__file__).resolve().parents[1]


def fingerprint(root: Path, env: str | None) -> str:
    """A hash of everything a synth reads: the project's files, the env and the toolkit's code."""
    digest = hashlib.sha256(f"env={env}".encode())
    sources = [
        root / "config",
        root / "dag_permissions",
        _TOOLKIT / "foundation",
        _TOOLKIT / "stacks",
    ]
    for folder in sources:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".yaml", ".yml"):
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def is_up_to_date(out: Path, root: Path, env: str | None) -> bool:
    """Whether the assembly at `out` was synthesized from exactly these inputs."""
    try:
        recorded = json.loads((out / INPUTS_FILE).read_text())["inputs"]
    except (OSError, ValueError, KeyError):
        return False
    return recorded == fingerprint(root, env)


def project_findings(project: Project) -> list[Finding]:
    return [Finding("FA100", ERROR, "project", "", str(p)) for p in project.findings]


def _replace(target: Path, staging: Path) -> None:
    """Swap the new assembly in; the old one is removed only after the new one is in place."""
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
