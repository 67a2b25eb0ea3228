"""`foundation bootstrap`, `deploy`, `diff` and `destroy` against a local CloudFormation endpoint:
moto on loopback over HTTP, deploying the example's real synthesized templates.

The tests run in file order on one deployment (as an operator would): first deploy, no-op
redeploy, a manifest change, a refused broadening, a removed DAG, then destroy.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from foundation.naming import Namespace, worker_shard
from tests.conftest import ROOT, ProjectDir, Run
from tests.moto_server import ACCOUNT, MotoAws

NAME = "acme-airflow"
BUCKET = f"foundation-{ACCOUNT}-us-east-1-{NAME}"


class Deployment:
    def __init__(self, project: ProjectDir, aws: MotoAws) -> None:
        self.project, self.aws = project, aws
        creds = aws.admin
        self.env = {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        }

    def run(self, *args: str) -> Run:
        return self.project.run_with_env(self.env, *args)

    def stacks(self) -> dict[str, dict]:
        pages = self.aws.client("cloudformation").get_paginator("describe_stacks").paginate()
        return {s["StackName"]: s for page in pages for s in page["Stacks"]}

    def change_sets(self, stack: str) -> list[dict]:
        summaries = self.aws.client("cloudformation").list_change_sets(StackName=stack)
        # moto lists every stack's change sets whatever StackName says
        return [c for c in summaries["Summaries"] if c["StackName"] == stack]

    def executed(self, stack: str) -> int:
        return sum(c["ExecutionStatus"] == "EXECUTE_COMPLETE" for c in self.change_sets(stack))

    def names(self) -> list[str]:
        dag_ids = [p.stem for p in (self.project.root / "dag_permissions").glob("*.yaml")]
        return Namespace(NAME).stacks(dag_ids, 32)


@pytest.fixture(scope="module")
def deployment(
    moto_cloudformation: MotoAws, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deploy")
    for folder in ("config", "dag_permissions"):
        shutil.copytree(ROOT / folder, root / folder)
    # the example, in the account moto's credentials belong to (deploy checks that they match)
    for path in (root / "config").glob("*.yaml"):
        path.write_text(path.read_text().replace("111122223333", ACCOUNT))
    with pytest.MonkeyPatch.context() as mp:
        for name, value in moto_cloudformation.environment.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        yield Deployment(ProjectDir(root), moto_cloudformation)


def test_deploy_before_bootstrap_says_what_to_do(deployment: Deployment) -> None:
    result = deployment.run("deploy", "--yes")
    assert result.exit_code == 1
    assert "not bootstrapped" in result.stderr and "foundation bootstrap" in result.stderr
    assert "Traceback" not in result.stderr


def test_bootstrap_creates_the_bucket_and_service_role(deployment: Deployment) -> None:
    refused = deployment.run("bootstrap")  # a new role broadens IAM: --yes or a prompt
    assert refused.exit_code == 1 and "need approval" in refused.stderr
    result = deployment.run("bootstrap", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    stack = deployment.stacks()[f"{NAME}-bootstrap"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["ArtifactsBucketName"] == BUCKET
    s3 = deployment.aws.client("s3")
    encryption = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    # moto does not apply a bucket's public access block or policy: read what was deployed
    template = deployment.aws.client("cloudformation").get_template(StackName=f"{NAME}-bootstrap")[
        "TemplateBody"
    ]
    resources = template["Resources"].values()
    (bucket,) = [r for r in resources if r["Type"] == "AWS::S3::Bucket"]
    assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    (policy,) = [r for r in resources if r["Type"] == "AWS::S3::BucketPolicy"]
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    role = outputs["CloudFormationRoleArn"].rsplit("/", 1)[1]
    iam = deployment.aws.client("iam")
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    again = deployment.run("bootstrap")
    assert again.exit_code == 0 and "no changes" in again.stdout
    data = json.loads(deployment.run("bootstrap", "--json").stdout)
    assert data == {
        "ok": True,
        "outcomes": [
            {
                "stack": f"{NAME}-bootstrap",
                "result": "no changes",
                "ok": True,
                "status": "CREATE_COMPLETE",
                "outputs": {},
                "failures": [],
                "message": "",
            }
        ],
    }


def test_first_deploy_creates_every_stack_and_migrates(deployment: Deployment) -> None:
    result = deployment.run("deploy", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    live = deployment.stacks()
    for name in deployment.names():
        assert live[name]["StackStatus"] == "CREATE_COMPLETE", name
        assert deployment.executed(name) == 1
    assert "airflow db migrate ran (first deploy of the cluster)" in result.stdout
    core = {o["OutputKey"]: o["OutputValue"] for o in live[f"{NAME}-core"]["Outputs"]}
    assert core["AirflowUrl"].startswith("https://")
    assert "AirflowUrl" in result.stdout
    # the templates went by URL from the artifacts bucket, and the lock was released
    keys = [
        o["Key"] for o in deployment.aws.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    ]
    assert any(k.startswith(f"templates/{NAME}-core/") for k in keys)
    assert "locks/deploy.json" not in keys
    # every role the stacks made carries the configured boundary
    iam = deployment.aws.client("iam")
    roles = [
        iam.get_role(RoleName=r["RoleName"])["Role"]
        for r in iam.list_roles()["Roles"]
        if r["RoleName"].startswith(f"{NAME}-") and r["Path"] != "/foundation/"
    ]
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/acme-airflow-boundary"
    unbounded = [
        r["RoleName"]
        for r in roles
        if r.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") != boundary
    ]
    assert len(roles) == 15 and unbounded == []


def test_redeploy_with_nothing_changed_executes_nothing(deployment: Deployment) -> None:
    before = {name: len(deployment.change_sets(name)) for name in deployment.names()}
    result = deployment.run("deploy", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "No changes: no change set was executed." in result.stdout
    after = {name: len(deployment.change_sets(name)) for name in deployment.names()}
    assert after == before  # the empty change sets were deleted, not left behind
    diff = deployment.run("diff")
    assert diff.exit_code == 0
    plans = json.loads(deployment.run("diff", "--json").stdout)
    assert plans["changes"] is False
    assert {p["stack"]: p["action"] for p in plans["stacks"]} == dict.fromkeys(
        deployment.names(), "none"
    )
    again = deployment.run("deploy", "--json")
    assert again.exit_code == 0
    data = json.loads(again.stdout)
    assert set(data) == {"ok", "changed", "migration", "outcomes"}
    assert (data["ok"], data["changed"], data["migration"]) == (True, False, None)
    assert {o["result"] for o in data["outcomes"]} == {"no changes"}
    assert set(data["outcomes"][0]) == {
        "stack",
        "result",
        "ok",
        "status",
        "outputs",
        "failures",
        "message",
    }
    one = deployment.run("deploy", "--stack", f"{NAME}-network")
    assert one.exit_code == 0 and f"no changes: {NAME}-network\n" in one.stdout
    unknown = deployment.run("deploy", "--stack", f"{NAME}-nope")
    assert unknown.exit_code == 2 and f"no such stack: {NAME}-nope" in unknown.stderr


def test_a_second_deploy_is_refused_while_one_holds_the_lock(deployment: Deployment) -> None:
    s3 = deployment.aws.client("s3")
    held = {"holder": f"arn:aws:iam::{ACCOUNT}:user/alice (alice@ci)", "since": "2026-11-24"}
    s3.put_object(Bucket=BUCKET, Key="locks/deploy.json", Body=json.dumps(held).encode())
    try:
        result = deployment.run("deploy", "--yes")
        still = json.loads(s3.get_object(Bucket=BUCKET, Key="locks/deploy.json")["Body"].read())
    finally:
        s3.delete_object(Bucket=BUCKET, Key="locks/deploy.json")
    assert still == held  # a refused deploy leaves the other deploy's lock alone
    assert result.exit_code == 1
    assert "another deploy holds the lock since 2026-11-24" in result.stderr
    assert "user/alice" in result.stderr


def test_credentials_of_another_account_are_refused(deployment: Deployment) -> None:
    config = deployment.project.root / "config" / "foundation.yaml"
    original = config.read_text()
    config.write_text(original.replace(f'account: "{ACCOUNT}"', 'account: "210987654321"'))
    try:
        result = deployment.run("diff")
    finally:
        config.write_text(original)
    assert result.exit_code == 1
    assert f"the credentials are for account {ACCOUNT}, but the config's account is " in (
        result.stderr
    )


def _grant(project: ProjectDir, dag_id: str, grant: str) -> str:
    path = project.root / "dag_permissions" / f"{dag_id}.yaml"
    path.write_text(path.read_text() + grant)
    return Namespace(NAME).worker_stack(worker_shard(dag_id, 32))


def test_broadening_is_refused_without_yes_and_changes_nothing(deployment: Deployment) -> None:
    stack = _grant(
        deployment.project,
        "housekeeping",
        "permissions:\n  s3: [{bucket: acme-raw, prefix: housekeeping/, access: read}]\n",
    )
    before = deployment.executed(stack)
    diff = deployment.run("diff", "--format", "markdown")
    assert diff.exit_code == 3  # changes pending: never 1, which is an error
    assert f"### `{stack}`: update" in diff.stdout
    assert "arn:aws:s3:::acme-raw/housekeeping/*" in diff.stdout
    plans = deployment.run("diff", "--json")
    assert plans.exit_code == 3
    data = json.loads(plans.stdout)
    assert data["changes"] is True
    (changed,) = [p for p in data["stacks"] if p["action"] != "none"]
    assert set(changed) == {"stack", "action", "resources", "iam", "blocked", "approval_reasons"}
    assert (changed["stack"], changed["action"]) == (stack, "update")
    added = [c["statement"] for c in changed["iam"] if c["added"]]
    objects = "arn:aws:s3:::acme-raw/housekeeping/*"
    assert [s["Action"] for s in added if objects in s["Resource"]] == ["s3:GetObject"], added
    assert set(changed["iam"][0]) == {"added", "resource", "statement"}
    assert set(changed["resources"][0]) == {
        "action",
        "logical_id",
        "resource_type",
        "replacement",
    }
    result = deployment.run("deploy")  # CliRunner's stdin is not a terminal
    assert result.exit_code == 1
    assert "need approval" in result.stderr and "nothing was changed" in result.stderr
    assert deployment.executed(stack) == before
    assert all(c["ExecutionStatus"] != "AVAILABLE" for c in deployment.change_sets(stack))


def test_a_manifest_change_updates_only_that_dags_stack(deployment: Deployment) -> None:
    stack = Namespace(NAME).worker_stack(worker_shard("housekeeping", 32))  # changed just above
    before = {name: deployment.executed(name) for name in deployment.names()}
    result = deployment.run("deploy", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    after = {name: deployment.executed(name) for name in deployment.names()}
    assert {n for n in after if after[n] != before[n]} == {stack}
    assert deployment.stacks()[stack]["StackStatus"] == "UPDATE_COMPLETE"
    assert "IAM statement changes" in result.stdout
    assert "airflow db migrate" not in result.stdout


def test_removing_a_dags_manifest_removes_its_stack(deployment: Deployment) -> None:
    dags = deployment.project.root / "dag_permissions"
    shard = {p.stem: worker_shard(p.stem, 32) for p in dags.glob("*.yaml")}
    alone = next(d for d, s in shard.items() if list(shard.values()).count(s) == 1)
    stack = Namespace(NAME).worker_stack(shard[alone])
    (dags / f"{alone}.yaml").unlink()
    result = deployment.run("deploy")  # removing narrows: no approval needed
    assert result.exit_code == 0, result.stdout + result.stderr
    assert stack not in deployment.stacks()
    assert "deleted" in result.stdout


def test_destroy_deletes_in_reverse_order_and_lists_what_it_keeps(deployment: Deployment) -> None:
    config = deployment.project.root / "config" / "foundation.yaml"
    config.write_text(
        config.read_text().replace("deletion_protection: true", "deletion_protection: false")
    )
    assert deployment.run("deploy", "--yes").exit_code == 0
    refused = deployment.run("destroy")
    assert refused.exit_code == 1 and "nothing was deleted" in refused.stderr
    result = deployment.run("destroy", "--yes", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    live = deployment.stacks()
    assert not [n for n in live if n.startswith(f"{NAME}-") and n != f"{NAME}-bootstrap"]
    data = json.loads(result.stdout)  # the plans and the live table went to stderr
    assert set(data) == {"ok", "outcomes", "kept"} and data["ok"] is True
    assert {o["result"] for o in data["outcomes"]} == {"deleted"}
    kept = {(k["policy"], k["resource_type"]) for k in data["kept"]}
    assert ("Snapshot", "AWS::RDS::DBInstance") in kept
    assert ("RetainExceptOnCreate", "AWS::S3::Bucket") in kept
    assert set(data["kept"][0]) == {"stack", "logical_id", "resource_type", "policy"}
    status = json.loads(deployment.run("status", "--json").stdout)
    assert status["stacks"][0]["status"] == "NOT_DEPLOYED"


@pytest.fixture(autouse=True)
def _no_leftover_lock(deployment: Deployment) -> Iterator[None]:
    yield
    s3 = deployment.aws.client("s3")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if BUCKET in buckets:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        assert "locks/deploy.json" not in keys
