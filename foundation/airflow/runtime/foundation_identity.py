"""Which identity a workload runs as, decided by the scheduler's executor (ECS or Celery).

Delivered with the executors (written into $AIRFLOW_HOME/config at start). Each DAG's worker
stack publishes its identity as an SSM parameter `<path><dag_id>`, with the one bundle the DAG may
come from; the executor reads it for the dag_id the workload itself names, accepts only the names
that DAG's stack creates, and refuses DAGs with no identity or from any other bundle.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from foundation_names import UNMANAGED_PARAMETER_NAME, DagNames, Namespace
from foundation_workload import workload_origin

IDENTITY_PATH_ENV = "FOUNDATION_IDENTITY_PATH"
PROJECT_ENV = "FOUNDATION_PROJECT"
ROLE_PATH_ENV = "FOUNDATION_ROLE_PATH"  # config iam.role_path, when not "/"
ROLE_PREFIX_ENV = "FOUNDATION_ROLE_PREFIX"  # config iam.role_name_prefix, when set
UNMANAGED_ENV = "FOUNDATION_UNMANAGED_DAGS"
CACHE_SECONDS = 60.0


class IdentityRefused(Exception):
    """The workload may not run: its DAG has no identity, or comes from the wrong bundle."""


class IdentitySource:
    """Reads `<path><dag_id>` SSM parameters, each cached for a minute."""

    def __init__(self, path: str, client: Any):
        self.path, self.client = path, client
        self._cache: dict[str, tuple[float, dict | None]] = {}

    def get(self, dag_id: str) -> dict | None:
        now = time.monotonic()
        cached = self._cache.get(dag_id)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            value = self.client.get_parameter(Name=f"{self.path}{dag_id}")["Parameter"]["Value"]
        except self.client.exceptions.ParameterNotFound:
            value = None
        identity = None if value is None else self._parsed(dag_id, value)
        self._cache[dag_id] = (now, identity)
        return identity

    @staticmethod
    def _parsed(dag_id: str, value: str) -> dict:
        try:
            identity = json.loads(value)
        except ValueError:
            identity = None
        if not isinstance(identity, dict):
            raise IdentityRefused(f"the identity published for DAG {dag_id!r} is not a JSON object")
        return identity


@dataclass(frozen=True)
class Resolved:
    names: DagNames  # the names the DAG's own stack (or the unmanaged identity) creates
    identity: dict  # the published parameter, not yet checked against `names`


class Gate:
    """Resolves a workload to its DAG's published identity, from the scheduler's environment."""

    def __init__(self, ssm_client: Any):
        self.identities = IdentitySource(os.environ[IDENTITY_PATH_ENV], ssm_client)
        self.project = os.environ[PROJECT_ENV]
        self.namespace = Namespace(
            self.project, os.environ.get(ROLE_PATH_ENV, "/"), os.environ.get(ROLE_PREFIX_ENV, "")
        )
        self.unmanaged = os.environ.get(UNMANAGED_ENV, "refuse")

    def resolve(self, workload: dict) -> Resolved:
        dag_id, bundle = workload_origin(workload)
        if not dag_id:
            raise IdentityRefused("workload names no dag_id")
        identity = self.identities.get(dag_id)
        names = self.namespace.dag(dag_id)
        if identity is None and self.unmanaged == "baseline":
            identity = self.identities.get(UNMANAGED_PARAMETER_NAME)
            names = self.namespace.unmanaged
        if identity is None:
            raise IdentityRefused(f"DAG {dag_id!r} has no permission manifest")
        # The bundle its manifest names (or the deployment's only one), published beside the
        # identity: a workload from any other bundle is refused, as is an identity naming none.
        expected_bundle = identity.get("bundle")
        if not isinstance(expected_bundle, str) or not expected_bundle:
            raise IdentityRefused(f"the identity published for DAG {dag_id!r} names no bundle")
        if bundle != expected_bundle:
            raise IdentityRefused(
                f"DAG {dag_id!r} may only come from bundle {expected_bundle!r}, not {bundle!r}"
            )
        return Resolved(names, identity)

    @staticmethod
    def not_its_own(dag_id: str | None) -> IdentityRefused:
        return IdentityRefused(f"the identity published for DAG {dag_id!r} is not its own")
