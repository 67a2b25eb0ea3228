"""RDS, locally: a database secret attached to an RDS instance (the JSON RDS and CloudFormation
keep: username, password, engine, host, port, dbInstanceIdentifier) is given to containers with
the local PostgreSQL's address, after the instance's master user (with the secret's password)
and initial database are made there, as RDS makes them. The secret in Secrets Manager is left
as deployed."""

from __future__ import annotations

import json
from dataclasses import dataclass

from foundation.local.ecs import Endpoint
from foundation.local.postgres import LocalPostgres


@dataclass
class LocalRds:
    endpoint: Endpoint
    postgres: LocalPostgres

    def __call__(self, value: str) -> str:
        try:
            secret = json.loads(value)
        except ValueError:
            return value
        if not (
            isinstance(secret, dict)
            and str(secret.get("engine", "")).startswith("postgres")
            and secret.get("dbInstanceIdentifier")
        ):
            return value
        rds = self.endpoint.client("rds")
        (instance,) = rds.describe_db_instances(
            DBInstanceIdentifier=secret["dbInstanceIdentifier"]
        )["DBInstances"]
        self.postgres.ensure(
            secret["username"], secret["password"], instance.get("DBName") or "postgres"
        )
        return json.dumps(secret | {"host": "127.0.0.1", "port": self.postgres.port})
