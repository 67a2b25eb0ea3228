"""`foundation synth`: build the CDK app in-process, synthesize into a temporary folder, check
every template, and only then move the assembly into place."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation import incremental
from foundation.airflow import runtime_files
from foundation.checks import cfn_lint
from foundation.checks.cache import FindingsCache, cache_folder
from foundation.checks.model import ERROR, WARNING, Assembly, Finding
from foundation.checks.rules import ALL
from foundation.checks.rules.fa103_role_quota import role_count
from foundation.incremental import Built, Previous, fingerprint
from foundation.project import Project, load_project


@dataclass
class StackSummary:
    name: str
    resources: int
    template_bytes: int
    roles: int
    findings: list[Finding] = field(default_factory=list)


class Timings:
    """Seconds per stage, in the order the stages ran; `on_stage` hears of each as it starts
    (the CLI's progress)."""

    def __init__(self, on_stage: Callable[[str], None] | None = None) -> None:
        self.stages: dict[str, float] = {}
        self.on_stage = on_stage

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage:
            self.on_stage(name)
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
    built: Built  # stacks rebuilt and reused (none built: the assembly was already up to date)
    lint: cfn_lint.LintResult  # empty when the assembly was up to date
    cache: Path
    timings: dict[str, float]

    @property
    def roles(self) -> int:
        return sum(s.roles for s in self.stacks)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]


def as_data(result: SynthResult) -> dict[str, Any]:
    """`synth --json`: the assembly, each stack, and every finding of the checks."""
    return {
        "name": result.project.deployment.name,
        "out": str(result.out),
        "written": result.written,
        "rebuilt": result.built.rebuilt,
        "reused": result.built.reused,
        "roles": result.roles,
        "role_quota": result.project.deployment.iam.role_quota,
        "stacks": [
            {
                "stack": s.name,
                "resources": s.resources,
                "template_bytes": s.template_bytes,
                "roles": s.roles,
                "errors": sum(f.severity == ERROR for f in s.findings),
                "warnings": sum(f.severity != ERROR for f in s.findings),
            }
            for s in result.stacks
        ],
        "findings": [
            {
                "rule": f.rule,
                "severity": f.severity,
                "stack": f.stack,
                "resource": f.resource,
                "message": f.message,
            }
            for f in result.findings
        ],
        "escalations": {
            dag.dag_id: dag.policy.escalations
            for dag in result.project.dags
            if dag.policy.escalations
        },
        "timings": result.timings,
    }


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


def synthesize(
    project: Project,
    outdir: Path,
    only_shards: Collection[int] | None = None,
    timings: Timings | None = None,
) -> None:
    """The app into `outdir`; with `only_shards`, only those worker stacks (foundation/
    incremental.py adds the others)."""
    if shutil.which("node") is None:
        raise NodeMissing("Node.js (node) is not on PATH: aws-cdk-lib needs it to synthesize")
    timings = timings or Timings()
    with timings.stage("import CDK"):
        build_app = _start_cdk()
    try:
        with timings.stage("build the app"):
            app = build_app(project, str(outdir), only_shards)
        with timings.stage("synthesize, cdk-nag"):
            app.synth()
    except RuntimeError as err:  # jsii raises a construct's validation error as RuntimeError
        raise SynthesisFailed(f"CDK could not synthesize the app: {err}") from None
    runtime_files.write(outdir / "airflow", project.deployment.airflow.executor)


# Node's temporary folder: made by mkdtemp (a new name, mode 0700), never one already there
_node_folder: list[Path] = []


def _start_cdk() -> Callable[..., Any]:
    """The app's builder. Importing aws_cdk starts jsii's Node.js process (once per process),
    with a temporary folder of its own that `release_node` removes."""
    if "jsii._runtime" in sys.modules:
        from stacks.app import build_app

        return build_app
    folder = Path(tempfile.mkdtemp(prefix="foundation-node-"))
    _node_folder.append(folder)
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)  # read by Node only: tempfile has read it already
    try:
        from stacks.app import build_app
    finally:
        if saved is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved
    from jsii._runtime import kernel

    atexit.unregister(kernel.provider._process.stop)
    atexit.register(release_node)
    return build_app


def release_node() -> None:
    """End aws-cdk-lib's Node.js process (jsii's), in a process that will synthesize no more:
    at exit, or sooner. Terminated, not asked to stop: asked, Node first walks jsii's whole
    package cache to prune it (one to two seconds on every synth, measured), and a Ctrl-C
    reaching Node (one process group) would make jsii's own exit hook print a traceback.
    SIGTERM, not SIGKILL: jsii's launcher passes it on to the Node process that holds the
    constructs and exits once that one has, so both are gone (and counted in this process's
    resource usage) before the work folder is removed."""
    if "jsii._runtime" not in sys.modules:
        return
    from jsii._runtime import kernel

    node = kernel.provider._process
    atexit.unregister(node.stop)
    atexit.unregister(release_node)
    node._process.terminate()
    try:
        node._process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        node._process.kill()
        node._process.wait()
    node._ctx_stack.close()  # the runtime's script, which jsii unpacked
    while _node_folder:
        shutil.rmtree(_node_folder.pop(), ignore_errors=True)


class UnsafeOutput(Exception):
    """--out points at something that is not a cloud assembly: it would be replaced."""


class SynthesisFailed(Exception):
    """CDK refused the app (a construct's own validation)."""


class ChecksFailed(Exception):
    """The synthesized templates fail the toolkit's checks: nothing can be deployed from them."""


def _check_target(target: Path, project_root: Path) -> None:
    if project_root == target or project_root.is_relative_to(target):
        raise UnsafeOutput(f"--out {target} holds the project; choose a folder of its own")
    if target.exists() and not (target.is_dir() and (target / "manifest.json").is_file()):
        raise UnsafeOutput(
            f"--out {target} exists and is not a cloud assembly; synth replaces only assemblies"
        )


def run(
    root: Path,
    env: str | None,
    out: Path | None,
    cold: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> SynthResult:
    """Synthesize and check; with a previous assembly at `out`, rebuild only what changed
    (`cold`: ignore it)."""
    timings = Timings(on_stage)
    with timings.stage("load the project"):
        project = load_project(root, env)
    target = (out or project.root / "cdk.out").resolve()
    _check_target(target, project.root)
    cache = FindingsCache(cache_folder(project.root))
    previous = None if cold else Previous.read(target)
    if previous and previous.unchanged(fingerprint(project.root, env)):
        return _up_to_date(project, target, previous, cache, timings)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synth-", dir=target.parent))
    region = project.deployment.region
    try:
        with cfn_lint.workers(region, _lint_processes(project, env, previous)) as pool:
            built = incremental.build(
                project,
                env,
                staging,
                previous,
                lambda p, o, shards: synthesize(p, o, shards, timings),
            )
            with timings.stage("read the assembly"):
                assembly = Assembly.read(staging, check_context(project))
            findings, lint = _check(project, assembly, cache, timings, pool)
        written = not any(f.severity == ERROR for f in findings)
        if written:
            with timings.stage("write"):
                incremental.write_record(staging, project, env, built)
                _replace(target, staging)
        summaries = _summaries(assembly, findings)
        return SynthResult(
            project, target, summaries, findings, written, built, lint, cache.folder, timings.stages
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _lint_processes(project: Project, env: str | None, previous: Previous | None) -> int:
    """Worker processes for cfn-lint, none on a single core: one per core when every stack will
    be built; one when only the edited DAGs' worker stacks will be (more would only slow the
    build they start beside, for a template or two)."""
    cores = cfn_lint.cores()
    if cores < 2:
        return 0
    if previous and previous.record.base == incremental.base_key(project.root, env):
        return 1
    return cores


def _check(
    project: Project,
    assembly: Assembly,
    cache: FindingsCache,
    timings: Timings,
    pool: cfn_lint.Workers | None = None,
) -> tuple[list[Finding], cfn_lint.LintResult]:
    """Every check on the whole assembly: the toolkit's rules run each time (they are the
    security gates, and cheap); cfn-lint's findings come from its cache where it holds them."""
    with timings.stage("toolkit rules"):
        findings = [*project_findings(project), *(f for rule in ALL for f in rule.check(assembly))]
    with timings.stage("cfn-lint"):
        lint = cfn_lint.run(assembly, cache, pool)
    return [*findings, *lint.findings], lint


def _up_to_date(
    project: Project, target: Path, previous: Previous, cache: FindingsCache, timings: Timings
) -> SynthResult:
    """Nothing changed: the assembly in place, checked again, without starting Node."""
    with timings.stage("read the assembly"):
        assembly = Assembly.read(target, check_context(project))
    findings, lint = _check(project, assembly, cache, timings)
    written = not any(f.severity == ERROR for f in findings)
    built = Built(previous.record.base, [], [s.name for s in assembly.stacks])
    summaries = _summaries(assembly, findings)
    return SynthResult(
        project, target, summaries, findings, written, built, lint, cache.folder, timings.stages
    )


def _summaries(assembly: Assembly, findings: list[Finding]) -> list[StackSummary]:
    return [
        StackSummary(
            s.name,
            len(s.resources),
            s.size,
            role_count(s),
            [f for f in findings if f.stack == s.name],
        )
        for s in assembly.stacks
    ]


def is_up_to_date(out: Path, root: Path, env: str | None) -> bool:
    """Whether the assembly at `out` was synthesized from exactly these inputs and is as written."""
    previous = Previous.read(out)
    return previous is not None and previous.unchanged(fingerprint(root, env))


def project_findings(project: Project) -> list[Finding]:
    """The project's own findings (errors) and warnings, as checks report them."""
    return [
        *(Finding("FA100", ERROR, "project", "", str(p)) for p in project.findings),
        *(Finding("FA100", WARNING, "project", "", str(p)) for p in project.warnings),
    ]


def _replace(target: Path, staging: Path) -> None:
    """Swap the new assembly in; the old one is removed only after the new one is in place."""
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
