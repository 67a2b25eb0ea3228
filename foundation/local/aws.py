"""AWS, locally: moto's server in this process on a free 127.0.0.1 port, with what it lacks
filled in (moto_gaps.py, moto_cfn.py), the deployment's account and region, an allow-all admin
user for setting up, and IAM enforced on every request after that.

moto serves any account: its admin user is made in `account`, and every request signed with its
key (or with a session of a role of that account) acts there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests

from foundation.local.ecs import Endpoint

ADMIN = "admin"
ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


@dataclass
class LocalAws:
    url: str
    account: str
    region: str
    access_key_id: str
    secret_access_key: str
    _server: Any = field(default=None, repr=False)
    _no_auth_before: str = "inf"  # moto's setting before: put back by stop()

    @classmethod
    def start(cls, account: str, region: str) -> LocalAws:
        from moto.server import ThreadedMotoServer

        from foundation.local import moto_cfn, moto_gaps

        moto_gaps.apply()
        moto_cfn.patch_change_sets()
        moto_cfn.patch_fargate_run_task()
        # its request log (werkzeug's) is noise on a console Airflow's imports configured
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        key, secret = _admin(account)
        aws = cls(f"http://{host}:{port}", account, region, key, secret, server)
        before = aws.moto_api("reset-auth", "0")  # every request from now on is checked
        aws._no_auth_before = before["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
        return aws

    def reset(self) -> None:
        """Every resource gone, as in a new account, and the admin user made again."""
        self.moto_api("reset", "")
        self.access_key_id, self.secret_access_key = _admin(self.account)

    def stop(self) -> None:
        self.moto_api("reset-auth", self._no_auth_before)
        self._server.stop()

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(
            self.url, self.region, self.account, self.access_key_id, self.secret_access_key
        )

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def environment(self, home: Path) -> dict[str, str]:
        """What points a process's AWS clients at this endpoint as the admin, and nowhere else
        (no profile, no instance or container credentials)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        }

    def register_certificate(self, arn: str) -> None:
        from foundation.local import moto_cfn

        moto_cfn.register_acm_certificate(arn, account_id=self.account, region=self.region)

    def moto_api(self, path: str, body: str) -> dict[str, Any]:
        response = requests.post(f"{self.url}/moto-api/{path}", data=body.encode(), timeout=30)
        response.raise_for_status()
        return response.json() if response.content else {}


def _admin(account: str) -> tuple[str, str]:
    """An IAM user of `account` that may do anything, made in moto's models directly (no
    request is authorised before it exists)."""
    from moto.iam.models import iam_backends

    iam = iam_backends[account]["aws"]
    if ADMIN not in iam.users:
        iam.create_user(region_name="us-east-1", user_name=ADMIN)
        document = json.dumps({"Version": "2012-10-17", "Statement": [ALLOW_ALL]})
        iam.put_user_policy(ADMIN, "all", document)
        iam.create_access_key(ADMIN)
    key = iam.users[ADMIN].access_keys[0]
    return key.access_key_id, key.secret_access_key
