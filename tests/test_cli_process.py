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
    """jsii's Node.js processes are ended at exit (foundation/synth.py release_node): its work
    folder and the runtime script jsii unpacked must go with them, and so must the cfn-lint
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


RELEASED = """
import os
import sys
from pathlib import Path
from foundation import synth
from foundation.project import load_project

synth.synthesize(load_project(Path(sys.argv[1]), None), Path(sys.argv[2]))
synth.release_node()
running = []
for proc in Path("/proc").iterdir():
    if not proc.name.isdigit() or proc.name == str(os.getpid()):
        continue  # this script (also /proc/self): its command line names both
    try:
        line = (proc / "cmdline").read_bytes().replace(b"\\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        continue  # not a process, or one that ended meanwhile
    if "program.js" in line and sys.argv[3] in line:
        running.append(line)
print(running)
"""


def test_no_node_process_outlives_release(project: ProjectDir, tmp_path: Path) -> None:
    """When release_node returns, both of jsii's Node processes have ended (the launcher and
    the one holding the constructs, which runs its script from this TMPDIR): none is left to
    run on, or to escape this process's resource usage (the benchmark's peak memory)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", RELEASED, str(project.root), str(tmp_path / "out"), str(temporary)],
        env=os.environ | {"TMPDIR": str(temporary)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
