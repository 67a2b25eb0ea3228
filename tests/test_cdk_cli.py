"""`npx cdk synth` (cdk.json) builds the same app as `foundation synth`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT


def test_cdk_cli_synthesizes_the_same_templates(templates: dict, tmp_path: Path) -> None:
    npx = shutil.which("npx")
    assert npx, "Node.js/npx is required (the README's test command runs npm ci first)"
    assert (ROOT / "node_modules" / ".bin" / "cdk").exists(), "run `npm ci` (package.json)"
    done = subprocess.run(
        [npx, "--no-install", "cdk", "synth", "--quiet", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for name, template in templates.items():
        cli = json.loads((tmp_path / f"{name}.template.json").read_text())
        assert cli == template, name
