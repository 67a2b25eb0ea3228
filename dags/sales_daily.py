"""Daily Salesforce extract into the lake: its manifest grants acme-raw/salesforce/ (read and
write), the sales_watermarks table and its own secrets under acme-airflow/dags/sales_daily/."""

from __future__ import annotations

import json
from datetime import datetime

import boto3
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import DAG, Param, Variable, task

with DAG(
    "sales_daily",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"prefix": Param("salesforce/", type="string")},
    tags=["sales"],
):

    @task
    def extract(params: dict, dag_run=None) -> str:
        day = dag_run.run_after.date().isoformat()  # manual runs have no logical date
        # acme-airflow/dags/sales_daily/variables/batch_size: only this DAG's role can read it
        batch = int(Variable.get("batch_size", default="100"))
        accounts = [{"id": i, "name": f"account-{i}"} for i in range(batch)]
        key = f"{params['prefix']}{day}/accounts.json"
        S3Hook(aws_conn_id=None).load_string(
            json.dumps(accounts), key=key, bucket_name="acme-raw", replace=True
        )
        return key

    @task
    def record_watermark(key: str) -> None:
        boto3.client("dynamodb").put_item(
            TableName="sales_watermarks", Item={"source": {"S": "salesforce"}, "key": {"S": key}}
        )

    record_watermark(extract())
