"""The trigger classes a task may defer to: the defaults, checked against the pinned Airflow and
providers, and the config's additions, checked at `foundation validate` (the refusals are in
tests/test_invalid_input.py; real Airflow refusing the rest is tests/test_airflow_triggers.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from foundation.airflow import settings
from foundation.project import load_project
from foundation.triggers import DEFAULT_TRIGGERS, check
from tests.conftest import ProjectDir


@pytest.mark.parametrize("classpath", DEFAULT_TRIGGERS)
def test_each_default_is_a_trigger_that_loads_no_aws_sdk(classpath: str) -> None:
    assert check(classpath) is None


def test_each_default_is_the_classpath_its_trigger_sends() -> None:
    """A worker sends `trigger.serialize()[0]`: the list holds exactly those."""
    from airflow.providers.common.sql.triggers.sql import SQLExecuteQueryTrigger
    from airflow.providers.http.triggers.http import HttpSensorTrigger, HttpTrigger
    from airflow.providers.standard.triggers.external_task import (
        DagStateTrigger,
        WorkflowTrigger,
    )
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger, TimeDeltaTrigger

    triggers = [
        DateTimeTrigger(moment=datetime.now(UTC)),
        HttpTrigger(),
        HttpSensorTrigger(),
        SQLExecuteQueryTrigger(sql="SELECT 1", conn_id="db"),
        WorkflowTrigger(external_dag_id="other", run_ids=["run"]),
        DagStateTrigger(dag_id="other", states=["success"]),
    ]
    assert [t.serialize()[0] for t in triggers] == list(DEFAULT_TRIGGERS)
    # TimeDeltaTrigger (and so every timedelta sensor) is stored as a DateTimeTrigger
    assert TimeDeltaTrigger(timedelta(minutes=5)).serialize()[0] == DEFAULT_TRIGGERS[0]


def test_a_class_the_config_adds_is_checked_then_allowed(project: ProjectDir) -> None:
    config = project.root / "config" / "foundation.yaml"
    text = config.read_text().replace(
        "  unmanaged_dags: refuse",
        "  unmanaged_dags: refuse\n  triggers: [airflow.triggers.testing.SuccessTrigger]",
    )
    config.write_text(text)
    result = project.run("validate")
    assert result.exit_code == 0, result.stderr
    deployment = load_project(project.root).deployment
    assert deployment.airflow.deferrable_triggers == sorted(
        [*DEFAULT_TRIGGERS, "airflow.triggers.testing.SuccessTrigger"]
    )
    for component in ("api-server", "triggerer"):
        env = settings.cluster_component(deployment, component).environment
        assert json.loads(env[settings.TRIGGERS_ENV]) == deployment.airflow.deferrable_triggers
