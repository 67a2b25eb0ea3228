"""ECS, locally: every task of the cluster (a service's, or one RunTask started) runs as a
process of the image's entrypoint (entrypoint.py), under the task definition's entryPoint when
it has one (the sealed components' first process), with its command (or the RunTask override),
environment and secrets, under its task role's credentials; its state and
exit code go back into moto's ECS, where `DescribeTasks` reads them as on ECS.

Like the ECS agent, it fetches each container's secrets with the task's *execution* role, and
hands the *task* role's credentials to the container (here as an assumed-role session on the
local endpoint, where ECS would serve them from its credentials endpoint).

What differs from Fargate:
- a task is a process on this machine, not a micro-VM: no memory or CPU limit, no network
  isolation (security groups are not enforced), and the container's `/opt/airflow` is a folder of
  its own (the path is rewritten in its command and environment);
- nor process or file isolation: every task runs as this machine's user, so a task's code can
  read another process's environment (its credentials and secrets), any task's folder, and call
  the local endpoint's unauthenticated `/moto-api/` (which can turn IAM enforcement off). It runs
  reviewed code (the tests, an author's own DAGs); it is not a sandbox for untrusted DAGs;
- service discovery is a rewrite of `<service>.<namespace>:<port>` to the local address of the
  service's first task, and a container port is mapped to a free port of 127.0.0.1, told to
  Airflow as `AIRFLOW__API__HOST` and `AIRFLOW__API__PORT` (the one port the cluster's
  containers listen on);
- a service runs one task, whatever its desired count; nothing replaces a task that exits;

It reads and writes moto's ECS models directly, so moto must run in this process
(`moto.server.ThreadedMotoServer`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from foundation.airflow.runtime_files import IMAGE_ENTRYPOINT

CONTAINER_HOME = "/opt/airflow"  # the official image's AIRFLOW_HOME
TASK_TRANSITION = "ecs::task"


class TaskRefused(Exception):
    """The task cannot start (ECS's ResourceInitializationError): the reason, in a sentence."""


@dataclass(frozen=True)
class Endpoint:
    """The local AWS endpoint, and an identity that may read anything (to set tasks up)."""

    url: str
    region: str
    account: str
    access_key_id: str
    secret_access_key: str

    def client(self, service: str, credentials: dict[str, str] | None = None) -> Any:
        keys = credentials or {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }
        return boto3.client(service, region_name=self.region, endpoint_url=self.url, **keys)

    def session_of(self, role_arn: str, name: str) -> dict[str, str]:
        """A session of the role as ECS gets one: the roles trust `ecs-tasks.amazonaws.com`
        alone, so no caller of STS may assume them; moto's STS is asked in this process, as
        the service principal would be."""
        from moto.sts.models import sts_backends

        sts = sts_backends[self.account][role_arn.split(":")[1]]
        role = sts.assume_role(self.region, name[:64], role_arn, "", 3600, "")
        return {
            "aws_access_key_id": role.access_key_id,
            "aws_secret_access_key": role.secret_access_key,
            "aws_session_token": role.session_token,
        }


@dataclass
class Running:
    task: Any  # moto's Task
    family: str
    process: subprocess.Popen
    folder: Path
    log: Any  # the container log's file
    port: int | None = None

    def signal(self, number: int) -> None:
        """The whole process group: the entrypoint's shell and whatever it started; SIGKILL
        also every session under it (the sealed components' first process starts its child
        in a session of its own, which a killed first process could not forward to)."""
        groups = [self.process.pid]  # first: once killed, it reaps nothing more
        for pid in _descendants(self.process.pid) if number == signal.SIGKILL else []:
            with contextlib.suppress(ProcessLookupError):
                groups.append(os.getpgid(pid))
        for group in dict.fromkeys(groups):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, number)


def _descendants(pid: int) -> list[int]:
    """The processes under `pid` now, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, front = [], [pid]
    while front:
        below = children.get(front.pop(), [])
        found += below
        front += below
    return found


def _environment_list(pairs: list[dict[str, str]] | None) -> dict[str, str]:
    return {p["name"]: p["value"] for p in pairs or []}


def _secret_value(session: Endpoint, credentials: dict[str, str], value_from: str) -> str:
    """An SSM parameter's ARN, or a secret's `arn` or `arn:json-key:version-stage:version-id`,
    read as ECS reads them."""
    if value_from.split(":")[2] == "ssm":
        name = "/" + value_from.split(":parameter/", 1)[1]
        ssm = session.client("ssm", credentials)
        # ssm:GetParameters, the action the agent calls (and the execution role must be granted)
        answer = ssm.get_parameters(Names=[name], WithDecryption=True)
        if answer["InvalidParameters"]:
            error = {"Code": "InvalidParameters", "Message": f"no parameter {name}"}
            raise ClientError({"Error": error}, "GetParameters")
        return answer["Parameters"][0]["Value"]
    parts = value_from.split(":")
    arn, key = ":".join(parts[:7]), parts[7] if len(parts) > 7 else ""
    secrets = session.client("secretsmanager", credentials)
    value = secrets.get_secret_value(SecretId=arn)["SecretString"]
    return str(json.loads(value)[key]) if key else value


@dataclass
class LocalEcs:
    endpoint: Endpoint
    cluster: str
    folder: Path
    # injected secret values pass through here first (the RDS stand-in rewrites the database's)
    secret_filter: Callable[[str], str] = lambda value: value
    # `<host>:<port>` names of services -> the local address (service discovery)
    service_names: dict[str, str] = field(default_factory=dict)
    # what else ECS puts in a task's environment, from the task and its role's session (the
    # ECS agent's endpoint: ecs_agent.py)
    task_environment: list[Callable[[Any, dict[str, str] | None], dict[str, str]]] = field(
        default_factory=list
    )
    running: dict[str, Running] = field(default_factory=dict)
    finished: dict[str, Running] = field(default_factory=dict)  # by task ARN
    refused: dict[str, str] = field(default_factory=dict)  # task ARN -> why it never started
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.RLock = field(default_factory=threading.RLock)  # one launcher at a time
    _thread: threading.Thread | None = None
    _transition: dict[str, Any] | None = None

    @property
    def _backend(self) -> Any:
        from moto.ecs.models import ecs_backends

        return ecs_backends[self.endpoint.account][self.endpoint.region]

    def start(self) -> LocalEcs:
        """Tasks stay RUNNING until their process ends (moto would move them along itself)."""
        from moto.moto_api import state_manager

        self._transition = state_manager.get_transition(TASK_TRANSITION)
        state_manager.set_transition(TASK_TRANSITION, {"progression": "manual", "times": 2**62})
        self._thread = threading.Thread(target=self._loop, name="local-ecs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        from moto.moto_api import state_manager

        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        with self._lock:
            for running in self.running.values():
                running.signal(signal.SIGTERM)
            for running in self.running.values():
                try:
                    running.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    running.signal(signal.SIGKILL)
                    running.process.wait()
                running.log.close()
        if self._transition is not None:
            state_manager.set_transition(TASK_TRANSITION, self._transition)

    def start_services(self, first: str | None = None) -> dict[str, Running]:
        """One task of every service of the cluster with a desired count, as its service
        would; `first` starts before the others (they find it by its service name)."""
        started: dict[str, Running] = {}
        services = [
            s
            for s in self._backend.services.values()
            if s.cluster_name == self.cluster and s.desired_count
        ]
        with self._lock:  # the poll thread must not launch these as well
            for service in sorted(services, key=lambda s: (s.name != first, s.name)):
                started[service.name] = self._launch(self.run_service_task(service))
        return started

    def run_service_task(self, service: Any) -> Any:
        """A task of the service in moto's ECS, tagged as the service propagates its tags; the
        poll thread launches it unless the caller does, holding the lock."""
        definition = self._backend.describe_task_definition(service.task_definition)
        tags = {"SERVICE": service.tags, "TASK_DEFINITION": definition.tags}
        with self._lock:
            (task,) = self._backend.run_task(
                self.cluster,
                service.task_definition,
                1,
                None,
                f"ecs-svc/{service.name}",
                [dict(t) for t in tags.get(service.propagate_tags, [])],
                "FARGATE",
                service.deployments[0].get("networkConfiguration"),
            )
        return task

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.poll()

    def poll(self) -> None:
        with self._lock:
            self._poll()

    def _poll(self) -> None:
        for arn, task in list(self._backend.tasks.get(self.cluster, {}).items()):
            if arn not in self.running and arn not in self.finished and arn not in self.refused:
                try:
                    self._launch(task)
                except TaskRefused as error:  # as ECS does: the task stops, with the reason
                    self.refused[arn] = f"ResourceInitializationError: {error}"
                    self._stopped_before_start(task, self.refused[arn])
                except Exception as error:
                    self.refused[arn] = f"ResourceInitializationError: {error!r}"
                    self._stopped_before_start(task, self.refused[arn])
        for arn, running in list(self.running.items()):
            if running.task.desired_status == "STOPPED":  # StopTask: ECS sends SIGTERM
                running.signal(signal.SIGTERM)
            code = running.process.poll()
            if code is not None:
                self._stopped(running, code)
                running.log.close()
                self.finished[arn] = self.running.pop(arn)

    def address_of(self, service: str) -> str | None:
        with self._lock:
            running = next(
                (r for r in self.running.values() if r.task.started_by == f"ecs-svc/{service}"),
                None,
            )
        return f"127.0.0.1:{running.port}" if running and running.port else None

    def _launch(self, task: Any) -> Running:
        ecs = self.endpoint.client("ecs")
        definition = ecs.describe_task_definition(taskDefinition=task.task_definition_arn)
        definition = definition["taskDefinition"]
        (container,) = definition["containerDefinitions"]
        override = next(
            (
                o
                for o in task.overrides.get("containerOverrides", [])
                if o.get("name") == container["name"]
            ),
            {},
        )
        task_id = task.task_arn.rsplit("/", 1)[-1]
        folder = self.folder / f"{definition['family']}-{task_id[:8]}"
        home = folder / CONTAINER_HOME.lstrip("/")
        home.mkdir(parents=True, exist_ok=True)
        port = None
        if container.get("portMappings"):
            from foundation.local.postgres import free_port

            port = free_port()
        environment = _environment_list(container.get("environment"))
        environment |= _environment_list(override.get("environment"))
        environment |= self._secrets(definition, container, task_id)
        role = task.overrides.get("taskRoleArn") or definition.get("taskRoleArn")
        session = None
        if role:
            session = self.endpoint.session_of(role, f"{definition['family']}-{task_id}")
        environment |= self._aws(session)
        for extra in self.task_environment:
            environment |= extra(task, session)
        if port:  # on the loopback only: nothing isolates this machine's network from others
            environment |= {"AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1"}
        command = override.get("command") or container.get("command") or []
        environment, command = self._rewritten(environment, command, home)
        log = (folder / "container.log").open("ab")
        process = subprocess.Popen(
            [*self._entry_point(container, folder), *command],
            env=self._base(home, folder) | environment,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        task.started_at = time.time()
        running = Running(task, definition["family"], process, folder, log, port)
        self.running[task.task_arn] = running
        return running

    def _secrets(self, definition: dict, container: dict, name: str) -> dict[str, str]:
        if not container.get("secrets"):
            return {}
        role = definition["executionRoleArn"]
        credentials = self.endpoint.session_of(role, name)
        values = {}
        for secret in container["secrets"]:
            try:
                values[secret["name"]] = self.secret_filter(
                    _secret_value(self.endpoint, credentials, secret["valueFrom"])
                )
            except ClientError as error:
                raise TaskRefused(
                    f"the execution role {role} cannot read {secret['valueFrom']} "
                    f"({secret['name']}): {error.response['Error']['Code']}"
                ) from None
        return values

    def _aws(self, session: dict[str, str] | None) -> dict[str, str]:
        environment = {
            "AWS_ENDPOINT_URL": self.endpoint.url,
            "AWS_DEFAULT_REGION": self.endpoint.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        return environment | {key.upper(): value for key, value in (session or {}).items()}

    def _rewritten(
        self, environment: dict[str, str], command: list[str], home: Path
    ) -> tuple[dict[str, str], list[str]]:
        replacements = {CONTAINER_HOME: str(home)}
        for name in self.service_names:
            address = self.address_of(self.service_names[name])
            if address:
                replacements[name] = address

        def rewrite(text: str) -> str:
            for old, new in replacements.items():
                text = text.replace(old, new)
            return text

        return {k: rewrite(v) for k, v in environment.items()}, [rewrite(c) for c in command]

    @staticmethod
    def _entry_point(container: dict, folder: Path) -> list[str]:
        """The image's entrypoint (entrypoint.py), or the task definition's entryPoint (the
        sealed components' first process) with the image's entrypoint as it names it."""
        image = [sys.executable, "-m", "foundation.local.entrypoint"]
        if not container.get("entryPoint"):
            return image
        shim = folder / "entrypoint"
        shim.write_text(f'#!/bin/sh\nexec {shlex.join(image)} "$@"\n')
        shim.chmod(0o755)
        return [str(shim) if arg == IMAGE_ENTRYPOINT else arg for arg in container["entryPoint"]]

    @staticmethod
    def _base(home: Path, folder: Path) -> dict[str, str]:
        """The image's own environment; nothing of this process's leaks into a container."""
        bin_dir = str(Path(sys.executable).parent)
        (folder / "home").mkdir(exist_ok=True)
        (folder / "tmp").mkdir(exist_ok=True)
        return {
            "TMPDIR": str(folder / "tmp"),  # a container's own /tmp (DAG bundles unpack there)
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(folder / "home"),
            "LANG": "C.UTF-8",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_USER_HOME_DIR": str(folder / "home"),
            "PYTHONUNBUFFERED": "1",
            "AWS_CONFIG_FILE": str(folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-aws-credentials"),
        }

    @staticmethod
    def _stopped_before_start(task: Any, reason: str) -> None:
        task.desired_status = "STOPPED"
        task.status = "STOPPED"
        task.stopped_reason = reason[:1000]
        for container in task.containers:  # no container ever ran: no exit code
            container.last_status = "STOPPED"
            container.exitCode = None

    def _stopped(self, running: Running, code: int) -> None:
        task = running.task
        task.status = "STOPPED"
        if task.desired_status != "STOPPED":  # not stopped by StopTask: its reason stays
            task.desired_status = "STOPPED"
            task.stopped_reason = "Essential container in task exited"
        task.stopped_at = time.time()
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = code
