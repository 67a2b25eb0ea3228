"""A deployed project's cluster, run here: its DAG files synced into the S3 bundle, its ECS
services started (the api-server first: the others reach its Execution API), its RunTasks run
as they come, the database a local PostgreSQL, and its web login read from Secrets Manager. Its
tasks reach the ECS agent's task-protection endpoint (ecs_agent.py); in Celery mode, each DAG's
worker service is scaled on its queue's backlog (autoscaling.py)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from foundation.airflow.settings import api_base_url
from foundation.config import Deployment
from foundation.local.autoscaling import LocalAutoScaling
from foundation.local.ecs import Endpoint, LocalEcs
from foundation.local.ecs_agent import LocalEcsAgent
from foundation.local.postgres import LocalPostgres
from foundation.local.rds import LocalRds
from foundation.naming import bundle_prefix

HEALTH = "/api/v2/monitor/health"


class ClusterFailed(RuntimeError):
    pass


def bundle_files(deployment: Deployment, folder: Path) -> dict[str, Path]:
    """The DAG bucket's key of each Python file of a local DAG folder: the folder is the one
    bundle, or, with several, holds one sub-folder per S3 bundle (`<folder>/<bundle>/`)."""
    bundles = [b.name for b in deployment.bundles if b.bundle == "s3"]
    several = len(deployment.bundles) > 1
    files = {}
    for bundle in bundles:
        root = folder / bundle if several else folder
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root)
            if not any(part.startswith((".", "__pycache__")) for part in relative.parts):
                files[f"{bundle_prefix(bundle)}{relative.as_posix()}"] = path
    return files


@dataclass
class LocalCluster:
    deployment: Deployment
    endpoint: Endpoint
    ecs: LocalEcs
    agent: LocalEcsAgent
    scaling: LocalAutoScaling | None = None

    @classmethod
    def prepare(
        cls, deployment: Deployment, endpoint: Endpoint, postgres: LocalPostgres, folder: Path
    ) -> LocalCluster:
        """Ready to run tasks (a deploy's migration among them) before the stacks exist."""
        ns = deployment.namespace
        api = ns.service("api-server")
        ecs = LocalEcs(
            endpoint,
            ns.cluster,
            folder,
            secret_filter=LocalRds(endpoint, postgres),
            service_names={api_base_url(deployment).removeprefix("http://"): api},
        )
        agent = LocalEcsAgent(endpoint).start()
        ecs.task_environment.append(agent.environment)
        return cls(deployment, endpoint, ecs.start(), agent)

    def stop(self) -> None:
        if self.scaling:
            self.scaling.stop()
        self.ecs.stop()
        self.agent.stop()

    def sync_dags(self, source: Path) -> list[str]:
        """The folder's Python files into the S3 bundle, as a CI job's `aws s3 sync` would."""
        bucket = self.deployment.dags_bucket
        if not bucket:
            raise ClusterFailed("the deployment's DAG bundle is not S3 (dags.bundle: s3)")
        s3 = self.endpoint.client("s3")
        keys = []
        for key, path in bundle_files(self.deployment, source).items():
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
        return keys

    def start_services(self, timeout: float = 240, time_scale: float = 1.0) -> str:
        """Every service, the api-server first; returns the api-server's URL once healthy.
        Celery workers scale from then on, their alarms' periods shortened by `time_scale`."""
        api = self.deployment.namespace.service("api-server")
        services = self.ecs.start_services(first=api)
        if self.deployment.celery:
            self.scaling = LocalAutoScaling(
                self.endpoint, self.ecs, self.deployment.name, time_scale
            ).start()
        url = f"http://{self.ecs.address_of(api)}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, running in services.items():
                if running.process.poll() is not None:
                    log = (running.folder / "container.log").read_text()[-4000:]
                    raise ClusterFailed(f"{name} exited ({running.process.returncode}):\n{log}")
            try:
                if requests.get(url + HEALTH, timeout=5).status_code == 200:
                    return url
            except requests.ConnectionError:
                pass
            time.sleep(1)
        raise ClusterFailed(f"the api-server did not answer {HEALTH} in {timeout:.0f} s")

    def password(self, user: str) -> str:
        """Simple auth's password of `user`, from the secret the deployment keeps them in."""
        secret = self.deployment.web_secrets.get(
            "web_passwords", self.deployment.namespace.secret("web-passwords")
        )
        value = self.endpoint.client("secretsmanager").get_secret_value(SecretId=secret)
        return json.loads(value["SecretString"])[user]
