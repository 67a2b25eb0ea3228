"""`foundation dev`: a project's cluster on this machine, booted from its own templates.

boot:  AWS in this process (moto, IAM enforced, the deployment's account and region) -> the
       buckets, queues and topics the manifests name, made empty -> a throwaway PostgreSQL for
       RDS -> `bootstrap` and `deploy` as on AWS (the deploy's migration runs as its task) ->
       the DAG folder synced into the S3 bundle -> every ECS service started as a local process
       (foundation/local). Each Airflow task then runs as its DAG's RunTask, under its DAG's
       generated role.
watch: DAG files changed since the last look are synced again; every AWS call refused since is
       reported with the DAG it came from and the manifest entry that would allow it.

What local enforcement leaves out is listed in README.md#foundation-dev.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from foundation import bootstrap as bootstrap_verb
from foundation import deploy as deploy_verb
from foundation.config import FabAuth
from foundation.deploy import Reporter
from foundation.iam.suggest import entry_for
from foundation.local.aws import LocalAws
from foundation.local.cluster import LocalCluster, bundle_files
from foundation.local.moto_gaps import DENIED, Denial
from foundation.local.postgres import LocalPostgres, PostgresMissing, bindir
from foundation.project import Project, load_project

STATE_DIR = ".foundation/dev"  # under the project: the assembly and every task's folder
# what the cluster's processes run on (distributions), and the extra that brings them
NEEDED = (
    "moto",
    "apache-airflow-core",
    "apache-airflow-providers-amazon",
    "psycopg2-binary",
)
DEV_EXTRA = "pip install 'airflow-foundation[dev]'"
WATCH_SECONDS = 2


class DevUnavailable(Exception):
    """This machine or this project cannot run the cluster: what is missing, and how to get it."""


class BootFailed(Exception):
    """The cluster was deployed or started, and did not come up: why."""


@dataclass(frozen=True)
class Options:
    root: Path
    env: str | None = None
    dags: Path | None = None  # default: PROJECT/dags

    @property
    def state(self) -> Path:
        return self.root.resolve() / STATE_DIR

    @property
    def dag_folder(self) -> Path:
        return (self.dags or self.root / "dags").resolve()


def require_machine() -> None:
    missing = [name for name in NEEDED if not _installed(name)]
    if missing:
        raise DevUnavailable(f"{', '.join(missing)} not installed: {DEV_EXTRA}")
    try:
        bindir()
    except PostgresMissing as error:
        raise DevUnavailable(str(error)) from None


def _installed(distribution: str) -> bool:
    """Without importing it (Airflow's import sets up logging for the whole process)."""
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def require_project(project: Project, options: Options) -> None:
    deployment = project.deployment
    git = [b.name for b in deployment.bundles if b.bundle == "git"]
    if len(deployment.bundles) == 1 and git:
        raise DevUnavailable(
            "dev syncs a local folder into the S3 DAG bundle, and this config's bundle is git: "
            "set `dags: {bundle: s3}` (in an --env overlay, say config/dev.yaml)"
        )
    if git:
        raise DevUnavailable(
            f"dev syncs a local folder into S3 DAG bundles, and bundle {git[0]!r} is git: make "
            "it `bundle: s3` (in an --env overlay, say config/dev.yaml)"
        )
    if isinstance(deployment.web.auth, FabAuth):
        raise DevUnavailable(
            "web.auth fab logs in through LDAP, which is not here: use the simple auth manager "
            "(`web: {auth: {manager: simple}}`) in an --env overlay, say config/dev.yaml"
        )
    if not options.dag_folder.is_dir():
        raise DevUnavailable(f"no DAG folder at {options.dag_folder} (give --dags)")


@dataclass
class Session:
    project: Project
    options: Options
    aws: LocalAws
    postgres: LocalPostgres
    cluster: LocalCluster
    url: str = ""
    logins: dict[str, str] = field(default_factory=dict)  # user -> password
    data: list[str] = field(default_factory=list)  # what was made empty for the DAGs
    _synced: dict[str, str] = field(default_factory=dict)  # bundle key -> content hash
    _seen: int = 0  # denials already reported
    _exited: set[str] = field(default_factory=set)
    _owns_aws: bool = False

    def stop(self) -> None:
        self.cluster.stop()
        self.postgres.stop()
        if self._owns_aws:
            self.aws.stop()

    def sync(self) -> list[str]:
        """The folder's Python files into the bundle: what changed, put; what went, deleted."""
        s3 = self.aws.client("s3")
        bucket = self.project.deployment.dags_bucket
        now = bundle_files(self.project.deployment, self.options.dag_folder)
        said = []
        for key, path in now.items():
            try:
                body = path.read_bytes()
            except OSError:  # gone or unreadable since the listing (an editor's, a checkout's)
                continue
            digest = hashlib.sha256(body).hexdigest()
            if self._synced.get(key) != digest:
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                said.append(f"synced {key}")
                self._synced[key] = digest
        for key in sorted(set(self._synced) - set(now)):
            s3.delete_object(Bucket=bucket, Key=key)
            del self._synced[key]
            said.append(f"deleted {key}")
        return said

    def denials(self) -> list[str]:
        """Every refused call since the last look, of a DAG's role or the cluster's."""
        fresh = DENIED[self._seen :]  # moto's threads append meanwhile: count what was read
        self._seen += len(fresh)
        return [self.explain(d) for d in fresh]

    def exited(self) -> list[str]:
        """Services whose task ended since the last look (nothing replaces it here)."""
        said = []
        for arn, running in list(self.cluster.ecs.finished.items()):
            if arn not in self._exited and running.task.started_by.startswith("ecs-svc/"):
                self._exited.add(arn)
                code = running.process.returncode
                said.append(f"{running.family} exited ({code}): {running.folder}/container.log")
        return said

    def explain(self, denial: Denial) -> str:
        role = _role_of(denial.principal)
        dag = next(
            (
                d
                for d in self.project.dags
                if self.project.deployment.dag_names(d.dag_id).role == role
            ),
            None,
        )
        what = f"{denial.action} on {denial.resource}"
        if dag is None:
            return f"denied: {role or denial.principal}: {what}"
        entry = entry_for(denial.action, denial.resource, denial.context)
        said = f"denied: DAG {dag.dag_id}: {what}"
        if entry is None:
            return f"{said}\n  no manifest entry grants it (permissions.statements may)"
        file = dag.file.relative_to(self.project.root)
        lines = "\n".join(f"      {line}" for line in entry.text.splitlines())
        return f"{said}\n  to allow it, add to {file}:\n    permissions:\n{lines}"


def _role_of(principal: str) -> str:
    """The role of an assumed-role session's ARN (arn:aws:sts::A:assumed-role/ROLE/SESSION)."""
    resource = principal.split(":", 5)[-1]
    kind, _, rest = resource.partition("/")
    return rest.split("/")[0] if kind == "assumed-role" else ""


def boot(options: Options, reporter: Reporter, aws: LocalAws | None = None) -> Session:
    """The cluster running, or an exception saying why not; `aws` is started if not given."""
    require_machine()
    project = load_project(options.root, options.env)
    require_project(project, options)
    deployment = project.deployment
    own_aws = aws is None
    if aws is None:
        aws = LocalAws.start(deployment.account, deployment.region)
    shutil.rmtree(options.state / "tasks", ignore_errors=True)  # the last run's tasks
    options.state.mkdir(parents=True, exist_ok=True)
    os.environ.update(aws.environment(options.state))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    if deployment.web.certificate_arn:
        aws.register_certificate(deployment.web.certificate_arn)
    postgres, cluster = LocalPostgres(), None
    try:
        postgres.start()
        cluster = LocalCluster.prepare(deployment, aws.endpoint, postgres, options.state / "tasks")
        session = Session(
            project, options, aws, postgres, cluster, _seen=len(DENIED), _owns_aws=own_aws
        )
        session.data = _data_of(project, aws)
        _deploy(options, reporter)
        session.sync()
        session.url = cluster.start_services()
        session.logins = {user: cluster.password(user) for user in deployment.web.auth.users}
        return session
    except BaseException:
        if cluster:
            cluster.stop()
        postgres.stop()
        if own_aws:
            aws.stop()
        raise


def _deploy(options: Options, reporter: Reporter) -> None:
    outcome = bootstrap_verb.run(options.root, options.env, None, None, True, reporter, None)
    if not outcome.ok:
        raise BootFailed(f"bootstrap: {outcome.stack} {outcome.result} {outcome.message}")
    out = options.state / "cdk.out"
    result = deploy_verb.run(
        deploy_verb.Options(options.root, options.env, out, yes=True), reporter, None
    )
    failed = [f"{o.stack} {o.result}: {o.message}" for o in result.outcomes if not o.ok]
    if failed:  # a failed migration fails the core stack's outcome
        raise BootFailed("deploy: " + "; ".join(failed))


def _data_of(project: Project, aws: LocalAws) -> list[str]:
    """The buckets, queues and topics the manifests name, made empty (so a DAG's calls reach
    IAM, and the author can put test data in them)."""
    buckets, queues, topics = set(), set(), set()
    for dag in project.dags:
        p = dag.manifest.permissions
        buckets |= {s.bucket for s in p.s3}
        if p.athena:
            buckets.add(p.athena.results.bucket)
        queues |= {q.queue for q in p.sqs}
        topics |= {t.topic for t in p.sns}
    s3, sqs, sns = aws.client("s3"), aws.client("sqs"), aws.client("sns")
    where = {}
    if aws.region != "us-east-1":
        where = {"CreateBucketConfiguration": {"LocationConstraint": aws.region}}
    for bucket in sorted(buckets):
        s3.create_bucket(Bucket=bucket, **where)
    for queue in sorted(queues):
        attributes = {"FifoQueue": "true"} if queue.endswith(".fifo") else {}
        sqs.create_queue(QueueName=queue, Attributes=attributes)
    for topic in sorted(topics):
        sns.create_topic(Name=topic)
    return (
        [f"s3://{b}" for b in sorted(buckets)]
        + [f"sqs {q}" for q in sorted(queues)]
        + [f"sns {t}" for t in sorted(topics)]
    )
