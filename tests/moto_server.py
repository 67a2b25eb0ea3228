"""A local moto server with IAM access control enforced, and IAM users made from policies.

`moto_server` (session) runs the server on a free 127.0.0.1 port; `moto_aws` (module) empties
it, as a new account, and makes an allow-all admin user for setting up resources. `moto_env`
(per test) points the process environment at it: every AWS client without an explicit endpoint
goes to the server, and the instance-metadata, container and profile credential sources are
shut off, so nothing reaches AWS. monkeypatch puts the environment back after each test. The
moto-wide switches the session flips (IAM enforcement, the Docker-free Lambda backend) are put
back when it ends.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests

from foundation.local.aws import LocalAws

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account: every ARN moto makes carries it

# Credential and endpoint sources that could point boto3 anywhere but the local server.
_AWS_ENV_CLEARED = (
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CA_BUNDLE",
)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


@dataclass
class MotoAws:
    endpoint: str
    admin: Credentials
    local: LocalAws
    environment: dict[str, str] = field(default_factory=dict)
    _names: Iterator[int] = field(default_factory=itertools.count)

    def client(self, service: str, creds: Credentials | None = None) -> Any:
        """A boto3 client; the admin's unless `creds` is given."""
        creds = creds or self.admin
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
        )

    def user_with(self, name: str, policies: list[list[dict[str, Any]]]) -> Credentials:
        """A new IAM user carrying exactly `policies`, one managed policy each, like a DAG role."""
        iam = self.client("iam")
        user = f"{name}-{next(self._names)}"
        iam.create_user(UserName=user)
        for i, statements in enumerate(policies):
            document = {"Version": "2012-10-17", "Statement": statements}
            arn = iam.create_policy(PolicyName=f"{user}-{i}", PolicyDocument=json.dumps(document))
            iam.attach_user_policy(UserName=user, PolicyArn=arn["Policy"]["Arn"])
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def echo_function(self, name: str) -> None:
        """A Lambda function that returns its event (moto runs it without Docker), with a
        role of its own."""
        role = self.client("iam").create_role(
            RoleName=f"{name}-fn",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": code.getvalue()},
        )

    def emr_cluster(self, name: str, **options: Any) -> str:
        """A one-instance EMR cluster that waits for steps; its id."""
        return self.client("emr").run_job_flow(
            Name=name,
            ReleaseLabel="emr-7.0.0",
            Instances={
                "MasterInstanceType": "m5.xlarge",
                "SlaveInstanceType": "m5.xlarge",
                "InstanceCount": 1,
                "KeepJobFlowAliveWhenNoSteps": True,
            },
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
            **options,
        )["JobFlowId"]

    def set_transition(self, model_name: str, progression: str) -> None:
        """How fast moto moves a resource's state (e.g. a Glue crawl) along."""
        body = {"model_name": model_name, "transition": {"progression": progression}}
        self._post("state-manager/set-transition", json.dumps(body))

    def _post(self, path: str, body: str) -> dict[str, Any]:
        response = requests.post(f"{self.endpoint}/moto-api/{path}", data=body.encode())
        response.raise_for_status()
        return response.json() if response.content else {}


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoAws]:
    """moto on a free 127.0.0.1 port, IAM enforced, with an allow-all admin user for set-up
    (foundation/local/aws.py, as `foundation dev` runs it)."""
    from foundation.local.aws import LocalAws

    home = tmp_path_factory.mktemp("moto_aws")
    local = LocalAws.start(ACCOUNT, REGION)
    aws = MotoAws(local.url, Credentials(local.access_key_id, local.secret_access_key), local)
    aws.environment = {
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        # Airflow reads AIRFLOW_HOME when it is first imported; the tests import it lazily.
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    # Lambda without Docker: an invoked function returns its payload.
    lambda_config = requests.get(f"{aws.endpoint}/moto-api/config").json()["lambda"]
    try:
        aws._post("config", json.dumps({"lambda": {"use_docker": False}}))
        yield aws
    finally:
        aws._post("config", json.dumps({"lambda": lambda_config}))
        local.stop()


@pytest.fixture(scope="module")
def moto_aws(moto_server: MotoAws) -> MotoAws:
    """The server as a new account for this module: whatever another module made is gone, in
    whatever order the modules run (pytest-xdist spreads them over processes)."""
    moto_server.local.reset()
    local = moto_server.local
    moto_server.admin = Credentials(local.access_key_id, local.secret_access_key)
    return moto_server


@pytest.fixture
def moto_env(moto_aws: MotoAws, monkeypatch: pytest.MonkeyPatch) -> MotoAws:
    """The process environment pointed at the moto server, for this test only."""
    for name in _AWS_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_aws.environment.items():
        monkeypatch.setenv(name, value)
    return moto_aws


# The example's certificate, in moto's account (deploy tests put the example in that account)
CERTIFICATE_ARN = (
    f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/5b3c1a52-8d0e-4f6b-9a43-7c2d5e8f1a90"
)


@pytest.fixture(scope="module")
def moto_cloudformation(moto_aws: MotoAws) -> MotoAws:
    """The module's account, able to deploy the toolkit's real templates through change sets.

    foundation/local/moto_cfn.py is the one place that fills moto's CloudFormation gaps (its
    docstring lists each type).
    ECS tasks stop at once with exit code 0, so a deploy's `airflow db migrate` task completes.
    """
    moto_aws.local.register_certificate(CERTIFICATE_ARN)
    moto_aws.set_transition("ecs::task", "immediate")
    return moto_aws
