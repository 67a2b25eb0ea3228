"""what parsing a DAG folder (check-dags) may do to the machine it runs on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from foundation.check_dags.operators import table
from foundation.check_dags.parse import parse
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "check_dags"


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_parsing_writes_nothing_into_the_dag_folder(tmp_path: Path) -> None:
    """Airflow imports each DAG file with SourceFileLoader, which caches bytecode next to the
    source (dags/__pycache__/) unless told not to."""
    dags = tmp_path / "dags"
    shutil.copytree(FIXTURE / "dags", dags)
    before = _tree(dags)
    attributes = {path: op.attributes() for path, op in table().items()}
    parse(dags, "us-east-1", attributes)
    assert _tree(dags) == before


@pytest.mark.xfail(
    strict=True, reason="not a sandbox: the README says so; a sandboxed parse makes this pass"
)
def test_a_dag_file_cannot_read_the_parents_credentials(tmp_path: Path) -> None:
    """The parse's own environment is an allowlist, but the DAG file runs as the same user as
    `foundation check-dags`: /proc/<parent>/environ holds the keys the parent was started with
    (a CI job's AWS_ACCESS_KEY_ID...). The README says the parse has no AWS credentials."""
    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("dags"))
    (project / "dags").mkdir()
    (project / "dags" / "all_covered.py").write_text(
        textwrap.dedent(
            """\
            import os
            from pathlib import Path
            from airflow.sdk import DAG
            from airflow.providers.standard.operators.empty import EmptyOperator

            seen = Path(f"/proc/{os.getppid()}/environ").read_bytes()
            found = "leaked" if b"AKIAREVIEW7LEAK" in seen else "none"
            with DAG("all_covered", schedule=None):
                EmptyOperator(task_id=f"credentials_{found}")
            """
        )
    )
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": "AKIAREVIEW7LEAK",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "foundation", "check-dags", "--project", str(project), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    tasks = [f["task_id"] for f in json.loads(done.stdout)["findings"] if f["task_id"]]
    assert tasks == ["credentials_none"]
