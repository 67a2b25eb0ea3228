"""The Execution API answers a task only about its own DAG: the attack matrix on real Airflow.

The scenario (tests/airflow_scenarios/execution_api.py) runs once, in its own process: the
api-server's app as `airflow api-server` builds it, with the api-server's environment from
foundation.airflow.settings and the runtime files in its plugins folder, exactly as shipped.
Tokens are the scheduler's (each workload's, from the executor's generator), swapped for the
task's execution token by starting it through the Execution API, as a worker does. dag_b's task
attacks dag_a; dag_a's tasks do what tasks do with their own DAG. Every call is compared with
its exact status and body, and the database afterwards with exactly what the DAGs' own tasks
wrote.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from foundation.airflow import runtime_files, settings
from foundation.project import load_project
from tests.airflow_scenarios import airflow_environment, local_bundle, run_scenario
from tests.conftest import ROOT

DEPLOYMENT = load_project(ROOT).deployment
PASSWORD = "admin-password"
# What the api-server's environment holds when the DAG bundle is a git repository with a key
# (an ECS secret, AIRFLOW_CONN_FOUNDATION_DAGS_GIT), and a Variable an operator might put there.
GIT_CONNECTION = {"conn_type": "git", "host": "git@example.com:acme/dags.git", "password": "key"}
ADDED_ROUTE = "/added-by-a-later-airflow"


def api_server_environment() -> dict[str, str]:
    env = settings.cluster_component(DEPLOYMENT, "api-server").environment
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == runtime_files.PLUGINS_DIR
    return env


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    dags = home / "dags"
    dags.mkdir()
    runtime_files.write(home / "config", DEPLOYMENT.airflow.executor)
    env = airflow_environment(
        api_server_environment(), home, dags, [local_bundle(dags)], DEPLOYMENT.region
    )
    # The passwords file foundation_web.py writes from Secrets Manager before the api-server
    # starts, with the configured user (web.auth users: {admin: admin}).
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    env |= {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "config" / "plugins"),
        settings.git_connection_env("dags"): json.dumps(GIT_CONNECTION),
        "AIRFLOW_VAR_CLUSTER_ONLY": "the cluster's",
    }
    inputs = home / "inputs.json"
    inputs.write_text(json.dumps({"admin_password": PASSWORD}))
    return run_scenario("execution_api", inputs, env)


def refused(message: str) -> tuple[int, dict]:
    return 403, {"detail": {"reason": "foundation", "message": message}}


NOT_ITS_DAG = refused("DAG 'dag_a' is not this task's: the token is a task of DAG 'dag_b'")
XCOM_SET = (201, {"message": "XCom successfully set"})


def expected(r2: str, ti: dict[str, str]) -> dict[str, tuple[int, object]]:
    """Each call's exact status and body (r2: dag_a's second run; ti: each task instance's id)."""
    b_writes = (
        f"a task writes only its own XComs: the token is dag_b/b_run/attack/-1, not dag_a/{r2}"
    )
    shared = "is refused to tasks: "
    return {
        # dag_a's tasks, with their own DAG's XComs: pushes, pulls across tasks, runs and map
        # indexes, as the SDK makes them
        "own xcom write": XCOM_SET,
        "own xcom write, key only in run 1": XCOM_SET,
        "own xcom write, run 2": XCOM_SET,
        "own mapped xcom write 0": XCOM_SET,
        "own mapped xcom write 1": XCOM_SET,
        "own mapped xcom write 2": XCOM_SET,
        "own dag xcom read, upstream task": (200, {"key": "return_value", "value": "a-2"}),
        "own dag xcom read, another run": (200, {"key": "return_value", "value": "a-1"}),
        "own dag xcom read, include_prior_dates": (200, {"key": "first", "value": "from run 1"}),
        "own dag mapped xcom count": (200, None),
        "own dag mapped xcom item": (200, 2),
        "own dag mapped xcom slice": (200, [1, 2, 3]),
        "own xcom write, consume": XCOM_SET,
        "own xcom delete": (200, {"message": "XCom with key: scratch successfully deleted."}),
        # a task writes only its own XComs, even in its own DAG
        "mapped xcom write of a sibling map index": refused(
            f"a task writes only its own XComs: the token is dag_a/{r2}/fan/1, not dag_a/{r2}/fan/2"
        ),
        "own dag xcom write of another task": refused(
            f"a task writes only its own XComs: the token is dag_a/{r2}/consume/-1, not"
            f" dag_a/{r2}/produce/-1"
        ),
        # its own DAG's runs, and itself
        "own dag trigger": (204, None),
        "own dag run clear": (204, None),
        "own dag": (
            200,
            {
                "dag_id": "dag_b",
                "is_paused": False,
                "bundle_name": "dags-folder",
                "bundle_version": None,
                "relative_fileloc": "dag_b.py",
                "owners": "airflow",
                "tags": [],
                "next_dagrun": None,
            },
        ),
        "own heartbeat": (204, None),
        # dag_b against dag_a's XComs
        "xcom read of another dag": NOT_ITS_DAG,
        "xcom write of another dag": refused(f"{b_writes}/produce/-1"),
        "xcom delete of another dag": refused(f"{b_writes}/produce/-1"),
        "mapped xcom count of another dag": (403, None),  # HEAD: no body
        "mapped xcom item of another dag": NOT_ITS_DAG,
        "mapped xcom slice of another dag": NOT_ITS_DAG,
        # Variables: read, never written
        "variable set": refused(
            "PUT /execution/variables/{variable_key:path} "
            + shared
            + "a DAG would plant input another DAG's tasks render"
        ),
        "variable create": refused(
            "PUT /execution/variables/{variable_key:path} "
            + shared
            + "a DAG would plant input another DAG's tasks render"
        ),
        "variable delete": refused(
            "DELETE /execution/variables/{variable_key:path} "
            + shared
            + "a DAG would remove input another DAG's tasks render"
        ),
        "variable get": (200, {"key": "shared_threshold", "value": "10"}),
        "variable keys": (200, {"keys": ["shared_threshold"], "total_entries": 1}),
        "variable of the api-server's environment": refused(
            "variable 'cluster_only' is the api-server's own"
        ),
        # connections: dag_a's own is in Secrets Manager, which the api-server cannot read
        "connection of another dag": (
            404,
            {
                "detail": {
                    "reason": "not_found",
                    "message": "Connection with ID warehouse not found",
                }
            },
        ),
        "connection of the api-server's environment": refused(
            "connection 'foundation_dags_git' is the api-server's own"
        ),
        "shared connection": (
            200,
            {
                "conn_id": "shared_db",
                "conn_type": "postgres",
                "host": "db.internal",
                "schema": None,
                "login": None,
                "password": None,
                "port": None,
                "extra": None,
            },
        ),
        # dag_b against dag_a's runs and task instances
        "trigger another dag": NOT_ITS_DAG,
        "clear another dag's run": NOT_ITS_DAG,
        "run detail of another dag": NOT_ITS_DAG,
        "previous run of another dag": NOT_ITS_DAG,
        "another dag": NOT_ITS_DAG,
        "previous task instance of another dag": NOT_ITS_DAG,
        "breadcrumbs of another dag": NOT_ITS_DAG,
        "mark another task instance failed": refused(
            f"the token is task instance {ti['b']}, not {ti['a produce 2']}"
        ),
        "heartbeat of another task instance": refused(
            f"the token is task instance {ti['b']}, not {ti['a produce 2']}"
        ),
        # states and counts of any DAG (ExternalTaskSensor): its 6 started task instances
        "task instance count of another dag": (200, 6),
        "run state of another dag": (200, {"state": "queued"}),
        # routes no task may use
        "asset state store write": refused(
            "PUT /execution/store/asset/by-name/value "
            + shared
            + "an asset's store has no owner: any DAG may name any asset (Airflow's own TODO,"
            " AIP-103)"
        ),
        "connection test": refused(
            "GET /execution/connection-tests/{connection_test_id}/connection "
            + shared
            + "the executors refuse connection-test workloads; no task has one"
        ),
        "unknown route": refused(
            "GET /execution/nope is not on airflow-foundation's Execution API allow-list"
        ),
        "api docs": refused(
            "GET /execution/openapi.json is not on airflow-foundation's Execution API allow-list"
        ),
        "route added by a later airflow": refused(
            f"GET /execution{ADDED_ROUTE} is not on airflow-foundation's Execution API allow-list"
        ),
        # tokens that are not a task's execution token
        "workload token on an xcom": refused(
            "a 'workload' token may not call GET /xcoms/{dag_id}/{run_id}/{task_id}/{key:path}"
        ),
        "no token": refused("a task token (Authorization: Bearer) is required"),
        "forged token": refused("invalid task token (InvalidSignatureError)"),
        "a user's rest api token": refused("invalid task token (InvalidAudienceError)"),
        "health": (200, {"status": "healthy"}),
    }


CALLS = list(expected("", defaultdict(str)))


@pytest.mark.parametrize("name", CALLS)
def test_each_call_gets_exactly_its_answer(observed: dict, name: str) -> None:
    ids = {name: ti["id"] for name, ti in observed["task_instances"].items()}
    status, body = expected(observed["runs"]["a2"], ids)[name]
    call = observed["calls"][name]
    assert (call["status"], call["body"]) == (status, body)


def test_every_call_of_the_scenario_is_checked(observed: dict) -> None:
    assert sorted(observed["calls"]) == sorted([*CALLS, "own dag run detail"])


def test_the_shipped_plugins_are_what_the_api_server_loads(observed: dict) -> None:
    assert observed["plugin_errors"] == {}
    assert {
        name: re.sub(r".*/config/", "", path) for name, path in observed["plugins"].items()
    } == {
        "foundation_deferral": runtime_files.DEFERRAL_PLUGIN,
        "foundation_execution_api": runtime_files.EXECUTION_API_PLUGIN,
    }


def test_a_task_reads_its_own_dags_run_with_its_conf(observed: dict) -> None:
    call = observed["calls"]["own dag run detail"]
    assert call["status"] == 200
    body = call["body"]
    assert (body["dag_id"], body["run_id"], body["conf"]) == (
        "dag_a",
        "a_run_1",
        {"password": "a's"},
    )


def test_a_mapped_upstreams_length_is_counted_in_its_own_dag(observed: dict) -> None:
    assert observed["calls"]["own dag mapped xcom count"]["content_range"] == "map_indexes 3"


def test_nothing_of_dag_a_changed_but_what_its_own_tasks_wrote(observed: dict) -> None:
    r1, r2 = observed["runs"]["a1"], observed["runs"]["a2"]
    assert observed["xcoms"] == [
        ["dag_a", r1, "produce", -1, "first", "from run 1"],
        ["dag_a", r1, "produce", -1, "return_value", "a-1"],
        ["dag_a", r2, "fan", 0, "return_value", 1],
        ["dag_a", r2, "fan", 1, "return_value", 2],
        ["dag_a", r2, "fan", 2, "return_value", 3],
        ["dag_a", r2, "produce", -1, "return_value", "a-2"],
    ]
    # no Variable planted, none changed or deleted
    assert observed["variables"] == {"shared_threshold": "10"}
    # no run of dag_a planted; only dag_b's own trigger made one
    assert [run[:2] for run in observed["dag_runs"]] == [
        ["dag_a", r1],
        ["dag_a", r2],
        ["dag_b", "b_run"],
        ["dag_b", "b_self_run"],
    ]
    # dag_a's started task instances still run: none failed, none cleared
    running = [t[:4] for t in observed["task_instance_states"] if t[4] == "running"]
    assert running == [
        ["dag_a", r1, "produce", -1],
        ["dag_a", r2, "consume", -1],
        ["dag_a", r2, "fan", 0],
        ["dag_a", r2, "fan", 1],
        ["dag_a", r2, "fan", 2],
        ["dag_a", r2, "produce", -1],
        ["dag_b", "b_run", "attack", -1],
    ]


def test_the_allow_list_names_every_route_of_the_execution_api_and_no_other(
    observed: dict,
) -> None:
    """Airflow 3.3.2's Execution API, in all its API versions, route for route; the route the
    scenario added as a later Airflow would is the only one missing, and is refused above."""
    listed = sorted([method, path] for method, path, _, _ in observed["allow_list"])
    served = [route for route in observed["routes"] if route != ["GET", ADDED_ROUTE]]
    assert listed == served
    assert ["GET", ADDED_ROUTE] in observed["routes"]


def test_the_readme_lists_every_route_with_its_decision(observed: dict) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Execution API: every route", 1)[1].split("\n#", 1)[0]
    rows = [
        line for line in section.splitlines() if line.startswith("| `") and "`/execution" in line
    ]
    assert rows == [
        f"| `{method}` | `/execution{path}` | {rule} | {why} |"
        for method, path, rule, why in observed["allow_list"]
    ]


def test_the_api_server_has_no_secrets_backend_but_the_metadata_database() -> None:
    """Why the Execution API cannot serve a DAG's own connections and variables: the api-server
    reads none of Secrets Manager (the workers' backend reads each DAG's prefix)."""
    env = api_server_environment()
    assert not [k for k in env if k.startswith(("AIRFLOW__SECRETS__", "AIRFLOW__WORKERS__"))]
    worker = settings.dag_worker(DEPLOYMENT, "sales_daily").environment
    assert json.loads(worker["AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS"]) == {
        "connections_prefix": "acme-airflow/dags/sales_daily/connections",
        "variables_prefix": "acme-airflow/dags/sales_daily/variables",
        "config_prefix": None,
    }
