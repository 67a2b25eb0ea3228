"""Review 7: jsii's Node.js process gets TMPDIR=<tmp>/foundation-node-<pid> (synth._start_cdk),
a name anyone on the machine can make first: `mkdir(exist_ok=True)` takes a folder or a
symbolic link already there. Node then unpacks aws-cdk-lib's JavaScript (jsii-kernel-*), which
it `require`s, into a folder another user owns (and may rename entries of)."""

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
