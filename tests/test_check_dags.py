"""`foundation check-dags` on fixture DAG folders (tests/fixtures/check_dags): every task's
status, exact, from real Airflow's parse; the suggestions; the exit codes as a CI gate; and the
shipped example, which must pass.

The evaluation is the toolkit's own (foundation/iam/evaluate.py `allows_every`, over the DAG's
generated statements), conditions included; tests/test_check_dags_moto.py runs the operators
on moto under the policies `--suggest` drafts.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from foundation import check_dags
from foundation.check_dags import report as check_report
from foundation.check_dags.operators import table
from foundation.check_dags.parse import parse
from foundation.cli import app
from foundation.project import load_project
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "check_dags"


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["check-dags", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def fixture_report() -> check_dags.Report:
    return check_dags.run(FIXTURE, None, None)


def rows(report: check_dags.Report, dag_id: str) -> list[tuple]:
    return [
        (f.status, f.task_id, f.line, f.detail, f.covered_by)
        for f in report.findings
        if f.dag_id == dag_id
    ]


def by(source: str) -> list[str]:
    return [f"dag_permissions/{source}"]


def test_a_project_whose_manifest_grants_every_call_is_all_covered(fixture_report) -> None:
    a = "all_covered.yaml"
    assert rows(fixture_report, "all_covered") == [
        ("covered", "write_day", 21, "s3 read_write (bucket=acme-raw, prefix=sales/*/day.json)",
         by(f"{a}:5 permissions.s3[0]")),
        ("covered", "wait_key", 28, "s3 read (bucket=acme-raw, prefix=sales/2026/*)",
         by(f"{a}:5 permissions.s3[0]")),
        ("covered", "list", 31, "s3 read (bucket=acme-raw, prefix=sales/2026/)",
         by(f"{a}:5 permissions.s3[0]")),
        ("covered", "curate", 32, "glue_job start (job=sales-curate)",
         by(f"{a}:7 permissions.glue.jobs[0]")),
        ("covered", "crawl", 33, "glue_crawler start (crawler=sales-crawler)",
         by(f"{a}:7 permissions.glue.crawlers[0]")),
        ("covered", "report", 34, "athena_workgroup query (workgroup=reports)",
         by(f"{a}:9 permissions.athena.workgroups[0]")),
        ("covered", "report", 34, "athena_results write (bucket=acme-athena, prefix=sales/*/)",
         by(f"{a}:11 permissions.athena.results")),
        ("covered", "report", 34, "glue_catalog read (database=sales)",
         by(f"{a}:10 permissions.athena.databases[0]")),
        ("covered", "step", 41, "emr_cluster steps (cluster=j-1ABCDEF2GHIJK)",
         by(f"{a}:12 permissions.emr.clusters[0]")),
        ("covered", "load", 42,
         "redshift_data db_user (cluster=analytics, database=sales, db_user=etl)",
         by(f"{a}:14 permissions.redshift_data[0]")),
        ("covered", "load", 42, "redshift_statements own ()",
         by(f"{a}:13 permissions.redshift_data")),
        ("covered", "enrich", 49, "lambda invoke (function=enrich)",
         by(f"{a}:16 permissions.lambda[0]")),
        ("covered", "alert", 52, "sns publish (topic=sales-alerts)",
         by(f"{a}:18 permissions.sns[0]")),
        ("covered", "publish", 55, "sqs send (queue=sales-events)",
         by(f"{a}:20 permissions.sqs[0]")),
        ("covered", "inbox", 60, "sqs consume (queue=sales-inbox)",
         by(f"{a}:21 permissions.sqs[1]")),
        ("covered", "watermark", 61, "dynamodb read (table=sales_watermarks)",
         by(f"{a}:23 permissions.dynamodb[0]")),
        ("covered", "export", 69, "dynamodb read (table=sales_watermarks)",
         by(f"{a}:23 permissions.dynamodb[0]")),
        ("covered", "export", 69, "s3 write (bucket=acme-curated, prefix=exports/watermarks/)",
         by(f"{a}:6 permissions.s3[1]")),
    ]  # fmt: skip


ACCOUNT = "us-east-1:111122223333"


def test_each_kind_of_missing_grant_names_the_call_refused(fixture_report) -> None:
    """Near misses do not count: read for write, write for read_write (replace=False reads the
    key first), a sibling prefix, another job, consume for send, and an escape-hatch statement
    holding one action of an entry."""
    assert rows(fixture_report, "missing_grants") == [
        ("missing", "write_sales", 19,
         "s3 write (bucket=acme-raw, prefix=sales/day.json): s3:PutObject on "
         "arn:aws:s3:::acme-raw/sales/day.json* is not granted (and 2 more)", []),
        ("missing", "write_orders", 26,
         "s3 read_write (bucket=acme-raw, prefix=orders/day.json): s3:GetObject on "
         "arn:aws:s3:::acme-raw/orders/day.json* is not granted (and 1 more)", []),
        ("missing", "curate", 33,
         f"glue_job start (job=sales-curate): glue:GetJob on arn:aws:glue:{ACCOUNT}:"
         "job/sales-curate is not granted (and 4 more)", []),
        ("missing", "crawl", 34,
         f"glue_crawler start (crawler=sales-crawler): glue:GetCrawler on arn:aws:glue:{ACCOUNT}:"
         "crawler/sales-crawler is not granted (and 2 more)", []),
        ("missing", "report", 35,
         "athena_workgroup query (workgroup=reports): athena:StartQueryExecution on "
         f"arn:aws:athena:{ACCOUNT}:workgroup/reports is not granted (and 3 more)", []),
        ("missing", "report", 35,
         "athena_results write (bucket=acme-athena, prefix=sales/): s3:GetBucketLocation on "
         "arn:aws:s3:::acme-athena is not granted (and 5 more)", []),
        ("missing", "report", 35,
         f"glue_catalog read (database=sales): glue:GetDatabase on arn:aws:glue:{ACCOUNT}:catalog "
         "is not granted (and 16 more)", []),
        ("missing", "step", 42,
         "emr_cluster steps (cluster=j-1ABCDEF2GHIJK): elasticmapreduce:DescribeCluster on "
         f"arn:aws:elasticmapreduce:{ACCOUNT}:cluster/j-1ABCDEF2GHIJK is not granted (and 3 more)",
         []),
        ("missing", "load", 43,
         "redshift_data db_user (cluster=analytics, database=sales, db_user=etl): "
         f"redshift-data:ExecuteStatement on arn:aws:redshift:{ACCOUNT}:cluster:analytics is not "
         "granted (and 3 more)", []),
        ("missing", "load", 43,
         "redshift_statements own (): redshift-data:DescribeStatement on * is not granted "
         "(and 2 more)", []),
        ("missing", "enrich", 50,
         f"lambda invoke (function=enrich): lambda:InvokeFunction on arn:aws:lambda:{ACCOUNT}:"
         "function:enrich is not granted (and 1 more)", []),
        ("missing", "alert", 51,
         f"sns publish (topic=sales-alerts): sns:Publish on arn:aws:sns:{ACCOUNT}:sales-alerts is "
         "not granted", []),
        ("missing", "publish", 54,
         f"sqs send (queue=sales-events): sqs:SendMessage on arn:aws:sqs:{ACCOUNT}:sales-events "
         "is not granted", []),
        ("covered", "inbox", 55, "sqs consume (queue=sales-events)",
         by("missing_grants.yaml:10 permissions.sqs[0]")),
        ("missing", "watermark", 56,
         "dynamodb read (table=sales_watermarks): dynamodb:DescribeTable on "
         f"arn:aws:dynamodb:{ACCOUNT}:table/sales_watermarks is not granted (and 10 more)", []),
    ]  # fmt: skip


def test_a_missing_grant_carries_the_statements_its_entry_renders(fixture_report) -> None:
    [alert] = [f for f in fixture_report.findings if f.task_id == "alert" and f.status == "missing"]
    assert alert.statements == [
        {
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": [f"arn:aws:sns:{ACCOUNT}:sales-alerts"],
        }
    ]
    assert alert.entry == {"sns": [{"topic": "sales-alerts"}]}


def test_what_a_run_decides_is_unknown_unless_every_value_is_granted(fixture_report) -> None:
    """A template under a granted prefix is covered: whatever it renders stays under it. One
    that may render outside is unknown; one no value of which is granted is missing."""
    decides = "the run decides part of it, and not all it may be is granted"
    assert rows(fixture_report, "templated_args") == [
        ("covered", "under_a_prefix", 15, "s3 write (bucket=acme-raw, prefix=sales/*/a.json)",
         by("templated_args.yaml:5 permissions.s3[0]")),
        ("unknown", "templated_bucket", 18,
         "the bucket (s3_bucket='{{ var.value.bucket }}') is decided at run time", []),
        ("unknown", "templated_key", 21, f"s3 write (bucket=acme-raw, prefix=*): {decides}", []),
        ("missing", "other_folder", 24,
         "s3 write (bucket=acme-raw, prefix=orders/*/a.json): s3:PutObject on "
         "arn:aws:s3:::acme-raw/orders/*/a.json* is not granted (and 2 more)", []),
        ("missing", "read_too", 27,
         "s3 read_write (bucket=acme-raw, prefix=sales/*/a.json): s3:GetObject on "
         "arn:aws:s3:::acme-raw/sales/*/a.json* is not granted (and 1 more)", []),
        ("unknown", "templated_job", 30, f"glue_job start (job=sales-*): {decides}", []),
        ("unknown", "from_xcom", 31,
         "job_flow_id is the XCom of templated_job: only a run knows it", []),
        ("unknown", "mapped", 32, "mapped over s3_key: each mapped task's values come at run time",
         []),
        ("unknown", "other_connection", 35,
         "aws_conn_id='partner': a connection may hold keys or a role_arn of its own (another "
         "identity, maybe another account); only a run knows", []),
        ("unknown", "other_region", 36,
         "region_name='eu-west-1': manifests grant in us-east-1 only", []),
        ("unknown", "other_account", 37,
         "sqs_queue: account 444455556666, not the deployment's 111122223333: manifests grant in "
         "its own account only (the other account's resource policy decides)", []),
        ("refused", "deferred", 42,
         "deferrable=True: the api-server refuses the amazon provider's triggers (with "
         "deferrable=False it polls from the DAG's own worker, with its grants)", []),
        ("covered", "deferred", 42, "glue_job start (job=sales-curate)",
         by("templated_args.yaml:6 permissions.glue.jobs[0]")),
        ("ignored", "configured", 43,
         "executor_config is dropped: every task runs as its DAG's identity", []),
        ("ignored", "configured", 43,
         "queue='big' chooses nothing: a DAG's tasks go to its own identity", []),
        ("covered", "configured", 43, "glue_job start (job=sales-curate)",
         by("templated_args.yaml:6 permissions.glue.jobs[0]")),
        ("unknown", "updates_job", 46,
         "update_config=True: updates the job (glue:UpdateJob runs code as the job's role: an "
         "escalation)", []),
        ("no-aws", "shell", 47, "not an amazon provider operator", []),
        ("unknown", "calls_boto3", 57,
         "Python code using boto3: check-dags does not read what it calls; grant it by hand "
         "(foundation dev reports each refused call)", []),
        ("no-aws", "plain", 58, "Python code with no AWS SDK or amazon provider name", []),
    ]  # fmt: skip


def test_a_dag_without_a_manifest_and_a_manifest_without_a_dag(fixture_report) -> None:
    assert rows(fixture_report, "no_manifest_yet")[0] == (
        "refused",
        "",
        0,
        "no manifest (dag_permissions/no_manifest_yet.yaml): the executor refuses its tasks",
        [],
    )
    assert {r[0] for r in rows(fixture_report, "no_manifest_yet")[1:]} == {"missing"}
    unused = "no DAG file in dags declares 'no_dag_file': its grants serve nothing"
    assert rows(fixture_report, "no_dag_file") == [("unused", "", 1, unused, [])]


def suggestions(report: check_dags.Report) -> dict[str, str]:
    return {
        check_report.suggestion_title(s, report.project.root): check_report.suggestion_text(s)
        for s in report.suggestions
    }


def test_suggest_adds_the_missing_entries_and_drafts_a_missing_manifest(fixture_report) -> None:
    """Reads and writes of one folder join in read_write; a templated key suggests the folder
    its literal part names, and nothing when it names none (templated_key)."""
    assert suggestions(fixture_report) == {
        "add to dag_permissions/missing_grants.yaml:": textwrap.dedent(
            """\
            permissions:
              s3:
                - {bucket: acme-raw, prefix: sales/, access: write}
                - {bucket: acme-raw, prefix: orders/, access: read_write}
              glue:
                jobs: [sales-curate]
                crawlers: [sales-crawler]
              athena:
                workgroups: [reports]
                results: {bucket: acme-athena, prefix: sales/}
                databases: [sales]
              emr:
                clusters: [j-1ABCDEF2GHIJK]
              redshift_data:
                - {cluster: analytics, database: sales, db_user: etl}
              lambda:
                - {function: enrich}
              sns:
                - {topic: sales-alerts}
              sqs:
                - {queue: sales-events, access: send}
              dynamodb:
                - {table: sales_watermarks, access: read}
            """
        ),
        "create dag_permissions/no_manifest_yet.yaml:": textwrap.dedent(
            """\
            dag_id: no_manifest_yet
            owner: ""  # required: the person or team that owns this DAG
            permissions:
              s3:
                - {bucket: acme-raw, prefix: landing/, access: read_write}
              athena:
                workgroups: [reports]
                results: {bucket: acme-athena, prefix: landing/}
                databases: [landing]
            """
        ),
        "add to dag_permissions/templated_args.yaml:": textwrap.dedent(
            """\
            permissions:
              s3:
                - {bucket: acme-raw, prefix: orders/, access: write}
                - {bucket: acme-raw, prefix: sales/, access: read_write}
            """
        ),
    }


def copy_of_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    return root


def test_the_draft_is_refused_until_its_owner_is_filled_then_covers_the_dag(
    fixture_report, tmp_path: Path
) -> None:
    root = copy_of_fixture(tmp_path)
    draft = suggestions(fixture_report)["create dag_permissions/no_manifest_yet.yaml:"]
    manifest = root / "dag_permissions" / "no_manifest_yet.yaml"
    manifest.write_text(draft)
    result = CliRunner().invoke(app, ["validate", "--project", str(root)])
    assert result.exit_code == 2
    assert "no_manifest_yet.yaml:2: owner: String should have at least 1 character" in (
        result.stderr
    )
    manifest.write_text(draft.replace('owner: ""', "owner: data-eng@example.com"))
    report = check_dags.run(root, None, None)
    assert [(f.status, f.task_id) for f in report.findings if f.dag_id == "no_manifest_yet"] == [
        ("covered", "wait"),
        ("covered", "write"),
        ("covered", "report"),
        ("covered", "report"),
        ("covered", "report"),
    ]


def test_the_json_form_names_file_line_task_status_and_what_is_needed(fixture_report) -> None:
    data = check_report.as_data(fixture_report)
    [alert] = [
        f for f in data["findings"] if f["task_id"] == "alert" and f["dag_id"] == "missing_grants"
    ]
    assert alert == {
        "status": "missing",
        "dag_id": "missing_grants",
        "task_id": "alert",
        "operator": "SnsPublishOperator",
        "file": "dags/missing_grants.py",
        "line": 51,
        "detail": f"sns publish (topic=sales-alerts): sns:Publish on arn:aws:sns:{ACCOUNT}:"
        "sales-alerts is not granted",
        "entry": "sns:\n  - {topic: sales-alerts}",
        "statements": [
            {
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": [f"arn:aws:sns:{ACCOUNT}:sales-alerts"],
            }
        ],
        "covered_by": [],
    }
    assert data["counts"] == {
        "missing": 21,
        "refused": 2,
        "unknown": 10,
        "ignored": 2,
        "unused": 1,
        "covered": 22,
        "no-aws": 2,
    }
    json.dumps(data)


def test_the_markdown_form_lists_what_is_not_covered(fixture_report) -> None:
    text = check_report.markdown(fixture_report, suggest=True)
    lines = text.splitlines()
    assert lines[0] == (
        "### foundation check-dags: 60 finding(s): 21 missing, 2 refused, 10 unknown, 2 ignored, "
        "1 unused, 22 covered, 2 no-aws"
    )
    assert lines[2:4] == ["| status | DAG | task | where | detail |", "|---|---|---|---|---|"]
    assert lines[4] == (
        "| **missing** | `missing_grants` | `write_sales` | `dags/missing_grants.py:19` | s3 write "
        "(bucket=acme-raw, prefix=sales/day.json): s3:PutObject on "
        "arn:aws:s3:::acme-raw/sales/day.json* is not granted (and 2 more) |"
    )
    assert "| unknown | `templated_args` | `templated_job` | `dags/templated_args.py:30` |" in text
    assert not any("| covered |" in line for line in lines)
    assert text.endswith(
        "add to dag_permissions/templated_args.yaml:\n```yaml\npermissions:\n  s3:\n"
        "    - {bucket: acme-raw, prefix: orders/, access: write}\n"
        "    - {bucket: acme-raw, prefix: sales/, access: read_write}\n```\n"
    )


def test_the_readme_lists_every_supported_operator() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Supported operators**")[1].split("\n\n")[1]
    listed = {line.split("`")[1] for line in section.splitlines()[2:]}
    prefix = "airflow.providers.amazon.aws."
    assert {f"{prefix}{row}" for row in listed} == set(table())


# --- the shipped example, and the exit codes ---


def test_the_shipped_example_passes() -> None:
    """Its DAG files (dags/) against its manifests: every operator's call granted; sales_daily's
    Python tasks (S3Hook, boto3) are unknown, which only --strict fails on."""
    code, out, err = cli("--project", str(ROOT), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["counts"] == {"unknown": 2, "covered": 12, "no-aws": 1}
    assert [(f["dag_id"], f["task_id"]) for f in data["findings"] if f["status"] == "unknown"] == [
        ("sales_daily", "extract"),
        ("sales_daily", "record_watermark"),
    ]
    assert data["suggestions"] == []
    code, _, _ = cli("--project", str(ROOT), "--strict")
    assert code == 4


def test_exit_codes(tmp_path: Path) -> None:
    """3 when a grant is missing, 0 once --suggest's lines are added; 2 for bad usage."""
    root = copy_of_fixture(tmp_path)
    for name in ("all_covered", "templated_args", "no_manifest_yet", "no_dag_file"):
        (root / "dag_permissions" / f"{name}.yaml").unlink(missing_ok=True)
        (root / "dags" / f"{name}.py").unlink(missing_ok=True)
    code, out, _ = cli("--project", str(root), "--suggest")
    assert code == 4
    assert "add to dag_permissions/missing_grants.yaml:" in out
    report = check_dags.run(root, None, None)
    [suggestion] = report.suggestions
    manifest = root / "dag_permissions" / "missing_grants.yaml"
    data = yaml.safe_load(manifest.read_text())
    for kind, value in yaml.safe_load(check_report.suggestion_text(suggestion))[
        "permissions"
    ].items():
        held = data["permissions"].get(kind)
        if isinstance(value, list):
            data["permissions"][kind] = (held or []) + value
        else:
            data["permissions"][kind] = (held or {}) | value
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, err = cli("--project", str(root))
    assert (code, out, err) == (0, "15 finding(s): 15 covered\n", "")
    assert load_project(root).findings == []

    assert cli("--project", str(root), "--format", "html")[0] == 2
    assert cli("--project", str(root), "--json", "--format", "markdown")[0] == 2
    code, _, err = cli(str(root / "nowhere"), "--project", str(root))
    assert code == 2
    assert err.startswith("error: ") and "nowhere: not a folder of DAG files" in err


def test_a_dag_file_that_does_not_import_is_invalid_input(tmp_path: Path) -> None:
    root = copy_of_fixture(tmp_path)
    (root / "dags" / "broken.py").write_text(
        "from airflow.sdk import DAG\n\nwith DAG('broken'):\n    raise ValueError('no')\n"
    )
    code, out, err = cli("--project", str(root))
    assert (code, out) == (2, "")
    assert f"{root / 'dags' / 'broken.py'}:4: does not import: ValueError: no" in err
    assert "Traceback" not in err


def test_a_dag_file_that_ends_the_parse_is_named(tmp_path: Path) -> None:
    root = copy_of_fixture(tmp_path)
    leaver = root / "dags" / "zz_leaves.py"
    leaver.write_text(
        "import os\n\nfrom airflow.sdk import DAG  # a DAG file, to Airflow\n\nos._exit(0)\n"
    )
    code, out, err = cli("--project", str(root))
    assert (code, out) == (2, "")
    assert err == (
        f"error: Airflow could not parse {root / 'dags'} (while reading {leaver}): exit code 0\n"
    )


def test_dag_files_parse_without_any_aws_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DAG file looks for credentials at parse time, as code calling AWS would, with keys in
    this process's environment and a profile in its HOME: boto3 finds none. It says so
    through the task id it declares."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAFROMFILE\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_PROFILE", "default")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "probe.py").write_text(
        textwrap.dedent(
            """\
            import boto3
            from airflow.sdk import DAG
            from airflow.providers.standard.operators.empty import EmptyOperator

            creds = boto3.Session().get_credentials()
            found = "none" if creds is None else creds.access_key
            with DAG("probe", schedule=None):
                EmptyOperator(task_id=f"credentials_{found}")
            """
        )
    )
    attributes = {path: op.attributes() for path, op in table().items()}
    [dag] = parse(dags, "us-east-1", attributes).dags
    assert [t.task_id for t in dag.tasks] == ["credentials_none"]
