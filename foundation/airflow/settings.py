"""Airflow-side settings for each cluster component: environment, secrets and commands.

Stacks turn these into ECS container definitions; tests feed the same values to real Airflow.
Secrets Manager cannot emit a Fernet key and ECS cannot compose a connection URL, so both are
derived inside the container through Airflow's `_CMD` options from secrets ECS injects.
"""

from __future__ import annotations

import base64
import json
import shlex
import zlib
from dataclasses import dataclass, field

from foundation.airflow import runtime_files
from foundation.airflow.runtime.foundation_refusal import TRIGGERS_ENV
from foundation.config import DagBundle, Deployment, FabAuth
from foundation.iam.policy import TASK_LOGS_ROOT
from foundation.manifest import DagAccess
from foundation.naming import DagNames, bundle_prefix

AIRFLOW_PORT = 8080
WORKER_CONTAINER = "airflow-worker"
DB_NAME = "airflow"
ECS_EXECUTOR = "airflow_foundation_executor.FoundationEcsExecutor"
CELERY_EXECUTOR = "airflow_foundation_celery.FoundationCeleryExecutor"
CELERY_CONFIG = "airflow_foundation_celery_config.CELERY_CONFIG"
# SQS's longest visibility timeout: a message (acknowledged late, when its task ends) comes back
# to the queue only if its task outlives it; Airflow then refuses the second run of a task
# instance that is no longer queued.
CELERY_VISIBILITY_SECONDS = 43200
CELERY_RESULT_TTL_SECONDS = 86400

# Environment variables ECS fills from Secrets Manager; the _CMD programs read them.
FERNET_MATERIAL_ENV = "FOUNDATION_FERNET_MATERIAL"
DB_SECRET_ENV = "FOUNDATION_DB_SECRET"
DB_NAME_ENV = "FOUNDATION_DB_NAME"
# A DAG's Celery worker runs workloads of this dag_id only; the unmanaged identity's, of any
# (airflow_foundation_celery_config.py reads both)
WORKER_DAG_ENV = "FOUNDATION_WORKER_DAG_ID"
UNMANAGED_WORKER_ENV = "FOUNDATION_WORKER_UNMANAGED"
SEALED_COMPONENTS = ("dag-processor", "triggerer")

# Airflow's _CMD runner takes stdout as it is: the programs write the value with no newline.
_FERNET_PROGRAM = (
    "import base64,hashlib,os,sys;"
    f"sys.stdout.write(base64.urlsafe_b64encode(hashlib.sha256(os.environ['{FERNET_MATERIAL_ENV}']"
    ".encode()).digest()).decode())"
)
_SQL_CONN_PROGRAM = (
    "import json,os,sys;from urllib.parse import quote;"
    f"s=json.loads(os.environ['{DB_SECRET_ENV}']);"
    "sys.stdout.write('postgresql+psycopg2://%s:%s@%s:%s/%s'%(quote(s['username'],safe=''),"
    "quote(s['password'],safe=''),s['host'],s['port'],"
    f"os.environ['{DB_NAME_ENV}']))"
)
FERNET_KEY_CMD = shlex.join(["python", "-c", _FERNET_PROGRAM])
SQL_ALCHEMY_CONN_CMD = shlex.join(["python", "-c", _SQL_CONN_PROGRAM])


@dataclass(frozen=True)
class SecretRef:
    """An ECS secret: the whole value of one of the cluster's secrets."""

    secret: str  # "db", "fernet", "jwt", "api", "git:<bundle>", "web_passwords", "ldap_bind"


@dataclass
class ComponentSettings:
    environment: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, SecretRef] = field(default_factory=dict)
    # values too large for every task definition: delivered once, as chunked SSM parameters
    delivered: dict[str, str] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)  # runtime programs run before Airflow
    before: list[list[str]] = field(default_factory=list)  # airflow commands before its own
    then: list[list[str]] = field(default_factory=list)  # airflow commands after its own
    # runs DAG authors' code (DAG files, triggers): started through foundation_sealed.py, under
    # the non-dumpable init (runtime_files.INIT_PROGRAM)
    sealed: bool = False
    # waits for the database and its migrations in its first airflow command's own process
    # (foundation_start.py), not in the image entrypoint's `airflow db check` (turned off)
    waits: bool = False


SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
WEB_PASSWORDS_ENV = "FOUNDATION_WEB_PASSWORDS"
PASSWORDS_FILE = "/opt/airflow/simple_auth_manager_passwords.json"
LDAP_ENV = "FOUNDATION_LDAP"
LDAP_BIND_ENV = "FOUNDATION_LDAP_BIND_PASSWORD"
DAG_ACCESS_ENV = "FOUNDATION_DAG_ACCESS"  # zlib+base64 JSON {dag_id: access_control}
DAG_ROLES_ENV = "FOUNDATION_DAG_ROLES"  # JSON list of the roles manifests name
ROLES_FILE = "/opt/airflow/foundation_roles.json"

# What each manifest access level gives its roles on that DAG (FAB's per-DAG resources). FAB
# lets a user create a run only with edit on the DAG, so trigger includes can_edit.
ACCESS_LEVELS = {
    "view": {"DAGs": ["can_read"]},
    "trigger": {"DAGs": ["can_read", "can_edit"], "DAG Runs": ["can_read", "can_create"]},
    "edit": {
        "DAGs": ["can_read", "can_edit", "can_delete"],
        "DAG Runs": ["can_read", "can_create"],
    },
}


def access_control(access: DagAccess | None) -> dict[str, dict[str, list[str]]]:
    """A manifest's access as the DAG's `access_control`: role -> resource -> actions."""
    out: dict[str, dict[str, set[str]]] = {}
    for level, resources in ACCESS_LEVELS.items():
        for role in getattr(access, level) if access else []:
            for resource, actions in resources.items():
                out.setdefault(role, {}).setdefault(resource, set()).update(actions)
    return {
        role: {resource: sorted(actions) for resource, actions in sorted(granted.items())}
        for role, granted in sorted(out.items())
    }


def packed(value: object) -> str:
    return base64.b64encode(zlib.compress(json.dumps(value, sort_keys=True).encode(), 9)).decode()


def _auth(
    deployment: Deployment, component: str, dag_access: dict[str, DagAccess]
) -> ComponentSettings:
    """The auth manager every component names (the dag-processor syncs FAB's DAG permissions),
    and the api-server's logins: simple auth's users with their passwords file written from
    Secrets Manager before start, or FAB's LDAP settings with the bind password."""
    auth = deployment.web.auth
    fab = isinstance(auth, FabAuth)
    settings = ComponentSettings(
        {"AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER if fab else SIMPLE_AUTH_MANAGER}
    )
    if component == "db-migrate" and fab:
        settings.then.append(["fab-db", "migrate"])
    if component == "dag-processor" and fab:
        settings.environment |= _dag_access(dag_access, settings)
        # grows with the DAGs: delivered once, not in the task definition
        settings.delivered[DAG_ACCESS_ENV] = settings.environment.pop(DAG_ACCESS_ENV)
    if component != "api-server":
        return settings
    if isinstance(auth, FabAuth):
        settings.environment |= {
            "AIRFLOW__FAB__CONFIG_FILE": f"{runtime_files.CONFIG_DIR}/"
            f"{runtime_files.WEBSERVER_CONFIG}",
            LDAP_ENV: auth.ldap.model_dump_json(),
        }
        settings.secrets[LDAP_BIND_ENV] = SecretRef("ldap_bind")
        return settings
    settings.environment |= {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{user}:{role}" for user, role in auth.users.items()
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": PASSWORDS_FILE,
    }
    settings.secrets[WEB_PASSWORDS_ENV] = SecretRef("web_passwords")
    settings.setup.append(runtime_files.WEB_SETUP)
    return settings


def api_base_url(deployment: Deployment) -> str:
    """Where task containers reach the Execution API: service discovery, not the public ALB."""
    return f"http://api-server.{deployment.namespace.dns_namespace}:{AIRFLOW_PORT}"


def git_connection_env(bundle: str) -> str:
    """The git bundle's Airflow connection, as an environment variable ECS fills."""
    return f"AIRFLOW_CONN_FOUNDATION_{bundle.upper()}_GIT"


def git_secret(bundle: str) -> str:
    """The SecretRef of a git bundle's credentials_secret."""
    return f"git:{bundle}"


def _bundle_config(deployment: Deployment, bundle: DagBundle) -> dict:
    if bundle.bundle == "git":
        kwargs = {"repo_url": bundle.url, "tracking_ref": bundle.branch}
        if bundle.credentials_secret:
            connection = git_connection_env(bundle.name).removeprefix("AIRFLOW_CONN_").lower()
            kwargs["git_conn_id"] = connection
        classpath = "airflow.providers.git.bundles.git.GitDagBundle"
    else:
        kwargs = {
            "bucket_name": deployment.dags_bucket,
            "prefix": bundle_prefix(bundle.name),
            "aws_conn_id": None,
        }
        classpath = "airflow.providers.amazon.aws.bundles.s3.S3DagBundle"
    return {"name": bundle.name, "classpath": classpath, "kwargs": kwargs}


def dag_bundles(deployment: Deployment, bundles: list[DagBundle]) -> str:
    """[dag_processor] dag_bundle_config_list: every bundle for the scheduler, api-server and
    triggerer (no credentials); its own alone for a bundle's dag-processor and a DAG's tasks."""
    return json.dumps([_bundle_config(deployment, bundle) for bundle in bundles])


def _bundle_secrets(bundles: list[DagBundle]) -> dict[str, SecretRef]:
    """Each git bundle's connection (a read-only deploy key, please)."""
    return {
        git_connection_env(b.name): SecretRef(git_secret(b.name))
        for b in bundles
        if b.credentials_secret
    }


def _with_bundles(
    deployment: Deployment, environment: dict[str, str], bundles: list[DagBundle]
) -> dict[str, str]:
    return {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": dag_bundles(deployment, bundles)
    } | environment


def _common(deployment: Deployment) -> dict[str, str]:
    return {
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_base_url(deployment)}/execution/",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": (
            f"s3://{deployment.logs_bucket}/{TASK_LOGS_ROOT.rstrip('/')}"
        ),
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "",
        "AWS_DEFAULT_REGION": deployment.region,
    }


def _with_database(settings: ComponentSettings, fernet: bool = True) -> ComponentSettings:
    settings.environment |= {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": SQL_ALCHEMY_CONN_CMD,
        DB_NAME_ENV: DB_NAME,
    }
    settings.secrets[DB_SECRET_ENV] = SecretRef("db")
    if fernet:
        settings.environment["AIRFLOW__CORE__FERNET_KEY_CMD"] = FERNET_KEY_CMD
        settings.secrets[FERNET_MATERIAL_ENV] = SecretRef("fernet")
    return settings


def _celery(deployment: Deployment) -> dict[str, str]:
    """Celery over SQS, results in DynamoDB: both authenticated by the task's role, so neither
    URL holds a credential and no worker ever holds the metadata database's."""
    table = deployment.namespace.celery_results_table
    return {
        "AIRFLOW__CELERY__BROKER_URL": "sqs://",
        "AIRFLOW__CELERY__RESULT_BACKEND": (
            f"dynamodb://@{deployment.region}/{table}?ttl_seconds={CELERY_RESULT_TTL_SECONDS}"
        ),
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG,
        "AIRFLOW__CELERY__WORKER_ENABLE_REMOTE_CONTROL": "False",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__REGION": deployment.region,
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(
            CELERY_VISIBILITY_SECONDS
        ),
    }


def _executor(deployment: Deployment) -> dict[str, str]:
    """Every component validates and shows executors by [core] executor; only the scheduler
    runs it (and Celery workers take their `airflow celery` commands from it)."""
    if deployment.celery:
        return {"AIRFLOW__CORE__EXECUTOR": CELERY_EXECUTOR, **_celery(deployment)}
    return {"AIRFLOW__CORE__EXECUTOR": ECS_EXECUTOR}


def _dag_access(dag_access: dict[str, DagAccess], settings: ComponentSettings) -> dict[str, str]:
    """The dag-processor applies each DAG's access (its dag_policy sets access_control, which
    FAB syncs after each parse) and first creates the roles it names, with the permissions a
    DAG-scoped role needs besides its DAGs' (`airflow roles import` skips existing roles)."""
    roles = sorted({role for access in dag_access.values() for role in access.roles()})
    environment = {
        DAG_ACCESS_ENV: packed(
            {dag_id: access_control(access) for dag_id, access in sorted(dag_access.items())}
        )
    }
    if roles:
        # sync-perm first: FAB's resources exist before roles are given permissions on them
        settings.setup.append(runtime_files.ROLES_SETUP)
        settings.before += [["sync-perm"], ["roles", "import", ROLES_FILE]]
        environment |= {DAG_ROLES_ENV: json.dumps(roles), "FOUNDATION_ROLES_FILE": ROLES_FILE}
    return environment


def cluster_component(
    deployment: Deployment,
    component: str,
    dag_access: dict[str, DagAccess] | None = None,
    bundle: DagBundle | None = None,
) -> ComponentSettings:
    """api-server, scheduler, dag-processor, triggerer and the one-off db-migrate task.
    `dag_access`: every manifest's access, by dag_id (FAB only). `bundle`: the one bundle a
    dag-processor parses (the deployment's every bundle when not given).

    The triggerer loads no DAG code (its trigger classes are installed; start_from_trigger
    tasks, which would need the serialized DAG, are refused), so it gets no bundle credentials.
    A dag-processor gets its own bundle's alone: one bundle's DAG files, at parse time, cannot
    fetch another's. It decrypts nothing of the cluster's, so it gets no Fernet material (see
    foundation_sealed.py). Both are sealed: they run DAG authors' code."""
    bundles = [bundle] if bundle else deployment.bundles
    credentials = {} if component == "triggerer" else _bundle_secrets(bundles)
    environment = _with_bundles(deployment, _common(deployment), bundles)
    settings = _with_database(
        ComponentSettings(environment, credentials), fernet=component != "dag-processor"
    )
    settings.sealed = component in SEALED_COMPONENTS
    if component != "db-migrate":  # a service's; the migration waits for the database alone
        settings.waits = True
        settings.environment["CONNECTION_CHECK_MAX_COUNT"] = "0"
    settings.environment |= {
        "FOUNDATION_PROJECT": deployment.name,
        "FOUNDATION_EXECUTOR": deployment.airflow.executor,
    }
    settings.delivered[runtime_files.RUNTIME_ENV] = runtime_files.archive(
        runtime_files.FOR_COMPONENTS[deployment.airflow.executor]
    )
    if deployment.iam.role_path != "/" or deployment.iam.role_name_prefix:
        settings.environment |= {
            "FOUNDATION_ROLE_PATH": deployment.iam.role_path,
            "FOUNDATION_ROLE_PREFIX": deployment.iam.role_name_prefix,
        }
    if component in ("api-server", "scheduler"):
        # The JWT signing key signs task tokens (scheduler) and checks them (api-server): it
        # never goes to a task container.
        settings.secrets["AIRFLOW__API_AUTH__JWT_SECRET"] = SecretRef("jwt")
    if component == "api-server":
        settings.secrets["AIRFLOW__API__SECRET_KEY"] = SecretRef("api")
        # the Execution API's guard on deferral (foundation_deferral.py)
        settings.environment["AIRFLOW__CORE__PLUGINS_FOLDER"] = runtime_files.PLUGINS_DIR
    if component in ("api-server", "triggerer"):
        # the exact classpaths a task may defer to: the api-server stores no deferral to any
        # other, the triggerer runs no other (foundation_sealed.py)
        settings.environment[TRIGGERS_ENV] = json.dumps(deployment.airflow.deferrable_triggers)
    settings.environment |= _executor(deployment)
    if component == "triggerer":
        # Its role holds no AWS permission at all (no trigger may act on AWS as anyone), so it
        # uploads no trigger logs to the task-log bucket.
        settings.environment["AIRFLOW__LOGGING__REMOTE_LOGGING"] = "False"
    auth = _auth(deployment, component, dag_access or {})
    settings.environment |= auth.environment
    settings.delivered |= auth.delivered
    settings.secrets |= auth.secrets
    settings.setup += auth.setup
    settings.before += auth.before
    settings.then += auth.then
    if component == "scheduler":
        settings.environment |= {
            "FOUNDATION_IDENTITY_PATH": deployment.namespace.identity_path,
            "FOUNDATION_UNMANAGED_DAGS": deployment.airflow.unmanaged_dags,
        }
    if component == "scheduler" and not deployment.celery:
        settings.environment |= {
            "AIRFLOW__AWS_ECS_EXECUTOR__CLUSTER": deployment.namespace.cluster,
            "AIRFLOW__AWS_ECS_EXECUTOR__CONTAINER_NAME": WORKER_CONTAINER,
            "AIRFLOW__AWS_ECS_EXECUTOR__LAUNCH_TYPE": "FARGATE",
            "AIRFLOW__AWS_ECS_EXECUTOR__REGION_NAME": deployment.region,
            "AIRFLOW__AWS_ECS_EXECUTOR__ASSIGN_PUBLIC_IP": "False",
        }
    return settings


def ecs_executor_network(subnet_ids: list[str], workers_security_group: str) -> dict[str, str]:
    """The scheduler's defaults for RunTask, known only in the stack (ids after deploy): the
    subnets, and the shared workers security group every task gets besides its DAG's own."""
    return {
        "AIRFLOW__AWS_ECS_EXECUTOR__SUBNETS": ",".join(subnet_ids),
        "AIRFLOW__AWS_ECS_EXECUTOR__SECURITY_GROUPS": workers_security_group,
    }


def _task_container(deployment: Deployment, bundles: list[DagBundle]) -> dict[str, str]:
    environment = _with_bundles(deployment, _common(deployment), bundles)
    environment["CONNECTION_CHECK_MAX_COUNT"] = "0"
    if deployment.celery:
        # `airflow celery worker` is the provider's, so it names the provider's executor, not
        # the scheduler's subclass.
        environment |= _executor(deployment) | {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    return environment


def task_delivered(deployment: Deployment) -> dict[str, str]:
    """What every task container gets delivered: a Celery worker service unpacks its Celery
    settings itself, the same for every DAG's (once in the cluster, not in each task
    definition)."""
    if not deployment.celery:
        return {}
    return {runtime_files.RUNTIME_ENV: runtime_files.archive(runtime_files.FOR_CELERY_WORKERS)}


def _task_settings(
    deployment: Deployment, environment: dict[str, str], bundles: list[DagBundle]
) -> ComponentSettings:
    """A task container's: its bundles' credentials and what task containers get delivered."""
    return ComponentSettings(
        environment, _bundle_secrets(bundles), delivered=task_delivered(deployment)
    )


def celery_worker_queue(queue_url: str, names: DagNames) -> dict[str, str]:
    """The one queue a DAG's Celery worker may consume (known only in the stack: its URL)."""
    return {
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__PREDEFINED_QUEUES": json.dumps(
            {names.queue: {"url": queue_url}}
        )
    }


def celery_worker_command(names: DagNames, concurrency: int) -> list[str]:
    """`airflow celery worker` on the DAG's own queue: no log server (logs go to S3), and no
    mingle or gossip (SQS has no broadcast)."""
    return [
        "celery",
        "worker",
        "--queues",
        names.queue,
        "--concurrency",
        str(concurrency),
        "--skip-serve-logs",
        "--without-mingle",
        "--without-gossip",
    ]


def dag_worker(deployment: Deployment, dag_id: str, bundle: str | None = None) -> ComponentSettings:
    """A task container of one DAG: no database credentials, no signing key; its manifest's
    bundle (`bundle`, or the deployment's only one) and that bundle's credentials alone."""
    bundles = [deployment.bundle_named(deployment.bundle_of(bundle))]
    prefix = deployment.namespace.dag_secrets_prefix(dag_id)
    backend_kwargs = {
        "connections_prefix": f"{prefix}connections",
        "variables_prefix": f"{prefix}variables",
        "config_prefix": None,
    }
    environment = _task_container(deployment, bundles) | {
        "AIRFLOW__WORKERS__SECRETS_BACKEND": (
            "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
        ),
        "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": json.dumps(backend_kwargs),
    }
    if deployment.celery:
        environment[WORKER_DAG_ENV] = dag_id
    return _task_settings(deployment, environment, bundles)


def unmanaged_worker(deployment: Deployment) -> ComponentSettings:
    """Task containers of DAGs without a manifest: no secrets backend, no grants (one bundle
    only: config refuses baseline with several)."""
    bundles = deployment.bundles
    environment = _task_container(deployment, bundles)
    if deployment.celery:
        environment[UNMANAGED_WORKER_ENV] = "true"
    return _task_settings(deployment, environment, bundles)
