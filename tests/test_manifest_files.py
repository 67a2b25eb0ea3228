"""What dag_permissions/ may hold besides manifests: nothing is skipped without a word.

A file that looks like a manifest but would not be read (in a subfolder) and a YAML file that is
not a manifest are errors (exit 2): dropping either would give a DAG no identity at the next
deploy. Any other file is a warning (exit 0): it cannot be a manifest, and it is named.
"""

from __future__ import annotations

import json

from tests.conftest import ProjectDir

MANIFEST = "dag_id: sales\nowner: data-eng@example.com\n"
NOT_READ = "not read: only <dag_id>.yaml (or .yml) files are DAG manifests"


def refused(project: ProjectDir) -> list[str]:
    result = project.run("validate")
    assert result.exit_code == 2, result.stdout
    assert "Traceback" not in result.stderr and result.stdout == ""
    return _lines(project, result.stderr)


def warned(project: ProjectDir) -> list[str]:
    result = project.run("validate")
    assert result.exit_code == 0, result.stderr
    return _lines(project, result.stderr)


def _lines(project: ProjectDir, text: str) -> list[str]:
    return text.replace(f"{project.root}/", "").splitlines()


def test_a_manifest_in_a_subfolder_is_an_error(empty_project: ProjectDir) -> None:
    empty_project.write("dag_permissions/team_a/sales.yaml", MANIFEST)
    assert refused(empty_project) == [
        "error: dag_permissions/team_a/sales.yaml:1: manifests are read from dag_permissions/ "
        "itself, not from its subfolders: move it to dag_permissions/sales.yaml, or its DAG has "
        "no identity",
        "1 problem(s); nothing was written.",
    ]


def test_a_manifest_deeper_down_is_an_error_too(empty_project: ProjectDir) -> None:
    empty_project.write("dag_permissions/a/b/sales.yml", MANIFEST)
    lines = refused(empty_project)
    assert lines[0].startswith("error: dag_permissions/a/b/sales.yml:1: manifests are read from")


def test_a_yaml_file_that_is_not_a_manifest_is_an_error(empty_project: ProjectDir) -> None:
    empty_project.write("dag_permissions/defaults.yaml", "owner: data-eng@example.com\n")
    assert refused(empty_project) == [
        "error: dag_permissions/defaults.yaml:1: not a DAG manifest (no dag_id): every YAML file "
        "in dag_permissions/ is read as one DAG's manifest; move other files out",
        "1 problem(s); nothing was written.",
    ]


def test_a_yaml_scalar_is_an_error(empty_project: ProjectDir) -> None:
    empty_project.write("dag_permissions/notes.yaml", "just some notes\n")
    lines = refused(empty_project)
    assert lines[0] == (
        "error: dag_permissions/notes.yaml:1: expected a mapping at the top level, got str"
    )


def test_other_files_are_named_in_warnings_and_validate_passes(empty_project: ProjectDir) -> None:
    empty_project.manifest("sales", MANIFEST)
    empty_project.write("dag_permissions/README.md", "# manifests\n")
    empty_project.write("dag_permissions/sales.yaml.bak", MANIFEST)
    empty_project.write("dag_permissions/docs/review.txt", "ok\n")
    empty_project.write("dag_permissions/.gitkeep", "")
    empty_project.write("dag_permissions/docs/.sales.yaml.swp", "x")
    assert warned(empty_project) == [
        f"warning: dag_permissions/README.md:1: {NOT_READ}",
        f"warning: dag_permissions/docs/review.txt:1: {NOT_READ}",
        f"warning: dag_permissions/sales.yaml.bak:1: {NOT_READ}",
    ]
    data = json.loads(empty_project.run("validate", "--json").stdout)
    assert data["warnings"] == [
        {
            "file": f"{empty_project.root}/dag_permissions/{name}",
            "line": 1,
            "field": None,
            "message": NOT_READ,
        }
        for name in ("README.md", "docs/review.txt", "sales.yaml.bak")
    ]
    assert [d["dag_id"] for d in data["dags"]] == ["sales"]


def test_an_upper_case_suffix_is_still_a_manifest(empty_project: ProjectDir) -> None:
    empty_project.write("dag_permissions/sales.YAML", MANIFEST)
    data = json.loads(empty_project.run("validate", "--json").stdout)
    assert [d["dag_id"] for d in data["dags"]] == ["sales"]
    assert data["warnings"] == []


def test_a_hidden_yaml_file_is_read_and_refused(empty_project: ProjectDir) -> None:
    empty_project.write("dag_permissions/.sales.yaml", MANIFEST)
    lines = refused(empty_project)
    assert lines[0] == (
        "error: dag_permissions/.sales.yaml:1: dag_id: dag_id 'sales' must match the file name "
        "('.sales')"
    )
