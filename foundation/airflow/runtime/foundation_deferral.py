"""Deferral to a trigger class not on the deployment's list is refused at the Execution API.

Delivered by airflow-foundation to the api-server as an Airflow plugin (a root FastAPI
middleware, so it sees the Execution API mounted at /execution). Airflow stores whatever trigger
classpath a task sends, and the triggerer imports it and calls it with the task's kwargs, next to
its database credentials. So a deferral is stored only if its classpath is exactly one of
FOUNDATION_TRIGGERS (foundation.triggers: time and date, HTTP, SQL, external task, and the
classes the config adds, each checked to be a trigger that makes no AWS call); any other is
refused (HTTP 403) before Airflow stores anything, whatever the worker sends. The triggerer
refuses the same classpaths again (foundation_sealed.py), for rows that never passed here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from foundation_refusal import allowed_triggers, send_refusal

STATE_PATH = re.compile(r"/execution/task-instances/[^/]+/state$")


def refusal(body: bytes) -> str | None:
    """Why this task-state update may not be stored, if it may not."""
    try:
        update = json.loads(body)
    except ValueError:
        return None  # not JSON: the Execution API rejects it itself
    if not isinstance(update, dict) or update.get("state") != "deferred":
        return None
    classpath = update.get("classpath")
    if not isinstance(update.get("trigger_kwargs", {}), dict):
        # Airflow would store a string as already encrypted, for the triggerer to decrypt: no
        # task holds the Fernet key, so no task sends one (the Task SDK sends a mapping).
        return f"deferral to {classpath!r} is refused: its trigger_kwargs are not a mapping"
    if isinstance(classpath, str) and classpath in allowed_triggers():
        return None
    hint = (
        "; the amazon provider's triggers would call AWS as the triggerer, not as this DAG: run "
        "the operator with deferrable=False so it polls from the DAG's own worker with the DAG's "
        "own grants"
        if isinstance(classpath, str) and classpath.startswith("airflow.providers.amazon.")
        else ""
    )
    return (
        f"deferral to {classpath!r} is refused: triggers run in the shared triggerer, and only "
        f"the trigger classes the deployment lists (airflow.triggers) may run there{hint}"
    )


class RefuseTriggererIdentity:
    """ASGI middleware: reads a task-state update's body, refuses or replays it unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "PATCH"
            and STATE_PATH.search(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        reason = refusal(body)
        if reason is None:

            async def replay() -> dict:
                return messages.pop(0) if messages else await receive()

            await self.app(scope, replay, send)
            return
        await send_refusal(send, reason)


class FoundationDeferralPlugin(AirflowPlugin):
    name = "foundation_deferral"
    fastapi_root_middlewares = [  # noqa: RUF012 (Airflow reads the class attribute)
        {"middleware": RefuseTriggererIdentity, "name": "foundation: refuse triggerer identity"}
    ]
