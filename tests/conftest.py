from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from foundation.checks.cache import CACHE_ENV
from foundation.checks.model import Assembly, StackTemplate
from foundation.cli import app

ROOT = Path(__file__).resolve().parents[1]

# Every synth in this process and the commands it starts runs here: a daemon would outlive the
# test. tests/test_daemon.py turns them on where it tests them.
os.environ["FOUNDATION_DAEMON"] = "off"

# The local AWS endpoint's fixtures (moto_aws, moto_env), one server for the whole session.
pytest_plugins = ["tests.moto_server"]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: three processes per two cores. Much of the suite waits on the processes it
    starts (Airflow's components, moto, PostgreSQL, Node.js): with one per core, the cores were
    busy 150% of the time (of 200%), 165-190% with three (measured on 2 cores)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):  # xdist's own override
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) * 3 // 2)


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


@dataclass
class ProjectDir:
    """A copy of the shipped example that a test may change."""

    root: Path

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def manifest(self, dag_id: str, text: str) -> Path:
        return self.write(f"dag_permissions/{dag_id}.yaml", text)

    def run(self, *args: str) -> Run:
        return self.run_with_env({}, *args)

    def run_with_env(self, env: dict[str, str], *args: str) -> Run:
        result = CliRunner(env=env).invoke(app, [*args, "--project", str(self.root)])
        return Run(result.exit_code, result.stdout, result.stderr, result.exception)


@pytest.fixture(scope="session", autouse=True)
def shared_lint_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """cfn-lint's findings kept by content for the whole session (foundation/checks/cache.py):
    a synth lints only the templates no earlier test's synth produced. tests/test_lint_cache.py
    shows that cached findings are exactly cfn-lint's."""
    folder = tmp_path_factory.mktemp("lint-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture
def project(tmp_path: Path) -> ProjectDir:
    for folder in ("config", "dag_permissions"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return ProjectDir(tmp_path)


@pytest.fixture
def empty_project(project: ProjectDir) -> ProjectDir:
    """The example's config with no manifests."""
    for path in (project.root / "dag_permissions").iterdir():
        path.unlink()
    return project


@pytest.fixture(scope="session")
def example_synth(tmp_path_factory: pytest.TempPathFactory):
    """The shipped example, synthesized and checked once for the whole session."""
    from foundation import synth

    out = tmp_path_factory.mktemp("example") / "cdk.out"
    return synth.run(ROOT, None, out)


@pytest.fixture(scope="session")
def templates(example_synth) -> dict[str, dict]:
    import json

    manifest = json.loads((example_synth.out / "manifest.json").read_text())
    return {
        name: json.loads((example_synth.out / a["properties"]["templateFile"]).read_text())
        for name, a in manifest["artifacts"].items()
        if a["type"] == "aws:cloudformation:stack"
    }


def identity_resources(out: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Each identity construct of an assembly's tree.json (Dag-<dag_id> in a worker stack,
    UnmanagedDags in core), by path: the type and properties of each CloudFormation resource
    under it."""
    tree = json.loads((out / "tree.json").read_text())["tree"]

    def under(node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        attributes = node.get("attributes") or {}
        if "aws:cdk:cloudformation:type" in attributes:
            yield (
                attributes["aws:cdk:cloudformation:type"],
                attributes.get("aws:cdk:cloudformation:props", {}),
            )
        for child in (node.get("children") or {}).values():
            yield from under(child)

    return {
        f"{stack}/{name}": list(under(node))
        for stack, top in tree["children"].items()
        for name, node in (top.get("children") or {}).items()
        if name.startswith("Dag-") or name == "UnmanagedDags"
    }


def mutated(templates: dict[str, dict], change: Callable[[str, dict], None]) -> Assembly:
    """The synthesized templates with `change` made to a copy of each (its stack's name, its
    resources), as an assembly the toolkit's rules read."""
    copied = json.loads(json.dumps(templates))
    for name, template in copied.items():
        change(name, template["Resources"])
    stacks = [StackTemplate(n, t, json.dumps(t)) for n, t in copied.items()]
    context = {"partition": "aws", "region": "us-east-1", "account": "111122223333"}
    return Assembly(ROOT, {}, stacks, context)
