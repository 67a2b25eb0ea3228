"""`foundation publish-dags`: DAG files into their S3 bundle on the suite's moto server (real
HTTP), refused whole when a file declares a dag_id without a manifest, of another bundle, or
none that can be read. The refusal guards against mistakes; the executor is what refuses such a
dag_id at run time (README, Several DAG bundles)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli import app
from foundation.dag_files import dag_ids, declared
from foundation.errors import InvalidInput
from tests.conftest import ROOT, Run
from tests.moto_server import MotoAws

INIT_BUCKET = "my-airflow-dags-111122223333-us-east-1"
TEAMS_BUCKET = "acme-teams-dags-111122223333-us-east-1"
EXAMPLE_DAG = (ROOT / "foundation/templates/project/dags/example_dag.py").read_text()


def source(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('from airflow.sdk import DAG\nwith DAG("a") as d:\n    pass\n', ["a"]),
        ("from airflow.sdk import DAG\nd = DAG(dag_id='b', schedule=None)\n", ["b"]),
        ("import airflow.sdk as sdk\nd = sdk.DAG('c')\n", ["c"]),
        ("from airflow.sdk import dag\n@dag\ndef d_fn():\n    pass\nd_fn()\n", ["d_fn"]),
        ("from airflow.sdk import dag\n@dag()\ndef e_fn():\n    pass\n", ["e_fn"]),
        ("from airflow.sdk import dag\n@dag('f')\ndef x():\n    pass\n", ["f"]),
        (
            "from airflow.sdk import dag\n@dag(dag_id='g', schedule=None)\ndef x():\n    pass\n",
            ["g"],
        ),
        (
            "from airflow.sdk import asset\n@asset(schedule=None)\ndef h_asset():\n    pass\n",
            ["h_asset"],
        ),
        (
            "from airflow.sdk import asset\n@asset(name='i', schedule=None)\ndef x():\n    pass\n",
            ["i"],
        ),
        (
            "from airflow.sdk import asset\n"
            "@asset(dag_id='j', name='k', schedule=None)\ndef x():\n    pass\n",
            ["j"],
        ),
        (
            "from airflow.sdk import asset\n"
            "@asset.multi(outlets=[], schedule=None)\ndef l_multi():\n    pass\n",
            ["l_multi"],
        ),
        ("from airflow.sdk import DAG\nDAG('m')\nDAG('n')\n", ["m", "n"]),
    ],
)
def test_dag_ids_are_read_from_the_syntax(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "f.py"
    path.write_text(text)
    assert dag_ids(path) == expected


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "from airflow.sdk import DAG\nname = 'x'\nDAG(name)\n",
            3,
            "DAG(...): the dag_id is not a string literal",
        ),
        (
            "from airflow.sdk import DAG\nDAG(dag_id=f'x_{1}')\n",
            2,
            "DAG(...): the dag_id is not a string literal",
        ),
        (
            "from airflow.sdk import DAG\nDAG(**{'dag_id': 'x'})\n",
            2,
            "DAG(...): the dag_id is not a string literal",
        ),
        (
            "from airflow.sdk import dag\nID = 'y'\n@dag(dag_id=ID)\ndef x():\n    pass\n",
            3,
            "@dag: the dag_id is not a string literal",
        ),
        ("def broken(:\n", 1, "not valid Python: invalid syntax"),
        (
            "import json\n",
            0,
            "declares no DAG with a literal dag_id (DAG('id'), DAG(dag_id='id'), @dag, @asset); a "
            "bundle holds DAG files only: put shared code in the image (airflow.image)",
        ),
    ],
)
def test_a_file_whose_dag_ids_cannot_be_read_is_refused(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "f.py"
    path.write_text(text)
    with pytest.raises(InvalidInput) as refused:
        declared(path)
    [problem] = refused.value.problems
    assert (problem.file, problem.line, problem.message) == (path, line, message)


def test_every_example_dag_declares_its_manifests_dag_id() -> None:
    for path in sorted((ROOT / "dags").glob("*.py")):
        assert dag_ids(path) == [path.stem]


@pytest.fixture
def init_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    assert CliRunner().invoke(app, ["init", str(root)]).exit_code == 0
    return root


@pytest.fixture
def teams_project(tmp_path: Path) -> Path:
    root = tmp_path / "teams"
    for folder in ("config", "dag_permissions"):
        shutil.copytree(ROOT / "tests" / "fixtures" / "bundles" / folder, root / folder)
    return root


@pytest.fixture
def aws(moto_env: MotoAws) -> MotoAws:
    s3 = moto_env.client("s3")
    for bucket in (INIT_BUCKET, TEAMS_BUCKET):
        s3.create_bucket(Bucket=bucket)
        for key in keys(moto_env, bucket):
            s3.delete_object(Bucket=bucket, Key=key)
    return moto_env


def keys(aws: MotoAws, bucket: str) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def publish(aws: MotoAws, project: Path, *args: str, creds=None) -> Run:
    creds = creds or aws.admin
    env = {
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
    }
    result = CliRunner(env=env).invoke(app, ["publish-dags", *args, "--project", str(project)])
    return Run(result.exit_code, result.stdout, result.stderr, result.exception)


def dag_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "dags-out"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_a_folder_is_published_under_the_bundles_prefix(
    aws: MotoAws, init_project: Path, tmp_path: Path
) -> None:
    folder = dag_folder(
        tmp_path,
        {
            "example_dag.py": EXAMPLE_DAG,
            "sql/report.sql": "select 1;\n",
            "__pycache__/example_dag.cpython-311.pyc": "x",
            ".airflowignore": "sql/\n",
        },
    )
    result = publish(aws, init_project, str(folder))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"Uploaded 2 file(s) to s3://{INIT_BUCKET}/dags/:\n"
        "  dags/example_dag.py\n"
        "  dags/sql/report.sql\n"
        "Tasks load these files when they start; the bundle's dag-processor parses them at its "
        "next refresh ([dag_processor] refresh_interval, 300 s by default).\n"
    )
    assert keys(aws, INIT_BUCKET) == ["dags/example_dag.py", "dags/sql/report.sql"]
    body = aws.client("s3").get_object(Bucket=INIT_BUCKET, Key="dags/example_dag.py")["Body"]
    assert body.read().decode() == EXAMPLE_DAG


def test_a_dag_without_a_manifest_is_refused_and_nothing_is_uploaded(
    aws: MotoAws, init_project: Path, tmp_path: Path
) -> None:
    rogue = source(
        """
        from airflow.sdk import DAG

        with DAG(dag_id="rogue", schedule=None):
            pass
        """
    )
    folder = dag_folder(tmp_path, {"example_dag.py": EXAMPLE_DAG, "team/rogue.py": rogue})
    result = publish(aws, init_project, str(folder))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {folder}/team/rogue.py:3: dag_id 'rogue' has no manifest "
        "(dag_permissions/rogue.yaml)\n"
        "1 problem(s); nothing was uploaded.\n"
    )
    assert keys(aws, INIT_BUCKET) == []


def test_a_file_that_declares_no_readable_dag_is_refused(
    aws: MotoAws, init_project: Path, tmp_path: Path
) -> None:
    folder = dag_folder(
        tmp_path,
        {
            "example_dag.py": EXAMPLE_DAG,
            "helpers.py": "def shared():\n    return 1\n",
            "made.py": "from airflow.sdk import DAG\nfor i in range(2):\n    DAG(f'made_{i}')\n",
            "bundle.zip": "PK",
        },
    )
    result = publish(aws, init_project, str(folder))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {folder}/bundle.zip: a zip of DAGs cannot be read before it runs: unzip it\n"
        f"error: {folder}/helpers.py: declares no DAG with a literal dag_id (DAG('id'), "
        "DAG(dag_id='id'), @dag, @asset); a bundle holds DAG files only: put shared code in "
        "the image (airflow.image)\n"
        f"error: {folder}/made.py:3: DAG(...): the dag_id is not a string literal\n"
        "3 problem(s); nothing was uploaded.\n"
    )
    assert keys(aws, INIT_BUCKET) == []


def team_folders(tmp_path: Path) -> Path:
    folder = tmp_path / "team-dags"
    shutil.copytree(ROOT / "tests" / "fixtures" / "bundles" / "dags", folder)
    return folder


@pytest.mark.parametrize(
    ("make", "message"),
    [(False, "not a folder of DAG files"), (True, "holds no file to publish")],
)
def test_a_missing_or_empty_folder_is_refused(
    aws: MotoAws, init_project: Path, tmp_path: Path, make: bool, message: str
) -> None:
    folder = tmp_path / "nothing"
    if make:
        folder.mkdir()
    result = publish(aws, init_project, str(folder))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {folder}: {message}\n1 problem(s); nothing was uploaded.\n"


def test_a_dag_of_another_bundle_is_refused(
    aws: MotoAws, teams_project: Path, tmp_path: Path
) -> None:
    folder = team_folders(tmp_path)
    result = publish(aws, teams_project, str(folder / "team_a"), "--bundle", "team_a")
    assert (result.exit_code, result.stderr) == (0, "")
    assert keys(aws, TEAMS_BUCKET) == ["team_a/team_a_report.py"]
    wrong = publish(aws, teams_project, str(folder / "team_b"), "--bundle", "team_a")
    assert wrong.exit_code == 2
    assert wrong.stderr == (
        f"error: {folder}/team_b/team_b_load.py:9: dag_id 'team_b_load' belongs to bundle "
        "'team_b' (its manifest), not 'team_a'\n"
        "1 problem(s); nothing was uploaded.\n"
    )
    assert keys(aws, TEAMS_BUCKET) == ["team_a/team_a_report.py"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--bundle: this deployment has several bundles: team_a, team_b"),
        (
            ["--bundle", "team_c"],
            "--bundle 'team_c' is not configured; the bundles: team_a, team_b",
        ),
        (
            ["--bundle", "team_b", "--env", "git"],
            "bundle 'team_b' is a git repository (https://github.com/acme/team-b-dags.git, branch "
            "main): push the DAG files there; the cluster pulls them",
        ),
    ],
)
def test_the_bundle_must_be_one_s3_bundle(
    aws: MotoAws, teams_project: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    folder = team_folders(tmp_path) / "team_b"
    result = publish(aws, teams_project, str(folder), *args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: {message}\n")
    assert keys(aws, TEAMS_BUCKET) == []


def test_files_the_folder_lacks_are_kept_unless_delete(
    aws: MotoAws, init_project: Path, tmp_path: Path
) -> None:
    aws.client("s3").put_object(Bucket=INIT_BUCKET, Key="dags/old_dag.py", Body=b"old")
    folder = dag_folder(tmp_path, {"example_dag.py": EXAMPLE_DAG})
    kept = publish(aws, init_project, str(folder))
    assert kept.exit_code == 0
    assert kept.stdout.splitlines()[2:4] == [
        f"1 file(s) of the bundle not in {folder}, kept (--delete removes them):",
        "  dags/old_dag.py",
    ]
    assert keys(aws, INIT_BUCKET) == ["dags/example_dag.py", "dags/old_dag.py"]
    deleted = publish(aws, init_project, str(folder), "--delete", "--json")
    assert deleted.exit_code == 0
    assert json.loads(deleted.stdout) == {
        "bundle": "dags",
        "location": f"s3://{INIT_BUCKET}/dags/",
        "uploaded": ["dags/example_dag.py"],
        "stale": ["dags/old_dag.py"],
        "deleted": True,
    }
    assert keys(aws, INIT_BUCKET) == ["dags/example_dag.py"]


def test_publishing_needs_only_the_bundles_prefix(
    aws: MotoAws, teams_project: Path, tmp_path: Path
) -> None:
    """Who may publish where is IAM's to say: a user holding PutObject on team_a/ alone (and
    listing) publishes team_a's files and cannot write team_b's, files the toolkit's check
    passes (moto enforces actions and resources)."""
    prefix_only = aws.user_with(
        "team-a-publisher",
        [
            [
                {
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{TEAMS_BUCKET}/team_a/*",
                },
                {
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{TEAMS_BUCKET}",
                },
            ]
        ],
    )
    folder = team_folders(tmp_path)
    done = publish(
        aws, teams_project, str(folder / "team_a"), "--bundle", "team_a", creds=prefix_only
    )
    assert (done.exit_code, done.stderr) == (0, "")
    refused = publish(
        aws, teams_project, str(folder / "team_b"), "--bundle", "team_b", creds=prefix_only
    )
    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: AWS: An error occurred (AccessDenied) when calling the PutObject operation: "
        "Access Denied\n"
    )
    assert keys(aws, TEAMS_BUCKET) == ["team_a/team_a_report.py"]
