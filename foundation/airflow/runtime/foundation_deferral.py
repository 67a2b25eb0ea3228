"""Deferral that would act with the triggerer's identity is refused at the Execution API.

Delivered by airflow-foundation to the api-server as an Airflow plugin (a root FastAPI
middleware, so it sees the Execution API mounted at /execution). Triggers run in the shared
triggerer under its task role, which holds no AWS permission at all: a deferred task whose
trigger calls AWS would fail there, without its DAG's grants. So a deferral to such a trigger is
refused (HTTP 403) before Airflow stores it, whatever the worker sends, and the DAG's AWS work
runs on its own worker instead (`deferrable=False`, the default). Triggers that make no AWS
calls (time, date, HTTP, SQL, external task) defer as usual. Triggers the scheduler creates
itself (start_from_trigger, asset watchers) never pass here; the triggerer's empty role is what
keeps those off AWS.
"""

from __future__ import annotations

import json
import re
from typing import Any

from airflow.plugins_manager import AirflowPlugin

# Trigger classes that act with the triggerer's own AWS identity (the amazon provider's, through
# boto3's default credentials), or run an arbitrary callable in the triggerer (the callback
# trigger, which only the scheduler itself may create).
REFUSED_TRIGGERS = ("airflow.providers.amazon.", "airflow.triggers.callback.")
STATE_PATH = re.compile(r"/execution/task-instances/[^/]+/state$")


def refusal(body: bytes) -> str | None:
    """Why this task-state update may not be stored, if it may not."""
    try:
        update = json.loads(body)
    except ValueError:
        return None  # not JSON: the Execution API rejects it itself
    if not isinstance(update, dict) or update.get("state") != "deferred":
        return None
    classpath = str(update.get("classpath", ""))
    if classpath.startswith(REFUSED_TRIGGERS):
        return (
            f"deferral to {classpath} is refused: triggers run under the triggerer's identity, "
            "not this DAG's; run the operator with deferrable=False so it polls from the DAG's "
            "own worker with the DAG's own grants"
        )
    return None


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
        payload = json.dumps({"detail": {"reason": "foundation", "message": reason}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


class FoundationDeferralPlugin(AirflowPlugin):
    name = "foundation_deferral"
    fastapi_root_middlewares = [  # noqa: RUF012 (Airflow reads the class attribute)
        {"middleware": RefuseTriggererIdentity, "name": "foundation: refuse triggerer identity"}
    ]
