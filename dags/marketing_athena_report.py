"""Weekly campaign performance report, queried with Athena."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.athena import AthenaOperator
from airflow.sdk import DAG

with DAG(
    "marketing_athena_report", schedule="@weekly", start_date=datetime(2026, 1, 1), catchup=False
):
    AthenaOperator(
        task_id="campaign_report",
        query=(
            "SELECT campaign, sum(clicks) FROM campaigns "
            "WHERE ds = '{{ dag_run.run_after | ds }}' GROUP BY 1"
        ),
        database="marketing_curated",
        workgroup="marketing",
        output_location="s3://acme-athena-results/marketing/{{ dag_run.run_after | ds }}/",
        aws_conn_id=None,
    )
