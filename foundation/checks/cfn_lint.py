"""cfn-lint on every template: errors fail the synth, warnings are shown.

`cfnlint.api.lint` loads every rule from disk on each call (about half of each call); here a
process loads them once: worker processes, started while CDK builds the app, lint templates side by
side, and findings are kept by content (foundation/checks/cache.py) so an unchanged template is
never linted twice.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.util
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation.checks.cache import FindingsCache, checks_version, content_key
from foundation.checks.model import ERROR, WARNING, Assembly, Finding

# A worker's niceness while a cold build goes on beside it: the build is the synth's critical
# path until its last template is written, and the first templates' lints are to fill the core
# it leaves idle, not to take turns with it (1,000 DAGs cold: 39 s against 43 s, measured).
YIELDING_NICENESS = 10
# Availability zones come from config on purpose: synthesis must never look them up.
IGNORED = ["W3010"]
# What cfn-lint reads besides its arguments (cfnlint/config.py ConfigFileArgs._find_config):
# the first of these in the home folder and in the working folder
SETTINGS_FILES = (".cfnlintrc", ".cfnlintrc.yaml", ".cfnlintrc.yml")

Row = list[str]  # rule, severity, resource, message: a finding without its stack
Settings = tuple[bytes, ...]  # the settings files' contents (settings_files)
Linted = tuple[Settings, list[Row]]  # a template's rows and the settings they were found with


def options(region: str) -> dict[str, Any]:
    return {"regions": [region], "ignore_checks": IGNORED}


@functools.lru_cache(maxsize=1)
def _linter(region: str, settings: tuple[bytes, ...]) -> tuple[Any, Any]:
    """cfn-lint's configuration and its rules, loaded once per process, region and settings
    files (`settings_files`, which cfn-lint reads again itself): a process that lints again and
    again (a warm worker of `synth --watch`, of the daemon) lints with the settings as they are
    now, as a fresh one would and as the findings cache keys them. Only the last is kept: the
    settings' `override_spec` and `registry_schemas` change cfn-lint's schemas, which are one
    per process, so each new settings starts from the schemas as cfn-lint ships them."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    from foundation.checks import cfn_lint_speedups

    PROVIDER_SCHEMA_MANAGER.reset()
    PROVIDER_SCHEMA_MANAGER._registry_schemas.clear()  # which reset() keeps
    config = ConfigMixIn(**options(region))
    rules = Runner(config).rules
    cfn_lint_speedups.apply(rules)
    return config, rules


def _lint(text: str, region: str, settings: Settings) -> list[Row]:
    """What `cfnlint.api.lint(text, config=...)` finds with these settings files, with rules
    loaded once."""
    from cfnlint.decode.decode import decode_str
    from cfnlint.runner import run_template_by_data

    template, errors = decode_str(text)
    if errors:
        return [_row(m) for m in errors]
    if template is None:
        return []
    config, rules = _linter(region, settings)
    return [_row(m) for m in run_template_by_data(template, config, rules)]


def _row(match: Any) -> Row:
    severity = ERROR if match.rule.severity == "error" else WARNING
    path = getattr(match, "path", None)  # a parse error (E0000) has none
    where = "/".join(str(p) for p in path[:2]) if path else ""
    return [match.rule.id, severity, where, match.message]


def _lint_job(job: tuple[str, str]) -> Linted:
    """The rows, and the settings files they were found with: read when the job runs, which
    may be after the synth took its cache keys, so the cache keeps only rows found with the
    settings of their key."""
    settings = tuple(settings_files())
    return settings, _lint(*job, settings)


def cores() -> int:
    """The cores this process may use. Not lessened by the load average: it counts this synth's
    own recent work, and a previous synth's, as other work (a synth right after another found
    one core "idle" and linted 1,000 DAGs' templates in-process: 89 s against 47 s, measured),
    while a worker costs a busy machine only its start (about 0.9 s of CPU)."""
    return len(os.sched_getaffinity(0))


# A worker's garbage collector runs a young collection every GC_THRESHOLDS[0] allocations, not
# every 700: linting allocates millions of short-lived objects (a template's nodes, each step's
# validator and context), and the collections cost a sixth of a worker's CPU (measured: 4.7 s
# against 5.7 s for a Celery and an ECS 1,000-DAG worker template, for 40-60 MiB more memory).
GC_THRESHOLDS = (50_000, 20, 20)


def _start_worker(parent: int, yielding: bool) -> None:
    _end_with(parent)
    gc.set_threshold(*GC_THRESHOLDS)
    if yielding:
        os.nice(YIELDING_NICENESS)


def _end_with(parent: int) -> None:
    """A worker ends when the synth that started it does, however it ended: killed, its pool
    never shut down, a worker would wait for work forever. A terminal's Ctrl-C reaches every
    process of its group: a worker leaves it to the synth, which ends it (`Workers.close`);
    interrupted itself, it would print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _warm(region: str) -> int:
    _linter(region, tuple(settings_files()))
    return os.getpid()


class Workers:
    """cfn-lint worker processes, started before the templates exist: each imports cfn-lint and
    loads its rules (about a second of CPU) on a core the app's build leaves idle, so linting
    starts warm the moment the assembly is read."""

    def __init__(self, region: str, processes: int, yielding: bool = False) -> None:
        self.linting = False
        self.early: dict[tuple[str, str], Future[Linted]] = {}  # by text and region
        # spawn, not fork: the parent runs jsii's threads and its Node process
        self.pool = ProcessPoolExecutor(
            processes,
            multiprocessing.get_context("spawn"),
            _start_worker,
            (os.getpid(), yielding),
        )
        # a spawn pool starts a process per task while none is idle: one warm-up task each
        with _main_left_out():
            self.warming = [self.pool.submit(_warm, region) for _ in range(processes)]

    def ready(self) -> None:
        """Once every worker has loaded cfn-lint's rules (a worker that could not start leaves
        its linting to this process)."""
        with contextlib.suppress(BrokenProcessPool):
            for warming in self.warming:
                warming.result()

    def start_early(self, texts: list[str], region: str) -> None:
        """Lint `texts` now, before `start` is given them with the rest of the assembly."""
        if not texts:
            return  # nothing to wait for: `close` may end the workers at once
        self.linting = True
        for text in sorted(texts, key=len, reverse=True):
            with contextlib.suppress(BrokenProcessPool):  # `start` lints them in this process
                self.early.setdefault((text, region), self.pool.submit(_lint_job, (text, region)))

    def forget_early(self) -> None:
        """Drop what `start` did not take of the early lints (the build failed, or another
        process cached the templates meanwhile): those not running are cancelled, and a
        `close` with none running ends the workers at once."""
        if self.early:
            for future in self.early.values():
                future.cancel()
            self.linting = not all(future.done() for future in self.early.values())
            self.early.clear()

    def start(self, texts: list[str], region: str) -> Callable[[], list[Linted]]:
        """Lint `texts` in the workers (those given to `start_early` already are); the function
        returned waits for their rows. The largest template first, so the longest never starts
        last. Workers that cannot start (a program that spawns them from an unguarded main
        module) leave the linting to this process."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        jobs = [(texts[i], region) for i in order]
        self.linting = True
        try:
            results = [
                self.early.pop(job, None) or self.pool.submit(_lint_job, job) for job in jobs
            ]
        except BrokenProcessPool:
            results = []

        def rows() -> list[Linted]:
            try:
                found = [result.result() for result in results] if results else None
            except BrokenProcessPool:
                found = None
            if found is None:
                found = [_lint_job(job) for job in jobs]
            self.linting = False
            by_index = dict(zip(order, found, strict=True))
            return [by_index[i] for i in range(len(texts))]

        return rows

    def close(self) -> None:
        """Workers are ended, not asked to exit, once their results are in: asked, each would
        first finish warming up if it was given nothing (every template cached), then tear
        cfn-lint's modules down, about half a second either way (measured). Stopped in the
        middle of linting (Ctrl-C), they are asked: one killed while sending a result could
        leave the pool waiting for the rest of it."""
        if not self.linting:
            # ProcessPoolExecutor has no public way to end a worker in the middle of a task
            for process in list(self.pool._processes.values()):
                process.terminate()
        self.pool.shutdown(cancel_futures=True)


@contextmanager
def _main_left_out() -> Iterator[None]:
    """A spawned process imports its parent's main module first (multiprocessing.spawn
    get_preparation_data): for the `foundation` command that is the whole CLI, more than half a
    second of each worker's start, for nothing a worker runs. Processes started here skip it."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__spec__", "__file__") if name in vars(main)}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)


@contextmanager
def workers(region: str, processes: int, yielding: bool = False) -> Iterator[Workers | None]:
    """`processes` warm workers, `yielding` the cores to this process's build; None (no
    process): lint in this one."""
    if processes < 1:
        yield None
        return
    started = Workers(region, processes, yielding)
    try:
        yield started
    finally:
        started.close()


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    linted: list[str] = field(default_factory=list)  # stacks linted now
    cached: list[str] = field(default_factory=list)  # stacks whose findings the cache held


@functools.cache
def cfn_lint_version() -> str:
    """cfnlint/version.py as installed, read without importing cfn-lint: the import takes most
    of a second, importlib.metadata's look-up a few tenths."""
    spec = importlib.util.find_spec("cfnlint")
    assert spec and spec.submodule_search_locations, "cfn-lint is a dependency"
    return (Path(spec.submodule_search_locations[0]) / "version.py").read_text()


def cache_salt(region: str, settings: Settings) -> list[bytes]:
    """Everything besides a template's text that its findings depend on."""
    versions = {
        "cfn-lint": cfn_lint_version(),
        "options": options(region),
        "checks": checks_version(),
    }
    return [json.dumps(versions, sort_keys=True).encode(), *settings]


def settings_paths() -> list[list[Path]]:
    """Where cfn-lint looks for its settings: in the home and the working folder, each folder's
    candidates in the order it tries them."""
    return [[folder / name for name in SETTINGS_FILES] for folder in (Path.home(), Path.cwd())]


def settings_files() -> list[bytes]:
    """The settings cfn-lint would read in the home and the working folder (empty if none),
    then what they name that cfn-lint reads when it loads its rules (`_named_files`)."""
    found = [
        next((path.read_bytes() for path in candidates if path.is_file()), b"")
        for candidates in settings_paths()
    ]
    return found + [data for settings in found for data in _named_files(settings)]


def _named_files(settings: bytes) -> list[bytes]:
    """The files a settings file names whose contents cfn-lint loads with its rules, as they are
    now (each name, then its bytes): every rule file in an `append_rules` folder (cfn-lint runs
    them again at each load), every schema in a `registry_schemas` one, `custom_rules` and
    `override_spec`. A rule module named by its import path is not among them: a process
    imports it once."""
    import yaml

    try:
        data = yaml.safe_load(settings)
        if not isinstance(data, dict):
            return []
        folders = [
            (name, pattern)
            for key, pattern in (("append_rules", "*.py"), ("registry_schemas", "*.json"))
            if isinstance(data.get(key), list)
            for name in data[key]
        ]
        files = [(data.get(key), "") for key in ("custom_rules", "override_spec")]
        found = []
        for name, pattern in folders + files:
            path = Path(os.path.expanduser(name)) if isinstance(name, str) and name else None
            for file in (
                sorted(path.rglob(pattern)) if path and pattern and path.is_dir() else [path]
            ):
                if file and file.is_file():
                    found += [os.fsencode(file), file.read_bytes()]
        return found
    except (yaml.YAMLError, OSError, ValueError, RecursionError) as error:
        return [f"{type(error).__name__}: {error}".encode()]  # cfn-lint says what is wrong


def _is_rows(value: Any) -> bool:
    """Whether a cache entry holds rows (a list of 4 strings each): anything else is linted
    again, never read."""
    return isinstance(value, list) and all(
        isinstance(r, list) and len(r) == 4 and all(isinstance(x, str) for x in r) for r in value
    )


def _cached(
    texts: dict[str, str], region: str, cache: FindingsCache | None
) -> tuple[Settings, dict[str, str], dict[str, Any]]:
    """The settings files as read now, each template's cache key with them and what the cache
    holds for it (None, or maybe not rows)."""
    settings = tuple(settings_files())
    salt = cache_salt(region, settings) if cache else []
    keys = {name: content_key(*salt, text.encode()) for name, text in texts.items()}
    return settings, keys, ({name: cache.get(keys[name]) for name in texts} if cache else {})


def start_early(
    texts: dict[str, str], region: str, cache: FindingsCache | None, pool: Workers
) -> None:
    """Lint, in `pool`, the templates (by stack) whose findings `cache` does not hold, before
    the assembly they will be part of exists: `start` takes their findings then."""
    _, _, rows = _cached(texts, region, cache)
    pool.start_early([text for name, text in texts.items() if not _is_rows(rows.get(name))], region)


def run(
    assembly: Assembly, cache: FindingsCache | None = None, pool: Workers | None = None
) -> LintResult:
    """Every template's findings: from the cache where it holds them, else linted and kept."""
    return start(assembly, cache, pool)()


def start(
    assembly: Assembly, cache: FindingsCache | None = None, pool: Workers | None = None
) -> Callable[[], LintResult]:
    """`run`, in `pool`'s workers while this process goes on: the function returned waits for
    the findings (without workers, it lints then)."""
    region = assembly.context["region"]
    texts = {s.name: s.text for s in assembly.stacks}
    keyed, keys, rows = _cached(texts, region, cache)
    missing = [name for name in texts if not _is_rows(rows.get(name))]
    if pool and missing:
        linted = pool.start([texts[n] for n in missing], region)
    else:
        linted = lambda: [_lint_job((texts[n], region)) for n in missing]  # noqa: E731

    def finish() -> LintResult:
        for name, (settings, new) in zip(missing, linted(), strict=True):
            rows[name] = new
            if cache and settings == keyed:
                cache.put(keys[name], new)
        result = LintResult()
        for name in texts:
            (result.linted if name in missing else result.cached).append(name)
            result.findings += [Finding(r[0], r[1], name, r[2], r[3]) for r in rows[name]]
        return result

    return finish
