"""Every Execution API request is decided by the calling task's own task instance.

Delivered by airflow-foundation to the api-server as an Airflow plugin (a root FastAPI
middleware, so it sees the Execution API mounted at /execution before Airflow routes it).
Airflow 3.3 lets any task token read and write any DAG's XComs, set and delete Variables, and
trigger or clear any DAG's runs. Here the token's own task instance (its `sub`, looked up in the
metadata database: dag_id, run_id, task_id, map_index) decides, never the DAG a request names:

- a route is allowed only if ROUTES lists it, with its rule; anything else (a route a later
  Airflow adds, the API's docs) is refused: an allow-list, not a deny-list;
- every request but the health checks needs a valid task token (checked with Airflow's own
  Execution API validator: signature, audience, expiry), of the execution scope (the workload
  scope only where Airflow takes it: starting the task instance);
- each route's rule is one of RULES below. A refusal is HTTP 403 with
  `{"detail": {"reason": "foundation", "message": ...}}`, before Airflow runs anything.

The README's threat model lists every route with its rule and reason; a test keeps them equal
and compares ROUTES with the routes of the running Airflow's Execution API.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from foundation_refusal import send_refusal

log = logging.getLogger(__name__)

PREFIX = "/execution"  # where the api-server mounts the Execution API

# What a route's rule checks, by name (the README table's "decision" column).
OPEN = "open"  # no token: liveness only, no data
SELF = "own task instance"  # the path's task_instance_id is the token's own
START = (
    "own task instance (workload token too)"  # as SELF; the queued workload's token may start it
)
ANY_TASK = "any task"  # any valid task token
SHARED = "any task, not the api-server's own"  # any task token; not what the api-server's env holds
OWN_DAG = "own DAG"  # the path's dag_id is the token's DAG
OWN_DAG_QUERY = "own DAG (query)"  # the query's dag_id is the token's DAG
OWN_XCOM = "own XCom"  # dag_id, run_id, task_id (path) and map_index (query) are the token's
REFUSED = "refused"
RULES = (OPEN, SELF, START, ANY_TASK, SHARED, OWN_DAG, OWN_DAG_QUERY, OWN_XCOM, REFUSED)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as Airflow declares it, under /execution
    rule: str
    why: str


XCOM = "/xcoms/{dag_id}/{run_id}/{task_id}/{key:path}"
TI = "/task-instances/{task_instance_id}"
ASSET_STORE = "/store/asset"
_ASSET_STORE_WHY = (
    "an asset's store has no owner: any DAG may name any asset (Airflow's own TODO, AIP-103)"
)
_STATES_WHY = "states and counts only, no data (ExternalTaskSensor, TriggerDagRunOperator waits)"
_XCOM_READ_WHY = "any run and task of its DAG (xcom_pull, include_prior_dates, mapped upstreams)"

# Every route of Airflow 3.3.2's Execution API, in all its API versions.
ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", OPEN, "liveness"),
    Route("GET", "/health/ping", OPEN, "liveness"),
    Route("GET", "/assets/by-name", ANY_TASK, "asset definitions are global: any DAG names any"),
    Route("GET", "/assets/by-uri", ANY_TASK, "asset definitions are global: any DAG names any"),
    Route("GET", "/assets/by-alias", ANY_TASK, "asset definitions are global: any DAG names any"),
    Route(
        "GET",
        "/asset-events/by-asset",
        ANY_TASK,
        "asset events are the channel a consuming DAG opts into; their extra is its input",
    ),
    Route(
        "GET",
        "/asset-events/by-asset-alias",
        ANY_TASK,
        "asset events are the channel a consuming DAG opts into; their extra is its input",
    ),
    Route(
        "PATCH",
        "/connection-tests/{connection_test_id}",
        REFUSED,
        "the executors refuse connection-test workloads; no task has one",
    ),
    Route(
        "GET",
        "/connection-tests/{connection_test_id}/connection",
        REFUSED,
        "the executors refuse connection-test workloads; no task has one",
    ),
    Route(
        "GET",
        "/connections/{connection_id}",
        SHARED,
        "the metadata DB's connections, shared by every DAG; per-DAG ones are in Secrets Manager,"
        " which the api-server cannot read; never one of the api-server's own environment",
    ),
    Route("GET", "/dag-runs/count", ANY_TASK, _STATES_WHY),
    Route("GET", "/dag-runs/previous", OWN_DAG_QUERY, "a run, with its conf"),
    Route("GET", "/dag-runs/{dag_id}/previous", OWN_DAG, "a run, with its conf (older API)"),
    Route("GET", "/dag-runs/{dag_id}/{run_id}", OWN_DAG, "a run, with its conf"),
    Route(
        "POST",
        "/dag-runs/{dag_id}/{run_id}",
        OWN_DAG,
        "a run of another DAG would run its code under its role, with this task's conf",
    ),
    Route("POST", "/dag-runs/{dag_id}/{run_id}/clear", OWN_DAG, "reruns a DAG's tasks"),
    Route("GET", "/dag-runs/{dag_id}/{run_id}/state", ANY_TASK, _STATES_WHY),
    Route("GET", "/dags/{dag_id}", OWN_DAG, "a DAG's file, bundle and owners"),
    Route("GET", "/hitlDetails/{task_instance_id}", SELF, "its own human-in-the-loop request"),
    Route("PATCH", "/hitlDetails/{task_instance_id}", SELF, "its own human-in-the-loop request"),
    Route("POST", "/hitlDetails/{task_instance_id}", SELF, "its own human-in-the-loop request"),
    Route("GET", f"{ASSET_STORE}/by-name/value", REFUSED, _ASSET_STORE_WHY),
    Route("PUT", f"{ASSET_STORE}/by-name/value", REFUSED, _ASSET_STORE_WHY),
    Route("DELETE", f"{ASSET_STORE}/by-name/value", REFUSED, _ASSET_STORE_WHY),
    Route("DELETE", f"{ASSET_STORE}/by-name/clear", REFUSED, _ASSET_STORE_WHY),
    Route("GET", f"{ASSET_STORE}/by-uri/value", REFUSED, _ASSET_STORE_WHY),
    Route("PUT", f"{ASSET_STORE}/by-uri/value", REFUSED, _ASSET_STORE_WHY),
    Route("DELETE", f"{ASSET_STORE}/by-uri/value", REFUSED, _ASSET_STORE_WHY),
    Route("DELETE", f"{ASSET_STORE}/by-uri/clear", REFUSED, _ASSET_STORE_WHY),
    Route("DELETE", "/store/ti/{task_instance_id}", SELF, "its own task state"),
    Route("GET", "/store/ti/{task_instance_id}/{key:path}", SELF, "its own task state"),
    Route("PUT", "/store/ti/{task_instance_id}/{key:path}", SELF, "its own task state"),
    Route("DELETE", "/store/ti/{task_instance_id}/{key:path}", SELF, "its own task state"),
    Route("GET", "/task-instances/breadcrumbs", OWN_DAG_QUERY, "a run's tasks (Sentry)"),
    Route("GET", "/task-instances/count", ANY_TASK, _STATES_WHY),
    Route(
        "GET",
        "/task-instances/previous/{dag_id}/{task_id}",
        OWN_DAG,
        "a task's previous instance (get_previous_ti)",
    ),
    Route("GET", "/task-instances/states", ANY_TASK, _STATES_WHY),
    Route("PATCH", f"{TI}/run", START, "starts its own task instance"),
    Route(
        "PATCH",
        f"{TI}/state",
        SELF,
        "its own state (a deferral's trigger is checked by foundation_deferral)",
    ),
    Route("PATCH", f"{TI}/skip-downstream", SELF, "Airflow skips only in the token's own run"),
    Route("PUT", f"{TI}/heartbeat", SELF, "its own heartbeat"),
    Route("PUT", f"{TI}/rtif", SELF, "its own rendered fields"),
    Route("PATCH", f"{TI}/rendered-map-index", SELF, "its own map index name"),
    Route("GET", f"{TI}/previous-successful-dagrun", SELF, "its own DAG's previous run"),
    Route("GET", f"{TI}/validate-inlets-and-outlets", SELF, "its own inlets and outlets"),
    Route(
        "GET",
        "/task-reschedules/{task_instance_id}/start_date",
        SELF,
        "its own reschedules",
    ),
    Route("GET", "/variables/keys", ANY_TASK, "the names of the shared (metadata DB) Variables"),
    Route(
        "GET",
        "/variables/{variable_key:path}",
        SHARED,
        "the metadata DB's Variables, shared by every DAG, which no task can change; never one"
        " of the api-server's own environment",
    ),
    Route(
        "PUT",
        "/variables/{variable_key:path}",
        REFUSED,
        "a DAG would plant input another DAG's tasks render",
    ),
    Route(
        "DELETE",
        "/variables/{variable_key:path}",
        REFUSED,
        "a DAG would remove input another DAG's tasks render",
    ),
    Route("GET", XCOM, OWN_DAG, _XCOM_READ_WHY),
    Route("HEAD", XCOM, OWN_DAG, _XCOM_READ_WHY),
    Route("GET", f"{XCOM}/item/{{offset}}", OWN_DAG, _XCOM_READ_WHY),
    Route("GET", f"{XCOM}/slice", OWN_DAG, _XCOM_READ_WHY),
    Route("POST", XCOM, OWN_XCOM, "a task writes only its own XComs"),
    Route("DELETE", XCOM, OWN_XCOM, "a task deletes only its own XComs"),
)


class Refused(Exception):
    """Why a request may not reach the Execution API."""


@dataclass(frozen=True)
class Caller:
    """The token's own task instance, as the metadata database has it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int


def _compiled(route: Route) -> tuple[re.Pattern, dict[str, Any]]:
    from starlette.routing import compile_path

    regex, _, convertors = compile_path(route.path)  # exactly as Starlette routes it
    return regex, convertors


def matching(method: str, path: str) -> list[tuple[Route, dict[str, str]]]:
    """Every listed route (with its path parameters) that this request could reach. Where
    several could (`{key:path}` swallows `/item/3`), each must allow it."""
    found = []
    for route, (regex, convertors) in _COMPILED.items():
        if route.method != method:
            continue
        if match := regex.match(path):
            found.append(
                (route, {k: convertors[k].convert(v) for k, v in match.groupdict().items()})
            )
    return found


def _query(scope: dict) -> Any:
    from starlette.datastructures import QueryParams

    return QueryParams(scope.get("query_string", b""))  # as FastAPI reads query parameters


def _int(value: str) -> int:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(int).validate_python(value)  # as FastAPI parses an int parameter
    except ValidationError:
        raise Refused(f"{value!r} is not an integer") from None


def _bearer(scope: dict) -> str:
    from fastapi.security.utils import get_authorization_scheme_param
    from starlette.datastructures import Headers

    # The header Airflow's JWTBearer reads: the first Authorization header, scheme Bearer.
    scheme, credentials = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
    if scheme.lower() != "bearer" or not credentials:
        raise Refused("a task token (Authorization: Bearer) is required")
    return credentials


class Decider:
    """Decides one request from the token's claims and, when a rule needs it, the token's own
    task instance (looked up once per request)."""

    def __init__(self) -> None:
        self._validator: Any = None

    async def claims(self, token: str) -> dict:
        if self._validator is None:
            # Airflow's own Execution API validator, from the same configuration.
            from airflow.api_fastapi.execution_api.app import _jwt_validator

            self._validator = _jwt_validator()
        try:
            claims = await self._validator.avalidated_claims(token, {})
        except Exception as error:
            raise Refused(f"invalid task token ({type(error).__name__})") from None
        return claims

    @staticmethod
    def caller(ti_id: str) -> Caller:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.execute(
                select(
                    TaskInstance.dag_id,
                    TaskInstance.run_id,
                    TaskInstance.task_id,
                    TaskInstance.map_index,
                ).where(TaskInstance.id == uuid.UUID(ti_id))
            ).one_or_none()
        if row is None:
            raise Refused(f"the token's task instance {ti_id} is not a live task instance")
        return Caller(*row)

    async def refusal(self, scope: dict, path: str) -> str | None:
        """Why this request (path: under /execution) is refused, or None."""
        method = scope.get("method", "")
        routes = matching(method, path)
        if not routes:
            return (
                f"{method} {PREFIX}{path} is not on airflow-foundation's Execution API allow-list"
            )
        if all(route.rule == OPEN for route, _ in routes):
            return None
        for route, _ in routes:
            if route.rule == REFUSED:
                return f"{method} {PREFIX}{route.path} is refused to tasks: {route.why}"
        try:
            claims = await self.claims(_bearer(scope))
            try:
                sub = str(uuid.UUID(str(claims.get("sub"))))
            except ValueError:
                raise Refused("the token's subject is not a task instance") from None
            token_scope = claims.get("scope", "execution")
            caller: Caller | None = None
            for route, params in routes:
                if token_scope != "execution" and not (
                    route.rule == START and token_scope == "workload"
                ):
                    raise Refused(f"a {token_scope!r} token may not call {method} {route.path}")
                if route.rule in (OWN_DAG, OWN_DAG_QUERY, OWN_XCOM) and caller is None:
                    from starlette.concurrency import run_in_threadpool

                    caller = await run_in_threadpool(self.caller, sub)
                self.check(route, params, scope, sub, caller)
        except Refused as refused:
            return str(refused)
        return None

    @staticmethod
    def check(
        route: Route, params: dict[str, str], scope: dict, sub: str, caller: Caller | None
    ) -> None:
        rule = route.rule
        if rule in (SELF, START):
            if params["task_instance_id"] != sub:
                raise Refused(f"the token is task instance {sub}, not {params['task_instance_id']}")
        elif rule in (OPEN, ANY_TASK):
            return
        elif rule == SHARED:
            _not_the_api_servers_own(route, params)
        elif rule in (OWN_DAG, OWN_DAG_QUERY) and caller is not None:
            named = params.get("dag_id") if rule == OWN_DAG else _query(scope).get("dag_id")
            if named != caller.dag_id:
                raise Refused(
                    f"DAG {named!r} is not this task's: the token is a task of DAG"
                    f" {caller.dag_id!r}"
                )
        elif rule == OWN_XCOM and caller is not None:
            map_index = _int(_query(scope).get("map_index", "-1"))
            named = (params["dag_id"], params["run_id"], params["task_id"], map_index)
            own = (caller.dag_id, caller.run_id, caller.task_id, caller.map_index)
            if named != own:
                raise Refused(
                    f"a task writes only its own XComs: the token is {'/'.join(map(str, own))},"
                    f" not {'/'.join(map(str, named))}"
                )
        else:  # a rule this module does not know, or no caller: refused, never allowed
            raise Refused(f"{route.method} {route.path} has no rule")


def _not_the_api_servers_own(route: Route, params: dict[str, str]) -> None:
    """The api-server's own environment (AIRFLOW_CONN_*, AIRFLOW_VAR_*) is the cluster's: read
    with Airflow's own environment backend, it is never served to a task."""
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend

    backend = EnvironmentVariablesBackend()
    if "connection_id" in params:
        if backend.get_conn_value(params["connection_id"]) is not None:
            raise Refused(f"connection {params['connection_id']!r} is the api-server's own")
    elif "variable_key" in params:
        if backend.get_variable(params["variable_key"]) is not None:
            raise Refused(f"variable {params['variable_key']!r} is the api-server's own")
    else:
        raise Refused(f"{route.method} {route.path} names no connection or variable")


_COMPILED = {route: _compiled(route) for route in ROUTES}


def under_execution_api(scope: dict) -> str | None:
    """The path under /execution this request is routed by, if it goes to the Execution API
    (Starlette's own route path: the request path less the root path)."""
    from starlette._utils import get_route_path

    path = get_route_path(scope)
    if path == PREFIX or path.startswith(PREFIX + "/"):
        return path[len(PREFIX) :]
    return None


class AuthorizeExecutionApi:
    """ASGI middleware: every request to the Execution API passes `Decider.refusal` first."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.decider = Decider()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = under_execution_api(scope)
        if path is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # the Execution API has none
            await send({"type": "websocket.close", "code": 1008})
            return
        try:
            reason = await self.decider.refusal(scope, path)
        except Exception as error:  # never let a failure here pass a request through
            log.exception("Execution API authorization failed")
            reason = f"authorization failed ({type(error).__name__})"
        if reason is None:
            await self.app(scope, receive, send)
            return
        log.warning("Refused %s %s: %s", scope.get("method"), scope.get("path"), reason)
        await send_refusal(send, reason)


class FoundationExecutionApiPlugin(AirflowPlugin):
    name = "foundation_execution_api"
    fastapi_root_middlewares = [  # noqa: RUF012 (Airflow reads the class attribute)
        {"middleware": AuthorizeExecutionApi, "name": "foundation: Execution API allow-list"}
    ]
