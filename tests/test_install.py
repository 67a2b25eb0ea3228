"""The README's "Your own project", run as written: a wheel of this checkout installed into a
fresh virtualenv in an empty folder outside the clone, then `foundation --version`, `init`,
`validate` and `synth` there.

No network for the toolkit's dependencies: the wheel is installed with --no-deps, and the test
virtualenv's site-packages are added behind the new one's (a .pth file), so the new
environment's `foundation` and `stacks` are the wheel's and everything else is what the suite
runs with. Building the wheel takes setuptools from pip's configured index (build isolation).
About a minute: most of it the wheel build and the synth."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import ROOT

SECTION = "## Your own project"
INSTALL = "pip install /path/to/airflow-foundation   # or: pipx install /path/to/airflow-foundation"
QUICK_START = [
    "mkdir my-airflow && cd my-airflow",
    "python3 -m venv .venv && . .venv/bin/activate",
    INSTALL,
    "foundation --version",
    "foundation init",
    "foundation validate",
    "foundation synth",
]


def quick_start() -> list[str]:
    """The first bash block under the README's "Your own project" heading."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"\n{SECTION}\n") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1).splitlines()


def test_the_readme_quick_start_is_the_one_tested() -> None:
    assert quick_start() == QUICK_START


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, built from a copy (the build leaves nothing in the tree)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("foundation", "stacks"):
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    [built] = out.glob("airflow_foundation-*.whl")
    return built


def clean_environment(shims: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{shims}{os.pathsep}{env['PATH']}"
    return env


def test_the_quick_start_runs_from_an_empty_folder_with_the_installed_wheel(
    wheel: Path, tmp_path: Path
) -> None:
    # `python3` is the suite's own interpreter, whose packages the new virtualenv borrows
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").symlink_to(sys._base_executable)
    suite_packages = sysconfig.get_path("purelib")
    install = (
        f"pip install -q --no-deps --no-index {wheel} && "
        f"echo {suite_packages} > \"$(python -c 'import sysconfig; "
        f'print(sysconfig.get_path("purelib"))\')/suite-packages.pth"'
    )
    lines = [install if line == INSTALL else line for line in quick_start()]
    # where `foundation` comes from, after the quick start: the new virtualenv, not the clone
    lines.append(
        'python -c "import foundation, stacks; print(foundation.__file__, stacks.__file__)"'
    )
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=empty,
        env=clean_environment(shims),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert out[0] == f"airflow-foundation {version('airflow-foundation')}"
    assert "Wrote 9 files in .:" in out
    assert any(line.startswith("Cloud assembly written to ") for line in out)
    venv_packages = next((empty / "my-airflow" / ".venv" / "lib").glob("python3*/site-packages"))
    assert out[-1] == (f"{venv_packages}/foundation/__init__.py {venv_packages}/stacks/__init__.py")
    project = empty / "my-airflow"
    assert (project / "cdk.out" / "manifest.json").is_file()
    assert sorted(p.name for p in (project / "cdk.out").glob("*.template.json")) == [
        "my-airflow-core.template.json",
        "my-airflow-data.template.json",
        "my-airflow-network.template.json",
        "my-airflow-workers-13.template.json",
    ]


def test_the_wheel_holds_every_file_the_toolkit_reads(wheel: Path) -> None:
    """Package data: what the verbs open by path from the installed package."""
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    data = {n for n in names if not n.endswith(".py") and ".dist-info/" not in n}
    assert data == {
        "foundation/check_dags/operators.yaml",
        "foundation/iam/catalog.yaml",
        "foundation/iam/deployer.yaml",
        "foundation/schemas/config.schema.json",
        "foundation/schemas/manifest.schema.json",
        "foundation/schemas/overlay.schema.json",
        "foundation/templates/project/config/foundation.yaml",
        "foundation/templates/project/dag_permissions/example_dag.yaml",
        "foundation/templates/project/docker/Dockerfile",
    }
    runtime = ROOT / "foundation" / "airflow" / "runtime"
    for path in runtime.glob("*.py"):
        assert f"foundation/airflow/runtime/{path.name}" in names
    assert "foundation/templates/project/dags/example_dag.py" in names
    assert "foundation/check_dags/child.py" in names  # check-dags runs it as a script
