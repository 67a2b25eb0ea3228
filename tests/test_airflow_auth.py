"""The api-server's logins with real Airflow: simple auth's users and passwords from the secret
(the same file on every api-server task, no password ever printed), and FAB with LDAP from the
generated webserver_config.py (under the real FAB provider and python-ldap).

A live directory is opt-in: set FOUNDATION_LDAP_TEST_SERVER (ldaps://host), _BIND_USER,
_BIND_PASSWORD, _SEARCH, _USER and _PASSWORD to log a real user in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from foundation.airflow import runtime_files, settings
from foundation.config import Deployment
from foundation.manifest import DagAccess
from foundation.project import load_project
from tests.airflow_scenarios import airflow_environment, local_bundle
from tests.conftest import ROOT

EXAMPLE = load_project(ROOT).deployment
PASSWORDS = {"alice": "correct horse battery staple", "bob": "Tr0ub4dor&3"}
LDAP = {
    "server": "ldaps://ldap.invalid:636",
    "bind_user": "cn=airflow,ou=services,dc=example,dc=com",
    "bind_password_secret": "acme/ldap-bind",
    "search": "ou=people,dc=example,dc=com",
    "search_filter": "(objectClass=person)",
    "uid_field": "sAMAccountName",
    "roles_mapping": {
        "cn=airflow-admins,ou=groups,dc=example,dc=com": ["Admin"],
        "cn=sales,ou=groups,dc=example,dc=com": ["sales-analysts", "Viewer"],
    },
}
BIND_PASSWORD = "bind-secret-value"


def with_auth(auth: dict) -> Deployment:
    data = EXAMPLE.model_dump()
    data["web"] = data["web"] | {"auth": auth}
    return Deployment.model_validate(data)


def api_server_environment(deployment: Deployment, home: Path) -> dict[str, str]:
    """The api-server's generated environment, its files under a temporary AIRFLOW_HOME
    instead of /opt/airflow."""
    component = settings.cluster_component(deployment, "api-server").environment
    config = str(home / "config")
    here = {k: v.replace(runtime_files.CONFIG_DIR, config) for k, v in component.items()}
    dags = home / "dags"
    env = airflow_environment(here, home, dags, [local_bundle(dags)], EXAMPLE.region)
    return env | {"AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins-none")}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def simple_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("simple_auth")
    runtime_files.write(home / "config", "ecs")
    deployment = with_auth(
        {
            "manager": "simple",
            "users": {"alice": "admin", "bob": "viewer"},
            "passwords_secret": "acme/airflow-web",
        }
    )
    (home / "dags").mkdir()
    env = api_server_environment(deployment, home)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(home / "passwords.json")
    return home, env


def setup_step(home: Path, env: dict[str, str], secret: dict) -> subprocess.CompletedProcess:
    """The api-server container's setup program, as its command runs it."""
    program = home / "config" / runtime_files.WEB_SETUP
    return run(
        [sys.executable, str(program)], env | {settings.WEB_PASSWORDS_ENV: json.dumps(secret)}
    )


def test_every_user_needs_a_password_and_none_is_printed(simple_home) -> None:
    home, env = simple_home
    done = setup_step(home, env, {"alice": PASSWORDS["alice"]})
    assert done.returncode != 0
    assert "no password for: bob" in done.stderr
    assert PASSWORDS["alice"] not in done.stdout + done.stderr
    assert not (home / "passwords.json").exists()


@pytest.fixture(scope="module")
def simple_logins(simple_home) -> dict:
    home, env = simple_home
    done = setup_step(home, env, PASSWORDS | {"mallory": "not configured"})
    assert done.returncode == 0, done.stderr
    written = home / "passwords.json"
    assert json.loads(written.read_text()) == PASSWORDS, "exactly the configured users"
    assert written.stat().st_mode & 0o777 == 0o600
    logins = [
        {"username": "alice", "password": PASSWORDS["alice"]},
        {"username": "alice", "password": PASSWORDS["bob"]},
        {"username": "bob", "password": PASSWORDS["bob"]},
        {"username": "mallory", "password": "not configured"},
    ]
    (home / "logins.json").write_text(json.dumps(logins))
    scenario = [sys.executable, "-m", "tests.airflow_scenarios.web_auth", "simple"]
    done = run([*scenario, str(home / "logins.json"), str(home / "dags")], env)
    assert done.returncode == 0, done.stderr[-10000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"output": done.stdout + done.stderr}


def test_configured_users_log_in_with_the_secrets_passwords(simple_logins: dict) -> None:
    by_attempt = [
        (x["username"], x["status"], x.get("dags_status")) for x in simple_logins["logins"]
    ]
    assert by_attempt == [
        ("alice", 201, 200),
        ("alice", 401, None),
        ("bob", 201, 200),
        ("mallory", 401, None),
    ]


def test_no_password_is_generated_or_printed(simple_logins: dict) -> None:
    output = simple_logins["output"]
    assert not any(password in output for password in PASSWORDS.values())
    assert "Password for user" not in output  # what SimpleAuthManager prints when it generates


def test_the_api_server_runs_the_setup_before_airflow() -> None:
    deployment = with_auth({"manager": "simple"})
    api = settings.cluster_component(deployment, "api-server")
    assert api.setup == [runtime_files.WEB_SETUP]
    assert api.secrets[settings.WEB_PASSWORDS_ENV].secret == "web_passwords"
    assert api.environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    command = runtime_files.container_command([["api-server"]], setup=tuple(api.setup))[-1]
    *_, web, last = command.split(" && ")
    assert web == f"python {runtime_files.CONFIG_DIR}/foundation_web.py"
    assert last == (
        f"exec python {runtime_files.CONFIG_DIR}/{runtime_files.START} "
        "--wait-for-migrations 3600 api-server"
    )
    for component in ("scheduler", "dag-processor", "triggerer"):
        other = settings.cluster_component(deployment, component)
        assert settings.WEB_PASSWORDS_ENV not in other.secrets and not other.setup


@pytest.fixture(scope="module")
def fab_app(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("fab_auth")
    runtime_files.write(home / "config", "ecs")
    deployment = with_auth({"manager": "fab", "ldap": LDAP})
    env = api_server_environment(deployment, home) | {settings.LDAP_BIND_ENV: BIND_PASSWORD}
    for migrate in (["db", "migrate"], ["fab-db", "migrate"]):
        done = run([sys.executable, "-m", "airflow", *migrate], env)
        assert done.returncode == 0, done.stderr[-10000:]
    done = run([sys.executable, "-m", "tests.airflow_scenarios.web_auth", "fab"], env)
    assert done.returncode == 0, done.stderr[-10000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_generated_webserver_config_configures_ldap_as_asked(fab_app: dict) -> None:
    config = fab_app["config"]
    assert config["AUTH_TYPE"] == fab_app["security_manager_auth_type"] == 2  # AUTH_LDAP
    assert config["AUTH_LDAP_SERVER"] == LDAP["server"]
    assert config["AUTH_LDAP_BIND_USER"] == LDAP["bind_user"]
    assert config["AUTH_LDAP_BIND_PASSWORD"] == BIND_PASSWORD
    assert config["AUTH_LDAP_SEARCH"] == LDAP["search"]
    assert config["AUTH_LDAP_SEARCH_FILTER"] == LDAP["search_filter"]
    assert config["AUTH_LDAP_UID_FIELD"] == "sAMAccountName"
    assert config["AUTH_LDAP_GROUP_FIELD"] == "memberOf"
    assert config["AUTH_ROLES_MAPPING"] == LDAP["roles_mapping"]
    assert config["AUTH_ROLES_SYNC_AT_LOGIN"] is True
    assert config["AUTH_USER_REGISTRATION_ROLE"] == "Public"
    assert (config["AUTH_LDAP_ALLOW_SELF_SIGNED"], config["AUTH_LDAP_TLS_DEMAND"]) == (False, True)


def test_an_unreachable_directory_refuses_the_login(fab_app: dict) -> None:
    assert fab_app["ldap_login_against_unreachable_server"] is False


def test_the_bind_password_is_a_secret_not_a_setting() -> None:
    deployment = with_auth({"manager": "fab", "ldap": LDAP})
    api = settings.cluster_component(deployment, "api-server")
    assert api.secrets[settings.LDAP_BIND_ENV].secret == "ldap_bind"
    assert "bind-secret" not in json.dumps(api.environment)
    assert (
        json.loads(api.environment[settings.LDAP_ENV])["bind_password_secret"] == "acme/ldap-bind"
    )
    migrate = settings.cluster_component(deployment, "db-migrate")
    assert migrate.then == [["fab-db", "migrate"]]
    for component in ("scheduler", "dag-processor"):
        env = settings.cluster_component(deployment, component).environment
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == settings.FAB_AUTH_MANAGER


@pytest.mark.skipif(
    not os.environ.get("FOUNDATION_LDAP_TEST_SERVER"),
    reason="set FOUNDATION_LDAP_TEST_SERVER (and the other FOUNDATION_LDAP_TEST_*) to log in",
)
def test_a_user_logs_in_against_a_live_directory(tmp_path: Path) -> None:
    live = {
        key: os.environ[f"FOUNDATION_LDAP_TEST_{key.upper()}"]
        for key in ("server", "bind_user", "search")
    }
    deployment = with_auth(
        {"manager": "fab", "ldap": {**live, "bind_password_secret": "live/ldap-bind"}}
    )
    runtime_files.write(tmp_path / "config", "ecs")
    env = api_server_environment(deployment, tmp_path)
    env[settings.LDAP_BIND_ENV] = os.environ["FOUNDATION_LDAP_TEST_BIND_PASSWORD"]
    for migrate in (["db", "migrate"], ["fab-db", "migrate"]):
        assert run([sys.executable, "-m", "airflow", *migrate], env).returncode == 0
    program = (
        "import sys;from airflow.providers.fab.www.app import create_app;"
        "app=create_app(enable_plugins=False);ctx=app.app_context();ctx.push();"
        "sys.exit(0 if app.appbuilder.sm.auth_user_ldap(sys.argv[1],sys.argv[2]) else 1)"
    )
    user, password = (os.environ[f"FOUNDATION_LDAP_TEST_{k}"] for k in ("USER", "PASSWORD"))
    assert run([sys.executable, "-c", program, user, password], env).returncode == 0


ACCESS = {"sales_daily": DagAccess(view=["sales-analysts"], trigger=["sales-oncall"])}


@pytest.fixture(scope="module")
def dag_access(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("dag_access")
    dags = home / "dags"
    runtime_files.write(home / "config", "ecs")
    deployment = with_auth({"manager": "fab", "ldap": LDAP})
    component = settings.cluster_component(deployment, "dag-processor", ACCESS)
    env = api_server_environment(deployment, home) | {
        k: v for k, v in component.environment.items() if k.startswith("FOUNDATION_")
    }
    # the DAG access map, as the container has it once its parts are joined
    env[settings.DAG_ACCESS_ENV] = component.delivered[settings.DAG_ACCESS_ENV]
    dags.mkdir()
    env |= {
        settings.LDAP_BIND_ENV: BIND_PASSWORD,
        "FOUNDATION_ROLES_FILE": str(home / "roles.json"),
    }
    # the dag-processor container's command: migrations, its setup program, then its airflow
    # commands before the dag-processor itself
    for migrate in (["db", "migrate"], ["fab-db", "migrate"]):
        assert run([sys.executable, "-m", "airflow", *migrate], env).returncode == 0
    for program in component.setup:
        done = run([sys.executable, str(home / "config" / program)], env)
        assert done.returncode == 0, done.stderr
    for before in component.before:
        before = [str(home / "roles.json") if a == settings.ROLES_FILE else a for a in before]
        done = run([sys.executable, "-m", "airflow", *before], env)
        assert done.returncode == 0, done.stdout + done.stderr
    done = run([sys.executable, "-m", "tests.airflow_scenarios.web_auth", "access", str(dags)], env)
    assert done.returncode == 0, done.stderr[-10000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_manifest_roles_are_created_before_the_dag_processor_starts(dag_access: dict) -> None:
    assert {"sales-analysts", "sales-oncall"} <= set(dag_access["roles"])


def test_each_role_reaches_exactly_the_dags_its_manifests_name(dag_access: dict) -> None:
    allowed = dag_access["authorized"]
    # view: read only, though the DAG file asked for edit
    assert allowed["ann:sales_daily"] == {"read": True, "trigger": False, "delete": False}
    # trigger: read and create runs
    assert allowed["otto:sales_daily"] == {"read": True, "trigger": True, "delete": False}
    for user in ("ann", "otto"):
        assert allowed[f"{user}:finance_close"] == {
            "read": False,
            "trigger": False,
            "delete": False,
        }
    # Airflow's own Viewer still reads every DAG
    assert allowed["vic:finance_close"]["read"] and not allowed["vic:finance_close"]["trigger"]


def fab_project(project) -> None:
    config = project.root / "config" / "foundation.yaml"
    ldap = "\n".join(
        [
            "  auth:",
            "    manager: fab",
            "    ldap:",
            "      server: ldaps://ldap.example.com",
            "      bind_user: cn=airflow,ou=services,dc=example,dc=com",
            "      bind_password_secret: platform/ldap-bind",
            "      search: ou=people,dc=example,dc=com",
            "      roles_mapping: {'cn=sales,ou=groups,dc=example,dc=com': [sales-analysts]}",
        ]
    )
    config.write_text(
        config.read_text().replace(
            "  allowed_cidrs: [10.0.0.0/8]\n", "  allowed_cidrs: [10.0.0.0/8]\n" + ldap + "\n"
        )
    )
    manifest = project.root / "dag_permissions" / "sales_daily.yaml"
    manifest.write_text(
        manifest.read_text() + "access: {view: [sales-analysts], trigger: [sales-oncall]}\n"
    )


def test_a_fab_deployment_synthesizes_with_each_dags_access(project) -> None:
    import base64
    import zlib

    fab_project(project)
    result = project.run("synth")
    assert result.exit_code == 0, result.stderr
    core = json.loads((project.root / "cdk.out" / "acme-airflow-core.template.json").read_text())
    containers = {
        t["Properties"]["Family"]: t["Properties"]["ContainerDefinitions"][0]
        for t in core["Resources"].values()
        if t["Type"] == "AWS::ECS::TaskDefinition"
    }
    processor = containers["acme-airflow--dag-processor"]
    env = {e["Name"]: e["Value"] for e in processor["Environment"]}
    assert settings.DAG_ACCESS_ENV not in env  # delivered once, in SSM parameters
    by_arn = {  # the parameters core makes, by the literal ARN a task definition names
        f"arn:aws:ssm:us-east-1:111122223333:parameter{r['Properties']['Name']}": r
        for r in core["Resources"].values()
        if r["Type"] == "AWS::SSM::Parameter"
    }
    parts = [
        by_arn[s["ValueFrom"]]
        for s in processor["Secrets"]
        if s["Name"].startswith(f"{settings.DAG_ACCESS_ENV}_")
    ]
    packed = "".join(p["Properties"]["Value"] for p in parts)
    access = json.loads(zlib.decompress(base64.b64decode(packed)))
    assert access == {
        "sales_daily": {
            "sales-analysts": {"DAGs": ["can_read"]},
            "sales-oncall": {
                "DAGs": ["can_edit", "can_read"],
                "DAG Runs": ["can_create", "can_read"],
            },
        }
    }
    assert json.loads(env[settings.DAG_ROLES_ENV]) == ["sales-analysts", "sales-oncall"]
    command = containers["acme-airflow--dag-processor"]["Command"][-1]
    *_, sync, roles, last = command.split(" && ")
    config = runtime_files.CONFIG_DIR
    assert sync == f"python {config}/{runtime_files.START} --wait-for-migrations 3600 sync-perm"
    assert roles == f"airflow roles import {settings.ROLES_FILE}"
    assert last == f"exec python {config}/{runtime_files.SEALED} dag-processor"
    api_secrets = {
        s["Name"]: s["ValueFrom"] for s in containers["acme-airflow--api-server"]["Secrets"]
    }
    assert "platform/ldap-bind" in json.dumps(api_secrets[settings.LDAP_BIND_ENV])
    assert (
        "db migrate && exec airflow fab-db migrate"
        in containers["acme-airflow--db-migrate"]["Command"][-1]
    )


def test_airflow_builtin_roles_are_refused_in_a_manifests_access(project) -> None:
    fab_project(project)
    manifest = project.root / "dag_permissions" / "housekeeping.yaml"
    manifest.write_text(manifest.read_text() + "access: {view: [Viewer]}\n")
    result = project.run("validate")
    assert result.exit_code == 2
    assert "housekeeping.yaml" in result.stderr and "access.view[0]" in result.stderr
    assert "'Viewer' is one of Airflow's own roles" in result.stderr
