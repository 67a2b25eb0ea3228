"""publish-dags must check every file the bundle's dag-processor will parse.

Airflow 3.3.2 (airflow/dag_processing/importers/python_importer.py list_dag_files) parses a
file when `path.suffix.lower() == ".py"` or `zipfile.is_zipfile(path)`, whatever its name;
publish-dags reads only `.py` (case-sensitive) and refuses only `*.zip`. A `rogue.PY` file, or a
zip named `shared.dat`, declaring a dag_id with no manifest is uploaded unchecked."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from airflow.dag_processing.importers.python_importer import PythonDagImporter
from typer.testing import CliRunner

from foundation.cli import app
from foundation.errors import InvalidInput
from foundation.project import load_project
from foundation.publish import plan

ROGUE = 'from airflow.sdk import DAG\n\nwith DAG(dag_id="rogue", schedule=None):\n    pass\n'


def _zip_of(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def init_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    assert CliRunner().invoke(app, ["init", str(root)]).exit_code == 0
    return root


@pytest.mark.parametrize(
    ("name", "content"),
    [("rogue.PY", ROGUE.encode()), ("shared.dat", _zip_of("rogue.py", ROGUE))],
)
def test_every_file_airflow_parses_is_checked(
    init_project: Path, tmp_path: Path, name: str, content: bytes
) -> None:
    folder = tmp_path / "dags-out"
    folder.mkdir()
    (folder / name).write_bytes(content)
    # the dag-processor parses it
    assert [Path(p).name for p in PythonDagImporter().list_dag_files(folder)] == [name]
    with pytest.raises(InvalidInput) as refused:
        plan(load_project(init_project), folder, None)
    assert [p.file for p in refused.value.problems] == [folder / name]
