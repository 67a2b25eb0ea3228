"""Each operator check-dags supports, run on moto (IAM enforced) under exactly the policy
`check-dags --suggest` drafted for it, and under that policy less each suggested grant.

One DAG per operator (a row of foundation/check_dags/operators.yaml) is written into a project
in moto's account with no manifest. check-dags drafts each DAG's manifest; the draft, with its
owner filled in, is loaded by the real generator, and the task, parsed from its DAG file by
Airflow's DagBag, runs (execute, or a sensor's poke) as an IAM user carrying exactly the DAG's
generated managed policies (as_moto_enforces: tests/test_provider_access.py). Then, for each
grant the draft holds, the policy less that grant's statements: the toolkit's evaluation says
the task's need is no longer covered, and moto refuses the call, where moto can see it.

What moto cannot see, and is checked by the toolkit's evaluation alone: conditions (moto reads
none but S3's), resource ARNs of services other than S3, SQS and Secrets Manager (it checks
their actions), and what AWS does with the caller's credentials on the caller's behalf
(Athena's writes of results and reads of the Glue catalog: ATHENA_ON_BEHALF).
DynamoDBValueSensor swallows a refusal (it logs it and pokes again): refused, it pokes False.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from foundation import check_dags
from foundation.check_dags.coverage import requests
from foundation.check_dags.operators import Need, needs, table
from foundation.check_dags.parse import parse
from foundation.check_dags.report import OWNER_LINE, suggestion_text
from foundation.iam.evaluate import allows_every
from foundation.iam.policy import ArnContext, render
from foundation.project import dag_grants, load_project
from tests.conftest import ProjectDir
from tests.moto_server import ACCOUNT, REGION, Credentials, MotoAws
from tests.test_provider_access import (
    RecordingTaskInstance,
    as_moto_enforces,
    assert_denied,
    make_bucket,
)

BUCKET = "acme-check-lake"
ATHENA_ON_BEHALF = frozenset({"athena_results", "glue_catalog"})


@dataclass(frozen=True)
class Case:
    imports: str
    call: str  # the task's construction, {placeholders} from the resources made
    poke: bool = False  # a sensor: poke, else execute
    pokes: bool | None = None  # what a granted poke returns (None: anything)
    # a granted run's error after its last AWS call, where moto answers what AWS never does
    raises: str | None = None
    swallows: bool = False  # a refused poke is logged and returns False


CASES: dict[str, Case] = {
    "s3_create_object": Case(
        "from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator",
        f'S3CreateObjectOperator(task_id="t", s3_bucket="{BUCKET}", s3_key="out/a.json", '
        'data="{{}}", replace=False, aws_conn_id=None)',
    ),
    "s3_list": Case(
        "from airflow.providers.amazon.aws.operators.s3 import S3ListOperator",
        f'S3ListOperator(task_id="t", bucket="{BUCKET}", prefix="in/", aws_conn_id=None)',
    ),
    "s3_delete_objects": Case(
        "from airflow.providers.amazon.aws.operators.s3 import S3DeleteObjectsOperator",
        f'S3DeleteObjectsOperator(task_id="t", bucket="{BUCKET}", keys=["trash/a.csv"], '
        "aws_conn_id=None)",
    ),
    "s3_delete_prefix": Case(
        "from airflow.providers.amazon.aws.operators.s3 import S3DeleteObjectsOperator",
        f'S3DeleteObjectsOperator(task_id="t", bucket="{BUCKET}", prefix="old/", aws_conn_id=None)',
    ),
    "s3_key_sensor": Case(
        "from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor",
        f'S3KeySensor(task_id="t", bucket_key="s3://{BUCKET}/in/a.csv", aws_conn_id=None)',
        poke=True,
        pokes=True,
    ),
    "s3_key_sensor_wildcard": Case(
        "from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor",
        f'S3KeySensor(task_id="t", bucket_name="{BUCKET}", bucket_key="in/*.csv", '
        "wildcard_match=True, aws_conn_id=None)",
        poke=True,
        pokes=True,
    ),
    "local_to_s3": Case(
        "from airflow.providers.amazon.aws.transfers.local_to_s3 import "
        "LocalFilesystemToS3Operator",
        'LocalFilesystemToS3Operator(task_id="t", filename="{local_file}", dest_key="up/a.txt", '
        f'dest_bucket="{BUCKET}", replace=True, aws_conn_id=None)',
    ),
    "glue_job": Case(
        "from airflow.providers.amazon.aws.operators.glue import GlueJobOperator",
        'GlueJobOperator(task_id="t", job_name="check-curate", job_poll_interval=0, '
        "aws_conn_id=None)",
    ),
    "glue_job_sensor": Case(
        "from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor",
        'GlueJobSensor(task_id="t", job_name="check-curate", run_id="{glue_run}", '
        "aws_conn_id=None)",
        poke=True,
    ),
    "glue_crawler": Case(
        "from airflow.providers.amazon.aws.operators.glue_crawler import GlueCrawlerOperator",
        'GlueCrawlerOperator(task_id="t", config={{"Name": "check-crawler"}}, '
        "wait_for_completion=False, aws_conn_id=None)",
    ),
    "glue_crawler_run": Case(
        "from airflow.providers.amazon.aws.operators.glue_crawler import GlueCrawlerRunOperator",
        'GlueCrawlerRunOperator(task_id="t", crawler_name="check-crawler-2", '
        "wait_for_completion=False, aws_conn_id=None)",
    ),
    "glue_crawler_sensor": Case(
        "from airflow.providers.amazon.aws.sensors.glue_crawler import GlueCrawlerSensor",
        'GlueCrawlerSensor(task_id="t", crawler_name="check-crawler", aws_conn_id=None)',
        poke=True,
        raises="Status: COMPLETED",  # moto's last crawl status; AWS says SUCCEEDED
    ),
    "athena": Case(
        "from airflow.providers.amazon.aws.operators.athena import AthenaOperator",
        'AthenaOperator(task_id="t", query="SELECT 1", database="check_db", '
        f'workgroup="check-wg", output_location="s3://{BUCKET}/athena/", sleep_time=0, '
        "aws_conn_id=None)",
    ),
    "emr_add_steps": Case(
        "from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator",
        'EmrAddStepsOperator(task_id="t", job_flow_id="{emr_cluster}", steps=[{{"Name": "s", '
        '"ActionOnFailure": "CONTINUE", "HadoopJarStep": {{"Jar": "command-runner.jar", '
        '"Args": ["true"]}}}}], aws_conn_id=None)',
    ),
    "emr_step_sensor": Case(
        "from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor",
        'EmrStepSensor(task_id="t", job_flow_id="{emr_cluster}", step_id="{emr_step}", '
        "aws_conn_id=None)",
        poke=True,
    ),
    "emr_job_flow_sensor": Case(
        "from airflow.providers.amazon.aws.sensors.emr import EmrJobFlowSensor",
        'EmrJobFlowSensor(task_id="t", job_flow_id="{emr_cluster}", aws_conn_id=None)',
        poke=True,
    ),
    "redshift_data": Case(
        "from airflow.providers.amazon.aws.operators.redshift_data import RedshiftDataOperator",
        'RedshiftDataOperator(task_id="t", cluster_identifier="analytics", database="sales", '
        'db_user="etl", sql="SELECT 1", wait_for_completion=False, aws_conn_id=None)',
    ),
    "lambda_invoke": Case(
        "from airflow.providers.amazon.aws.operators.lambda_function import "
        "LambdaInvokeFunctionOperator",
        'LambdaInvokeFunctionOperator(task_id="t", function_name="check-enrich", '
        "payload='{{\"a\": 1}}', aws_conn_id=None)",
    ),
    "sns_publish": Case(
        "from airflow.providers.amazon.aws.operators.sns import SnsPublishOperator",
        f'SnsPublishOperator(task_id="t", target_arn="arn:aws:sns:{REGION}:{ACCOUNT}:check-alerts",'
        ' message="m", aws_conn_id=None)',
    ),
    "sqs_publish": Case(
        "from airflow.providers.amazon.aws.operators.sqs import SqsPublishOperator",
        'SqsPublishOperator(task_id="t", sqs_queue="{out_queue}", message_content="m", '
        "aws_conn_id=None)",
    ),
    "sqs_sensor": Case(
        "from airflow.providers.amazon.aws.sensors.sqs import SqsSensor",
        'SqsSensor(task_id="t", sqs_queue="{in_queue}", max_messages=10, wait_time_seconds=0, '
        "aws_conn_id=None)",
        poke=True,
    ),
    "dynamodb_value_sensor": Case(
        "from airflow.providers.amazon.aws.sensors.dynamodb import DynamoDBValueSensor",
        'DynamoDBValueSensor(task_id="t", table_name="check_watermarks", '
        'partition_key_name="source", partition_key_value="crm", attribute_name="day", '
        'attribute_value="2026-01-01", aws_conn_id=None)',
        poke=True,
        pokes=True,
        swallows=True,
    ),
    "dynamodb_to_s3": Case(
        "from airflow.providers.amazon.aws.transfers.dynamodb_to_s3 import DynamoDBToS3Operator",
        'DynamoDBToS3Operator(task_id="t", dynamodb_table_name="check_watermarks", '
        f's3_bucket_name="{BUCKET}", s3_key_prefix="exports/", source_aws_conn_id=None, '
        "dest_aws_conn_id=None)",
    ),
}


def test_every_operator_of_the_table_is_run_here() -> None:
    run = {line.split(" import ")[1].strip() for case in CASES.values() for line in [case.imports]}
    assert run == {path.rsplit(".", 1)[1] for path in table()}


def make_resources(moto: MotoAws, tmp_path: Path) -> dict[str, str]:
    """What the DAGs name, made by moto's admin; the values the DAG files are filled with."""
    objects = {"in/a.csv": "a", "trash/a.csv": "x", "old/a.csv": "x", "old/b.csv": "y"}
    make_bucket(moto, BUCKET, objects)
    glue = moto.client("glue")
    glue.create_job(
        Name="check-curate",
        Role=f"arn:aws:iam::{ACCOUNT}:role/glue-etl",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{BUCKET}/glue/curate.py"},
    )
    run = glue.start_job_run(JobName="check-curate")["JobRunId"]
    for crawler in ("check-crawler", "check-crawler-2"):
        glue.create_crawler(
            Name=crawler, Role="glue-crawler", Targets={"S3Targets": [{"Path": f"s3://{BUCKET}"}]}
        )
    moto.set_transition("glue::crawl", "immediate")
    glue.create_database(DatabaseInput={"Name": "check_db"})
    moto.client("athena").create_work_group(Name="check-wg")
    emr = moto.client("emr")
    cluster = moto.emr_cluster("check")
    step = {"Name": "s", "ActionOnFailure": "CONTINUE", "HadoopJarStep": {"Jar": "x.jar"}}
    [step_id] = emr.add_job_flow_steps(JobFlowId=cluster, Steps=[step])["StepIds"]
    moto.echo_function("check-enrich")
    moto.client("sns").create_topic(Name="check-alerts")
    sqs = moto.client("sqs")
    sqs.create_queue(QueueName="check-out")
    sqs.create_queue(QueueName="check-in")
    ddb = moto.client("dynamodb")
    ddb.create_table(
        TableName="check_watermarks",
        KeySchema=[{"AttributeName": "source", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "source", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(
        TableName="check_watermarks", Item={"source": {"S": "crm"}, "day": {"S": "2026-01-01"}}
    )
    local_file = tmp_path / "upload.txt"
    local_file.write_text("up")
    aws_queue = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}"
    return {
        "glue_run": run,
        "emr_cluster": cluster,
        "emr_step": step_id,
        "local_file": str(local_file),
        "out_queue": f"{aws_queue}/check-out",
        "in_queue": f"{aws_queue}/check-in",
    }


def dag_file(dag_id: str, case: Case, values: dict[str, str]) -> str:
    return textwrap.dedent(
        f"""\
        from datetime import datetime

        from airflow.sdk import DAG
        {case.imports}

        with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1)):
            {case.call.format(**values)}
        """
    )


@dataclass
class Drafted:
    project: ProjectDir
    dags: Path
    tasks: dict[str, Any]  # dag_id -> the task, parsed in this process
    needs: dict[str, list[Need]]  # dag_id -> what check-dags read its task needs
    values: dict[str, str]


@pytest.fixture(scope="module")
def drafted(moto_aws: MotoAws, tmp_path_factory: pytest.TempPathFactory) -> Drafted:
    """The DAGs, check-dags' drafts written as their manifests (owner filled in), and each
    task as Airflow parses it."""
    root = tmp_path_factory.mktemp("check_dags_moto")
    from tests.conftest import ROOT

    (root / "config").mkdir()
    config = (ROOT / "config" / "foundation.yaml").read_text()
    (root / "config" / "foundation.yaml").write_text(config.replace("111122223333", ACCOUNT))
    (root / "dag_permissions").mkdir()
    values = make_resources(moto_aws, root)
    dags = root / "dags"
    dags.mkdir()
    for dag_id, case in CASES.items():
        (dags / f"{dag_id}.py").write_text(dag_file(dag_id, case, values))

    report = check_dags.run(root, None, None)
    assert {(f.dag_id, f.status) for f in report.findings} == {
        *((dag_id, "refused") for dag_id in CASES),  # no manifest yet
        *((dag_id, "missing") for dag_id in CASES),
    }
    assert sorted(s.dag_id for s in report.suggestions) == sorted(CASES)
    for suggestion in report.suggestions:
        assert suggestion.create
        draft = suggestion_text(suggestion).replace(OWNER_LINE, "owner: check@example.com")
        (root / "dag_permissions" / f"{suggestion.dag_id}.yaml").write_text(draft)
    report = check_dags.run(root, None, None)
    assert {f.status for f in report.findings} == {"covered"}

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(dags))
    assert not bag.import_errors
    tasks = {dag_id: bag.dags[dag_id].get_task("t") for dag_id in CASES}
    attributes = {path: op.attributes() for path, op in table().items()}
    ctx = ArnContext("aws", REGION, ACCOUNT)
    read: dict[str, list[Need]] = {}
    for parsed in parse(dags, REGION, attributes).dags:
        [task] = parsed.tasks
        read[parsed.dag_id] = [n for n in needs(task, table()[task.classpath], ctx)]
        assert all(isinstance(n, Need) for n in read[parsed.dag_id])
    return Drafted(ProjectDir(root), dags, tasks, read, values)


def test_the_drafts_are_exact_manifests(drafted: Drafted) -> None:
    """A few drafts, byte for byte (the rest are exercised below)."""
    read = {d: (drafted.project.root / "dag_permissions" / f"{d}.yaml").read_text() for d in CASES}
    assert read["s3_create_object"] == (
        "dag_id: s3_create_object\nowner: check@example.com\npermissions:\n  s3:\n"
        f"    - {{bucket: {BUCKET}, prefix: out/, access: read_write}}\n"
    )
    assert read["athena"] == (
        "dag_id: athena\nowner: check@example.com\npermissions:\n  athena:\n"
        "    workgroups: [check-wg]\n"
        f"    results: {{bucket: {BUCKET}, prefix: athena/}}\n"
        "    databases: [check_db]\n"
    )
    assert read["dynamodb_to_s3"] == (
        "dag_id: dynamodb_to_s3\nowner: check@example.com\npermissions:\n  dynamodb:\n"
        "    - {table: check_watermarks, access: read}\n  s3:\n"
        f"    - {{bucket: {BUCKET}, prefix: exports/, access: write}}\n"
    )
    emr = drafted.values["emr_cluster"]
    assert read["emr_step_sensor"] == (
        "dag_id: emr_step_sensor\nowner: check@example.com\npermissions:\n  emr:\n"
        f"    clusters: [{emr}]\n"
    )
    assert yaml.safe_load(read["sqs_sensor"])["permissions"] == {
        "sqs": [{"queue": "check-in", "access": "consume"}]
    }


def policies_of(drafted: Drafted, dag_id: str) -> list[list[dict[str, Any]]]:
    project = load_project(drafted.project.root)
    dag = next(d for d in project.dags if d.dag_id == dag_id)
    return [[s.document() for s in policy] for policy in dag.policy.policies]


def manifest_grants(drafted: Drafted, dag_id: str) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The draft's grants, each with the statements it renders; the baseline's are kept
    whatever is taken away."""
    project = load_project(drafted.project.root)
    dag = next(d for d in project.dags if d.dag_id == dag_id)
    ctx = ArnContext.of(project.deployment)
    return [(g, [s.document() for s in render(g, ctx)]) for g in dag_grants(project, dag)]


class TaskInstance(RecordingTaskInstance):
    """What the operators read of their task instance when they run."""

    stats_tags: dict[str, str] = {}  # noqa: RUF012
    try_number = 1


def run_task(drafted: Drafted, dag_id: str) -> Any:
    """Run the task with the keys in the environment: its hooks (cached on the operator)
    made again."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

    task = drafted.tasks[dag_id]
    for name, value in list(vars(task).items()):
        if isinstance(value, AwsGenericHook):
            delattr(task, name)
    ti = TaskInstance()
    context = {"ti": ti, "task_instance": ti, "task": task}
    return task.poke(context) if CASES[dag_id].poke else task.execute(context)


def assert_refused(call: Callable[[], Any]) -> None:
    """moto's IAM check refused the call: a 403 (assert_denied); or an upload, which boto3's
    transfer manager reports as its own error; or a batch delete, which S3 answers with an
    AccessDenied per key (S3Hook raises naming the keys)."""
    from boto3.exceptions import S3UploadFailedError

    with pytest.raises(Exception) as caught:
        call()
    error = caught.value
    if isinstance(error, S3UploadFailedError):
        assert "(AccessDenied) when calling the PutObject operation" in str(error)
    elif not str(error).startswith("Errors when deleting: "):

        def again() -> None:
            raise error

        assert_denied(again)


def as_user(moto: MotoAws, monkeypatch: pytest.MonkeyPatch, name: str, policies: list) -> None:
    creds: Credentials = moto.user_with(name, [as_moto_enforces(p) for p in policies])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_access_key)


@pytest.mark.parametrize("dag_id", sorted(CASES))
def test_the_operator_runs_under_its_draft_and_is_refused_without_each_grant(
    dag_id: str,
    drafted: Drafted,
    moto_env: MotoAws,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[dag_id]
    policies = policies_of(drafted, dag_id)
    as_user(moto_env, monkeypatch, dag_id, policies)
    if case.raises:
        with pytest.raises(Exception, match=f"^{case.raises}$"):
            run_task(drafted, dag_id)
    else:
        result = run_task(drafted, dag_id)
        if case.pokes is not None:
            assert result is case.pokes

    grants = manifest_grants(drafted, dag_id)
    generated = {json.dumps(s, sort_keys=True) for p in policies for s in _unsid(p)}
    rendered = {json.dumps(s, sort_keys=True) for _, docs in grants for s in _unsid(docs)}
    assert _requests(generated) == _requests(rendered)  # the grants are the policy

    wanted = drafted.needs[dag_id]
    ctx = ArnContext("aws", REGION, ACCOUNT)
    drafted_grants = [(g, docs) for g, docs in grants if g.source.startswith("dag_permissions/")]
    assert drafted_grants
    for taken, _ in drafted_grants:
        rest = [docs for g, docs in grants if g is not taken]
        statements = [s for docs in rest for s in docs]
        # the toolkit's evaluation: some need of the task is no longer covered
        assert not all(
            allows_every(statements, request) for need in wanted for request in requests(need, ctx)
        ), taken
        if taken.kind in ATHENA_ON_BEHALF:
            continue  # AWS makes these calls with the caller's keys; moto does not
        as_user(moto_env, monkeypatch, f"{dag_id}-less", [as_sid(statements)])
        if case.swallows:
            assert run_task(drafted, dag_id) is False
        else:
            assert_refused(lambda d=dag_id: run_task(drafted, d))


def as_sid(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**s, "Sid": f"S{i}"} for i, s in enumerate(statements)]


def _unsid(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "Sid"} for s in statements]


def _requests(statements: set[str]) -> set[tuple[str, str, str]]:
    """(action, resource, condition) of each statement: merging changes none of them."""
    out = set()
    for text in statements:
        s = json.loads(text)
        condition = json.dumps(s.get("Condition"), sort_keys=True)
        out |= {(a, r, condition) for a in s["Action"] for r in s["Resource"]}
    return out
