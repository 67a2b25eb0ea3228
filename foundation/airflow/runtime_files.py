"""The Airflow-side files `foundation synth` writes under <out>/airflow/ and ships to the
cluster's containers (in an environment variable they unpack into $AIRFLOW_HOME/config)."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import shlex
import zipfile
from importlib import resources
from pathlib import Path

from foundation.airflow.runtime.foundation_start import WAIT_OPTION

CONFIG_DIR = "/opt/airflow/config"  # the official image's $AIRFLOW_HOME/config, on sys.path
RUNTIME_ENV = "FOUNDATION_RUNTIME"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


NAMES = "foundation_names.py"
CELERY_CONFIG = "airflow_foundation_celery_config.py"
WORKLOAD = "foundation_workload.py"
# The api-server's plugins folder ([core] plugins_folder) holds only this.
PLUGINS_DIR = f"{CONFIG_DIR}/plugins"
DEFERRAL_PLUGIN = "plugins/foundation_deferral.py"
EXECUTION_API_PLUGIN = "plugins/foundation_execution_api.py"  # the Execution API's allow-list
WEB_SETUP = "foundation_web.py"
ROLES_SETUP = "foundation_roles.py"
WEBSERVER_CONFIG = "webserver_config.py"
# Runs the dag-processor and the triggerer in place of `airflow` (foundation_sealed.py).
SEALED = "foundation_sealed.py"
# Runs a component's first airflow command once the schema is this Airflow's.
START = "foundation_start.py"
_CLUSTER = (
    "airflow_local_settings.py",
    "foundation_identity.py",
    WORKLOAD,
    NAMES,
    SEALED,
    START,
    "foundation_refusal.py",
    DEFERRAL_PLUGIN,
    EXECUTION_API_PLUGIN,
    WEB_SETUP,
    ROLES_SETUP,
    WEBSERVER_CONFIG,
)
# What each kind of container unpacks: the cluster's components, by executor, and a DAG's
# Celery worker, which needs only the Celery settings (its `airflow celery worker` comes from
# the provider's own CeleryExecutor).
FOR_COMPONENTS = {
    "ecs": (*_CLUSTER, "airflow_foundation_executor.py"),
    "celery": (*_CLUSTER, "airflow_foundation_celery.py", CELERY_CONFIG),
}
FOR_CELERY_WORKERS = (CELERY_CONFIG, WORKLOAD)


def files() -> dict[str, str]:
    """Each file by its path under $AIRFLOW_HOME/config."""
    runtime = resources.files("foundation.airflow.runtime")
    every = {name for names in FOR_COMPONENTS.values() for name in names} - {NAMES}
    out = {name: runtime.joinpath(Path(name).name).read_text() for name in sorted(every)}
    # The same naming code the stacks use, so the hook names exactly what was deployed.
    out[NAMES] = resources.files("foundation").joinpath("naming.py").read_text()
    return out


def write(folder: Path, executor: str) -> list[Path]:
    """The files the cluster's containers unpack with this executor."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files().items():
        if name not in FOR_COMPONENTS[executor]:
            continue
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
        written.append(folder / name)
    return written


@functools.cache  # one per kind of container, however many DAGs' worker services carry it
def archive(names: tuple[str, ...]) -> str:
    """These files as a deterministic base64 zip (same bytes for the same files)."""
    chosen = {name: text for name, text in files().items() if name in names}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in sorted(chosen.items()):
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED  # a ZipInfo's own, or it is stored as is
            zf.writestr(info, text, compresslevel=9)
    return base64.b64encode(buffer.getvalue()).decode()


UNPACK = (
    "import base64,io,os,zipfile;"
    f"zipfile.ZipFile(io.BytesIO(base64.b64decode(os.environ['{RUNTIME_ENV}'])))"
    f".extractall('{CONFIG_DIR}')"
)


# How long a component waits for `airflow db migrate` (which `foundation deploy` runs while the
# new task definitions roll out, waiting as long for it) before it exits and ECS starts it again.
MIGRATION_WAIT_SECONDS = 3600
# A component's start after the migration, within the load balancer's health-check grace.
STARTUP_SECONDS = 300


# Values too large to repeat in every task definition (ECS takes 64 KiB each) are delivered
# once: cut into SSM parameters of the standard tier's 4 KB, injected by ECS as `<NAME>_<i>`,
# joined back into `<NAME>` before anything reads it.
CHUNK_CHARS = 4096


def chunks(value: str) -> list[str]:
    return [value[i : i + CHUNK_CHARS] for i in range(0, len(value), CHUNK_CHARS)] or [""]


def delivery(folder: str, env: str, value: str) -> tuple[str, list[tuple[str, str]]]:
    """The SSM parameters under `folder` (Namespace.deliveries) that deliver `value` as `env`:
    the value's hash, which names them (a new value, new parameters), and each one's name and
    chunk, in order."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    kind = env.lower().replace("_", "-")
    return digest, [(f"{folder}/{kind}/{digest}/{i}", c) for i, c in enumerate(chunks(value))]


def _joined(name: str, count: int) -> str:
    program = (
        "import os,sys;sys.stdout.write(''.join("
        f"os.environ['{name}_%d'%i] for i in range({count})))"
    )
    return f'export {name}="$(python -c {shlex.quote(program)})"'


def container_command(
    commands: list[list[str]],
    wait_for_migrations: bool = True,
    setup: tuple[str, ...] = (),
    delivered: dict[str, int] | None = None,
    sealed: bool = False,
) -> list[str]:
    """Join the delivered values, unpack the files, run the setup programs (in the config
    folder), then the airflow commands in order, the last in place of the shell (`sealed`:
    through foundation_sealed.py); the first waits until the database schema matches this
    Airflow (as the Helm chart's wait-for-migrations does), in its own process
    (foundation_start.py). `delivered`: each chunked value's name and number of chunks."""
    steps = [_joined(name, count) for name, count in sorted((delivered or {}).items())]
    steps.append(f"python -c {shlex.quote(UNPACK)}")
    steps += [f"python {shlex.quote(f'{CONFIG_DIR}/{program}')}" for program in setup]
    last = len(commands) - 1
    for index, args in enumerate(commands):
        program = ["airflow"]
        if sealed and index == last:
            program = ["python", f"{CONFIG_DIR}/{SEALED}"]
        elif wait_for_migrations and index == 0:
            program = ["python", f"{CONFIG_DIR}/{START}"]
        if wait_for_migrations and index == 0:
            program += [WAIT_OPTION, str(MIGRATION_WAIT_SECONDS)]
        steps.append(("exec " if index == last else "") + shlex.join([*program, *args]))
    return ["bash", "-c", " && ".join(steps)]


# The container's first process in place of the image's dumb-init, for the components that run
# DAG authors' code (sealed): ECS starts it with the injected secrets in its environment, so it
# makes itself non-dumpable (no other process of the same user reads its /proc/1/environ or
# memory), then does dumb-init's work: the image's /entrypoint with the command as its child, in
# its own session, signals forwarded to that session, every orphan reaped, the child's exit
# status as its own, and 127 or 126 as a shell's when the program cannot start. As dumb-init
# does, it takes its signals synchronously (sigwait), blocked from before the fork: a Python
# handler runs only between bytecodes, so a signal that came just before a blocking os.wait()
# would wait with it, never forwarded (seen once in 20 runs under load).
INIT_PROGRAM = """\
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0):  # PR_SET_DUMPABLE, 0
    sys.exit("foundation init: prctl(PR_SET_DUMPABLE, 0) failed")
FORWARDED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2}
TAKEN = FORWARDED | {signal.SIGCHLD}
# blocked from now on, and taken by sigwait below: none sent while the child starts is lost,
# and a child that ends at once leaves its SIGCHLD pending
signal.pthread_sigmask(signal.SIG_BLOCK, TAKEN)
ready, started = os.pipe()
child = os.fork()
if child == 0:
    os.setsid()
    os.close(ready)
    os.close(started)  # the parent reads the end of the pipe: the session exists
    # the program gets what it is sent: none of these ignored (Python ignores SIGPIPE and
    # SIGXFSZ; a shell's background job, SIGINT and SIGQUIT; nohup, SIGHUP)
    for signum in FORWARDED | {signal.SIGPIPE, signal.SIGXFSZ}:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, TAKEN)
    try:
        os.execv(sys.argv[1], sys.argv[1:])
    except OSError as error:
        os.write(2, f"foundation init: {sys.argv[1]}: {error.strerror}\\n".encode())
        os._exit(127 if isinstance(error, FileNotFoundError) else 126)
os.close(started)
os.read(ready, 1)
os.close(ready)
while True:
    signum = signal.sigwait(TAKEN)
    if signum != signal.SIGCHLD:
        try:
            os.killpg(child, signum)
        except ProcessLookupError:
            pass
        continue
    while True:  # one SIGCHLD may stand for several ended children: reap them all
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if pid == child:
            signalled = os.WIFSIGNALED(status)
            sys.exit(128 + os.WTERMSIG(status) if signalled else os.WEXITSTATUS(status))
"""
IMAGE_ENTRYPOINT = "/entrypoint"  # the official image's (scripts/docker/entrypoint_prod.sh)


def init_entry_point() -> list[str]:
    """The task definition's entryPoint for a sealed component (the command follows it)."""
    return ["python", "-c", INIT_PROGRAM, IMAGE_ENTRYPOINT]
