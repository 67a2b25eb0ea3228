"""What the real-Airflow scenarios share: the environment of a component under test (its settings
from foundation.airflow.settings, less what needs the real cluster), and writes a scenario
makes through Airflow's own REST API or database rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from foundation.airflow import runtime_files

TEST_JWT_SECRET = "test-jwt-secret-" + "x" * 32
ROOT = Path(__file__).resolve().parents[2]

# DAG files: the imports every scenario's DAGs use, and a DAG no manifest names.
DAG_HEADER = textwrap.dedent(
    """
    from datetime import datetime, timedelta

    from airflow.sdk import DAG, DeadlineAlert, DeadlineReference, SyncCallback, task

    START = datetime(2024, 1, 1)
    """
)
UNMANAGED_DAG = DAG_HEADER + textwrap.dedent(
    """
    with DAG("dag_c", schedule="@once", start_date=START):

        @task
        def unmanaged():
            return "no manifest"

        unmanaged()
    """
)


def run_scenario(module: str, inputs: Path, env: dict[str, str]) -> dict:
    """Run `python -m tests.airflow_scenarios.<module> <inputs>` (Airflow's state is per
    process) and return the observations it prints last."""
    done = subprocess.run(
        [sys.executable, "-m", f"tests.airflow_scenarios.{module}", str(inputs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-20000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def local_bundle(path: Path, name: str = "dags-folder") -> dict[str, Any]:
    return {
        "name": name,
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(path), "refresh_interval": 0},
    }


def component_environment(settings_env: dict[str, str]) -> dict[str, str]:
    """A component's generated environment without what needs the real cluster: the database
    and Fernet key through _CMD, remote logging to S3, and the runtime-file archive (tests
    write the files to $AIRFLOW_HOME/config instead)."""
    return {
        k: v
        for k, v in settings_env.items()
        if not k.endswith("_CMD")
        and not k.startswith(("AIRFLOW__LOGGING__", "FOUNDATION_DB"))
        and k != runtime_files.RUNTIME_ENV
    }


def airflow_environment(
    component: dict[str, str], home: Path, dags: Path, bundles: list[dict], region: str
) -> dict[str, str]:
    """A clean process environment with the component's settings, run in `home` with a SQLite
    database, these bundles (reparsed at once), DAGs unpaused, a test JWT key and fake AWS keys
    (moto answers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    return (
        env
        | component_environment(component)
        | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # Reparsing a bundle rewrites its DAGs at once, not 30 s after their last write.
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__API_AUTH__JWT_SECRET": TEST_JWT_SECRET,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
        }
    )


def trigger(api: Any, dag_id: str) -> str:
    """A run through the public REST API, as a user or another scheduler triggers one."""
    response = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
    response.raise_for_status()
    return response.json()["dag_run_id"]


def update_task_instance(dag_id: str, run_id: str, task_id: str, **columns: Any) -> None:
    """Write a task instance's row directly, as if no hook had run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
            )
        ).one()
        for column, value in columns.items():
            setattr(ti, column, value)


def start_task_instance(api: Any, workload: dict) -> dict[str, str]:
    """What a worker does first with a workload: start its task instance through the Execution
    API with the workload's token. Returns the headers with the refreshed token."""
    from datetime import UTC, datetime

    started = api.patch(
        f"/execution/task-instances/{workload['ti']['id']}/run",
        headers={"Authorization": f"Bearer {workload['token']}"},
        json={
            "state": "running",
            "hostname": "worker",
            "unixname": "airflow",
            "pid": 1,
            "start_date": datetime.now(UTC).isoformat(),
        },
    )
    started.raise_for_status()
    return {"Authorization": f"Bearer {started.headers['Refreshed-API-Token']}"}
