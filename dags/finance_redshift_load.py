"""COPY the curated ledger into the finance warehouse, then tell finance it landed."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.redshift_data import RedshiftDataOperator
from airflow.providers.amazon.aws.operators.sns import SnsPublishOperator
from airflow.sdk import DAG

with DAG(
    "finance_redshift_load", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False
):
    load = RedshiftDataOperator(
        task_id="copy_ledger",
        cluster_identifier="analytics",
        database="finance",
        db_user="etl_finance",
        sql=(
            "COPY ledger FROM 's3://acme-curated/ledger/{{ dag_run.run_after | ds }}/' "
            "IAM_ROLE default FORMAT PARQUET"
        ),
        wait_for_completion=True,
        aws_conn_id=None,
    )
    notify = SnsPublishOperator(
        task_id="notify",
        target_arn="arn:aws:sns:us-east-1:111122223333:finance-loads",
        message="ledger for {{ dag_run.run_after | ds }} loaded",
        aws_conn_id=None,
    )
    load >> notify
