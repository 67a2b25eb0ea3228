"""The `foundation` command as a process: what it leaves behind and how it ends."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from tests.conftest import ProjectDir


def test_the_console_script_is_run() -> None:
    assert entry_points(group="console_scripts")["foundation"].value == "foundation.cli:run"


def test_a_synth_leaves_no_temporary_file(project: ProjectDir, tmp_path: Path) -> None:
    """jsii's Node.js process is killed at exit (foundation/synth.py release_node): its work
    folder and the runtime script jsii unpacked must go with it, and so must the cfn-lint
    workers' and multiprocessing's."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = os.environ | {"TMPDIR": str(temporary), "FOUNDATION_CACHE_DIR": str(tmp_path / "c")}
    out = tmp_path / "cdk.out"
    command = ["synth", "--project", str(project.root), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", "from foundation.cli import run; run()", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "manifest.json").is_file()
    assert sorted(p.name for p in temporary.iterdir()) == []
