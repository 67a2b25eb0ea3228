"""`foundation status` against a local CloudFormation endpoint (moto on loopback, over HTTP)."""

from __future__ import annotations

import json

from foundation.output import CREDENTIALS_HINT
from tests.conftest import ProjectDir
from tests.moto_server import MotoAws

NAME = "acme-airflow"


# A stand-in template: status reads stacks, it does not care what they hold (deploying the real
# templates to moto needs the gap models that come with `foundation deploy`).
STAND_IN = {
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {"TopicName": {"Value": {"Fn::GetAtt": ["Topic", "TopicName"]}}},
}


def test_status_shows_deployed_and_missing_stacks(moto_env: MotoAws, project: ProjectDir) -> None:
    cfn = moto_env.client("cloudformation")
    network = f"{NAME}-network"
    cfn.create_stack(StackName=network, TemplateBody=json.dumps(STAND_IN))
    creds = moto_env.admin
    env = {
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
    }
    result = project.run_with_env(env, "status", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"stacks"}
    rows = {row["stack"]: row for row in data["stacks"]}
    assert set(rows[network]) == {"stack", "status", "drift", "last_update", "outputs"}
    assert rows[network]["status"] == "CREATE_COMPLETE"
    assert rows[network]["outputs"] == {"TopicName": next(iter(rows[network]["outputs"].values()))}
    assert rows[network]["last_update"]
    for stack in (f"{NAME}-data", f"{NAME}-core"):
        assert rows[stack] == {
            "stack": stack,
            "status": "NOT_DEPLOYED",
            "drift": None,
            "last_update": None,
            "outputs": {},
        }
    assert sum("-workers-" in name for name in rows) == 5
    table = project.run_with_env(env, "status")
    assert table.exit_code == 0 and "not deployed" in table.stdout
    cfn.delete_stack(StackName=network)


def test_status_reports_aws_errors_without_a_traceback(
    moto_env: MotoAws, project: ProjectDir
) -> None:
    result = project.run_with_env(
        {"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "nothing"}, "status"
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "error: AWS refused the credentials (An error occurred (InvalidClientTokenId) when "
        "calling the DescribeStacks operation: The security token included in the request is "
        f"invalid.); they may have expired: {CREDENTIALS_HINT}\n"
    )
