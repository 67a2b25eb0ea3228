"""The ECS agent's task scale-in protection endpoint, locally: `$ECS_AGENT_URI/task-protection/v1/
state` answered for every task of a LocalEcs as the agent answers it (aws/amazon-ecs-agent,
agent/handlers/agentapi/taskprotection/v1):

- PUT `{"ProtectionEnabled": bool, "ExpiresInMinutes": int}` is ECS's UpdateTaskProtection of
  that task, GET its GetTaskProtection, each called on the local endpoint with the task role's
  session, as the agent calls with the task's credentials: the role's grant decides, its
  `ecs:cluster` and `aws:ResourceTag/...` conditions included (moto_gaps.py);
- 200 `{"protection": {"ExpirationDate", "ProtectionEnabled", "TaskArn"}}`; ECS's failure as
  `{"failure": {"Arn", "Detail", "Reason"}}` (404 for MISSING, 409 for INVALID,
  DEPLOYMENT_BLOCKED and TASK_STOPPING_OR_STOPPED, 500 for any other reason, as the agent maps
  them); ECS's error as `{"requestID", "error": {"Arn", "Code", "Message"}}` with ECS's status;
  a body that is not exactly those fields, or without ProtectionEnabled, 400
  InvalidParameterException; a task without a role, 403 AccessDeniedException; an unknown
  path, 404 ResourceNotFoundException.

What differs from the agent: one server on 127.0.0.1 for every task, each task's URI a path of
its own (`/api/<task id>`) where the agent listens at 169.254.170.2 inside the task's network
(here any local process may call any task's path); only this endpoint, not the task metadata or
credentials endpoints. Every request is kept in `calls`, for tests to read.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.exceptions import ClientError

from foundation.local.ecs import Endpoint

PATH = "/task-protection/v1/state"
FAILURE_STATUS = {
    "MISSING": 404,
    "INVALID": 409,
    "DEPLOYMENT_BLOCKED": 409,
    "TASK_STOPPING_OR_STOPPED": 409,
}


@dataclass(frozen=True)
class Call:
    task_arn: str
    method: str
    body: dict | None
    status: int
    answer: dict


@dataclass
class _Task:
    arn: str
    cluster: str
    session: dict[str, str] | None


@dataclass
class LocalEcsAgent:
    endpoint: Endpoint
    calls: list[Call] = field(default_factory=list)
    _tasks: dict[str, _Task] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> LocalEcsAgent:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                agent._answer(self, None)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                agent._answer(self, self.rfile.read(length))

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="ecs-agent", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def environment(self, task: Any, session: dict[str, str] | None) -> dict[str, str]:
        """ECS_AGENT_URI of this task (a LocalEcs.task_environment hook)."""
        task_id = task.task_arn.rsplit("/", 1)[-1]
        self._tasks[task_id] = _Task(task.task_arn, task.cluster_name, session)
        assert self._server
        return {"ECS_AGENT_URI": f"http://127.0.0.1:{self._server.server_port}/api/{task_id}"}

    def _answer(self, request: BaseHTTPRequestHandler, body: bytes | None) -> None:
        task_id = request.path.removeprefix("/api/").removesuffix(PATH)
        task = self._tasks.get(task_id) if request.path.endswith(PATH) else None
        parsed = None
        if task is None:
            message = "Invalid request: no task was found"
            status, answer = 404, _error("", "ResourceNotFoundException", message)
        else:
            try:
                parsed = json.loads(body) if body is not None else None
            except ValueError:
                parsed = None
            status, answer = self._protection(task, request.command, parsed)
        self.calls.append(Call(task.arn if task else "", request.command, parsed, status, answer))
        encoded = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(encoded)))
        request.end_headers()
        request.wfile.write(encoded)

    def _protection(self, task: _Task, method: str, parsed: Any) -> tuple[int, dict]:
        arguments: dict[str, Any] = {"cluster": task.cluster, "tasks": [task.arn]}
        if method == "PUT":
            if (
                not isinstance(parsed, dict)
                or set(parsed) - {"ProtectionEnabled", "ExpiresInMinutes"}
                or not isinstance(parsed.get("ProtectionEnabled", False), bool)
            ):
                message = "UpdateTaskProtection: failed to decode request"
                return 400, _error("", "InvalidParameterException", message)
            if "ProtectionEnabled" not in parsed:
                message = "Invalid request: does not contain 'ProtectionEnabled' field"
                return 400, _error(task.arn, "InvalidParameterException", message)
            arguments["protectionEnabled"] = parsed["ProtectionEnabled"]
            if parsed.get("ExpiresInMinutes") is not None:
                arguments["expiresInMinutes"] = parsed["ExpiresInMinutes"]
        if task.session is None:
            message = "Invalid Request: no task IAM role credentials available for task"
            return 403, _error(task.arn, "AccessDeniedException", message)
        ecs = self.endpoint.client("ecs", task.session)
        call = ecs.update_task_protection if method == "PUT" else ecs.get_task_protection
        try:
            response = call(**arguments)
        except ClientError as error:
            meta = error.response["ResponseMetadata"]
            details = error.response["Error"]
            answer = _error(task.arn, details["Code"], details.get("Message", ""))
            return meta["HTTPStatusCode"], {"requestID": meta.get("RequestId", "")} | answer
        if response["failures"]:
            failure = response["failures"][0]
            answer = {
                "failure": {
                    "Arn": failure.get("arn"),
                    "Detail": failure.get("detail"),
                    "Reason": failure.get("reason"),
                }
            }
            return FAILURE_STATUS.get(failure.get("reason", ""), 500), answer
        (protected,) = response["protectedTasks"]
        expires = protected.get("expirationDate")
        return 200, {
            "protection": {
                "ExpirationDate": (
                    expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if expires else None
                ),
                "ProtectionEnabled": protected["protectionEnabled"],
                "TaskArn": protected["taskArn"],
            }
        }


def _error(arn: str, code: str, message: str) -> dict:
    return {"error": {"Arn": arn, "Code": code, "Message": message}}
