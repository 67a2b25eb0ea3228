"""`foundation init`: a project that validates, written only where nothing is, with its schemas
bound for an editor. (The installed wheel's init and synth: tests/test_install.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft7Validator
from typer.testing import CliRunner

from foundation import schema
from foundation.cli import app
from foundation.project import load_project
from foundation.yamlio import load
from tests.conftest import ROOT

WRITTEN = [
    ".gitignore",
    ".vscode/settings.json",
    "config/foundation.yaml",
    "dag_permissions/example_dag.yaml",
    "dags/example_dag.py",
    "docker/Dockerfile",
    "schemas/config.schema.json",
    "schemas/manifest.schema.json",
    "schemas/overlay.schema.json",
]


def init(folder: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["init", str(folder)])
    return result.exit_code, result.stdout, result.stderr


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_init_writes_the_project_into_a_new_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my-airflow"
    code, out, err = init(folder)
    assert (code, err) == (0, "")
    assert out == (
        f"Wrote 9 files in {folder}:\n"
        + "".join(f"  {name}\n" for name in WRITTEN)
        + "Next: set name, region, account and web.certificate_arn in config/foundation.yaml, "
        f"then\n  foundation validate --project {folder}\n  foundation synth --project {folder}\n"
    )
    assert files_in(folder) == WRITTEN


def test_init_json_lists_what_it_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "my-airflow"
    result = CliRunner().invoke(app, ["init", str(folder), "--json"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"folder": str(folder), "written": WRITTEN}
    again = CliRunner().invoke(app, ["init", str(folder), "--json"])
    assert again.exit_code == 2
    [error, *_] = json.loads(again.stdout)["errors"]
    assert set(error) == {"file", "line", "field", "message"}


def test_the_written_project_validates(tmp_path: Path) -> None:
    init(tmp_path)
    project = load_project(tmp_path)
    assert [d.dag_id for d in project.dags] == ["example_dag"]
    assert project.findings == []
    result = CliRunner().invoke(app, ["validate", "--project", str(tmp_path)])
    assert (result.exit_code, result.stderr) == (0, "")


def test_the_written_files_are_the_packages(tmp_path: Path) -> None:
    init(tmp_path)
    assert (tmp_path / ".gitignore").read_text() == "cdk.out/\n.foundation/\n.venv/\n"
    for kind in schema.KINDS:
        written = tmp_path / "schemas" / schema.file_name(kind)
        assert written.read_text() == schema.shipped(kind) == schema.text(kind)
    dockerfile = ROOT / "foundation" / "templates" / "project" / "docker" / "Dockerfile"
    assert (tmp_path / "docker" / "Dockerfile").read_bytes() == dockerfile.read_bytes()


def test_the_editor_settings_bind_each_schema_to_its_files(tmp_path: Path) -> None:
    init(tmp_path)
    settings = json.loads((tmp_path / ".vscode" / "settings.json").read_text())
    assert settings == {
        "yaml.schemas": {
            "./schemas/config.schema.json": ["config/foundation.yaml"],
            "./schemas/overlay.schema.json": ["config/*.yaml"],
            "./schemas/manifest.schema.json": ["dag_permissions/*.yaml"],
        }
    }
    for target in settings["yaml.schemas"]:
        assert (tmp_path / target).is_file()


def test_each_yaml_file_names_its_schema_and_is_valid_under_it(tmp_path: Path) -> None:
    init(tmp_path)
    expected = {
        "config/foundation.yaml": "../schemas/config.schema.json",
        "dag_permissions/example_dag.yaml": "../schemas/manifest.schema.json",
    }
    for name, schema_path in expected.items():
        path = tmp_path / name
        first = path.read_text().splitlines()[0]
        assert first == f"# yaml-language-server: $schema={schema_path}"
        bound = json.loads((path.parent / schema_path).read_text())
        assert list(Draft7Validator(bound).iter_errors(load(path).data)) == []


def test_the_example_dag_file_declares_the_manifests_dag_id(tmp_path: Path) -> None:
    from foundation.dag_files import dag_ids

    init(tmp_path)
    assert dag_ids(tmp_path / "dags" / "example_dag.py") == ["example_dag"]


def test_init_overwrites_nothing_and_writes_nothing_when_a_file_exists(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "foundation.yaml").write_text("name: mine\n")
    (tmp_path / ".gitignore").write_text("*.pyc\n")
    code, out, err = init(tmp_path)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {tmp_path}/.gitignore: already exists; foundation init overwrites nothing\n"
        f"error: {tmp_path}/config/foundation.yaml: already exists; foundation init "
        "overwrites nothing\n"
        "2 problem(s); nothing was written.\n"
    )
    assert files_in(tmp_path) == [".gitignore", "config/foundation.yaml"]
    assert (tmp_path / "config" / "foundation.yaml").read_text() == "name: mine\n"
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\n"


def test_init_refuses_a_file_where_it_needs_a_folder(tmp_path: Path) -> None:
    (tmp_path / "schemas").write_text("x")
    code, out, err = init(tmp_path)
    assert (code, out) == (2, "")
    problem = f"error: {tmp_path}/schemas: is not a folder; foundation init needs one there\n"
    assert err == problem + "1 problem(s); nothing was written.\n"
    assert files_in(tmp_path) == ["schemas"]


def test_init_refuses_a_file_for_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("x")
    code, out, err = init(target)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {target}: is a file; give a folder to initialise\n"
        "1 problem(s); nothing was written.\n"
    )


def test_init_defaults_to_the_current_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0
    assert result.stdout.endswith(
        "Next: set name, region, account and web.certificate_arn in config/foundation.yaml, "
        "then\n  foundation validate\n  foundation synth\n"
    )
    assert files_in(tmp_path) == WRITTEN


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    for flag in ("--version", "-V"):
        result = CliRunner().invoke(app, [flag])
        assert (result.exit_code, result.stdout) == (
            0,
            f"airflow-foundation {version('airflow-foundation')}\n",
        )
