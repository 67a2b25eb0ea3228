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
