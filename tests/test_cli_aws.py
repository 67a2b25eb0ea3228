"""Errors that tell the next step, against the local AWS endpoint (moto on loopback): missing,
refused or unknown credentials, and a bootstrap stack without the outputs `foundation bootstrap`
gives it. A deployment of its own name, so nothing here meets tests/test_deploy.py's stacks."""

from __future__ import annotations

import json

import pytest

from foundation.exit_codes import ExitCode
from foundation.output import CREDENTIALS_HINT
from tests.conftest import ProjectDir
from tests.moto_server import ACCOUNT, MotoAws

NAME = "scripted-airflow"
AWS_VERBS = ["diff", "deploy", "destroy", "status", "bootstrap"]
NO_CREDENTIALS = f"AWS: no usable credentials (Unable to locate credentials); {CREDENTIALS_HINT}"


@pytest.fixture
def scripted(project: ProjectDir) -> ProjectDir:
    """The example, named apart and in the account moto's credentials belong to."""
    for path in (project.root / "config").glob("*.yaml"):
        text = path.read_text().replace("111122223333", ACCOUNT)
        path.write_text(text.replace("name: acme-airflow\n", f"name: {NAME}\n"))
    return project


def _admin(aws: MotoAws) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": aws.admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": aws.admin.secret_access_key,
    }


@pytest.mark.parametrize("verb", AWS_VERBS)
def test_missing_credentials_name_profile_aws_profile_and_sso_login(
    moto_env: MotoAws, scripted: ProjectDir, verb: str
) -> None:
    result = scripted.run(verb)
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr == f"error: {NO_CREDENTIALS}\n"
    as_json = scripted.run(verb, "--json")
    assert as_json.exit_code == ExitCode.ERROR
    assert json.loads(as_json.stdout) == {
        "errors": [{"file": None, "line": None, "field": None, "message": NO_CREDENTIALS}]
    }


def test_an_unknown_profile_names_the_next_step(moto_env: MotoAws, scripted: ProjectDir) -> None:
    result = scripted.run("diff", "--profile", "nosuch")
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr == (
        "error: AWS: no usable credentials (The config profile (nosuch) could not be found); "
        f"{CREDENTIALS_HINT}\n"
    )


def test_refused_credentials_may_have_expired(moto_env: MotoAws, scripted: ProjectDir) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXPIRED", "AWS_SECRET_ACCESS_KEY": "nothing"}
    result = scripted.run_with_env(env, "deploy")
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr == (
        "error: AWS refused the credentials (An error occurred (InvalidClientTokenId) when "
        "calling the GetCallerIdentity operation: The security token included in the request "
        f"is invalid.); they may have expired: {CREDENTIALS_HINT}\n"
    )


STAND_IN = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}


@pytest.fixture
def bootstrap_stack(moto_env: MotoAws):
    """A stack with the bootstrap stack's name and the given outputs; deleted afterwards."""
    cfn = moto_env.client("cloudformation")
    made: list[str] = []

    def make(outputs: dict[str, str]) -> None:
        template = STAND_IN | {"Outputs": {k: {"Value": v} for k, v in outputs.items()}}
        cfn.create_stack(StackName=f"{NAME}-bootstrap", TemplateBody=json.dumps(template))
        made.append(f"{NAME}-bootstrap")

    yield make
    for stack in made:
        cfn.delete_stack(StackName=stack)


BUCKET = f"foundation-{ACCOUNT}-us-east-1-{NAME}"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/foundation/{NAME}--cloudformation"


@pytest.mark.parametrize("verb", ["diff", "deploy", "destroy"])
def test_a_bootstrap_stack_without_its_outputs_is_named_not_a_keyerror(
    moto_env: MotoAws, scripted: ProjectDir, bootstrap_stack, verb: str
) -> None:
    bootstrap_stack({})
    result = scripted.run_with_env(_admin(moto_env), verb)
    assert result.exit_code == ExitCode.ERROR, result.stderr
    assert result.stderr == (
        f"error: {NAME}-bootstrap is not this deployment's bootstrap stack as foundation "
        "bootstrap makes it: it has no output ArtifactsBucketName; it has no output "
        "CloudFormationRoleArn. Run foundation bootstrap to update it (or delete a stack of that "
        "name that is not the toolkit's)\n"
    )


def test_a_bootstrap_stack_with_garbled_outputs_is_named(
    moto_env: MotoAws, scripted: ProjectDir, bootstrap_stack
) -> None:
    bootstrap_stack({"ArtifactsBucketName": BUCKET, "CloudFormationRoleArn": "not an arn"})
    result = scripted.run_with_env(_admin(moto_env), "diff", "--json")
    assert result.exit_code == ExitCode.ERROR
    (error,) = json.loads(result.stdout)["errors"]
    assert error["message"] == (
        f"{NAME}-bootstrap is not this deployment's bootstrap stack as foundation bootstrap "
        f"makes it: CloudFormationRoleArn is 'not an arn', expected '{ROLE}'. Run foundation "
        "bootstrap to update it (or delete a stack of that name that is not the toolkit's)"
    )
