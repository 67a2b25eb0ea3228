"""jsii's Node.js process unpacks aws-cdk-lib's JavaScript (jsii-kernel-*), which it `require`s,
into its TMPDIR (synth._start_cdk): a folder no one else may have made first or may write to,
not a predictable name such as <tmp>/foundation-node-<pid> (a folder or a symbolic link another
user made would be taken)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT


def run_python(script: str, temporary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`script` in an interpreter of its own importing this checkout, with TMPDIR `temporary`."""
    env = os.environ | {"TMPDIR": str(temporary), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_node_never_works_in_a_folder_made_before_it(tmp_path: Path) -> None:
    temporary, planted = tmp_path / "tmp", tmp_path / "planted"
    temporary.mkdir()
    planted.mkdir()
    script = textwrap.dedent(
        f"""\
        import os
        from pathlib import Path
        Path({str(temporary)!r}, f"foundation-node-{{os.getpid()}}").symlink_to({str(planted)!r})
        from foundation import synth
        synth._start_cdk()
        import aws_cdk
        aws_cdk.App()
        print(sorted(os.listdir({str(planted)!r})))
        """
    )
    done = run_python(script, temporary)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


INTERRUPTED = """
import sys
from foundation import synth


class CtrlC:
    \"\"\"Ctrl-C while aws-cdk-lib loads into the Node.js process already started (it reaches
    Node too: a terminal interrupts the whole process group).\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == "aws_cdk.aws_iam":
            synth._node[0]._process.terminate()
            raise KeyboardInterrupt
        return None


sys.meta_path.insert(0, CtrlC())
try:
    synth._start_cdk()
except KeyboardInterrupt:
    print("interrupted", synth._node, synth._node_folder)
"""


def test_a_start_interrupted_leaves_no_folder_and_no_traceback(tmp_path: Path) -> None:
    """Interrupted while aws-cdk-lib loads, the start ends Node, removes its folder at once and
    leaves no exit hook of jsii's to fail on the ended process (a traceback at exit)."""
    done = run_python(INTERRUPTED, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "interrupted [] []\n", "")
    assert list(tmp_path.iterdir()) == []


PRELOADED = """
import importlib
import json
import os
import sys
from pathlib import Path
from foundation import synth

synth.start_node()
synth._starting[0].join()  # the thread a synth leaves to run while the project loads
kernel_folders = list(synth._node_folder[0].iterdir())
print(json.dumps({
    "imported": sorted(m for m in ("aws_cdk", "cdk_nag", "constructs") if m in sys.modules),
    "tmpdir": os.environ.get("TMPDIR"),
    "unpacked": [sorted(p.name for p in (f / "node_modules").iterdir()) for f in kernel_folders],
}))
synth._start_cdk()
assemblies = [
    importlib.import_module(f"{m}._jsii").__jsii_assembly__
    for m in ("constructs", "aws_cdk", "cdk_nag")
]
print(json.dumps([[a.name, a.version, a.filename] for a in assemblies]))
print(json.dumps([[n, v, Path(t).name] for n, v, t in synth._library_tarballs()]))
"""


def test_node_loads_the_construct_libraries_before_python_imports_them(tmp_path: Path) -> None:
    """A synth starts Node.js and loads aws-cdk-lib, constructs and cdk-nag into it in a thread,
    before it loads the project (synth.start_node): once that thread is done, Node has unpacked
    the three libraries while Python has imported none of them, TMPDIR is this process's again,
    and each is loaded under the name, version and tarball its own import loads (the import
    then finds it loaded; under another name it would be loaded twice)."""
    done = run_python(PRELOADED, tmp_path)
    assert done.returncode == 0, done.stderr
    started, imported, preloaded = (json.loads(line) for line in done.stdout.splitlines())
    assert started == {
        "imported": [],
        "tmpdir": str(tmp_path),
        "unpacked": [["aws-cdk-lib", "cdk-nag", "constructs"]],
    }
    assert preloaded == imported
    assert [name for name, _, _ in imported] == ["constructs", "aws-cdk-lib", "cdk-nag"]


FAILED_START = """
from foundation import synth

synth._library_tarballs = lambda: iter([("aws-cdk-lib", "2.275.0", "/no/such/aws-cdk-lib.tgz")])
try:
    synth._start_cdk()
except RuntimeError as err:
    print("raised:", err, synth._node, synth._node_folder, synth._starting)
"""


def test_a_start_that_fails_in_its_thread_fails_the_synth_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """What stops Node's start in its thread is raised where the synth waits for Node, which is
    ended and its folder removed."""
    done = run_python(FAILED_START, tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "raised: ENOENT: no such file or directory, open '/no/such/aws-cdk-lib.tgz' [] [] []\n"
    )
    assert list(tmp_path.iterdir()) == []


RELEASED_WHILE_STARTING = """
import os
import sys
import time
from pathlib import Path
from foundation import synth

synth.start_node()
synth.release_node()  # as at exit, when the project did not load
time.sleep(1)  # a start that release_node did not wait for would have started Node by now
running = []
for proc in Path("/proc").iterdir():
    if not proc.name.isdigit() or proc.name == str(os.getpid()):
        continue
    try:
        line = (proc / "cmdline").read_bytes().replace(b"\\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        continue
    if "node" in line and sys.argv[1] in line:
        running.append(line)
print(running, synth._node, synth._node_folder, synth._starting)
"""


def test_node_released_while_it_starts_leaves_no_process_and_no_folder(tmp_path: Path) -> None:
    """A synth whose project does not load (exit 2) releases Node while its thread may still be
    starting it: the release waits for the start, then ends both of jsii's Node processes and
    removes the folder."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = run_python(RELEASED_WHILE_STARTING, temporary, str(temporary))
    assert (done.returncode, done.stdout, done.stderr) == (0, "[] [] [] []\n", "")
    assert list(temporary.iterdir()) == []


EXITED_WHILE_STARTING = """
import sys
import threading
import time

from jsii._kernel.providers import process

unpacked = threading.Event()
unpack = process._NodeProcess._jsii_runtime


def slow_unpack(self):
    script = unpack(self)  # jsii's runtime, unpacked into a TemporaryDirectory
    unpacked.set()
    time.sleep(0.5)  # the exit below begins before Node starts from it
    return script


process._NodeProcess._jsii_runtime = slow_unpack
import foundation.project


def refused(*args, **kwargs):
    unpacked.wait(60)
    raise SystemExit(2)  # a project that does not load, while Node starts


foundation.project.load_project = refused
sys.argv = ["foundation", "synth", "--project", sys.argv[1], "--out", sys.argv[2]]
from foundation.cli import run

run()
"""


def test_an_exit_while_node_starts_prints_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    """Exit hooks run last first: release_node's must wait for the start before weakref's
    removes the folder the start unpacked jsii's runtime into (else Node finds no runtime and
    tracebacks are printed). `foundation synth` whose project fails to load after the runtime
    is unpacked and before Node starts from it."""
    done = run_python(EXITED_WHILE_STARTING, tmp_path, str(ROOT), str(tmp_path / "out"))
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "")
    assert list(tmp_path.iterdir()) == []
