"""Attack the Execution API of a real api-server app with the shipped plugins loaded.

Run by tests/test_execution_api.py in its own process, with AIRFLOW_HOME, a SQLite database, the
runtime files in $AIRFLOW_HOME/config (the api-server's plugins folder among them) and the
api-server's environment already set. Usage:

    python -m tests.airflow_scenarios.execution_api <input.json>

Two DAGs: dag_a (the victim: a producer, a consumer, a task mapped over three items; two runs)
and dag_b (the attacker). Their runs are created through the public REST API; each task
instance is queued and gets its workload token exactly as the scheduler makes it
(`ExecuteTask.make` with the executor's `jwt_generator`), then starts through the Execution API
as a worker does, which swaps it for the task's execution token. Every call after that is one
a worker's supervisor makes, with that token. The output (stdout, last line) is one JSON
document: each call's status, headers the test needs and body, and the state of the database
after the attacks.
"""

# ruff: noqa: E501 (the call tables below: one call a line)

from __future__ import annotations

import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto import mock_aws

from tests.airflow_scenarios import DAG_HEADER, start_task_instance

BUNDLE = "dags-folder"
ADDED_ROUTE = "/added-by-a-later-airflow"  # a route a later Airflow adds, unknown to the plugin
A_CONNECTION = "postgres://a_user:a_password@warehouse.internal:5432/a"

DAGS = {
    "dag_a.py": DAG_HEADER
    + textwrap.dedent(
        """
        with DAG("dag_a", schedule=None, start_date=START):

            @task
            def produce():
                return "dag_a's data"

            @task
            def consume(x):
                return x

            @task
            def fan(x):
                return x

            consume(produce())
            fan.expand(x=[1, 2, 3])
        """
    ),
    "dag_b.py": DAG_HEADER
    + textwrap.dedent(
        """
        with DAG("dag_b", schedule=None, start_date=START):

            @task
            def attack():
                return "dag_b"

            attack()
        """
    ),
}


def add_a_route_airflow_does_not_have_yet() -> None:
    """As a later Airflow would: an authenticated Execution API route, returning data."""
    from airflow.api_fastapi.execution_api.routes import execution_api_router
    from airflow.api_fastapi.execution_api.security import require_auth
    from fastapi import Security

    def added() -> dict:
        return {"every_dag": "every XCom"}

    execution_api_router.add_api_route(
        ADDED_ROUTE, added, methods=["GET"], dependencies=[Security(require_auth)]
    )


def route_inventory(app: Any) -> list[list[str]]:
    """(method, path) of every route of the mounted Execution API, in all its API versions."""
    from fastapi.routing import APIRoute
    from starlette.routing import Mount

    [mount] = [r for r in app.routes if isinstance(r, Mount) and r.path == "/execution"]
    execution = mount.app
    if not execution._cadwyn_initialized:
        execution._cadwyn_initialize()
    return sorted(
        {
            (method, route.path)
            for router in execution.router.versioned_routers.values()
            for route in router.routes
            if isinstance(route, APIRoute)
            for method in route.methods
        }
    )


def loaded_plugins() -> dict:
    """The api-server's plugins, each with the file it came from, and the allow-list the
    Execution API plugin enforces (its ROUTES), as loaded."""
    from airflow import plugins_manager

    loaded, errors = plugins_manager._get_plugins()
    modules = {p.name: sys.modules[type(p).__module__] for p in loaded}
    guard = modules.get("foundation_execution_api")
    return {
        "plugins": {name: module.__file__ for name, module in sorted(modules.items())},
        "plugin_errors": errors,
        "allow_list": [[r.method, r.path, r.rule, r.why] for r in guard.ROUTES] if guard else [],
    }


class Scenario:
    def __init__(self) -> None:
        from airflow.api_fastapi.app import create_app
        from airflow.executors.base_executor import BaseExecutor
        from fastapi.testclient import TestClient

        add_a_route_airflow_does_not_have_yet()
        # The api-server's app as `airflow api-server` builds it: the public REST API (a user, as
        # an admin), the Execution API mounted at /execution, and the plugins folder's
        # root middlewares around both.
        self.api = TestClient(create_app(apps="all"))
        self.api.__enter__()
        # The scheduler signs each workload's token with its executor's generator.
        self.generator = BaseExecutor().jwt_generator
        self.calls: dict[str, dict] = {}
        self.tis: dict[str, dict] = {}
        self.tokens: dict[str, dict[str, str]] = {}

    # -- setup -----------------------------------------------------------------------------------

    def login(self, password: str) -> dict[str, str]:
        """The admin's token from the public REST API's login, as a user or scheduler gets it."""
        response = self.api.post("/auth/token", json={"username": "admin", "password": password})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, headers=self.admin_headers, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def trigger(self, dag_id: str, run_id: str, logical_date: str | None, conf: dict) -> str:
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
        return self.admin("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def expand(self, dag_id: str, run_id: str) -> None:
        """What the scheduler does first with a run: expand its literal-mapped task."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            run = session.scalars(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            ).one()
            run.dag = self.dag_bag_dag(dag_id, run, session)
            run.task_instance_scheduling_decisions(session=session)

    @staticmethod
    def dag_bag_dag(dag_id: str, run: Any, session: Any) -> Any:
        from airflow.models.dagbag import DBDagBag

        return DBDagBag().get_dag_for_run(dag_run=run, session=session)

    def start(self, name: str, dag_id: str, run_id: str, task_id: str, map_index: int = -1):
        """Queue a task instance, make its workload as the scheduler does, start it as its
        worker does; keep its execution token's headers and its workload token."""
        from airflow.executors.workloads import ExecuteTask
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            ti = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.map_index == map_index,
                )
            ).one()
            ti.state = "queued"
            session.flush()
            workload = ExecuteTask.make(ti, generator=self.generator).model_dump(mode="json")
        self.tis[name] = workload["ti"]
        self.tokens[name] = start_task_instance(self.api, workload)
        self.tokens[f"{name} (workload token)"] = {"Authorization": f"Bearer {workload['token']}"}

    # -- calls -----------------------------------------------------------------------------------

    def call(self, name: str, as_: str | None, method: str, path: str, **kwargs: Any) -> None:
        headers = dict(self.tokens[as_]) if as_ else {}
        headers |= kwargs.pop("headers", {})
        response = self.api.request(method, f"/execution{path}", headers=headers, **kwargs)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        self.calls[name] = {
            "status": response.status_code,
            "body": body,
            "content_range": response.headers.get("content-range"),
        }

    def run(self, secrets: Any, password: str) -> None:
        self.admin_headers = self.login(password)
        # What an admin keeps in the metadata database (shared by every DAG), and what dag_a keeps
        # under its own Secrets Manager prefix (only its role reads it; the README's advice).
        self.admin("POST", "/api/v2/variables", json={"key": "shared_threshold", "value": "10"})
        self.admin(
            "POST",
            "/api/v2/connections",
            json={"connection_id": "shared_db", "conn_type": "postgres", "host": "db.internal"},
        )
        secrets.create_secret(
            Name="acme-airflow/dags/dag_a/connections/warehouse", SecretString=A_CONNECTION
        )

        self.run1 = self.trigger("dag_a", "a_run_1", "2024-01-01T00:00:00Z", {"password": "a's"})
        self.run2 = self.trigger("dag_a", "a_run_2", "2024-01-02T00:00:00Z", {})
        self.run_b = self.trigger("dag_b", "b_run", None, {})
        self.expand("dag_a", self.run2)
        self.start("a produce 1", "dag_a", self.run1, "produce")
        self.start("a produce 2", "dag_a", self.run2, "produce")
        self.start("a consume 2", "dag_a", self.run2, "consume")
        for i in range(3):
            self.start(f"a fan {i}", "dag_a", self.run2, "fan", i)
        self.start("b", "dag_b", self.run_b, "attack")
        self.own_dag()
        self.attacks()

    def calls_in_order(self, calls: list[tuple]) -> None:
        """Each call: (name, whose token, method, path under /execution[, request kwargs])."""
        for name, as_, method, path, *kwargs in calls:
            self.call(name, as_, method, path, **(kwargs[0] if kwargs else {}))

    def own_dag(self) -> None:
        """What tasks legitimately do with their own DAG's data."""
        r1, r2 = self.run1, self.run2
        xcoms = f"/xcoms/dag_a/{r2}"
        fan = f"{xcoms}/fan/return_value"
        b_heartbeat = f"/task-instances/{self.tis['b']['id']}/heartbeat"
        self.calls_in_order(
            [
                ("own xcom write", "a produce 1", "POST", f"/xcoms/dag_a/{r1}/produce/return_value", {"json": "a-1"}),
                ("own xcom write, key only in run 1", "a produce 1", "POST", f"/xcoms/dag_a/{r1}/produce/first", {"json": "from run 1"}),
                ("own xcom write, run 2", "a produce 2", "POST", f"{xcoms}/produce/return_value", {"json": "a-2"}),
                *[
                    (f"own mapped xcom write {i}", f"a fan {i}", "POST", fan, {"params": {"map_index": i}, "json": i + 1})
                    for i in range(3)
                ],
                ("mapped xcom write of a sibling map index", "a fan 1", "POST", fan, {"params": {"map_index": 2}, "json": "overwritten"}),
                ("own dag xcom read, upstream task", "a consume 2", "GET", f"{xcoms}/produce/return_value"),
                ("own dag xcom read, another run", "a consume 2", "GET", f"/xcoms/dag_a/{r1}/produce/return_value"),
                ("own dag xcom read, include_prior_dates", "a consume 2", "GET", f"{xcoms}/produce/first", {"params": {"include_prior_dates": "true"}}),
                ("own dag mapped xcom count", "a consume 2", "HEAD", fan),
                ("own dag mapped xcom item", "a consume 2", "GET", f"{fan}/item/1"),
                ("own dag mapped xcom slice", "a consume 2", "GET", f"{fan}/slice"),
                ("own dag xcom write of another task", "a consume 2", "POST", f"{xcoms}/produce/return_value", {"json": "planted by consume"}),
                ("own xcom write, consume", "a consume 2", "POST", f"{xcoms}/consume/scratch", {"json": "x"}),
                ("own xcom delete", "a consume 2", "DELETE", f"{xcoms}/consume/scratch"),
                ("own dag trigger", "b", "POST", "/dag-runs/dag_b/b_self_run", {"json": {"conf": {"n": 1}}}),
                ("own dag run clear", "b", "POST", "/dag-runs/dag_b/b_self_run/clear"),
                ("own dag run detail", "a consume 2", "GET", f"/dag-runs/dag_a/{r1}"),
                ("own dag", "b", "GET", "/dags/dag_b"),
                ("own heartbeat", "b", "PUT", b_heartbeat, {"json": {"hostname": "worker", "pid": 1}}),
            ]
        )  # fmt: skip

    def attacks(self) -> None:
        """dag_b's task, with its own token, against dag_a; and the routes nobody may use."""
        r1, r2 = self.run1, self.run2
        a_ti = f"/task-instances/{self.tis['a produce 2']['id']}"
        xcom, fan = f"/xcoms/dag_a/{r2}/produce/return_value", f"/xcoms/dag_a/{r2}/fan/return_value"
        failed = {"state": "failed", "end_date": datetime.now(UTC).isoformat()}
        self.calls_in_order(
            [
                ("xcom read of another dag", "b", "GET", f"/xcoms/dag_a/{r1}/produce/return_value"),
                ("xcom write of another dag", "b", "POST", xcom, {"json": "planted by dag_b"}),
                ("xcom delete of another dag", "b", "DELETE", xcom),
                ("mapped xcom count of another dag", "b", "HEAD", fan),
                ("mapped xcom item of another dag", "b", "GET", f"{fan}/item/0"),
                ("mapped xcom slice of another dag", "b", "GET", f"{fan}/slice"),
                ("variable set", "b", "PUT", "/variables/shared_threshold", {"json": {"value": "999"}}),
                ("variable create", "b", "PUT", "/variables/planted", {"json": {"value": "x"}}),
                ("variable delete", "b", "DELETE", "/variables/shared_threshold"),
                ("variable get", "b", "GET", "/variables/shared_threshold"),
                ("variable keys", "b", "GET", "/variables/keys"),
                ("variable of the api-server's environment", "b", "GET", "/variables/cluster_only"),
                ("connection of another dag", "b", "GET", "/connections/warehouse"),
                ("connection of the api-server's environment", "b", "GET", "/connections/foundation_dags_git"),
                ("shared connection", "b", "GET", "/connections/shared_db"),
                ("trigger another dag", "b", "POST", "/dag-runs/dag_a/planted_run", {"json": {"conf": {"target": "x"}}}),
                ("clear another dag's run", "b", "POST", f"/dag-runs/dag_a/{r1}/clear"),
                ("run detail of another dag", "b", "GET", f"/dag-runs/dag_a/{r1}"),
                ("previous run of another dag", "b", "GET", "/dag-runs/previous", {"params": {"dag_id": "dag_a", "logical_date": "2030-01-01T00:00:00Z"}}),
                ("another dag", "b", "GET", "/dags/dag_a"),
                ("previous task instance of another dag", "b", "GET", "/task-instances/previous/dag_a/produce"),
                ("breadcrumbs of another dag", "b", "GET", "/task-instances/breadcrumbs", {"params": {"dag_id": "dag_a", "run_id": r1}}),
                ("mark another task instance failed", "b", "PATCH", f"{a_ti}/state", {"json": failed}),
                ("heartbeat of another task instance", "b", "PUT", f"{a_ti}/heartbeat", {"json": {"hostname": "worker", "pid": 1}}),
                ("asset state store write", "b", "PUT", "/store/asset/by-name/value", {"params": {"name": "a_asset", "key": "cursor"}, "json": {"value": 1}}),
                ("connection test", "b", "GET", f"/connection-tests/{self.tis['a produce 2']['id']}/connection"),
                ("task instance count of another dag", "b", "GET", "/task-instances/count", {"params": {"dag_id": "dag_a", "states": "running"}}),
                ("run state of another dag", "b", "GET", f"/dag-runs/dag_a/{r1}/state"),
                ("unknown route", "b", "GET", "/nope"),
                ("api docs", "b", "GET", "/openapi.json"),
                ("route added by a later airflow", "b", "GET", ADDED_ROUTE),
                ("workload token on an xcom", "b (workload token)", "GET", f"/xcoms/dag_b/{self.run_b}/attack/return_value"),
                ("no token", None, "GET", "/variables/shared_threshold"),
                ("forged token", None, "GET", f"/xcoms/dag_a/{r1}/produce/return_value", {"headers": self.forged_token()}),
                ("a user's rest api token", None, "GET", "/variables/shared_threshold", {"headers": self.admin_headers}),
                ("health", None, "GET", "/health"),
            ]
        )  # fmt: skip

    def forged_token(self) -> dict[str, str]:
        """dag_a's task's claims, signed with a key that is not the cluster's."""
        from airflow.api_fastapi.auth.tokens import JWTGenerator
        from airflow.configuration import conf

        forger = JWTGenerator(
            secret_key="not-the-cluster-key-" + "y" * 32,
            valid_for=600,
            audience=conf.get_mandatory_list_value("execution_api", "jwt_audience")[0],
        )
        claims = {"sub": self.tis["a produce 1"]["id"], "scope": "execution"}
        return {"Authorization": f"Bearer {forger.generate(extras=claims)}"}

    # -- observations ----------------------------------------------------------------------------

    def observations(self) -> dict:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.variable import Variable
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            xcoms = sorted(
                [x.dag_id, x.run_id, x.task_id, x.map_index, x.key, x.value]
                for x in session.scalars(select(XComModel))
            )
            variables = {v.key: v.val for v in session.scalars(select(Variable))}
            runs = sorted(
                [r.dag_id, r.run_id, r.state, r.conf] for r in session.scalars(select(DagRun))
            )
            tis = sorted(
                [t.dag_id, t.run_id, t.task_id, t.map_index, t.state]
                for t in session.scalars(select(TaskInstance))
            )
        return {
            "calls": self.calls,
            "task_instances": self.tis,
            "runs": {"a1": self.run1, "a2": self.run2, "b": self.run_b},
            "xcoms": xcoms,
            "variables": variables,
            "dag_runs": runs,
            "task_instance_states": tis,
            "routes": route_inventory(self.api.app),
        } | loaded_plugins()


def main(inputs: dict) -> dict:
    import boto3
    from airflow.utils import db

    from tests.airflow_scenarios.enforcement import reserialize

    db.initdb()
    dags = Path(__import__("os").environ["AIRFLOW__CORE__DAGS_FOLDER"])
    for name, text in DAGS.items():
        (dags / name).write_text(text)
    reserialize(BUNDLE)
    scenario = Scenario()
    scenario.run(boto3.client("secretsmanager"), inputs["admin_password"])
    return scenario.observations()


if __name__ == "__main__":
    with mock_aws():
        result = main(json.loads(Path(sys.argv[1]).read_text()))
    print(json.dumps(result, default=str))
