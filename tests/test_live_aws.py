"""The deploy lifecycle against a real AWS account: opt-in, skipped unless FOUNDATION_LIVE_PROJECT
names a project folder (config/ and dag_permissions/) whose config is that account's, with
credentials from the standard chain. It creates billable resources and destroys them; the
bootstrap stack and retained buckets stay."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ProjectDir

LIVE = os.environ.get("FOUNDATION_LIVE_PROJECT")
pytestmark = pytest.mark.skipif(not LIVE, reason="set FOUNDATION_LIVE_PROJECT to run on AWS")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> ProjectDir:
    root = tmp_path_factory.mktemp("live")
    for folder in ("config", "dag_permissions"):
        shutil.copytree(Path(LIVE or "") / folder, root / folder)
    return ProjectDir(root)


def test_bootstrap(live: ProjectDir) -> None:
    assert live.run("bootstrap", "--yes").exit_code == 0


def test_first_deploy(live: ProjectDir) -> None:
    result = live.run("deploy", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "AirflowUrl" in result.stdout


def test_redeploy_changes_nothing(live: ProjectDir) -> None:
    result = live.run("deploy")
    assert result.exit_code == 0 and "No changes" in result.stdout
    assert live.run("diff").exit_code == 0


def test_a_new_dag_needs_yes_and_its_removal_does_not(live: ProjectDir) -> None:
    manifest = live.root / "dag_permissions" / "live_probe.yaml"
    manifest.write_text("dag_id: live_probe\nowner: live-test@example.com\n")
    assert live.run("deploy").exit_code == 1
    assert live.run("deploy", "--yes").exit_code == 0
    manifest.unlink()
    assert live.run("deploy").exit_code == 0  # removing narrows


def test_destroy(live: ProjectDir) -> None:
    config = live.root / "config" / "foundation.yaml"
    config.write_text(
        config.read_text().replace("deletion_protection: true", "deletion_protection: false")
    )
    assert live.run("deploy", "--yes").exit_code == 0
    result = live.run("destroy", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
