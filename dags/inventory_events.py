"""Consume inventory events and trigger the nightly rollup."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.lambda_function import (
    LambdaInvokeFunctionOperator,
)
from airflow.providers.amazon.aws.sensors.sqs import SqsSensor
from airflow.sdk import DAG

QUEUE = "https://sqs.us-east-1.amazonaws.com/111122223333/inventory-events"

with DAG("inventory_events", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False):
    events = SqsSensor(
        task_id="events",
        sqs_queue=QUEUE,
        max_messages=10,
        delete_message_on_reception=True,
        aws_conn_id=None,
        deferrable=False,  # AWS work polls from the DAG's own worker
    )
    enrich = LambdaInvokeFunctionOperator(
        task_id="enrich",
        function_name="enrich-inventory",
        payload="{{ ti.xcom_pull(task_ids='events') | tojson }}",
        aws_conn_id=None,
    )
    events >> enrich
