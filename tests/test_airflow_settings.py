"""Real Airflow reads the values the toolkit derives in the container through `_CMD` options,
compared byte for byte (Airflow's `_CMD` runner keeps a trailing newline: a database name
`airflow\n` stopped the whole cluster once)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from foundation.airflow import settings
from foundation.project import load_project
from tests.conftest import ROOT

DEPLOYMENT = load_project(ROOT).deployment
READ_CONFIG = (
    "import json;from airflow.configuration import conf;"
    "print(json.dumps([conf.get('core','fernet_key'),conf.get('database','sql_alchemy_conn')]))"
)


def airflow_reads(environment: dict[str, str], home: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {"AIRFLOW_HOME": str(home), **environment}
    done = subprocess.run(
        [sys.executable, "-c", READ_CONFIG], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fernet_key_and_connection_url_come_from_the_injected_secrets(tmp_path: Path) -> None:
    component = settings.cluster_component(DEPLOYMENT, "scheduler")
    secret = {
        "username": "airflow",
        "password": "p@ss/w:rd#?%",
        "host": "db.example.internal",
        "port": 5432,
        "engine": "postgres",
    }
    injected = {
        settings.FERNET_MATERIAL_ENV: "m" * 64,
        settings.DB_SECRET_ENV: json.dumps(secret),
    }
    assert set(injected) <= set(component.secrets), "ECS injects exactly these secrets"
    environment = {
        k: v
        for k, v in component.environment.items()
        if k.endswith("_CMD") or k.startswith("FOUNDATION_DB")
    }
    fernet_key, url = airflow_reads(environment | injected, tmp_path)
    assert fernet_key == base64.urlsafe_b64encode(hashlib.sha256(b"m" * 64).digest()).decode()
    Fernet(fernet_key.encode())  # a valid key: 32 url-safe base64 bytes
    assert (
        url
        == "postgresql+psycopg2://airflow:p%40ss%2Fw%3Ard%23%3F%25@db.example.internal:5432/airflow"
    )
    again, _ = airflow_reads(environment | injected, tmp_path)
    assert again == fernet_key, "every component derives the same key from the same material"
    other, _ = airflow_reads(
        environment | injected | {settings.FERNET_MATERIAL_ENV: "n" * 64}, tmp_path
    )
    assert other != fernet_key


def test_task_containers_get_neither_command() -> None:
    worker = settings.dag_worker(DEPLOYMENT, "sales_daily")
    assert not any(k.endswith("_CMD") for k in worker.environment)
    assert worker.secrets == {}  # the example's S3 bundle: the task role reads it
    staging = load_project(ROOT, "staging").deployment  # a git bundle: its deploy key only
    git_worker = settings.dag_worker(staging, "sales_daily")
    assert git_worker.secrets == {
        "AIRFLOW_CONN_FOUNDATION_DAGS_GIT": settings.SecretRef("git:dags")
    }
