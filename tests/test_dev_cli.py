"""`foundation dev` refuses, with one message and exit 2, what it cannot run: no traceback,
nothing started. (The cluster it boots is tests/test_e2e.py's: that test boots through
foundation.dev.boot.)"""

from __future__ import annotations

from importlib import metadata

import pytest

from foundation import dev
from foundation.local.postgres import INSTALL_HINT, PostgresMissing
from tests.conftest import ProjectDir


def _no_postgres() -> None:
    raise PostgresMissing(INSTALL_HINT)


def test_without_postgresql_it_says_how_to_install_it(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev, "bindir", _no_postgres)
    result = project.run("dev")
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == f"error: {INSTALL_HINT}\n"
    assert not (project.root / dev.STATE_DIR).exists()


def test_without_the_dev_extra_it_names_the_extra(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = metadata.distribution

    def without_moto(name: str) -> metadata.Distribution:
        if name == "moto":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", without_moto)
    result = project.run("dev")
    assert result.exit_code == 2
    assert result.stderr == f"error: moto not installed: {dev.DEV_EXTRA}\n"


def test_a_git_bundle_is_refused_naming_the_setting(project: ProjectDir) -> None:
    (project.root / "dags").mkdir()
    result = project.run("dev", "--env", "staging")  # the example's staging pulls from git
    assert result.exit_code == 2
    assert result.stderr == (
        "error: dev syncs a local folder into the S3 DAG bundle, and this config's bundle is "
        "git: set `dags: {bundle: s3}` (in an --env overlay, say config/dev.yaml)\n"
    )


def test_a_missing_dag_folder_is_refused(project: ProjectDir) -> None:
    result = project.run("dev", "--dags", str(project.root / "nowhere"))
    assert result.exit_code == 2
    assert result.stderr == (f"error: no DAG folder at {project.root / 'nowhere'} (give --dags)\n")


def test_invalid_input_is_reported_with_file_line_and_field(project: ProjectDir) -> None:
    (project.root / "dags").mkdir()
    project.manifest("sales_daily", "dag_id: sales_daily\nowner: a@b.c\nworkers: {}\n")
    result = project.run("dev")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {project.root}/dag_permissions/sales_daily.yaml:3: workers: unknown field "
        "'workers'; did you mean 'worker'?\n1 problem(s); nothing was written.\n"
    )
    assert not (project.root / dev.STATE_DIR).exists()
