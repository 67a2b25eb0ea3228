"""jsii's Node.js process unpacks aws-cdk-lib's JavaScript (jsii-kernel-*), which it `require`s,
into its TMPDIR (synth._start_cdk): a folder no one else may have made first or may write to,
not a predictable name such as <tmp>/foundation-node-<pid> (a folder or a symbolic link another
user made would be taken)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT


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
    env = os.environ | {"TMPDIR": str(temporary), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
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
    env = os.environ | {"TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED], env=env, capture_output=True, text=True, timeout=300
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "interrupted [] []\n", "")
    assert list(tmp_path.iterdir()) == []
