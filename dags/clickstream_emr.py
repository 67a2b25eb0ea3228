"""Spark sessionisation step on the analytics EMR cluster."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk import DAG

CLUSTER = "j-2AXXXXXXGAPLF"

with DAG("clickstream_emr", schedule="@hourly", start_date=datetime(2026, 1, 1), catchup=False):
    add = EmrAddStepsOperator(
        task_id="sessionise",
        job_flow_id=CLUSTER,
        aws_conn_id=None,
        steps=[
            {
                "Name": "sessionise {{ dag_run.run_after | ts }}",
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {
                    "Jar": "command-runner.jar",
                    "Args": [
                        "spark-submit",
                        "s3://acme-artifacts/spark/clickstream/sessionise.py",
                        "s3://acme-curated/clickstream/{{ dag_run.run_after | ds }}/",
                    ],
                },
            }
        ],
    )
    wait = EmrStepSensor(
        task_id="wait",
        job_flow_id=CLUSTER,
        step_id="{{ ti.xcom_pull(task_ids='sessionise')[0] }}",
        aws_conn_id=None,
    )
    add >> wait
