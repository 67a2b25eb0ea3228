"""The dag-processor and the triggerer, sealed: the code they run for DAG authors (DAG files at
parse time, triggers) reaches neither the metadata database's credentials nor the Fernet key
through the environment, and the triggerer runs only the trigger classes tasks may defer to.

Written by airflow-foundation to $AIRFLOW_HOME/config and run in place of `airflow`:

    python /opt/airflow/config/foundation_sealed.py [--wait-for-migrations SECONDS] \
        dag-processor|triggerer [ARGS...]

Airflow's own start (`import airflow`) reads its configuration: the database URL and the Fernet
key come from `_CMD` programs over secrets ECS injected (FOUNDATION_DB_SECRET,
FOUNDATION_FERNET_MATERIAL). Then, before the command runs and forks anything:

- seal(): every sensitive option set through the environment is kept in this process's
  configuration and its variables (value, `_CMD`, `_SECRET`) and the injected secrets leave the
  environment; the strings the kernel copied at exec (what /proc/<pid>/environ shows, and what
  a fork inherits) are zeroed, and the process is made non-dumpable (other processes of the same
  user cannot read its /proc/<pid>/environ or memory). The dag-processor holds no Fernet key:
  it gets a random one of its own, for the bundle URLs Airflow signs with it.
- guard() (the triggerer): a trigger is built for the trigger runner only if its classpath is
  one of FOUNDATION_TRIGGERS (exact) and it belongs to a deferred task instance: asset watchers,
  deadline callbacks and start_from_trigger tasks are refused, whatever wrote the row. Its
  kwargs are decrypted here, and the trigger runner is a fresh interpreter (fork, then exec)
  started without the database or AWS credentials' variables: it inherits no memory holding
  the database URL or the Fernet key, and needs neither.

What a DAG file at parse time still reaches, and why, is in README.md (Threat model).
"""

from __future__ import annotations

import base64
import ctypes
import json
import logging
import os
import sys

# Secrets ECS injects for the `_CMD` programs (foundation.airflow.settings)
INJECTED = ("FOUNDATION_DB_SECRET", "FOUNDATION_FERNET_MATERIAL")
# Credentials the trigger runner has no use for: the task role's (through the ECS endpoint, or
# keys), and the ECS metadata endpoint.
RUNNER_DROPS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "ECS_CONTAINER_METADATA_URI",
    "ECS_CONTAINER_METADATA_URI_V4",
)
PR_SET_DUMPABLE = 4
# The trigger runner, after exec: Airflow's own child entrypoint on the same sockets.
RUNNER_PROGRAM = (
    "import sys;from socket import socket;"
    "from airflow.sdk.execution_time.supervisor import _fork_main;"
    "from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor;"
    "_fork_main(socket(fileno=0),socket(fileno=1),socket(fileno=2),int(sys.argv[1]),"
    "TriggerRunnerSupervisor.run_in_process)"
)
log = logging.getLogger(__name__)


# -- seal ----------------------------------------------------------------------------------------


def option_variables(section: str, key: str) -> list[str]:
    name = f"AIRFLOW__{section.upper()}__{key.upper()}"
    return [name, f"{name}_CMD", f"{name}_SECRET"]


def seal(component: str) -> None:
    """Move every sensitive option out of the environment into this process's configuration,
    drop the injected secrets, zero the environment's original strings, turn non-dumpable."""
    from airflow.configuration import conf

    for section, key in sorted(conf.sensitive_config_values):
        names = option_variables(section, key)
        if not any(name in os.environ for name in names):
            continue
        value = conf.get(section, key)  # runs the _CMD program while its inputs are there
        conf.set(section, key, value.replace("%", "%%"))  # configparser's escape
        for name in names:
            os.environ.pop(name, None)
    for name in INJECTED:
        os.environ.pop(name, None)
    if component == "dag-processor":
        # Not the cluster's key: a DAG file at parse time decrypts no connection or variable.
        conf.set("core", "fernet_key", base64.urlsafe_b64encode(os.urandom(32)).decode())
    wipe_initial_environment()
    make_nondumpable()


def wipe_initial_environment() -> None:
    """Zero [env_start, env_end): the `NAME=value` strings the kernel copied when this program
    was exec'd, which /proc/<pid>/environ shows and every fork inherits. What remains in
    os.environ is set again first, so C code's getenv() finds those copies instead."""
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()  # from field 3 (state) on
    env_start, env_end = int(fields[50 - 3]), int(fields[51 - 3])
    for key, value in os.environ.items():
        os.putenv(key, value)
    ctypes.memset(env_start, 0, env_end - env_start)


def make_nondumpable() -> None:
    """PR_SET_DUMPABLE 0: /proc/<pid>/environ, mem and maps of this process (and of the
    processes it forks, which inherit the flag) are closed to other processes of the same
    user that lack CAP_SYS_PTRACE."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


# -- the triggerer's guard -------------------------------------------------------------------------


def refusal(trigger, allowed: frozenset[str]) -> str | None:
    """Why this trigger row may not run in the triggerer, if it may not."""
    if trigger.classpath not in allowed:
        return (
            f"foundation: trigger {trigger.classpath} is not one a task may defer to "
            f"(airflow.triggers in the deployment's config); it does not run in the triggerer"
        )
    if trigger.task_instance is None:
        return (
            f"foundation: trigger {trigger.id} ({trigger.classpath}) belongs to no deferred task "
            "(an asset watcher or a deadline callback); the triggerer runs no such trigger"
        )
    return None


# Triggers refused that no failure clears (asset watchers): never built again.
REFUSED: set[int] = set()


def guard() -> None:
    """Install the allow-list, kwargs decryption and the exec'd runner on Airflow's triggerer."""
    from airflow.jobs import triggerer_job_runner
    from airflow.sdk.execution_time import supervisor
    from foundation_refusal import allowed_triggers  # beside this file in $AIRFLOW_HOME/config

    runner_cls = triggerer_job_runner.TriggerRunnerSupervisor
    create_workload, update_triggers = runner_cls._create_workload, runner_cls.update_triggers
    fork_main = supervisor._fork_main

    def _create_workload(self, trigger, dag_bag, render_log_fname, session):
        reason = refusal(trigger, allowed_triggers())
        workload = None
        if reason is None:
            workload = create_workload(self, trigger, dag_bag, render_log_fname, session)
            if workload is not None and workload.dag_data is not None:
                reason = (
                    f"foundation: task {trigger.task_instance.task_id} of DAG "
                    f"{trigger.task_instance.dag_id} starts from a trigger (start_from_trigger); "
                    "the triggerer runs no such trigger"
                )
        if reason is None and workload is not None:
            try:
                kwargs = plain_kwargs(workload)
            except Exception as err:
                reason = (
                    f"foundation: the kwargs of trigger {trigger.id} ({trigger.classpath}) are "
                    f"not a readable mapping ({type(err).__name__}); it does not run"
                )
        if reason is not None:
            refuse(self, trigger, reason)
            return None
        if workload is None:
            return None
        return workload.model_copy(update={"encrypted_kwargs": kwargs})

    def _update_triggers(self, requested_trigger_ids: set[int]):
        return update_triggers(self, requested_trigger_ids - REFUSED)

    def _fork_main(requests, child_stdout, child_stderr, log_fd, target):
        if getattr(target, "__func__", None) is not runner_cls.run_in_process.__func__:
            return fork_main(requests, child_stdout, child_stderr, log_fd, target)
        # never falls back to running the triggers in the fork: exec or fail
        exec_runner(requests, child_stdout, child_stderr, log_fd)

    runner_cls._create_workload = _create_workload
    runner_cls.update_triggers = _update_triggers
    supervisor._fork_main = _fork_main


def refuse(supervisor, trigger, reason: str) -> None:
    """Fail what waits on a refused trigger, visibly: its task instance (through Airflow's own
    failure path: the task fails on a worker with this reason) or its deadline callback."""
    from airflow.models.callback import CallbackState

    log.error("%s", reason)
    supervisor.logger_cache.pop(trigger.id, None)
    if trigger.task_instance is not None:
        supervisor.failed_triggers.append((trigger.id, [reason]))
    elif trigger.callback is not None:
        trigger.callback.state = CallbackState.FAILED
        trigger.callback.output = reason
        trigger.callback.trigger = None  # the trigger, unused, is then deleted
    else:
        REFUSED.add(trigger.id)


def plain_kwargs(workload) -> str:
    """The trigger's kwargs as the JSON Airflow encrypted (Trigger.encrypt_kwargs): the runner
    reads unencrypted kwargs as they are, so it needs no Fernet key. Raises if they are not a
    JSON mapping once decrypted (the Execution API stores a string a task sends as it is; the
    runner would die on it, taking every trigger with it)."""
    from airflow.models.crypto import get_fernet

    text = workload.encrypted_kwargs
    if not text.startswith("{"):
        text = get_fernet().decrypt(text.encode("utf-8")).decode("utf-8")
    if not isinstance(json.loads(text), dict):
        raise ValueError("not a JSON object")
    return text


def exec_runner(requests, child_stdout, child_stderr, log_fd: int) -> None:
    """In the forked child: become a fresh interpreter running the trigger runner, on the same
    sockets (0, 1, 2 and the log channel), with the sealed environment less the credentials'
    variables. Nothing of the triggerer's memory survives the exec."""
    os.dup2(requests.fileno(), 0)
    os.dup2(child_stdout.fileno(), 1)
    os.dup2(child_stderr.fileno(), 2)
    os.set_inheritable(log_fd, True)
    env = {k: v for k, v in os.environ.items() if k not in RUNNER_DROPS}
    env["_AIRFLOW__REEXECUTED_PROCESS"] = "1"  # Airflow configures no ORM at start
    os.execve(sys.executable, [sys.executable, "-c", RUNNER_PROGRAM, str(log_fd)], env)


def main(argv: list[str]) -> None:
    from foundation_start import WAIT_OPTION, run_airflow, split, wait_for_migrations

    seconds, argv = split(argv)
    component = argv[0] if argv else ""
    if component not in ("dag-processor", "triggerer"):
        raise SystemExit(
            f"usage: {sys.argv[0]} [{WAIT_OPTION} SECONDS] dag-processor|triggerer [ARGS...]"
        )
    import airflow  # noqa: F401  (reads the configuration: the _CMD programs run now)

    if seconds is not None:  # no author's code has run yet: nothing to seal from
        wait_for_migrations(seconds)
    seal(component)
    if component == "triggerer":
        guard()
    run_airflow(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
