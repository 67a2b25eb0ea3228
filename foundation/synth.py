"""`foundation synth`: build the CDK app in-process, synthesize into a temporary folder, check
every template, and only then move the assembly into place."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundation.checks import cfn_lint
from foundation.checks.cache import FindingsCache, cache_folder
from foundation.checks.model import ERROR, WARNING, Assembly, Finding
from foundation.errors import InvalidInput, Problem
from foundation.naming import CONFIG_DIR, MANIFEST_DIR
from foundation.record import CHANGED, Built, Previous, base_key, fingerprint

# The project, its policies, the rules and CDK are imported where a synth builds: when nothing
# changed, the record is all a synth reads (foundation/record.py).
if TYPE_CHECKING:
    from foundation.project import Memo, Project


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
    name: str  # the deployment's
    role_quota: int
    escalations: dict[str, list[str]]  # DAG -> the escalations config allows it
    out: Path
    stacks: list[StackSummary]
    findings: list[Finding]
    warnings: list[Problem]  # the project's (also among findings, as FA100)
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
        "name": result.name,
        "out": str(result.out),
        "written": result.written,
        "rebuilt": result.built.rebuilt,
        "reused": result.built.reused,
        "roles": result.roles,
        "role_quota": result.role_quota,
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
        "findings": [asdict(f) for f in result.findings],
        "escalations": result.escalations,
        "timings": result.timings,
    }


def report_data(result: SynthResult, root: Path) -> dict[str, Any]:
    """What the record keeps of a written synth, for `_replay` (the project's warnings as
    problems: their files are shown relative to the folder a later synth runs in)."""
    return {
        "name": result.name,
        "role_quota": result.role_quota,
        "escalations": list(result.escalations.items()),  # the record's keys are sorted
        "stacks": [{k: v for k, v in asdict(s).items() if k != "findings"} for s in result.stacks],
        "findings": [asdict(f) for f in result.findings if f.rule != PROJECT_RULE],
        "warnings": [{**asdict(p), "file": str(_from(root, p.file))} for p in result.warnings],
    }


def _from(root: Path, file: Path) -> Path:
    """A project's file as the record keeps it: from the project's folder, which may move."""
    return file.relative_to(root) if file.is_relative_to(root) else file


def _replay(
    root: Path, previous: Previous, out: Path, cache: Path, timings: Timings
) -> SynthResult:
    """The result recorded with the assembly at `out`, which is as written from the same
    inputs; TypeError, KeyError or ValueError if the record's report is not one."""
    report = previous.record.report
    warnings = [
        Problem(root / _str(w["file"]), _int(w["line"]), _str(w["field"]), _str(w["message"]))
        for w in report["warnings"]
    ]
    findings = [
        *project_findings([], warnings),
        *(Finding(**{k: _str(f[k]) for k in FINDING_FIELDS}) for f in report["findings"]),
    ]
    stacks = [
        StackSummary(
            _str(s["name"]),
            _int(s["resources"]),
            _int(s["template_bytes"]),
            _int(s["roles"]),
            [f for f in findings if f.stack == s["name"]],
        )
        for s in report["stacks"]
    ]
    escalations = {_str(d): [_str(e) for e in found] for d, found in report["escalations"]}
    built = Built(previous.record.base, [], [s.name for s in stacks])
    return SynthResult(
        _str(report["name"]),
        _int(report["role_quota"]),
        escalations,
        out,
        stacks,
        findings,
        warnings,
        not any(f.severity == ERROR for f in findings),
        built,
        cfn_lint.LintResult(),
        cache,
        timings.stages,
    )


FINDING_FIELDS = ("rule", "severity", "stack", "resource", "message")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not a string: {value!r}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"not an integer: {value!r}")
    return value


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
    cluster: bool = True,
) -> None:
    """The app into `outdir`; with `only_shards`, only those worker stacks, and without
    `cluster`, empty stacks for network, data and core (foundation/incremental.py adds the
    others)."""
    if shutil.which("node") is None:
        raise NodeMissing("Node.js (node) is not on PATH: aws-cdk-lib needs it to synthesize")
    timings = timings or Timings()
    with timings.stage("import CDK"):
        build_app = _start_cdk()
    try:
        with timings.stage("build the app"):
            app = build_app(project, str(outdir), only_shards, cluster)
        with timings.stage("synthesize, cdk-nag"):
            app.synth()
    except RuntimeError as err:  # jsii raises a construct's validation error as RuntimeError
        raise SynthesisFailed(f"CDK could not synthesize the app: {err}") from None
    from foundation.airflow import runtime_files

    runtime_files.write(outdir / "airflow", project.deployment.airflow.executor)


# Node's temporary folder: made by mkdtemp (a new name, mode 0700), never one already there,
# and jsii's Node.js process once this process has started it
_node_folder: list[Path] = []
_node: list[Any] = []
# start_node's thread until it is waited for, and what stopped it, if anything did
_starting: list[threading.Thread] = []
_start_failed: list[BaseException] = []
# the construct libraries the app imports, each loaded after those it needs
_LIBRARIES = ("constructs", "aws_cdk", "cdk_nag")


def start_node() -> None:
    """Start jsii's Node.js process, with a temporary folder of its own that `release_node`
    removes, and load the app's construct libraries into it, in a thread: a synth calls this
    before it loads the project, whose Python work then runs while Node starts and reads the
    libraries (half a second, measured; the thread only waits on Node). `_start_cdk` waits
    for it; with no `node` on PATH it starts nothing and `synthesize` says why."""
    if _node or _starting or shutil.which("node") is None:
        return
    from jsii._runtime import kernel

    import stacks  # noqa: F401  (its __init__ sets jsii's environment before Node starts)

    folder = Path(tempfile.mkdtemp(prefix="foundation-node-"))
    _node_folder.append(folder)
    # weakref's exit hook, which removes the folder jsii's start unpacks its runtime into (a
    # TemporaryDirectory, made in the thread), registered before release_node's: exit hooks run
    # last first, so it runs after release_node has waited for the start
    weakref.finalize(start_node, _nothing)
    atexit.register(release_node)
    libraries = list(_library_tarballs())
    saved = os.environ.get("TMPDIR")
    # for Node (tempfile has read it already, in mkdtemp above), put back by the thread once
    # Node has started (a quarter of a second); a process this one starts meanwhile (a
    # trigger's check, cfn-lint's workers) works in Node's folder, removed with it
    os.environ["TMPDIR"] = str(folder)
    thread = threading.Thread(
        target=_start, args=(kernel, saved, libraries), name="foundation-node", daemon=True
    )
    _starting.append(thread)
    thread.start()


def _nothing() -> None:
    pass


def _start(kernel: Any, saved_tmpdir: str | None, libraries: list[tuple[str, str, str]]) -> None:
    try:
        try:
            process = kernel.provider._process  # starts it
        finally:
            if saved_tmpdir is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = saved_tmpdir
        atexit.unregister(process.stop)
        _node.append(process)
        for name, version, tarball in libraries:
            kernel.load(name, version, tarball)  # as importing the library does, which then
            # finds it loaded
    except BaseException as err:  # raised where the synth waits for Node (_start_cdk)
        _start_failed.append(err)


def _library_tarballs() -> Iterator[tuple[str, str, str]]:
    """Name, version and tarball of each library in _LIBRARIES, as its `_jsii` package loads
    it (`JSIIAssembly.load`), found without importing it."""
    for module in _LIBRARIES:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        tarballs = list((Path(spec.origin).parent / "_jsii").glob("*@*.jsii.tgz"))
        if len(tarballs) != 1:  # not the one its import would load: the import loads it
            continue
        name, _, version = tarballs[0].name.removesuffix(".jsii.tgz").rpartition("@")
        yield name, version, str(tarballs[0])


def _start_cdk() -> Callable[..., Any]:
    """The app's builder. Importing aws_cdk loads it into jsii's Node.js process, started here
    (once per process) unless `start_node` started it, and removed with its folder when the
    start fails or is interrupted (Ctrl-C, which reaches Node too)."""
    start_node()
    try:
        while _starting:
            _starting[0].join()
            _starting.pop()
        if _start_failed:
            raise _start_failed.pop()
        from stacks.app import build_app
    except BaseException:
        release_node()
        raise
    return build_app


def release_node() -> None:
    """End aws-cdk-lib's Node.js process (jsii's), in a process that will synthesize no more:
    at exit, or sooner, and remove its folder. Terminated, not asked to stop: asked, Node first
    walks jsii's whole package cache to prune it (one to two seconds on every synth, measured),
    and a Ctrl-C reaching Node (one process group) would make jsii's own exit hook print a
    traceback. SIGTERM, not SIGKILL: jsii's launcher passes it on to the Node process that holds
    the constructs and exits once that one has, so both are gone (and counted in this process's
    resource usage) before the work folder is removed."""
    atexit.unregister(release_node)
    while _starting:  # it may still be starting Node
        _starting.pop().join()
    _start_failed.clear()
    while _node:
        node = _node.pop()
        atexit.unregister(node.stop)
        node._process.terminate()
        try:
            node._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node._process.kill()
            node._process.wait()
        with contextlib.suppress(OSError):  # jsii's __del__ then asks the ended Node nothing
            node._process.stdin.close()
        node._ctx_stack.close()  # the runtime's script, which jsii unpacked
    while _node_folder:
        shutil.rmtree(_node_folder.pop(), ignore_errors=True)


def _rehearse(project: Project) -> None:
    """Build one worker stack into a scratch folder, as an edit's synth will: Node.js compiles
    the code a build runs, so the first edit's build takes what later ones take."""
    from foundation.project import shards

    first = next(iter(shards(project)))
    with (
        tempfile.TemporaryDirectory(prefix="foundation-rehearsal-") as scratch,
        contextlib.suppress(SynthesisFailed),  # the edit's synth says why
    ):
        synthesize(project, Path(scratch), [first], cluster=False)


class UnsafeOutput(Exception):
    """--out points at something that is not a cloud assembly: it would be replaced."""


class SynthesisFailed(Exception):
    """CDK refused the app (a construct's own validation)."""


class ChecksFailed(Exception):
    """The synthesized templates fail the toolkit's checks: nothing can be deployed from them."""


def output_folder(root: Path, out: Path | None) -> Path:
    """Where the assembly goes (`--out`, or the project's cdk.out); UnsafeOutput if that would
    replace something that is not an assembly or be one of the synth's inputs."""
    target = (out or root / "cdk.out").resolve()
    _check_target(target, root.resolve())
    return target


def _check_target(target: Path, project_root: Path) -> None:
    if project_root == target or project_root.is_relative_to(target):
        raise UnsafeOutput(f"--out {target} holds the project; choose a folder of its own")
    for folder in (CONFIG_DIR, MANIFEST_DIR):
        if target.is_relative_to((project_root / folder).resolve()):
            raise UnsafeOutput(
                f"--out {target} is inside the project's {folder}/, every file of which is an "
                "input of the synth; choose a folder of its own"
            )
    if target.exists() and not (target.is_dir() and (target / "manifest.json").is_file()):
        raise UnsafeOutput(
            f"--out {target} exists and is not a cloud assembly; synth replaces only assemblies"
        )


@dataclass
class Session:
    """What a process that synthesizes again and again (`foundation synth --watch`) keeps
    between synths: the toolkit's code as it was when loaded, warm cfn-lint workers (which
    load cfn-lint's rules again when its settings files change: cfn_lint._linter), and each
    manifest's DAG as the last load built it (project.Memo)."""

    toolkit: str  # record.toolkit_key() when the session started
    workers: cfn_lint.Workers | None = None
    memo: Memo | None = None  # the last load's manifests and DAGs, from the first build on

    @contextmanager
    def lint_workers(self, region: str) -> Iterator[cfn_lint.Workers | None]:
        if self.workers is None and cfn_lint.cores() > 1:
            self.workers = cfn_lint.Workers(region, cfn_lint.cores())
        yield self.workers

    def warm(self, root: Path, env: str | None) -> None:
        """Start what a build needs (aws-cdk-lib's Node.js, cfn-lint's workers with their rules
        loaded, the memo of the project's DAGs) before there is one: after a first synth that
        replayed its record, the first edit would wait for them. A config that does not load
        starts no workers (the synth will say why)."""
        from foundation.project import Memo, load_deployment, load_project

        project = None
        if self.memo is None:  # nothing built yet: the first synth replayed its record
            self.memo = Memo()
            with contextlib.suppress(InvalidInput):  # the memo keeps what did load
                project = load_project(root, env, self.memo)
        if _node and (self.workers or cfn_lint.cores() < 2):
            return  # all started
        if shutil.which("node"):
            _start_cdk()
            if project and project.dags:
                _rehearse(project)
        try:  # the config alone, when a manifest kept the project from loading
            region = (project.deployment if project else load_deployment(root, env)).region
        except InvalidInput:
            return
        with self.lint_workers(region) as workers:
            if workers:
                workers.ready()  # "Watching" then means an edit is linted at once

    def close(self) -> None:
        if self.workers:
            self.workers.close()
            self.workers = None


def run(
    root: Path,
    env: str | None,
    out: Path | None,
    cold: bool = False,
    on_stage: Callable[[str], None] | None = None,
    session: Session | None = None,
) -> SynthResult:
    """Synthesize and check; with a previous assembly at `out`, rebuild only what changed
    (`cold`: ignore it), or nothing when nothing did."""
    timings = Timings(on_stage)
    root = root.resolve()
    target = output_folder(root, out)
    toolkit = session.toolkit if session else None
    with timings.stage("compare with the record"):
        base = base_key(root, env, toolkit)
        inputs = fingerprint(root, base)
        previous = None if cold else Previous.read(target)
        unchanged = previous is not None and previous.unchanged(inputs)
    if previous and unchanged:
        try:
            return _replay(root, previous, target, cache_folder(root), timings)
        except (TypeError, KeyError, ValueError, AttributeError):
            pass  # a report this toolkit did not write: build as if it were not there
    return _build(root, env, (base, inputs), target, previous, timings, session)


def _build(
    root: Path,
    env: str | None,
    keys: tuple[str, str],
    target: Path,
    previous: Previous | None,
    timings: Timings,
    session: Session | None,
) -> SynthResult:
    """Build what changed; `keys`: the inputs' base_key and fingerprint."""
    base, inputs = keys
    with timings.stage("start Node.js"):
        start_node()  # Node starts and reads aws-cdk-lib while the project loads
    with timings.stage("load the project"):
        from foundation import incremental
        from foundation.project import Memo, load_project

        if session and session.memo is None:
            session.memo = Memo()
        project = load_project(root, env, session.memo if session else None)
    cache = FindingsCache(cache_folder(root))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synth-", dir=target.parent))
    region = project.deployment.region
    try:
        with (
            session.lint_workers(region)
            if session
            else cfn_lint.workers(region, *_lint_processes(base, previous))
        ) as pool:

            def early(folder: Path, stacks: list[str]) -> None:
                texts = {n: (folder / f"{n}.template.json").read_text("utf-8") for n in stacks}
                cfn_lint.start_early(texts, region, cache, pool)

            try:
                built = incremental.build(
                    project,
                    base,
                    staging,
                    previous,
                    lambda p, o, shards, cluster: synthesize(p, o, shards, timings, cluster),
                    early if pool else None,
                )
                with timings.stage("read the assembly"):
                    assembly = Assembly.read(staging, check_context(project))
                findings, lint = _check(project, assembly, cache, timings, pool)
            finally:
                if pool:
                    pool.forget_early()
        result = SynthResult(
            project.deployment.name,
            project.deployment.iam.role_quota,
            {d.dag_id: d.policy.escalations for d in project.dags if d.policy.escalations},
            target,
            _summaries(assembly, findings),
            findings,
            project.warnings,
            not any(f.severity == ERROR for f in findings),
            built,
            lint,
            cache.folder,
            timings.stages,
        )
        if result.written:
            with timings.stage("write"):
                recorded = _recorded_keys(project, env, (base, inputs), session)
                report = report_data(result, project.root)
                incremental.write_record(staging, project, recorded, built, report)
                _replace(target, staging)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _recorded_keys(
    project: Project, env: str | None, keys: tuple[str, str], session: Session | None
) -> tuple[str, str]:
    """The base key and fingerprint to record with what was built: as taken before loading when
    every input is as it was then and every file loaded still holds what was read. A manifest
    edited, or edited and put back, while the synth ran: the fingerprint is CHANGED, so the next
    synth replays nothing, but the base key stands, and as each worker stack's key hashes its
    manifests as read, the next synth rebuilds only the stacks whose manifests are not what this
    one read. Anything else edited (config, the toolkit): both CHANGED, and the next synth builds
    every stack."""
    base, inputs = keys
    root = project.root
    now = base_key(root, env, session.toolkit if session else None)
    if now != base or not project.still_as_read(root / CONFIG_DIR):
        return CHANGED, CHANGED
    if fingerprint(root, base) != inputs or not project.still_as_read():
        return base, CHANGED
    return base, inputs


def _lint_processes(base: str, previous: Previous | None) -> tuple[int, bool]:
    """Worker processes for cfn-lint, none on a single core: one per core, yielding to the build
    (a cold one lints its first templates while it builds the rest), when every stack will be
    built; one when only the edited DAGs' worker stacks will be (more would only slow the build
    they start beside, for a template or two), whose lint then is the synth's critical path."""
    cores = cfn_lint.cores()
    if cores < 2:
        return 0, False
    if previous and previous.record.base == base:
        return 1, False
    return cores, True


def _check(
    project: Project,
    assembly: Assembly,
    cache: FindingsCache,
    timings: Timings,
    pool: cfn_lint.Workers | None = None,
) -> tuple[list[Finding], cfn_lint.LintResult]:
    """Every check on the whole assembly that was built: the toolkit's rules, run while
    cfn-lint's workers lint (the "cfn-lint" stage is what is left to wait for), and cfn-lint's
    findings from its cache where it holds them."""
    from foundation.checks.rules import ALL

    with timings.stage("toolkit rules"):
        linted = cfn_lint.start(assembly, cache, pool)  # a few milliseconds: hashes, cache
        findings = [
            *project_findings(project.findings, project.warnings),
            *(f for rule in ALL for f in rule.check(assembly)),
        ]
    with timings.stage("cfn-lint"):
        lint = linted()
    return [*findings, *lint.findings], lint


def _summaries(assembly: Assembly, findings: list[Finding]) -> list[StackSummary]:
    from foundation.checks.rules.fa103_role_quota import role_count

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
    return previous is not None and previous.unchanged(fingerprint(root, base_key(root, env)))


PROJECT_RULE = "FA100"


def project_findings(errors: list[Problem], warnings: list[Problem]) -> list[Finding]:
    """The project's own findings (errors) and warnings, as checks report them."""
    return [
        *(Finding(PROJECT_RULE, ERROR, "project", "", str(p)) for p in errors),
        *(Finding(PROJECT_RULE, WARNING, "project", "", str(p)) for p in warnings),
    ]


def _replace(target: Path, staging: Path) -> None:
    """Swap the new assembly in; the old one is removed only after the new one is in place."""
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
