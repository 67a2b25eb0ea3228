"""Real Airflow enforces each DAG's identity: the scheduler, the REST API, clearing, mapped-task
expansion and deadline callbacks all end in a RunTask with the DAG's own task definition, task
role and security groups, whatever the DAG file asked for; a DAG without a manifest, or a dag_id
from a bundle other than its manifest's, never reaches ECS.

The scenario (tests/airflow_scenarios/enforcement.py) runs once, in its own process, with
apache-airflow-core, the amazon provider and the runtime files exactly as the scheduler gets
them; the tests below assert on the observations it prints.
"""

from __future__ import annotations

import json

import pytest

from foundation.airflow import runtime_files, settings
from foundation.naming import DagNames, Namespace
from foundation.project import load_project
from tests.airflow_scenarios import airflow_environment, local_bundle, run_scenario
from tests.conftest import ROOT

DEPLOYMENT = load_project(ROOT).deployment
PROJECT = DEPLOYMENT.name
NS = Namespace(PROJECT)
BUNDLE = "dags-folder"
WORKERS_SG = "sg-0workers000000001"
CONFIG_SUBNETS = ["subnet-0config00000001", "subnet-0config00000002"]
MANAGED = ("dag_a", "dag_b")


def identity(dag_id: str, bundle: str) -> dict:
    """The SSM parameter value a worker stack publishes (stacks/constructs/dag_worker.py)."""
    names = DagNames(PROJECT, dag_id)
    return {
        "task_definition": names.task_family,
        "task_role_arn": f"arn:aws:iam::{DEPLOYMENT.account}:role{NS.dag_role_path}{names.role}",
        "security_groups": [f"sg-0{dag_id.replace('_', '')}0000000"],
        # The private subnets every worker stack gets; deliberately not the scheduler's
        # AIRFLOW__AWS_ECS_EXECUTOR__SUBNETS, so the assertions tell which one RunTask used.
        "subnets": ["subnet-0private000001", "subnet-0private000002"],
        "bundle": bundle,
    }


# Every published identity names the one bundle its DAG may come from (its manifest's, or the
# deployment's only one): dag_a's and dag_b's, the dags-folder bundle. dag_c has none.
IDENTITIES = {"dag_a": identity("dag_a", BUNDLE), "dag_b": identity("dag_b", BUNDLE)}
MALFORMED = '{"task_definition": '  # dag_d's parameter: cut short, as a bad write would leave it
STOLEN = {
    "taskDefinition": IDENTITIES["dag_a"]["task_definition"],
    "overrides": {"taskRoleArn": IDENTITIES["dag_a"]["task_role_arn"]},
}


def scheduler_environment() -> dict[str, str]:
    """The scheduler's environment from foundation.airflow.settings, plus the network defaults
    stacks/core.py adds, with made-up ids."""
    env = settings.cluster_component(DEPLOYMENT, "scheduler").environment
    assert env["AIRFLOW__CORE__EXECUTOR"] == settings.ECS_EXECUTOR
    return (
        env
        | settings.ecs_executor_network(CONFIG_SUBNETS, WORKERS_SG)
        | {
            # airflow.unmanaged_dags: refuse (the example's setting, pinned here for dag_c).
            "FOUNDATION_UNMANAGED_DAGS": "refuse",
        }
    )


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    dags, intruder = home / "dags", home / "intruder"
    dags.mkdir()
    intruder.mkdir()
    runtime_files.write(home / "config", "ecs")
    bundles = [local_bundle(dags, BUNDLE), local_bundle(intruder, "intruder")]
    env = airflow_environment(scheduler_environment(), home, dags, bundles, DEPLOYMENT.region)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    inputs = home / "inputs.json"
    inputs.write_text(
        json.dumps(
            {
                "dags_folder": str(dags),
                "intruder_folder": str(intruder),
                "stolen_executor_config": STOLEN,
                "parameters": {
                    NS.identity_parameter(d): json.dumps(i) for d, i in IDENTITIES.items()
                }
                | {NS.identity_parameter("dag_d"): MALFORMED},
            }
        )
    )
    return run_scenario("enforcement", inputs, env)


# -- helpers over the observations ---------------------------------------------------------------

EXECUTE_WORKLOAD = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string"]


def pinned(dag_id: str) -> dict:
    names = DagNames(PROJECT, dag_id)
    return {"foundation": {"task_definition": names.task_family, "task_role": names.role}}


def workload(call: dict) -> dict:
    [container] = call["kwargs"]["overrides"]["containerOverrides"]
    return json.loads(container["command"][-1])


def origin(call: dict) -> tuple:
    """(type, dag_id, task_id, map_index) of the workload a RunTask carries."""
    w = workload(call)
    if w["type"] == "ExecuteCallback":
        return ("ExecuteCallback", w["callback"]["data"]["dag_id"], None, None)
    return ("ExecuteTask", w["ti"]["dag_id"], w["ti"]["task_id"], w["ti"]["map_index"])


def ordered(origins) -> list[tuple]:
    return sorted(origins, key=lambda o: tuple(str(x) for x in o))


def sent(observed: dict, phase: str) -> list[tuple]:
    """What reached RunTask in one phase of the scenario."""
    return ordered(origin(c) for c in observed["run_task_calls"] if c["phase"] == phase)


def expected_run_task(dag_id: str, command: list[str]) -> dict:
    """Everything RunTask gets: the scheduler's ECS settings, the DAG's published identity."""
    published = IDENTITIES[dag_id]
    return {
        "cluster": PROJECT,  # the ECS cluster is named after the project
        "launchType": "FARGATE",
        "platformVersion": "LATEST",
        "count": 1,
        "propagateTags": "TASK_DEFINITION",
        "taskDefinition": DagNames(PROJECT, dag_id).task_family,
        "overrides": {
            "containerOverrides": [
                {
                    "name": settings.WORKER_CONTAINER,
                    "command": command,
                    "environment": [{"name": "AIRFLOW_IS_EXECUTOR_CONTAINER", "value": "true"}],
                }
            ],
            "taskRoleArn": published["task_role_arn"],
        },
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": published["subnets"],
                "securityGroups": [WORKERS_SG, *published["security_groups"]],
                "assignPublicIp": "DISABLED",
            }
        },
    }


def refusals(observed: dict, phase: str) -> list[str]:
    return [e["extra"] for e in observed["task_events"] if e["phase"] == phase]


# What a new run of each DAG sends first: dag_a's make_items and its literal-mapped `fixed`
# (`process` waits for make_items' XCom); dag_b's borrow and its deadline callback.
DAG_A_RUN = [("ExecuteTask", "dag_a", "fixed", i) for i in range(3)] + [
    ("ExecuteTask", "dag_a", "make_items", -1)
]
DAG_B_RUN = [("ExecuteCallback", "dag_b", None, None), ("ExecuteTask", "dag_b", "borrow", -1)]


# -- the tests ------------------------------------------------------------------------------------


def test_the_scheduler_runs_the_shipped_executor_and_cluster_policies(observed: dict) -> None:
    config = observed["executor"]["file"].rsplit("/", 2)[-2]
    assert observed["executor"]["class"] == settings.ECS_EXECUTOR
    assert config == "config" and observed["executor"]["healthy"]
    assert observed["local_settings_file"].endswith("/config/airflow_local_settings.py")
    # task_policy, at parse time, tells dag_b's author that executor_config is ignored.
    assert observed["policy_warnings"] == [
        f"dag_b.borrow: executor_config is ignored; tasks of this DAG run as its own identity"
        f" ({DagNames(PROJECT, 'dag_b').role})"
    ]


def test_every_run_task_carries_exactly_its_dags_published_identity(observed: dict) -> None:
    calls = observed["run_task_calls"]
    # scheduled 6, expanded 3, api_trigger 6, clear 1, hook_bypassed 2; each phase's own test
    # says which workloads they are.
    assert len(calls) == 18
    for call in calls:
        [container] = call["kwargs"]["overrides"]["containerOverrides"]
        command, w = container["command"], workload(call)
        assert command == [*EXECUTE_WORKLOAD, json.dumps(w, separators=(",", ":"))]
        assert w["bundle_info"]["name"] == BUNDLE and w["token"]
        _, dag_id, _, _ = origin(call)
        assert call["kwargs"] == expected_run_task(dag_id, command)


def test_dag_b_gets_nothing_of_dag_a(observed: dict) -> None:
    stolen = [
        IDENTITIES["dag_a"]["task_definition"],
        IDENTITIES["dag_a"]["task_role_arn"],
        *IDENTITIES["dag_a"]["security_groups"],
    ]
    dag_b_calls = [c for c in observed["run_task_calls"] if origin(c)[1] == "dag_b"]
    assert len(dag_b_calls) >= 6
    for call in dag_b_calls:
        text = json.dumps(call["kwargs"])
        assert not [s for s in stolen if s in text]
    # The cluster policy pins each DAG's own identity on every task instance Airflow creates or
    # clears (all but the one row written around it, in the hook_bypassed phase).
    bypassed = (observed["phases"]["hook_bypassed"]["run_id"], "borrow")
    for ti in observed["task_instances"]:
        if (ti["run_id"], ti["task_id"]) != bypassed:
            assert ti["executor_config"] == pinned(ti["dag_id"]), ti


def test_executor_config_naming_another_dags_identity_is_ignored_by_the_executor(
    observed: dict,
) -> None:
    """A task instance that missed the mutation hook reaches the executor still asking for
    dag_a's task definition and role; RunTask is dag_b's all the same."""
    phase = observed["phases"]["hook_bypassed"]
    [borrow] = [t for t in phase["at_queue"] if t["task_id"] == "borrow"]
    assert borrow["executor_config"] == STOLEN
    # The provider hands the executor the task instance's executor_config as it is.
    [handed] = [
        h
        for h in observed["handed_to_executor"]
        if h["phase"] == "hook_bypassed" and h["task_id"] == "borrow"
    ]
    assert handed["dag_id"] == "dag_b" and handed["executor_config"] == STOLEN
    [call] = [
        c
        for c in observed["run_task_calls"]
        if origin(c)[2] == "borrow" and workload(c)["ti"]["run_id"] == phase["run_id"]
    ]
    assert call["kwargs"]["taskDefinition"] == IDENTITIES["dag_b"]["task_definition"]
    assert call["kwargs"]["overrides"]["taskRoleArn"] == IDENTITIES["dag_b"]["task_role_arn"]


def test_runs_the_scheduler_creates(observed: dict) -> None:
    tis = observed["phases"]["scheduled"]["task_instances"]
    assert {(t["dag_id"], t["task_id"], t["map_index"]) for t in tis} >= {
        ("dag_a", "fixed", 0),
        ("dag_a", "fixed", 2),
        ("dag_b", "borrow", -1),
        ("dag_c", "unmanaged", -1),
    }
    assert all(t["executor_config"] == pinned(t["dag_id"]) for t in tis)
    assert sent(observed, "scheduled") == ordered(DAG_A_RUN + DAG_B_RUN)


def test_runs_triggered_through_the_rest_api(observed: dict) -> None:
    phase = observed["phases"]["api_trigger"]
    # Task instances exist as soon as the API returns, created with the hook by the API server.
    assert {(t["dag_id"], t["task_id"]) for t in phase["at_trigger"]} == {
        ("dag_a", "make_items"),
        ("dag_a", "process"),
        ("dag_a", "fixed"),
        ("dag_b", "borrow"),
        ("dag_b", "plain"),
    }
    assert all(t["executor_config"] == pinned(t["dag_id"]) for t in phase["at_trigger"])
    assert sent(observed, "api_trigger") == ordered(DAG_A_RUN + DAG_B_RUN)
    run_ids = {
        workload(c).get("ti", {}).get("run_id")
        for c in observed["run_task_calls"]
        if c["phase"] == "api_trigger"
    } - {None}
    assert run_ids == set(phase["run_ids"].values())


def test_a_cleared_task_instance_is_sent_again_as_its_own_dag(observed: dict) -> None:
    phase = observed["phases"]["clear"]
    assert phase["cleared"] == [["borrow", -1]]
    [borrow] = [t for t in phase["at_clear"] if t["task_id"] == "borrow"]
    assert borrow["state"] is None and borrow["executor_config"] == pinned("dag_b")
    [call] = [c for c in observed["run_task_calls"] if c["phase"] == "clear"]
    assert origin(call) == ("ExecuteTask", "dag_b", "borrow", -1)
    assert workload(call)["ti"]["run_id"] == phase["run_id"]
    assert workload(call)["ti"]["try_number"] == 2
    assert call["kwargs"]["taskDefinition"] == IDENTITIES["dag_b"]["task_definition"]


def test_a_mapped_task_the_scheduler_expands(observed: dict) -> None:
    """make_items' worker pushed three items through the Execution API; the scheduler expanded
    `process` into three task instances, each pinned and launched as dag_a."""
    process = [
        t for t in observed["phases"]["expanded"]["task_instances"] if t["task_id"] == "process"
    ]
    assert [t["map_index"] for t in process] == [0, 1, 2]
    assert all(t["executor_config"] == pinned("dag_a") for t in process)
    assert sent(observed, "expanded") == [("ExecuteTask", "dag_a", "process", i) for i in range(3)]


def test_callbacks_reach_the_executor_without_executor_config(observed: dict) -> None:
    callbacks = [h for h in observed["handed_to_executor"] if h["type"] == "ExecuteCallback"]
    assert len(callbacks) == 4
    assert all(h["dag_id"] == "dag_b" and h["executor_config"] is None for h in callbacks)
    launched = [c for c in observed["run_task_calls"] if origin(c)[0] == "ExecuteCallback"]
    assert len(launched) == 3  # the intruder's is refused below
    for call in launched:
        assert call["kwargs"]["taskDefinition"] == IDENTITIES["dag_b"]["task_definition"]
        assert call["kwargs"]["overrides"]["taskRoleArn"] == IDENTITIES["dag_b"]["task_role_arn"]


def test_a_dag_without_a_manifest_is_refused(observed: dict) -> None:
    assert ("dag_c", "unmanaged") in {
        (h["dag_id"], h["task_id"]) for h in observed["handed_to_executor"]
    }
    assert not [c for c in observed["run_task_calls"] if origin(c)[1] == "dag_c"]
    # refused at once, not retried as a failed RunTask would be
    assert refusals(observed, "scheduled") == [
        "DAG 'dag_c' has no permission manifest",
        "the identity published for DAG 'dag_d' is not a JSON object",
    ]
    [unmanaged] = [t for t in observed["task_instances"] if t["dag_id"] == "dag_c"]
    assert unmanaged["state"] == "failed"


def test_an_unreadable_identity_fails_its_own_workload_only(observed: dict) -> None:
    """dag_d's parameter is not JSON: its task fails at once, and in the same heartbeat the
    other DAGs' workloads still reach RunTask (an error escaping the executor's loop would stop
    every launch, every heartbeat)."""
    [unreadable] = [t for t in observed["task_instances"] if t["dag_id"] == "dag_d"]
    assert unreadable["state"] == "failed"
    assert not [c for c in observed["run_task_calls"] if origin(c)[1] == "dag_d"]
    assert sent(observed, "scheduled") == ordered(DAG_A_RUN + DAG_B_RUN)


def test_a_dag_id_from_another_bundle_is_refused(observed: dict) -> None:
    """The intruder bundle's dag_b: its run, the tasks Airflow adds to dag_b's running runs
    from the intruder's version, and its deadline callback never reach ECS."""
    phase = observed["phases"]["intruder"]
    assert phase["dag_bundle"] == "intruder"
    handed = [h for h in observed["handed_to_executor"] if h["phase"] == "intruder"]
    assert {(h["type"], h["task_id"]) for h in handed} == {
        ("ExecuteTask", "exfiltrate"),
        ("ExecuteCallback", None),
    }
    assert sent(observed, "intruder") == []
    message = "DAG 'dag_b' may only come from bundle 'dags-folder', not 'intruder'"
    # one refusal per workload handed over (the intruder's task joins each of dag_b's runs),
    # each at once, none retried
    assert refusals(observed, "intruder") == [message] * len(handed)
    assert [t["state"] for t in phase["task_instances"]] == ["failed"]
    [callback] = [c for c in observed["callbacks"] if c["path"] == "intruder_alerts.notify"]
    assert callback["state"] == "failed"
