"""Manifest -> IAM statements: every grant a DAG's tasks will run with, and where it came from."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from foundation.config import (
    WORST_CASE_ACCOUNT,
    WORST_CASE_PARTITION,
    WORST_CASE_REGION,
    Deployment,
)
from foundation.iam.catalog import catalog, fill
from foundation.manifest import DagManifest, RedshiftDataAccess
from foundation.naming import DagNames, bundle_prefix
from foundation.yamlio import FieldPath

TASK_LOGS_ROOT = "task-logs/"

Locate = Callable[[FieldPath], str]


def dag_logs_prefix(dag_id: str) -> str:
    """Where Airflow's default log_filename_template puts a DAG's task logs."""
    return f"{TASK_LOGS_ROOT}dag_id={dag_id}/"


def dag_callback_logs_prefix(dag_id: str) -> str:
    """Where an executor callback of the DAG logs (ExecuteCallback.log_path)."""
    return f"{TASK_LOGS_ROOT}executor_callbacks/{dag_id}/"


@dataclass(frozen=True)
class ArnContext:
    partition: str
    region: str
    account: str

    @classmethod
    def of(cls, deployment: Deployment) -> ArnContext:
        return cls(deployment.partition, deployment.region, deployment.account)

    def ssm_parameter(self, name: str) -> str:
        """The ARN of the parameter `name` (which starts with '/'), or of a prefix of names."""
        return f"arn:{self.partition}:ssm:{self.region}:{self.account}:parameter{name}"

    def role(self, path: str, name: str) -> str:
        """The ARN of the role `name` at `path` (which starts and ends with '/')."""
        return f"arn:{self.partition}:iam::{self.account}:role{path}{name}"

    def log_group(self, name: str) -> str:
        """The ARN of the log group `name` (its streams: `:log-stream:<stream>` after it)."""
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{name}"


# The longest ARNs a policy can hold: IAM size limits are checked against this.
WORST_CASE = ArnContext(WORST_CASE_PARTITION, WORST_CASE_REGION, WORST_CASE_ACCOUNT)


@dataclass(frozen=True)
class Grant:
    """One use of a catalog entry: kind and access, the manifest's values, and its origin."""

    kind: str
    access: str
    params: dict[str, str]
    source: str


@dataclass
class Statement:
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: dict[str, dict[str, Any]] | None = None
    sources: tuple[str, ...] = ()
    sid: str = ""

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": list(self.actions),
            "Resource": list(self.resources),
        }
        if self.condition:
            doc["Condition"] = self.condition
        return doc


@dataclass
class DagPolicy:
    """A DAG's statements, grouped into the managed policies its role will carry."""

    dag_id: str
    policies: list[list[Statement]] = field(default_factory=list)
    worst_case_sizes: list[int] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    does_not_fit: str = ""  # why the statements cannot fit IAM's limits, if they cannot

    @property
    def statements(self) -> list[Statement]:
        return [s for policy in self.policies for s in policy]


def grants(manifest: DagManifest, deployment: Deployment, locate: Locate) -> Iterator[Grant]:
    """Every grant of one DAG: the toolkit's baseline first, then the manifest's, in order."""
    yield Grant(
        "secret_prefix",
        "read",
        {"prefix": deployment.namespace.dag_secrets_prefix(manifest.dag_id)},
        "baseline: the DAG's own secrets prefix",
    )
    yield Grant(
        "task_logs",
        "read_write",
        {"bucket": deployment.logs_bucket, "prefix": dag_logs_prefix(manifest.dag_id)},
        "baseline: the DAG's own task-log prefix",
    )
    yield Grant(
        "task_logs",
        "read_write",
        {"bucket": deployment.logs_bucket, "prefix": dag_callback_logs_prefix(manifest.dag_id)},
        "baseline: the DAG's own callback-log prefix",
    )
    bundle = deployment.bundle_named(deployment.bundle_of(manifest.bundle))
    if bundle and bundle.bundle == "s3" and deployment.dags_bucket:
        yield Grant(
            "dag_bundle",
            "read",
            {"bucket": deployment.dags_bucket, "prefix": bundle_prefix(bundle.name)},
            "baseline: the DAG bundle (tasks load their DAG's code from it)",
        )
    if deployment.celery:
        yield from celery_worker_grants(deployment, deployment.dag_names(manifest.dag_id))
    p = manifest.permissions
    at = ("permissions",)
    for i, s3 in enumerate(p.s3):
        source = locate((*at, "s3", i))
        if s3.prefix is None:
            yield Grant("s3_bucket", s3.access, {"bucket": s3.bucket}, source)
        else:
            yield Grant("s3", s3.access, {"bucket": s3.bucket, "prefix": s3.prefix}, source)
    for i, name in enumerate(p.secrets):
        yield Grant("secret", "read", {"name": name}, locate((*at, "secrets", i)))
    for i, kms in enumerate(p.kms):
        yield Grant("kms", kms.access, {"key_arn": kms.key_arn}, locate((*at, "kms", i)))
    for i, table in enumerate(p.dynamodb):
        yield Grant("dynamodb", table.access, {"table": table.table}, locate((*at, "dynamodb", i)))
    for i, queue in enumerate(p.sqs):
        yield Grant("sqs", queue.access, {"queue": queue.queue}, locate((*at, "sqs", i)))
    for i, topic in enumerate(p.sns):
        yield Grant("sns", "publish", {"topic": topic.topic}, locate((*at, "sns", i)))
    for i, fn in enumerate(p.lambda_):
        yield Grant("lambda", "invoke", {"function": fn.function}, locate((*at, "lambda", i)))
    for i, job in enumerate(p.glue.jobs):
        yield Grant("glue_job", "start", {"job": job}, locate((*at, "glue", "jobs", i)))
    for i, crawler in enumerate(p.glue.crawlers):
        source = locate((*at, "glue", "crawlers", i))
        yield Grant("glue_crawler", "start", {"crawler": crawler}, source)
    if p.athena:
        yield from _athena_grants(p.athena, locate)
    if p.emr:
        for i, cluster in enumerate(p.emr.clusters):
            source = locate((*at, "emr", "clusters", i))
            yield Grant("emr_cluster", "steps", {"cluster": cluster}, source)
    for i, rs in enumerate(p.redshift_data):
        yield _redshift_grant(rs, locate((*at, "redshift_data", i)))
    if p.redshift_data:
        yield Grant("redshift_statements", "own", {}, locate((*at, "redshift_data")))
    if p.datapipeline:
        for i, pipeline in enumerate(p.datapipeline.pipelines):
            source = locate((*at, "datapipeline", "pipelines", i))
            yield Grant("datapipeline", "activate", {"pipeline": pipeline}, source)
    for i, pr in enumerate(p.pass_roles):
        params = {"role": pr.role, "service": pr.service}
        yield Grant("pass_role", "pass", params, locate((*at, "pass_roles", i)))


def _redshift_grant(rs: RedshiftDataAccess, source: str) -> Grant:
    """A cluster's or a workgroup's statements, logged in by db_user, secret or IAM identity."""
    how = "secret" if rs.secret else ("db_user" if rs.cluster else "iam")
    kind = "redshift_data" if rs.cluster else "redshift_serverless"
    fields = {
        "cluster": rs.cluster,
        "workgroup_id": rs.workgroup_id,
        "database": rs.database,
        "db_user": rs.db_user,
        "name": rs.secret,
    }
    return Grant(kind, how, {k: v for k, v in fields.items() if v is not None}, source)


def celery_worker_grants(deployment: Deployment, names: DagNames) -> Iterator[Grant]:
    """What a DAG's Celery worker service needs besides its DAG's grants: its own queue, the
    results table, and scale-in protection of its own tasks."""
    params = {
        "queue": names.queue,
        "table": deployment.namespace.celery_results_table,
        "ecs_cluster": deployment.namespace.cluster,
    }
    yield Grant("celery_worker", "consume", params, "baseline: the DAG's own Celery queue")
    yield Grant("celery_worker", "results", params, "baseline: Celery task results")
    yield Grant(
        "celery_worker", "protect", params, "baseline: scale-in protection of its worker tasks"
    )


def _athena_grants(athena: Any, locate: Locate) -> Iterator[Grant]:
    at = ("permissions", "athena")
    for i, workgroup in enumerate(athena.workgroups):
        source = locate((*at, "workgroups", i))
        yield Grant("athena_workgroup", "query", {"workgroup": workgroup}, source)
    results = {"bucket": athena.results.bucket, "prefix": athena.results.prefix}
    yield Grant("athena_results", "write", results, locate((*at, "results")))
    for i, database in enumerate(athena.databases):
        source = locate((*at, "databases", i))
        yield Grant("glue_catalog", "read", {"database": database}, source)


def render(grant: Grant, ctx: ArnContext) -> list[Statement]:
    """The statements one grant turns into, with ARNs filled in for `ctx`."""
    cat = catalog()
    values = {"partition": ctx.partition, "region": ctx.region, "account": ctx.account}
    values |= grant.params
    out = []
    for template in cat.templates(grant.kind, grant.access):
        resources = tuple(fill(cat.arns[key], values) for key in template.resources)
        condition = None
        if template.condition:
            condition = {
                op: {key: fill(value, values) for key, value in pairs.items()}
                for op, pairs in template.condition.items()
            }
        out.append(Statement(template.actions, resources, condition, (grant.source,)))
    return out


def merge(statements: list[Statement]) -> list[Statement]:
    """Fold statements with the same actions and condition into one, resources unioned."""
    merged: dict[tuple[tuple[str, ...], str | None], Statement] = {}
    for st in statements:
        condition = None if st.condition is None else json.dumps(st.condition, sort_keys=True)
        key = (tuple(sorted(st.actions)), condition)
        if key in merged:
            held = merged[key]
            held.resources = tuple(dict.fromkeys(held.resources + st.resources))
            held.sources = tuple(dict.fromkeys(held.sources + st.sources))
        else:
            merged[key] = Statement(
                tuple(sorted(st.actions)), st.resources, st.condition, st.sources
            )
    return list(merged.values())


def number(policies: list[list[Statement]]) -> None:
    """Give every statement a Sid unique within the DAG."""
    for i, st in enumerate(s for policy in policies for s in policy):
        st.sid = f"{_sid_stem(st.actions)}{i}"


def _sid_stem(actions: tuple[str, ...]) -> str:
    return _service_stem(actions[0].split(":", 1)[0])


@functools.cache
def _service_stem(service: str) -> str:
    return "".join(part.capitalize() for part in service.replace("-", " ").split())
