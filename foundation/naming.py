"""AWS names derived from a dag_id: deterministic, within each service's rules, and unique even
where AWS compares names case-insensitively (IAM) or the dag_id has characters a name cannot hold.

Every per-DAG name is `<project>-<kind>-<slug>-<hash>`: the slug keeps names readable, the hash
(of the exact dag_id) keeps `sales_eu`, `sales.eu` and `Sales-EU` apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

HASH_CHARS = 6
ROLE_NAME_MAX = 64
WORKER_FAMILY_KIND = "worker"


def dag_hash(dag_id: str) -> str:
    return hashlib.sha256(dag_id.encode()).hexdigest()[:HASH_CHARS]


def _slug(dag_id: str, room: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", dag_id.lower()).strip("-") or "dag"
    return slug[:room].rstrip("-")


@dataclass(frozen=True)
class DagNames:
    """Every AWS name one DAG's resources use."""

    project: str
    dag_id: str
    role_prefix: str = ""  # config iam.role_name_prefix, for organisations that require one

    @property
    def suffix(self) -> str:
        fixed = len(self.role_prefix) + len(self.project) + len("-dag-") + 1 + HASH_CHARS
        return f"{_slug(self.dag_id, ROLE_NAME_MAX - fixed)}-{dag_hash(self.dag_id)}"

    @property
    def role(self) -> str:
        return f"{self.role_prefix}{self.project}-dag-{self.suffix}"

    @property
    def task_family(self) -> str:
        return f"{self.project}-{WORKER_FAMILY_KIND}-{self.suffix}"

    def managed_policy(self, index: int) -> str:
        return f"{self.role}-{index + 1}"

    @property
    def security_group(self) -> str:
        return f"{self.project}-dag-{self.suffix}"

    @property
    def queue(self) -> str:
        """Celery mode: the DAG's SQS queue, which is also its Celery queue and worker service."""
        return f"{self.project}-dag-{self.suffix}"


def execution_role_name(project: str, role_prefix: str = "") -> str:
    """The execution role of the cluster's components: it injects their secrets."""
    return f"{role_prefix}{project}-task-execution"


def worker_execution_role_name(project: str, role_prefix: str = "") -> str:
    """The one execution role every DAG's tasks share: image pull, container logs and the DAG
    bundle's git key, nothing of the cluster's secrets."""
    return f"{role_prefix}{project}-worker-execution"


def workers_log_group_name(project: str) -> str:
    return f"/{project}/workers"


def role_path(project: str, org_path: str = "/") -> str:
    """The IAM path every per-DAG role lives under: the scheduler may pass exactly these.
    `org_path` is config iam.role_path, under which every role of the toolkit lives."""
    return f"{org_path}{project}/dags/"


def task_family_prefix(project: str) -> str:
    """Every per-DAG task definition family starts so; no cluster component's family does."""
    return f"{project}-{WORKER_FAMILY_KIND}-"


def dag_queue_prefix(project: str) -> str:
    """Every DAG's Celery queue starts so (the scheduler may send to exactly these)."""
    return f"{project}-dag-"


def celery_results_table(project: str) -> str:
    return f"{project}-celery-results"


def workers_security_group_parameter(project: str) -> str:
    """Where core publishes the security group every DAG's tasks share, for worker services."""
    return f"/{project}/cluster/workers-security-group"


def identity_parameter(project: str, dag_id: str) -> str:
    """The SSM parameter a worker stack publishes its DAG's run-time identity under."""
    return f"/{project}/dags/{dag_id}"


# The identity of DAGs without a manifest (config airflow.unmanaged_dags: baseline). No dag_id
# holds "/", so this parameter cannot be a DAG's; no DagNames name lacks the hash suffix.
UNMANAGED_PARAMETER_NAME = "unmanaged/baseline"


def unmanaged_names(project: str, role_prefix: str = "") -> DagNames:
    return UnmanagedNames(project, "", role_prefix)


@dataclass(frozen=True)
class UnmanagedNames(DagNames):
    @property
    def suffix(self) -> str:
        return "unmanaged"


def worker_shard(dag_id: str, shards: int) -> int:
    """The worker stack a DAG lives in: a function of its own dag_id only, so it never moves."""
    return int(hashlib.sha256(dag_id.encode()).hexdigest(), 16) % shards


def cluster_stack_names(project: str) -> list[str]:
    """The stacks every deployment has, in deploy order."""
    return [f"{project}-network", f"{project}-data", f"{project}-core"]


def bootstrap_stack_name(project: str) -> str:
    return f"{project}-bootstrap"


def bootstrap_role_path(org_path: str = "/") -> str:
    """The bootstrap's roles live on a path of their own, outside `role<path><prefix><name>-*`
    and `role<path><name>/*`, which is all the CloudFormation service role may create or change."""
    return f"{org_path}foundation/"


def service_role_name(project: str, role_prefix: str = "") -> str:
    return f"{role_prefix}{project}-cloudformation"


def worker_stack_name(project: str, shard: int) -> str:
    return f"{project}-workers-{shard:02d}"


def stack_names(project: str, dag_ids: list[str], shards: int) -> list[str]:
    """Every stack of a deployment with these DAGs: no worker stack is left empty."""
    used = sorted({worker_shard(dag_id, shards) for dag_id in dag_ids})
    return cluster_stack_names(project) + [worker_stack_name(project, s) for s in used]


# Template metadata: parameter -> ECS service name, for each service whose first deploy sets
# its desired count (the deploy sets the parameter to whether the service exists already).
EXISTING_SERVICES_METADATA = "foundation:existing-services"
