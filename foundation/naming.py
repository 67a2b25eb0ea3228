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
# A project's own folders and its base config file
CONFIG_DIR = "config"
BASE_CONFIG = "foundation.yaml"
MANIFEST_DIR = "dag_permissions"


def dag_hash(dag_id: str) -> str:
    return hashlib.sha256(dag_id.encode()).hexdigest()[:HASH_CHARS]


def _slug(dag_id: str, room: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", dag_id.lower()).strip("-") or "dag"
    return slug[:room].rstrip("-")


# The tags the toolkit owns: every resource of a deployment carries PROJECT_TAG = its name (the
# CloudFormation service role creates and changes EC2, load balancing, RDS, Cloud Map and
# Application Auto Scaling resources only with it); config `tags` may not use the prefix.
TAG_PREFIX = "foundation:"
PROJECT_TAG = f"{TAG_PREFIX}project"
DAG_ID_TAG = f"{TAG_PREFIX}dag_id"
QUEUE_TAG = f"{TAG_PREFIX}queue"

# Between a deployment's name and what it names. No deployment name holds it (config checks),
# so `<name>--*` reaches one deployment's resources only, whatever the other names are.
SEP = "--"
_NAME = r"[a-z][a-z0-9-]{1,18}[a-z0-9]"
# A DAG bundle's name (config dags): its S3 prefix in the DAG bucket, its dag-processor's names,
# its git connection's id. No "/" (prefixes never nest) and no "-" (an environment variable).
BUNDLE_NAME = r"[a-z][a-z0-9_]{0,29}"
DEFAULT_BUNDLE = "dags"  # the one bundle of a config whose `dags:` is a single mapping
DAG_PROCESSOR = "dag-processor"
# Every log group a deployment makes: /<name>/<one of these>
LOG_GROUPS = (
    "api-server",
    "scheduler",
    "dag-processor",
    "triggerer",
    "db-migrate",
    "workers",
    "vpc-flow-logs",
)
# ECS resources named inside their cluster: <kind>/<cluster>/...
ECS_IN_CLUSTER = ("service", "task", "container-instance", "task-set", "service-deployment")
_IN_CLUSTER = f"({'|'.join(ECS_IN_CLUSTER)})"
# ... and, with several bundles, /<name>/dag-processor-<bundle>, one per bundle
_PER_BUNDLE_LOG_GROUP = rf"{DAG_PROCESSOR}-{BUNDLE_NAME}"
# The shapes of the names any deployment in the account gives its own resources (an ARN's
# resource part, by service): what no DAG of any deployment may name, another's included.
_SHAPES = {
    "secretsmanager": rf"secret:{_NAME}/(cluster|dags)/.*",
    "ssm": rf"parameter/{_NAME}/(cluster|dags|network)/.*",
    "s3": rf"({_NAME}-(logs|dags)|foundation-\d{{12}})-[a-z0-9-]+(/.*)?",
    "iam": rf"(role|policy)/(.*/)?({_NAME}/dags/.*|foundation/.*|[^/]*{_NAME}{SEP}[^/]*)",
    "sqs": rf"{_NAME}{SEP}.*",
    # a cluster is named <name>, so everything in a cluster of a deployment's name's shape
    "ecs": rf"task-definition/{_NAME}{SEP}.*|cluster/{_NAME}|{_IN_CLUSTER}/{_NAME}/.*",
    "cloudwatch": rf"alarm:{_NAME}{SEP}.*",
    "dynamodb": rf"table/{_NAME}-celery-results(/.*)?",
    "logs": rf"log-group:/{_NAME}/({'|'.join(LOG_GROUPS)}|{_PER_BUNDLE_LOG_GROUP})(:.*)?",
}
_PATHS = {"secretsmanager": "secret:", "ssm": "parameter/", "logs": "log-group:"}


def any_deployments(service: str, resource: str) -> bool:
    """Whether an ARN's resource part, or a pattern of one (IAM's `*` and `?`), can name a
    resource of the shape any deployment gives its own. A wildcard in a secret's, parameter's
    or log group's first two path segments could stand for `<name>/cluster`, one in an IAM
    name for `<name>--`: both count."""
    shape = _SHAPES.get(service)
    if shape is None:
        return False
    head, *rest = re.split(r"[*?]", resource, maxsplit=1)
    if not rest:
        return re.fullmatch(shape, resource) is not None
    if service == "iam":
        return True
    if service in _PATHS and head.removeprefix(_PATHS[service]).lstrip("/").count("/") < 2:
        return True
    return re.fullmatch(shape, head + "x") is not None


@dataclass(frozen=True)
class DagNames:
    """Every AWS name one DAG's resources use."""

    project: str
    dag_id: str
    role_prefix: str = ""  # config iam.role_name_prefix, for organisations that require one

    @property
    def suffix(self) -> str:
        fixed = len(self.role_prefix) + len(self.project) + len(f"{SEP}dag-") + 1 + HASH_CHARS
        return f"{_slug(self.dag_id, ROLE_NAME_MAX - fixed)}-{dag_hash(self.dag_id)}"

    @property
    def role(self) -> str:
        return f"{self.role_prefix}{self.project}{SEP}dag-{self.suffix}"

    @property
    def task_family(self) -> str:
        return f"{self.project}{SEP}{WORKER_FAMILY_KIND}-{self.suffix}"

    def managed_policy(self, index: int) -> str:
        return f"{self.role}-{index + 1}"

    @property
    def security_group(self) -> str:
        """EC2 names are scoped by no pattern (security groups are granted by id)."""
        return f"{self.project}-dag-{self.suffix}"

    @property
    def queue(self) -> str:
        """Celery mode: the DAG's SQS queue, which is also its Celery queue."""
        return f"{self.project}{SEP}dag-{self.suffix}"

    @property
    def service(self) -> str:
        """Celery mode: the DAG's worker service (scoped by the cluster: service/<name>/...)."""
        return f"{self.project}-dag-{self.suffix}"

    def alarm(self, kind: str) -> str:
        return f"{self.project}{SEP}dag-{self.suffix}-{kind}"


def bundle_prefix(bundle: str) -> str:
    """Where an S3 bundle's DAG files live in the deployment's DAG bucket (`dags/` for the one
    bundle of a single-mapping config, as before there could be several)."""
    return f"{bundle}/"


def dag_processor(bundle: str, bundles: int) -> str:
    """The component that parses one bundle: `dag-processor` when it is the deployment's only
    bundle (the names a one-bundle deployment always had), else `dag-processor-<bundle>`."""
    return DAG_PROCESSOR if bundles == 1 else f"{DAG_PROCESSOR}-{bundle}"


# The identity of DAGs without a manifest (config airflow.unmanaged_dags: baseline). No dag_id
# holds "/", so this parameter cannot be a DAG's; no DagNames name lacks the hash suffix.
UNMANAGED_PARAMETER_NAME = "unmanaged/baseline"


@dataclass(frozen=True)
class UnmanagedNames(DagNames):
    @property
    def suffix(self) -> str:
        return "unmanaged"


@dataclass(frozen=True)
class Namespace:
    """Every name, prefix and ARN pattern one deployment owns, and `owns(arn)`.

    Its names start `<name>--` (IAM roles and policies, task definition families, SQS queues,
    alarms), `<name>/` (secrets) or `/<name>/` (SSM parameters, log groups, role paths), or are
    exact (its cluster, its buckets and table); what AWS names by generated ids carries `tags`.
    Names hold neither `--` nor `/`, so no prefix of one deployment is a prefix of another's,
    whatever the two names (one a prefix of the other included); config keeps role paths and
    prefixes from undoing that. Account and region are needed for bucket names only.
    """

    name: str
    role_root: str = "/"  # config iam.role_path: every role of the toolkit lives under it
    role_prefix: str = ""  # config iam.role_name_prefix
    account: str = ""
    region: str = ""

    @property
    def stem(self) -> str:
        return f"{self.name}{SEP}"

    @property
    def tags(self) -> dict[str, str]:
        """What every resource of the deployment is tagged with at creation."""
        return {PROJECT_TAG: self.name}

    def dag(self, dag_id: str) -> DagNames:
        return DagNames(self.name, dag_id, self.role_prefix)

    @property
    def unmanaged(self) -> DagNames:
        return UnmanagedNames(self.name, "", self.role_prefix)

    # the cluster's components
    def role(self, component: str) -> str:
        return f"{self.role_prefix}{self.stem}{component}"

    def family(self, component: str) -> str:
        return f"{self.stem}{component}"

    def service(self, component: str) -> str:
        return f"{self.name}-{component}"

    def log_group(self, component: str) -> str:
        # the shape every deployment's log groups are kept in (_SHAPES)
        if component not in LOG_GROUPS and not re.fullmatch(_PER_BUNDLE_LOG_GROUP, component):
            raise ValueError(f"log group {component!r} is not in naming.LOG_GROUPS")
        return f"/{self.name}/{component}"

    def secret(self, kind: str) -> str:
        return f"{self.name}/cluster/{kind}"

    @property
    def parameters(self) -> str:
        """The root of the cluster's SSM parameters."""
        return f"/{self.name}/cluster"

    def parameter(self, kind: str) -> str:
        """One of the cluster's own parameters: never under `worker_deliveries`, which the
        workers' execution role reads."""
        if kind.startswith("workers/"):
            raise ValueError(f"{kind!r} would be under the worker stacks' deliveries")
        return f"{self.parameters}/{kind}"

    @property
    def cluster(self) -> str:
        return self.name

    @property
    def dns_namespace(self) -> str:
        """The Cloud Map namespace (and its private hosted zone): no name holds a dot."""
        return f"{self.name}.internal"

    @property
    def execution_role(self) -> str:
        """The execution role of the cluster's components: it injects their secrets."""
        return self.role("task-execution")

    @property
    def worker_execution_role(self) -> str:
        """The one execution role every DAG's tasks share: image pull, container logs and every
        git bundle's key (a task definition injects its own bundle's), nothing of the cluster's
        secrets."""
        return self.role("worker-execution")

    @property
    def service_role(self) -> str:
        return self.role("cloudformation")

    def component_role_path_name(self, component: str) -> str:
        """A cluster component's role as its ARN names it: path and name, no leading slash."""
        return f"{self.role_root[1:]}{self.role(component)}"

    def dag_role_path_name(self, names: DagNames) -> str:
        """A DAG's (or the unmanaged identity's) role as its ARN names it."""
        return f"{self.dag_role_path[1:]}{names.role}"

    @property
    def bootstrap_role_path(self) -> str:
        """The bootstrap's roles live on a path of their own, outside every role pattern the
        CloudFormation service role may create or change."""
        return f"{self.role_root}foundation/"

    # every DAG's
    @property
    def dag_role_path(self) -> str:
        """The IAM path every per-DAG role lives under: the scheduler may pass exactly these."""
        return f"{self.role_root}{self.name}/dags/"

    @property
    def worker_family_prefix(self) -> str:
        """Every per-DAG task definition family starts so; no component's family does."""
        return f"{self.stem}{WORKER_FAMILY_KIND}-"

    @property
    def dag_queue_prefix(self) -> str:
        """Every DAG's Celery queue starts so (the scheduler may send to exactly these)."""
        return f"{self.stem}dag-"

    @property
    def identity_path(self) -> str:
        return f"/{self.name}/dags/"

    def identity_parameter(self, dag_id: str) -> str:
        """The SSM parameter a worker stack publishes its DAG's run-time identity under."""
        return f"{self.identity_path}{dag_id}"

    @property
    def dag_secrets_root(self) -> str:
        return f"{self.name}/dags/"

    def dag_secrets_prefix(self, dag_id: str) -> str:
        """A DAG's own connections and variables: only its role may read them."""
        return f"{self.dag_secrets_root}{dag_id}/"

    @property
    def workers_log_group(self) -> str:
        return self.log_group("workers")

    @property
    def workers_security_group_parameter(self) -> str:
        """Where core publishes the security group every DAG's tasks share."""
        return self.parameter("workers-security-group")

    @property
    def worker_deliveries(self) -> str:
        """The root of the worker stacks' delivered values (`deliveries`): the shared workers'
        execution role reads what is under it."""
        return f"{self.parameters}/workers/"

    def deliveries(self, shard: int | None = None) -> str:
        """Where a stack's delivered values are (runtime_files.delivery): core's, or a worker
        stack's own. Each stack owns what its task definitions read, so no update or rollback of
        one stack leaves a task definition naming a parameter another stack's update deleted."""
        return self.parameters if shard is None else f"{self.worker_deliveries}{_shard(shard)}"

    @property
    def celery_results_table(self) -> str:
        return f"{self.name}-celery-results"

    # buckets: exact names (grants name each one)
    @property
    def logs_bucket(self) -> str:
        return f"{self.name}-logs-{self.account}-{self.region}"

    @property
    def dags_bucket(self) -> str:
        return f"{self.name}-dags-{self.account}-{self.region}"

    @property
    def artifacts_bucket(self) -> str:
        """The bootstrap's bucket of published templates."""
        return f"foundation-{self.account}-{self.region}-{self.name}"

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.logs_bucket, self.dags_bucket, self.artifacts_bucket)

    # stacks
    @property
    def cluster_stacks(self) -> list[str]:
        """The stacks every deployment has, in deploy order."""
        return [f"{self.name}-network", f"{self.name}-data", f"{self.name}-core"]

    def network_export(self, value: str) -> str:
        """A value the network stack exports under a fixed name (worker stacks import it by
        name, so they build without the network stack and never change its exports)."""
        return f"{self.cluster_stacks[0]}:{value}"

    @property
    def bootstrap_stack(self) -> str:
        return f"{self.name}-bootstrap"

    def worker_stack(self, shard: int) -> str:
        return f"{self.name}-workers-{_shard(shard)}"

    def stacks(self, dag_ids: list[str], shards: int) -> list[str]:
        """Every stack of a deployment with these DAGs: no worker stack is left empty."""
        used = sorted({worker_shard(dag_id, shards) for dag_id in dag_ids})
        return self.cluster_stacks + [self.worker_stack(s) for s in used]

    def owns(self, service: str, resource: str) -> bool:
        """Whether an ARN's resource part (service and the part after the account) names a
        resource of this deployment's."""
        if service == "s3":
            return resource.split("/", 1)[0] in self.buckets
        if service == "dynamodb":
            table = f"table/{self.celery_results_table}"
            return resource == table or resource.startswith(f"{table}/")
        if service == "ecs" and resource == f"cluster/{self.cluster}":
            return True
        return resource.startswith(self._prefixes.get(service, ()))

    @property
    def _prefixes(self) -> dict[str, tuple[str, ...]]:
        root, name = self.role_root, self.name
        return {
            "iam": (
                f"role{root}{self.role_prefix}{self.stem}",
                f"role{self.dag_role_path}",
                f"role{self.bootstrap_role_path}{self.service_role}",
                f"policy{self.dag_role_path}",
                f"policy{self.bootstrap_role_path}{self.service_role}-",
            ),
            "ecs": (
                f"task-definition/{self.stem}",
                *(f"{kind}/{self.cluster}/" for kind in ECS_IN_CLUSTER),
            ),
            "sqs": (self.stem,),
            "ssm": (f"parameter/{name}/",),
            "logs": (f"log-group:/{name}/",),
            "secretsmanager": (f"secret:{name}/",),
            "cloudwatch": (f"alarm:{self.stem}",),
        }


def _shard(shard: int) -> str:
    """A worker stack's number in its names."""
    return f"{shard:02d}"


def worker_shard(dag_id: str, shards: int) -> int:
    """The worker stack a DAG lives in: a function of its own dag_id only, so it never moves."""
    return int(hashlib.sha256(dag_id.encode()).hexdigest(), 16) % shards


# Template metadata: parameter -> ECS service name, for each service whose first deploy sets
# its desired count (the deploy sets the parameter to whether the service exists already).
EXISTING_SERVICES_METADATA = "foundation:existing-services"
