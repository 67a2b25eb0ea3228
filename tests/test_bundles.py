"""Several DAG bundles, one per team (tests/fixtures/bundles): `dags:` as a list, each manifest
naming its bundle, one dag-processor per bundle holding its own bundle and credentials alone,
each DAG's role and tasks its own bundle alone, and the executors' gate refusing a dag_id from
any other bundle than its manifest's.

IAM is checked with the toolkit's own evaluation (foundation/iam/evaluate.py): moto evaluates no
conditions and no resource policies. Real Airflow refusing a dag_id declared in another bundle is
in test_airflow_enforcement.py (ECS) and test_airflow_celery.py (Celery).
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from foundation.airflow import runtime_files
from foundation.checks.rules.fa105_execution_role_reads import ExecutionRoleReads
from foundation.iam.effective import roles_of
from foundation.iam.evaluate import Request, allows
from foundation.local.cluster import bundle_files
from foundation.project import load_project
from tests.conftest import ProjectDir, mutated

FIXTURE = Path(__file__).parent / "fixtures" / "bundles"
TEAMS = load_project(FIXTURE).deployment
NAME = TEAMS.name
BUCKET = f"arn:aws:s3:::{TEAMS.dags_bucket}"
DAGS = {"team_a_report": "team_a", "team_b_load": "team_b"}
GIT_SECRET = "teams/team-b-deploy-key"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": TEAMS.region, "AWS::AccountId": TEAMS.account}


def s3_bundle(name: str) -> dict:
    return {
        "name": name,
        "classpath": "airflow.providers.amazon.aws.bundles.s3.S3DagBundle",
        "kwargs": {"bucket_name": TEAMS.dags_bucket, "prefix": f"{name}/", "aws_conn_id": None},
    }


GIT_BUNDLE = {
    "name": "team_b",
    "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
    "kwargs": {
        "repo_url": "https://github.com/acme/team-b-dags.git",
        "tracking_ref": "main",
        "git_conn_id": "foundation_team_b_git",
    },
}


def synthesized(root: Path, *args: str) -> dict[str, dict]:
    result = ProjectDir(root).run("synth", *args)
    assert result.exit_code == 0, result.stderr
    return {
        p.name.removesuffix(".template.json"): json.loads(p.read_text())
        for p in (root / "cdk.out").glob("*.template.json")
    }


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("teams") / "project"
    shutil.copytree(FIXTURE, root)
    return synthesized(root)


@pytest.fixture(scope="module")
def git_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """`--env git`: team_b's bundle is its own git repository, with its own deploy key."""
    root = tmp_path_factory.mktemp("teams_git") / "project"
    shutil.copytree(FIXTURE, root)
    return synthesized(root, "--env", "git")


@pytest.fixture
def teams(tmp_path: Path) -> ProjectDir:
    shutil.copytree(FIXTURE, tmp_path / "teams")
    return ProjectDir(tmp_path / "teams")


def task_definitions(templates: dict) -> dict[str, dict]:
    """Family -> its one container definition, in every stack."""
    return {
        r["Properties"]["Family"]: r["Properties"]["ContainerDefinitions"][0]
        for t in templates.values()
        for r in t["Resources"].values()
        if r["Type"] == "AWS::ECS::TaskDefinition"
    }


def env_of(container: dict) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def secrets_of(container: dict) -> list[str]:
    """Its secrets' variables, without the runtime archive's parts."""
    names = [s["Name"] for s in container.get("Secrets", [])]
    return sorted(n for n in names if not n.startswith(f"{runtime_files.RUNTIME_ENV}_"))


def roles(templates: dict) -> dict[str, Any]:
    return {r.name: r for r in roles_of(templates, {}, PSEUDO)}


def dag_role(dag_id: str) -> str:
    return TEAMS.dag_names(dag_id).role


# -- config and manifests ------------------------------------------------------------------------


def refused(project: ProjectDir, *args: str) -> str:
    """validate's stderr, with the project's path cut: exit 2, nothing on stdout, no traceback."""
    result = project.run("validate", *args)
    assert result.exit_code == 2, result.stdout
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result.stderr.replace(f"{project.root}/", "")


def test_the_fixture_and_the_single_mapping_example_are_valid() -> None:
    assert [(b.name, b.bundle) for b in TEAMS.bundles] == [("team_a", "s3"), ("team_b", "s3")]
    staging = load_project(FIXTURE, "git").deployment
    assert [(b.name, b.bundle, b.credentials_secret) for b in staging.bundles] == [
        ("team_a", "s3", None),
        ("team_b", "git", GIT_SECRET),
    ]


def test_a_manifest_must_name_its_bundle_when_there_are_several(teams: ProjectDir) -> None:
    path = teams.root / "dag_permissions" / "team_a_report.yaml"
    path.write_text(path.read_text().replace("bundle: team_a\n", ""))
    assert refused(teams) == (
        "error: dag_permissions/team_a_report.yaml:1: bundle: required with several bundles: "
        "name the one this DAG comes from ('team_a', 'team_b')\n"
        "1 problem(s); nothing was written.\n"
    )


def test_a_manifest_naming_an_unconfigured_bundle_is_refused(teams: ProjectDir) -> None:
    path = teams.root / "dag_permissions" / "team_b_load.yaml"
    path.write_text(path.read_text().replace("bundle: team_b", "bundle: team_c"))
    assert refused(teams) == (
        "error: dag_permissions/team_b_load.yaml:3: bundle: bundle 'team_c' is not configured; "
        "configured: 'team_a', 'team_b'\n"
        "1 problem(s); nothing was written.\n"
    )


BAD_CONFIGS = {
    "twice": (
        "  - name: team_a\n    bundle: s3\n  - name: team_a\n    bundle: s3\n",
        "config/foundation.yaml:16: dags: bundle names must differ: 'team_a' is used twice",
    ),
    "name": (
        "  - name: Team-A\n    bundle: s3\n  - name: team_b\n    bundle: s3\n",
        "config/foundation.yaml:17: dags[0].name: 'Team-A' is not a bundle name: a lowercase "
        "letter, then up to 29 lowercase letters, digits or '_' (it names the bundle's S3 "
        "prefix, dag-processor and git connection)",
    ),
    "unknown_key": (
        "  - name: team_a\n    bundel: s3\n  - name: team_b\n    bundle: s3\n",
        "config/foundation.yaml:18: dags[0].bundel: unknown field 'bundel'; did you mean 'bundle'?",
    ),
    "git_without_url": (
        "  - name: team_a\n    bundle: s3\n  - name: team_b\n    bundle: git\n",
        "config/foundation.yaml:19: dags[1]: bundle: git needs url",
    ),
    "empty": (
        "  []\n",
        "config/foundation.yaml:16: dags: List should have at least 1 item after validation, not 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_bundle_list_is_refused_naming_its_line(teams: ProjectDir, case: str) -> None:
    bundles, message = BAD_CONFIGS[case]
    config = teams.root / "config" / "foundation.yaml"
    text = config.read_text()
    config.write_text(text[: text.index("dags:\n") + len("dags:\n")] + bundles)
    [line, summary] = refused(teams).splitlines()
    assert line == f"error: {message}"
    assert summary == "1 problem(s); nothing was written."


def test_a_bundle_whose_dag_processor_role_would_not_fit_iam_is_refused(teams: ProjectDir) -> None:
    config = teams.root / "config" / "foundation.yaml"
    text = config.read_text().replace("name: acme-teams", "name: acme-teams-prod")
    text = text.replace("iam: {", "iam: {role_name_prefix: OrgPrefix_, ")
    config.write_text(text.replace("name: team_b", "name: team_b_with_a_longer_name"))
    for manifest in (teams.root / "dag_permissions").iterdir():
        manifest.write_text(manifest.read_text().replace("team_b\n", "team_b_with_a_longer_name\n"))
    role = "OrgPrefix_acme-teams-prod--dag-processor-team_b_with_a_longer_name"
    assert refused(teams) == (
        f"error: config/foundation.yaml:19: dags[1].name: its dag-processor's role {role!r} "
        f"would be {len(role)} characters, over IAM's 64: shorten the bundle's name\n"
        "1 problem(s); nothing was written.\n"
    )


def test_unmanaged_dags_under_one_baseline_identity_need_one_bundle(teams: ProjectDir) -> None:
    config = teams.root / "config" / "foundation.yaml"
    config.write_text(config.read_text() + "airflow: {unmanaged_dags: baseline}\n")
    assert refused(teams) == (
        "error: config/foundation.yaml:23: airflow.unmanaged_dags: baseline runs every DAG "
        "without a manifest under one identity, which would read every bundle; with several "
        "bundles give each DAG a manifest (refuse)\n"
        "1 problem(s); nothing was written.\n"
    )


def test_dev_syncs_one_sub_folder_per_bundle_and_refuses_a_git_one(teams: ProjectDir) -> None:
    deployment = load_project(teams.root).deployment
    folder = teams.root / "dags"
    (folder / "team_a" / ".hidden").mkdir()
    (folder / "team_a" / ".hidden" / "x.py").write_text("")
    (folder / "elsewhere.py").write_text("")  # in no bundle's folder: synced nowhere
    assert bundle_files(deployment, folder) == {
        "team_a/team_a_report.py": folder / "team_a" / "team_a_report.py",
        "team_b/team_b_load.py": folder / "team_b" / "team_b_load.py",
    }
    result = teams.run("dev", "--env", "git")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: dev syncs a local folder into S3 DAG bundles, and bundle 'team_b' is git: make "
        "it `bundle: s3` (in an --env overlay, say config/dev.yaml)\n"
    )


# -- one dag-processor per bundle ----------------------------------------------------------------


def test_one_dag_processor_per_bundle_parses_its_own_alone(templates: dict) -> None:
    definitions = task_definitions(templates)
    processors = sorted(f for f in definitions if "dag-processor" in f)
    assert processors == [f"{NAME}--dag-processor-team_a", f"{NAME}--dag-processor-team_b"]
    for bundle in ("team_a", "team_b"):
        container = definitions[f"{NAME}--dag-processor-{bundle}"]
        sealed = (
            "exec python /opt/airflow/config/foundation_sealed.py --wait-for-migrations 3600 "
            "dag-processor"
        )
        assert container["Command"][-1].endswith(f"{sealed} --bundle-name {bundle}")
        environment = env_of(container)
        config = json.loads(environment["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
        assert config == [s3_bundle(bundle)]
        assert secrets_of(container) == ["FOUNDATION_DB_SECRET"]
    services = sorted(
        r["Properties"]["ServiceName"]
        for r in templates[f"{NAME}-core"]["Resources"].values()
        if r["Type"] == "AWS::ECS::Service"
    )
    assert services == [
        f"{NAME}-api-server",
        f"{NAME}-dag-processor-team_a",
        f"{NAME}-dag-processor-team_b",
        f"{NAME}-scheduler",
        f"{NAME}-triggerer",
    ]
    # the scheduler and api-server know every bundle (no credentials in it)
    scheduler = env_of(definitions[f"{NAME}--scheduler"])
    every = [s3_bundle("team_a"), s3_bundle("team_b")]
    assert json.loads(scheduler["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]) == every


def test_each_dag_processor_role_reads_its_own_bundle_alone(templates: dict) -> None:
    """A DAG file at parse time holds its dag-processor's role: it reads its own bundle's files,
    and no other bundle's (it can list their names: S3DagBundle's HeadBucket needs ListBucket
    on the bucket, which no s3:prefix condition can narrow)."""
    every = roles(templates)
    for bundle, other in (("team_a", "team_b"), ("team_b", "team_a")):
        granted = every[f"{NAME}--dag-processor-{bundle}"].statements()
        assert [(s["Action"], s["Resource"]) for s in granted] == [
            (["s3:GetObject"], [f"{BUCKET}/{bundle}/*"]),
            (["s3:ListBucket"], [BUCKET]),
        ]
        assert allows(granted, Request("s3:GetObject", f"{BUCKET}/{bundle}/dag.py"))
        assert not allows(granted, Request("s3:GetObject", f"{BUCKET}/{other}/dag.py"))
        assert not allows(granted, Request("s3:GetObject", f"{BUCKET}/{other}x/dag.py"))
        assert allows(granted, Request("s3:ListBucket", BUCKET, {"s3:prefix": f"{other}/"}))


def test_each_dags_tasks_load_their_own_bundle_alone(templates: dict) -> None:
    definitions = task_definitions(templates)
    granted = roles(templates)
    for dag_id, bundle in DAGS.items():
        other = "team_b" if bundle == "team_a" else "team_a"
        container = definitions[TEAMS.dag_names(dag_id).task_family]
        config = json.loads(env_of(container)["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
        assert config == [s3_bundle(bundle)]
        assert secrets_of(container) == []
        statements = granted[dag_role(dag_id)].statements()
        assert allows(statements, Request("s3:GetObject", f"{BUCKET}/{bundle}/{dag_id}.py"))
        assert not allows(statements, Request("s3:GetObject", f"{BUCKET}/{other}/x.py"))


def test_each_identity_names_its_manifests_bundle(templates: dict) -> None:
    for dag_id, bundle in DAGS.items():
        [value] = [
            r["Properties"]["Value"]
            for t in templates.values()
            for r in t["Resources"].values()
            if r["Type"] == "AWS::SSM::Parameter"
            and r["Properties"]["Name"] == TEAMS.namespace.identity_parameter(dag_id)
        ]
        parts = value["Fn::Join"][1]
        assert parts[-1] == f'"],"bundle":"{bundle}"}}'


def test_a_git_bundles_key_reaches_its_own_dag_processor_and_tasks_alone(
    git_templates: dict,
) -> None:
    definitions = task_definitions(git_templates)
    git = "AIRFLOW_CONN_FOUNDATION_TEAM_B_GIT"
    processor = definitions[f"{NAME}--dag-processor-team_b"]
    assert secrets_of(processor) == [git, "FOUNDATION_DB_SECRET"]
    config = env_of(processor)["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]
    assert json.loads(config) == [GIT_BUNDLE]
    assert secrets_of(definitions[f"{NAME}--dag-processor-team_a"]) == ["FOUNDATION_DB_SECRET"]
    assert secrets_of(definitions[TEAMS.dag_names("team_b_load").task_family]) == [git]
    assert secrets_of(definitions[TEAMS.dag_names("team_a_report").task_family]) == []
    # a git bundle's processor reads nothing on AWS; no role but the execution roles (which
    # no process in a container holds) reads the key
    granted = roles(git_templates)
    assert granted[f"{NAME}--dag-processor-team_b"].statements() == []
    secret = f"arn:aws:secretsmanager:us-east-1:111122223333:secret:{GIT_SECRET}-AbCdEf"
    readers = {
        name
        for name, r in granted.items()
        if allows(r.statements(), Request("secretsmanager:GetSecretValue", secret))
    }
    assert readers == {f"{NAME}--task-execution", f"{NAME}--worker-execution"}


# -- the executors' gate -------------------------------------------------------------------------


class Ssm:
    """The SSM client's get_parameter, over a dict of parameters."""

    class exceptions:
        class ParameterNotFound(Exception):
            pass

    def __init__(self, parameters: dict[str, str]):
        self.parameters = parameters

    def get_parameter(self, Name: str) -> dict:
        if Name not in self.parameters:
            raise self.exceptions.ParameterNotFound(Name)
        return {"Parameter": {"Value": self.parameters[Name]}}


@pytest.fixture
def identity_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """foundation_identity.py as the scheduler unpacks it, with the scheduler's environment."""
    runtime_files.write(tmp_path / "config", "ecs")
    monkeypatch.syspath_prepend(str(tmp_path / "config"))
    monkeypatch.setenv("FOUNDATION_IDENTITY_PATH", TEAMS.namespace.identity_path)
    monkeypatch.setenv("FOUNDATION_PROJECT", NAME)
    for module in ("foundation_identity", "foundation_names"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    yield importlib.import_module("foundation_identity")
    for module in ("foundation_identity", "foundation_names"):
        sys.modules.pop(module, None)


def task(dag_id: str, bundle: str) -> dict:
    return {"type": "ExecuteTask", "ti": {"dag_id": dag_id}, "bundle_info": {"name": bundle}}


def callback(dag_id: str, bundle: str) -> dict:
    return {
        "type": "ExecuteCallback",
        "callback": {"data": {"dag_id": dag_id}},
        "bundle_info": {"name": bundle},
    }


def test_the_gate_refuses_a_dag_id_from_any_other_bundle(identity_module) -> None:
    ns = TEAMS.namespace
    gate = identity_module.Gate(
        Ssm(
            {
                ns.identity_parameter("team_a_report"): json.dumps({"bundle": "team_a"}),
                ns.identity_parameter("legacy"): json.dumps({"task_definition": "x"}),
                ns.identity_parameter("blank"): json.dumps({"bundle": None}),
            }
        )
    )
    assert gate.resolve(task("team_a_report", "team_a")).identity == {"bundle": "team_a"}
    for workload in (task("team_a_report", "team_b"), callback("team_a_report", "team_b")):
        with pytest.raises(identity_module.IdentityRefused) as refusal:
            gate.resolve(workload)
        assert str(refusal.value) == (
            "DAG 'team_a_report' may only come from bundle 'team_a', not 'team_b'"
        )
    for dag_id in ("legacy", "blank"):  # an identity that names no bundle allows none
        with pytest.raises(identity_module.IdentityRefused) as refusal:
            gate.resolve(task(dag_id, "team_a"))
        assert str(refusal.value) == f"the identity published for DAG {dag_id!r} names no bundle"


def test_fa105_names_every_reader_of_the_deploy_key_when_no_execution_role_may_read_it(
    git_templates: dict,
) -> None:
    """team_b's deploy key is injected by partial ARN (CDK's from_secret_name_v2: no random
    ending) into the components that fetch its bundle and into team_b's worker, which reads it
    through the shared workers' execution role that core grants. Without core's statements on
    it, FA105 names each of them: those tasks would not start."""
    key = "secret:teams/team-b-deploy-key"

    def without_key(name: str, resources: dict) -> None:
        for resource in resources.values():
            if resource["Type"] == "AWS::IAM::Policy":
                document = resource["Properties"]["PolicyDocument"]
                document["Statement"] = [s for s in document["Statement"] if key not in str(s)]

    assert list(ExecutionRoleReads().check(mutated(git_templates, lambda *_: None))) == []
    findings = ExecutionRoleReads().check(mutated(git_templates, without_key))
    arn = f"arn:aws:secretsmanager:us-east-1:111122223333:{key}-AbC123"
    assert sorted((f.stack, f.resource, f.message) for f in findings) == sorted(
        (
            stack,
            task,
            f"execution role acme-teams--{role}-execution may not secretsmanager:GetSecretValue "
            f"{arn} (container {container}'s secret AIRFLOW_CONN_FOUNDATION_TEAM_B_GIT)",
        )
        for stack, task, role, container in (
            ("acme-teams-core", "ApiServerTaskDefinitionAF9B1663", "task", "api-server"),
            ("acme-teams-core", "SchedulerTaskDefinitionC738E8BD", "task", "scheduler"),
            (
                "acme-teams-core",
                "DagProcessorTeambTaskDefinitionDE63625D",
                "task",
                "dag-processor-team_b",
            ),
            ("acme-teams-core", "DbMigrateTaskDefinitionB0CC6A64", "task", "db-migrate"),
            (
                "acme-teams-workers-16",
                "DagteambloadTaskDefinition4120418C",
                "worker",
                "airflow-worker",
            ),
        )
    )
