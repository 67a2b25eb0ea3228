"""The pieces that keep the cluster's secrets from the code the dag-processor and the triggerer run
for DAG authors, each on real processes: the container's first process (runtime_files'
INIT_PROGRAM, in place of dumb-init), the zeroing of a process's original environment
(foundation_sealed.wipe_initial_environment), and what each component's task definition gets.

The readers run without any capability, root's included, as Airflow does in its container.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from foundation.airflow import runtime_files, settings
from foundation.project import load_project
from foundation.triggers import DEFAULT_TRIGGERS
from tests.conftest import ROOT

DEPLOYMENT = load_project(ROOT).deployment
STAGING = load_project(ROOT, "staging").deployment  # a git bundle
UNPRIVILEGED = (
    ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"] if os.geteuid() == 0 else []
)
# Reads its parent's /proc/<pid>/environ and says whether that worked.
READ_PARENT = ["/bin/sh", "-c", 'cat "/proc/$PPID/environ"; echo " rc=$?"']
INIT = [sys.executable, "-c", runtime_files.INIT_PROGRAM]


def environment(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], **extra}


def test_the_first_process_closes_its_environment_to_every_other_process() -> None:
    marker = "dbpw" + secrets.token_hex(16)
    env = environment(FOUNDATION_DB_SECRET=marker)
    done = subprocess.run(
        [*UNPRIVILEGED, *INIT, *READ_PARENT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout == " rc=1\n"
    assert re.fullmatch(r"cat: /proc/\d+/environ: Permission denied\n", done.stderr)
    assert done.returncode == 0  # the child's status
    # The same reader under a parent that stays dumpable (dumb-init, or any plain process)
    plain = [sys.executable, "-c", "import subprocess,sys; sys.exit(subprocess.call(sys.argv[1:]))"]
    done = subprocess.run(
        [*UNPRIVILEGED, *plain, *READ_PARENT], env=env, capture_output=True, text=True, timeout=60
    )
    assert f"FOUNDATION_DB_SECRET={marker}" in done.stdout.split("\0")
    assert done.stdout.endswith(" rc=0\n")


@pytest.mark.parametrize("attempt", range(20))
def test_the_first_process_forwards_signals_and_exits_as_its_child(attempt: int) -> None:
    """SIGTERM as soon as the child runs: the first process holds the signals it forwards from
    before the fork, so one that comes before its handlers are set is forwarded, not fatal to
    it. A race, hence the attempts: before the signals were held, 9 of 60 such runs ended by
    SIGTERM on a loaded machine (measured), none since. The child runs in its own session
    before the signals are released (the parent waits for it), so one held while it started
    finds its process group."""
    child = ["/bin/sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"]
    process = subprocess.Popen(
        [*UNPRIVILEGED, *INIT, *child], env=environment(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 7, signal_states(process.pid)
    finally:
        process.kill()
        process.stdout.close()


def signal_states(pid: int) -> str:
    """The signal masks of a process and of its descendants: what a failure needs to be told
    apart (was the signal held, caught, or never sent on?)."""
    wanted = ("Name", "Pid", "PPid", "State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        found[int(status.parent.name)] = {k: fields.get(k, "").strip() for k in wanted}
    family, grown = {pid}, True
    while grown:
        more = {p for p, f in found.items() if f["PPid"].isdigit() and int(f["PPid"]) in family}
        grown = not more <= family
        family |= more
    return "\n".join(
        " ".join(f"{k}={v}" for k, v in found[p].items()) for p in sorted(family & found.keys())
    )


def test_the_child_starts_with_no_signal_blocked_or_ignored() -> None:
    """The signals the first process holds and forwards, and those Python ignores (SIGPIPE,
    SIGXFSZ), reach the image's entrypoint with their default actions, even when the first
    process was started with them ignored (here: as nohup and a shell's background job do)."""
    child = ["/bin/sh", "-c", "grep -E '^Sig(Blk|Ign):' /proc/self/status"]
    ignoring = "import signal, os, sys; [signal.signal(s, signal.SIG_IGN) for s in (1, 2, 3, 13)]; "
    start = [sys.executable, "-c", ignoring + "os.execv(sys.argv[1], sys.argv[1:])"]
    done = subprocess.run(
        [*UNPRIVILEGED, *start, *INIT, *child], env=environment(), capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (
        0,
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
    ), done.stderr


@pytest.mark.parametrize(
    ("mode", "code", "said"),
    [(None, 127, "No such file or directory"), (0o644, 126, "Permission denied")],
    ids=["missing", "not executable"],
)
def test_a_program_that_cannot_start_exits_as_a_shell_would(
    tmp_path: Path, mode: int | None, code: int, said: str
) -> None:
    program = tmp_path / "entrypoint"
    if mode is not None:
        program.write_text("#!/bin/sh\n")
        program.chmod(mode)
    done = subprocess.run(
        [*UNPRIVILEGED, *INIT, str(program)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (code, f"foundation init: {program}: {said}\n")


def test_a_child_that_ends_at_once_is_waited_for() -> None:
    """Its SIGCHLD may come before the first process waits: held, it is taken then."""
    for code in (0, 3):
        done = subprocess.run(
            [*UNPRIVILEGED, *INIT, "/bin/sh", "-c", f"exit {code}"], env=environment(), timeout=60
        )
        assert done.returncode == code


# In the init's PID namespace: a child that leaves an orphan (reparented to PID 1, the init)
# which ends 0.3 s later; a second later, the zombies left and what PID 1 runs.
ORPHANS = """
import os, sys, time
first = os.fork()
if first == 0:
    if os.fork() == 0:
        time.sleep(0.3)
        os._exit(0)
    os._exit(0)
os.waitpid(first, 0)
time.sleep(1.3)
states = [open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0]
          for p in os.listdir("/proc") if p.isdigit()]
print(states.count("Z"), open("/proc/1/cmdline").read().split("\\0")[:2])
"""


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root")
def test_as_pid_1_the_first_process_reaps_every_orphan() -> None:
    """As a container's PID 1 (a new PID namespace, as ECS starts it), the init is every
    orphan's parent: each one that ends is reaped, none left a zombie."""
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", *INIT, sys.executable, "-c", ORPHANS],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"0 {[sys.executable, '-c']}\n"


def test_the_first_process_exits_as_its_killed_child() -> None:
    killed = subprocess.run(
        [*UNPRIVILEGED, *INIT, "/bin/sh", "-c", "kill -KILL $$"], env=environment(), timeout=60
    )
    assert killed.returncode == 128 + signal.SIGKILL


def test_the_original_environment_is_zeroed_and_the_rest_still_set() -> None:
    """After the wipe, /proc/self/environ (what a fork inherits and what other processes read)
    holds nothing; the variables left in os.environ are still what C's getenv() finds."""
    marker = "dbpw" + secrets.token_hex(16)
    program = (
        "import ctypes,json,os;"
        "from foundation.airflow.runtime.foundation_sealed import wipe_initial_environment;"
        "os.environ.pop('FOUNDATION_DB_SECRET');"
        "before=open('/proc/self/environ','rb').read();"
        "wipe_initial_environment();"
        "after=open('/proc/self/environ','rb').read();"
        "libc=ctypes.CDLL(None);libc.getenv.restype=ctypes.c_char_p;"
        "print(json.dumps([before.decode(), after.strip(b'\\0').decode(),"
        "libc.getenv(b'KEPT').decode(), libc.getenv(b'FOUNDATION_DB_SECRET')]))"
    )
    env = environment(FOUNDATION_DB_SECRET=marker, KEPT="kept-value", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    before, after, kept, removed = json.loads(done.stdout)
    assert f"FOUNDATION_DB_SECRET={marker}" in before.split("\0")  # removed from os.environ only
    assert after == ""
    assert (kept, removed) == ("kept-value", None)


def test_only_the_components_that_run_dag_authors_code_are_sealed() -> None:
    for component in ("api-server", "scheduler", "dag-processor", "triggerer", "db-migrate"):
        ours = settings.cluster_component(DEPLOYMENT, component)
        assert ours.sealed == (component in ("dag-processor", "triggerer"))


def test_what_each_sealed_component_holds() -> None:
    """The triggerer: the database (the trigger table, the task instances its events wake) and
    the Fernet key (trigger kwargs are stored encrypted; connections from the database), no
    bundle credentials (it loads no DAG code). The dag-processor: the database and the bundle's
    credentials, no Fernet material."""
    db, fernet, git = (
        settings.DB_SECRET_ENV,
        settings.FERNET_MATERIAL_ENV,
        "AIRFLOW_CONN_FOUNDATION_DAGS_GIT",
    )
    for deployment, bundle in ((DEPLOYMENT, set()), (STAGING, {git})):
        triggerer = settings.cluster_component(deployment, "triggerer")
        assert set(triggerer.secrets) == {db, fernet}
        assert triggerer.environment["AIRFLOW__CORE__FERNET_KEY_CMD"] == settings.FERNET_KEY_CMD
        processor = settings.cluster_component(deployment, "dag-processor")
        assert set(processor.secrets) == {db} | bundle
        assert not [k for k in processor.environment if k.startswith("AIRFLOW__CORE__FERNET")]
        scheduler = settings.cluster_component(deployment, "scheduler")
        assert {db, fernet} | bundle <= set(scheduler.secrets)


def test_the_trigger_list_goes_to_the_guard_and_the_triggerer_only() -> None:
    for component in ("api-server", "scheduler", "dag-processor", "triggerer", "db-migrate"):
        env = settings.cluster_component(DEPLOYMENT, component).environment
        if component in ("api-server", "triggerer"):
            assert json.loads(env[settings.TRIGGERS_ENV]) == sorted(DEFAULT_TRIGGERS)
        else:
            assert settings.TRIGGERS_ENV not in env


def test_a_sealed_component_starts_through_the_seal_under_the_init() -> None:
    command = runtime_files.container_command([["triggerer"]], sealed=True)
    assert command[:2] == ["bash", "-c"]
    *_, last = command[2].split(" && ")
    assert shlex.split(last) == [
        "exec",
        "python",
        f"{runtime_files.CONFIG_DIR}/{runtime_files.SEALED}",
        "--wait-for-migrations",
        "3600",
        "triggerer",
    ]
    assert runtime_files.init_entry_point() == [
        "python",
        "-c",
        runtime_files.INIT_PROGRAM,
        runtime_files.IMAGE_ENTRYPOINT,
    ]
    assert runtime_files.SEALED in runtime_files.FOR_COMPONENTS["ecs"]
    assert runtime_files.SEALED in runtime_files.FOR_COMPONENTS["celery"]


def airflow_steps(command: list[str]) -> list[list[str]]:
    """The command's steps after the runtime files are unpacked, each as its words."""
    steps = command[2].split(" && ")
    (unpack,) = [i for i, step in enumerate(steps) if runtime_files.UNPACK in shlex.split(step)]
    return [shlex.split(step) for step in steps[unpack + 1 :]]


def test_the_first_airflow_command_waits_for_the_migrations_in_its_own_process() -> None:
    """foundation_start.py waits, then runs the command, in one interpreter; so does the seal
    when it is the first; every later command runs as it is (test_component_start.py)."""
    start = f"{runtime_files.CONFIG_DIR}/{runtime_files.START}"
    sealed = f"{runtime_files.CONFIG_DIR}/{runtime_files.SEALED}"
    wait = ["--wait-for-migrations", "3600"]
    assert airflow_steps(runtime_files.container_command([["scheduler"]])) == [
        ["exec", "python", start, *wait, "scheduler"]
    ]
    roles = [["sync-perm"], ["roles", "import", "f.json"], ["dag-processor"]]
    assert airflow_steps(runtime_files.container_command(roles, sealed=True)) == [
        ["python", start, *wait, "sync-perm"],
        ["airflow", "roles", "import", "f.json"],
        ["exec", "python", sealed, "dag-processor"],
    ]
    migrate = [["db", "migrate"], ["fab-db", "migrate"]]
    assert airflow_steps(runtime_files.container_command(migrate, False)) == [
        ["airflow", "db", "migrate"],
        ["exec", "airflow", "fab-db", "migrate"],
    ]
    assert runtime_files.START in runtime_files.FOR_COMPONENTS["ecs"]
    assert runtime_files.START in runtime_files.FOR_COMPONENTS["celery"]
    assert runtime_files.START not in runtime_files.FOR_CELERY_WORKERS


def test_local_ecs_kills_the_first_process_and_its_childs_session(tmp_path: Path) -> None:
    """Local ECS's SIGKILL after a stop's grace (foundation/local/ecs.py) reaches the child the
    first process started in a session of its own, as ECS's ends the whole container."""
    from foundation.local.ecs import Running

    child = ["/bin/sh", "-c", "trap '' TERM; echo $$; while :; do sleep 0.1; done"]
    process = subprocess.Popen(
        [*INIT, *child],
        env=environment(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # as local ECS starts a task
    )
    shell = int(process.stdout.readline())
    running = Running(None, "sealed", process, tmp_path, None)
    running.signal(signal.SIGTERM)  # forwarded, and ignored
    time.sleep(1)
    assert running_state(shell) == "S"
    running.signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    process.stdout.close()
    deadline = time.monotonic() + 30
    while running_state(shell) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running_state(shell) in (None, "Z")  # gone, or ended and not yet reaped


def running_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
