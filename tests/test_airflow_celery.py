"""Real Airflow in Celery mode: the scheduler, the shipped FoundationCeleryExecutor and cluster
policies, real kombu publishing to SQS and celery's DynamoDB result backend (both moto). Every
workload lands on its own DAG's queue, whatever queue the DAG file or the database row asked
for; a DAG without a manifest reaches no queue.

The scenario (tests/airflow_scenarios/celery_routing.py) runs once, in its own process.
"""

from __future__ import annotations

import json

import pytest

from foundation.airflow import runtime_files, settings
from foundation.config import Deployment
from foundation.naming import DagNames, Namespace
from foundation.project import load_project
from tests.airflow_scenarios import airflow_environment, local_bundle, run_scenario
from tests.airflow_scenarios.enforcement import BUNDLE
from tests.conftest import ROOT

EXAMPLE = load_project(ROOT).deployment
DEPLOYMENT = Deployment.model_validate(
    EXAMPLE.model_dump() | {"airflow": EXAMPLE.airflow.model_dump() | {"executor": "celery"}}
)
PROJECT, REGION = DEPLOYMENT.name, DEPLOYMENT.region
# An AWS trigger and the callback trigger are refused (not on the list); a time trigger is stored.
# The last one runs after the refusals, so a refused deferral leaves the task instance running.
TRIGGERS = [
    "airflow.providers.amazon.aws.triggers.s3.S3KeyTrigger",
    "airflow.triggers.callback.CallbackTrigger",
    "airflow.providers.standard.triggers.temporal.DateTimeTrigger",
]
QUEUES = {dag_id: DagNames(PROJECT, dag_id).queue for dag_id in ("dag_a", "dag_b", "dag_e")}
# The bundle each manifest binds its dag_id to, as the worker stacks publish it: dag_e's is
# another team's, while its file here is in the one bundle the scenario parses.
BUNDLES = {"dag_a": BUNDLE, "dag_b": BUNDLE, "dag_e": "team_b"}


def scheduler_environment() -> dict[str, str]:
    env = settings.cluster_component(DEPLOYMENT, "scheduler").environment
    assert env["AIRFLOW__CORE__EXECUTOR"] == settings.CELERY_EXECUTOR
    return env | {"FOUNDATION_UNMANAGED_DAGS": "refuse"}


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    dags = home / "dags"
    dags.mkdir()
    runtime_files.write(home / "config", "celery")
    env = airflow_environment(scheduler_environment(), home, dags, [local_bundle(dags)], REGION)
    api_server = settings.cluster_component(DEPLOYMENT, "api-server").environment
    env |= {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # the api-server's plugins folder, where the runtime files put the deferral guard, and
        # the trigger classes it lets through
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "config" / "plugins"),
        settings.TRIGGERS_ENV: api_server[settings.TRIGGERS_ENV],
    }
    inputs = home / "inputs.json"
    inputs.write_text(
        json.dumps(
            {
                "dags_folder": str(dags),
                "queues": sorted(QUEUES.values()),
                "stolen_queue": QUEUES["dag_a"],
                "queues_by_dag": QUEUES,
                "triggers": TRIGGERS,
                "results_table": f"{PROJECT}-celery-results",
                "parameters": {
                    Namespace(PROJECT).identity_parameter(dag_id): {
                        "queue": queue,
                        "bundle": BUNDLES[dag_id],
                    }
                    for dag_id, queue in QUEUES.items()
                },
            }
        )
    )
    return run_scenario("celery_routing", inputs, env)


def on_queue(observed: dict, dag_id: str) -> list[tuple[str, str, str]]:
    """(dag_id, task_id, run_id) of every workload on the DAG's queue."""
    return sorted(
        (
            m["workload"]["ti"]["dag_id"],
            m["workload"]["ti"]["task_id"],
            m["workload"]["ti"]["run_id"],
        )
        for m in observed["queues"][QUEUES[dag_id]]
    )


def test_the_scheduler_runs_the_shipped_celery_executor(observed: dict) -> None:
    assert observed["executor"] == settings.CELERY_EXECUTOR


def test_each_dags_workloads_land_on_its_own_queue_only(observed: dict) -> None:
    assert {dag for dag, _, _ in on_queue(observed, "dag_a")} == {"dag_a"}
    assert {dag for dag, _, _ in on_queue(observed, "dag_b")} == {"dag_b"}
    assert all(m["task"] == "execute_workload" for q in observed["queues"].values() for m in q)


def test_a_task_asking_for_another_dags_queue_is_sent_to_its_own(observed: dict) -> None:
    scheduled = [t for d, t, r in on_queue(observed, "dag_b") if r != observed["hook_bypassed_run"]]
    assert scheduled == ["borrow"]  # plain waits for borrow
    [borrow] = [
        t
        for t in observed["task_instances"]
        if t["dag_id"] == "dag_b"
        and t["task_id"] == "borrow"
        and t["run_id"] != observed["hook_bypassed_run"]
    ]
    # the mutation hook shows the queue the executor will use, not the one asked for
    assert borrow["queue"] == QUEUES["dag_b"] and borrow["state"] == "queued"
    assert any(f"queue {QUEUES['dag_a']!r} is ignored" in w for w in observed["policy_warnings"])


def test_a_row_naming_another_queue_still_goes_to_its_dags_queue(observed: dict) -> None:
    run = observed["hook_bypassed_run"]
    assert ("dag_b", "borrow", run) in on_queue(observed, "dag_b")
    assert all(r != run for _, _, r in on_queue(observed, "dag_a"))


def test_a_dag_without_a_manifest_reaches_no_queue_and_fails(observed: dict) -> None:
    for queue in observed["queues"].values():
        assert all(m["workload"]["ti"]["dag_id"] != "dag_c" for m in queue)
    [unmanaged] = [t for t in observed["task_instances"] if t["dag_id"] == "dag_c"]
    assert unmanaged["state"] == "failed"
    [event] = [e for e in observed["task_events"] if e["key"][0] == "dag_c"]
    assert event["event"] == "foundation refused"
    assert "has no permission manifest" in event["extra"]


def test_a_dag_id_declared_in_another_bundle_reaches_no_queue_and_fails(observed: dict) -> None:
    """dag_e's manifest binds it to team_b; a file in this bundle declares it. The executor
    refuses its workload before any queue sees it, and the task fails at once."""
    assert observed["queues"][QUEUES["dag_e"]] == []
    for queue in observed["queues"].values():
        assert all(m["workload"]["ti"]["dag_id"] != "dag_e" for m in queue)
    [claimed] = [t for t in observed["task_instances"] if t["dag_id"] == "dag_e"]
    assert (claimed["task_id"], claimed["state"]) == ("claim", "failed")
    [event] = [e for e in observed["task_events"] if e["key"][0] == "dag_e"]
    assert event == {
        "event": "foundation refused",
        "extra": f"DAG 'dag_e' may only come from bundle 'team_b', not {BUNDLE!r}",
        "key": event["key"],
    }
    assert event["key"][:2] == ["dag_e", "claim"]


def test_the_execution_api_refuses_deferral_to_triggers_acting_as_the_triggerer(
    observed: dict,
) -> None:
    aws, callback, time = observed["deferrals"]
    not_listed = (
        "is refused: triggers run in the shared triggerer, and only the trigger classes the "
        "deployment lists (airflow.triggers) may run there"
    )
    assert aws["body"]["detail"]["message"] == (
        f"deferral to {TRIGGERS[0]!r} {not_listed}; the amazon provider's triggers would call AWS "
        "as the triggerer, not as this DAG: run the operator with deferrable=False so it polls "
        "from the DAG's own worker with the DAG's own grants"
    )
    assert callback["body"]["detail"]["message"] == f"deferral to {TRIGGERS[1]!r} {not_listed}"
    for refused in (aws, callback):
        assert refused["status"] == 403, refused
        assert refused["body"]["detail"]["reason"] == "foundation"
        assert refused["ti_state"] == "running" and refused["triggers"] == []
    assert time["status"] == 204, time
    assert time["ti_state"] == "deferred"
    assert time["triggers"] == [TRIGGERS[2]]


def test_the_api_server_loads_the_guard_from_its_plugins_folder() -> None:
    env = settings.cluster_component(DEPLOYMENT, "api-server").environment
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == runtime_files.PLUGINS_DIR
    assert runtime_files.DEFERRAL_PLUGIN in runtime_files.FOR_COMPONENTS["celery"]
    assert runtime_files.DEFERRAL_PLUGIN in runtime_files.FOR_COMPONENTS["ecs"]


def test_dag_authors_are_told_at_parse_time_that_aws_deferral_is_refused(observed: dict) -> None:
    [warning] = [w for w in observed["policy_warnings"] if w.startswith("dag_d.wait")]
    assert "deferrable=True will be refused" in warning and "deferrable=False" in warning
