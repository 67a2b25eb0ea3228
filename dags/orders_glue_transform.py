"""Glue transform of raw orders into the curated zone, then a crawl of the curated table."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.glue_crawler import GlueCrawlerOperator
from airflow.sdk import DAG

with DAG(
    "orders_glue_transform", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False
):
    curate = GlueJobOperator(
        task_id="curate",
        job_name="orders-curate",
        script_args={"--ds": "{{ dag_run.run_after | ds }}"},
        wait_for_completion=True,
        aws_conn_id=None,
    )
    crawl = GlueCrawlerOperator(
        task_id="crawl", config={"Name": "orders-curated-crawler"}, aws_conn_id=None
    )
    curate >> crawl
