"""The example DAG: its manifest is dag_permissions/example_dag.yaml (same dag_id)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG(dag_id="example_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def hello() -> str:
        return "hello from example_dag's own identity"

    hello()
