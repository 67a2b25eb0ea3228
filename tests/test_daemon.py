"""The synth daemon (foundation/daemon.py): `foundation synth` run as users run it, in processes
of their own, with daemons on (the rest of the suite runs with them off: conftest.py), each test
with a daemons' folder of its own."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation import daemon, synth
from foundation.checks import cfn_lint
from foundation.checks.cache import CACHE_ENV
from foundation.project import Memo
from tests.conftest import ProjectDir
from tests.test_incremental_synth import files, with_previous
from tests.test_watch import grant, still_running

# The command as installed (its script's folder first on sys.path, not the working folder's)
CLI = [str(Path(sys.executable).with_name("foundation"))]
SERVED = re.compile(r"\d\d:\d\d:\d\d synth: (.*) \(\d+\.\d\d s\)")


class Daemons:
    """A daemons' folder of this test's own, and `foundation` run with daemons on or off."""

    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        # as a shell gives it: without CI, and without what importing the stacks set in this
        # process (which a build sets again in the client)
        unset = ("CI", daemon.SWITCH, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION")
        self.environment = {k: v for k, v in os.environ.items() if k not in unset} | {
            "XDG_RUNTIME_DIR": str(runtime),
            daemon.SWITCH: "on",
        }

    @property
    def folder(self) -> Path:
        return self.runtime / f"foundation-{os.getuid()}"

    def run(self, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
        environment = self.environment | env
        return subprocess.run(
            [*CLI, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
        )

    def one(self, within: float = 120) -> daemon.Running:
        """The one daemon running, once it answers."""
        deadline = time.monotonic() + within
        while not (found := daemon.running()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(found) == 1, found
        return found[0]

    def served(self, found: daemon.Running) -> list[str]:
        """What its log says it did, one entry per synth."""
        return [
            m.group(1)
            for line in found.address.log.read_text().splitlines()
            if (m := SERVED.fullmatch(line))
        ]

    def pids(self) -> set[int]:
        """Every daemon that said it started here, answering or not."""
        folder = self.folder if self.folder.is_dir() else None
        return (
            {json.loads(p.read_text())["pid"] for p in folder.glob("*.json")} if folder else set()
        )


@pytest.fixture
def daemons(monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemons]:
    """In a short folder of /tmp: a socket's path is short (daemon.SOCKET_FOLDER_MAX), and
    other users may reach it (test_another_user_who_can_reach_the_socket_is_refused)."""
    runtime = Path(tempfile.mkdtemp(prefix="fd-", dir="/tmp"))
    runtime.chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # where this process looks for them
    found = Daemons(runtime)
    try:
        yield found
    finally:
        pids = found.pids()
        for running_daemon in daemon.running():
            daemon.stop(running_daemon)
        shutil.rmtree(runtime)
        left = still_running(pids)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert left == []


def copy(project: ProjectDir, to: Path) -> ProjectDir:
    shutil.copytree(project.root, to, symlinks=True)
    return ProjectDir(to)


def rooted(text: str, root: Path, cache: Path) -> str:
    return text.replace(str(cache), "<cache>").replace(str(root), "<project>")


def test_a_synth_through_the_warm_daemon_prints_and_writes_what_a_synth_here_does(
    project: ProjectDir, example_synth, tmp_path: Path, daemons: Daemons
) -> None:
    """The first synth runs here and starts the project's daemon, in the environment the synth
    started with; the next ones, an edit and a
    bad manifest, go through it (its log says so) and print, exit with and write byte for byte
    what the same synths run here do. Invalid input leaves the daemon running; `foundation
    daemon` shows it and `foundation daemon stop` ends it."""
    with_previous(project, example_synth)
    # a module of the project's name that Python would import from the working folder, were it
    # on sys.path (`python -c`, `-m`): the daemon runs with -P, as the installed command imports
    marker = tmp_path / "imported"
    project.write("yaml.py", f"open({str(marker)!r}, 'w').close()\nfrom _yaml import *\n")
    here = copy(project, tmp_path / "here")
    # findings caches of their own: each synth lints what it rebuilt
    cache, here_cache = tmp_path / "cache", tmp_path / "here-cache"
    daemons.environment[CACHE_ENV] = str(cache)
    here_env = {daemon.SWITCH: "off", CACHE_ENV: str(here_cache)}
    for copy_ in (project, here):
        grant(copy_, "teams/daemon/zero")  # a build here: it changes its environment (CDK's)
    assert "Rebuilt 1 stack(s)" in daemons.run(project.root, "synth").stdout
    assert "Rebuilt 1 stack(s)" in daemons.run(here.root, "synth", **here_env).stdout
    started = daemons.one()
    assert (started.project, started.cwd, started.env) == (str(project.root),) * 2 + (None,)

    for edit in (
        lambda p: grant(p, "teams/daemon/first"),
        lambda p: p.write("dag_permissions/bad.yaml", "dag_id: [oops\n"),
    ):
        edit(project)
        edit(here)
        through = daemons.run(project.root, "synth")
        alone = daemons.run(here.root, "synth", **here_env)
        assert through.returncode == alone.returncode
        for stream in ("stdout", "stderr"):
            assert rooted(getattr(through, stream), project.root, cache) == rooted(
                getattr(alone, stream), here.root, here_cache
            )
        assert files(project.root / "cdk.out") == files(here.root / "cdk.out")
    assert (through.returncode, through.stderr.splitlines()[-1]) == (
        2,
        "1 problem(s); nothing was written.",
    )
    unsafe = daemons.run(project.root, "synth", "--out", "config/x")
    alone = daemons.run(here.root, "synth", "--out", "config/x", **here_env)
    assert (unsafe.returncode, rooted(unsafe.stderr, project.root, cache)) == (
        alone.returncode,
        rooted(alone.stderr, here.root, here_cache),
    )
    assert unsafe.returncode == 2
    assert daemons.served(started) == [
        "rebuilt 1 stack(s), written: True",
        "invalid input",
        "UnsafeOutput",
    ]
    assert daemons.one().pid == started.pid
    assert not marker.exists()
    assert stat.S_IMODE(started.address.socket.stat().st_mode) == 0o600
    assert os.getsid(started.pid) == started.pid  # a session of its own: the terminal's Ctrl-C
    # is the command's

    status = daemons.run(project.root, "daemon")
    assert re.fullmatch(
        rf"pid {started.pid}: {re.escape(str(project.root))}, from "
        rf"{re.escape(str(project.root))}, up \d+ min\n",
        status.stdout,
    )
    stopped = daemons.run(project.root, "daemon", "stop")
    assert stopped.stdout == "Stopped 1 daemon(s).\n"
    assert still_running({started.pid}) == []
    assert sorted(p.suffix for p in daemons.folder.iterdir()) == [".lock", ".log"]


def test_a_client_that_hangs_up_gets_nothing_written_and_the_next_synth_starts_again(
    project: ProjectDir, example_synth, daemons: Daemons
) -> None:
    """Ctrl-C on a synth the daemon runs: it stops before writing and ends (its warm state may
    be half way through something). The next synth runs here and starts a new daemon; one
    killed outright (its socket left behind) is replaced the same way."""
    out = with_previous(project, example_synth)
    daemons.run(project.root, "synth")
    first = daemons.one()
    before = files(out)
    grant(project, "teams/daemon/interrupted")
    sock = daemon._connect(first.address)
    assert sock is not None
    daemon._send(sock, ("synth", {"out": None, "cold": False}))
    sock.close()  # before the daemon has read the request: hung up at its first stage
    assert still_running({first.pid}, within=60) == []
    assert daemons.served(first) == ["the client hung up; nothing written"]
    assert files(out) == before

    again = daemons.run(project.root, "synth")
    assert again.returncode == 0
    assert "Rebuilt 1 stack(s)" in again.stdout
    second = daemons.one()
    assert second.pid != first.pid
    os.kill(second.pid, signal.SIGKILL)
    assert still_running({second.pid}) == []
    assert second.address.socket.exists()  # nothing removed it
    grant(project, "teams/daemon/after-a-kill")
    after = daemons.run(project.root, "synth")
    assert (after.returncode, "Rebuilt 1 stack(s)" in after.stdout) == (0, True)
    third = daemons.one()
    assert third.pid not in (first.pid, second.pid)

    # a request no synth of this toolkit sends: the daemon cannot say what went wrong, so it
    # answers that it failed (the command then synthesizes itself) and ends
    sock = daemon._connect(third.address)
    assert sock is not None
    with sock:
        daemon._send(sock, ("synth", {"out": 5, "cold": False}))
        assert daemon._receive(sock) == ("failed", None)
    assert still_running({third.pid}, within=60) == []
    assert daemons.served(third)[-1] == "failed"


# What another user's process sends: the same request, in the daemon's wire format.
OTHER_USER_CLIENT = """
import pickle, socket, struct, sys
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
data = pickle.dumps(("synth", {"out": None, "cold": False}))
try:
    sock.sendall(struct.pack(">Q", len(data)) + data)
    print(repr(sock.recv(100)))
except ConnectionResetError:
    print("reset")
"""


@pytest.mark.skipif(os.getuid() != 0, reason="needs root, to run a client as another user")
def test_another_user_who_can_reach_the_socket_is_refused(
    project: ProjectDir, example_synth, daemons: Daemons
) -> None:
    """The private folder keeps other users out; should it and the socket be opened to all
    (as here), the daemon still serves only its own user (SO_PEERCRED): another user's synth
    gets no answer, and nothing is built. Run with the system's Python, as user nobody."""
    with_previous(project, example_synth)
    daemons.run(project.root, "synth")
    found = daemons.one()
    daemons.folder.chmod(0o711)
    found.address.socket.chmod(0o777)
    try:
        other = subprocess.run(
            ["/usr/bin/python3", "-c", OTHER_USER_CLIENT, str(found.address.socket)],
            user=65534,
            group=0,  # root's group: the daemon checks the user, not the group
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        daemons.folder.chmod(0o700)  # the folder its user may use again: `stop` ends it
    assert (other.returncode, other.stderr) == (0, "")
    assert other.stdout in ("b''\n", "reset\n")  # closed before or after the request came
    assert "refused a client of another user" in found.address.log.read_text()
    assert daemons.served(found) == []


def test_a_daemons_folder_others_may_enter_is_not_used(
    project: ProjectDir, daemons: Daemons
) -> None:
    """A folder of the expected name that is not the user's alone (made by someone else, or
    opened up): synths run here and start no daemon."""
    daemons.folder.mkdir(mode=0o755)
    daemons.folder.chmod(0o755)  # whatever the umask
    done = daemons.run(project.root, "synth")
    assert done.returncode == 0
    time.sleep(1)  # a daemon would have made its lock at once
    assert list(daemons.folder.iterdir()) == []


def test_the_daemons_folder_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = tmp_path / f"foundation-{os.getuid()}"
    assert daemon.private_folder() == folder
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o750)
    assert daemon.private_folder() is None
    folder.chmod(0o700)
    if os.getuid() == 0:
        os.chown(folder, 65534, 65534)
        assert daemon.private_folder() is None
        os.chown(folder, 0, 0)
    folder.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    folder.symlink_to(tmp_path / "elsewhere")
    assert daemon.private_folder() is None


def test_a_daemon_serves_only_the_command_line_its_key_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key changes with everything a synth depends on besides its files, and not with what a
    shell changes from one command to the next."""
    monkeypatch.setattr(daemon, "toolkit_key", lambda: "toolkit one")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "project"
    environment = {"HOME": "/home/me", "PWD": "/a", "OLDPWD": "/b", "_": "/bin/x", "SHLVL": "1"}
    key = daemon.key(root, None, environment)
    shell = {"PWD": "/c", "OLDPWD": "/d", "_": "/bin/y", "SHLVL": "2"}
    assert daemon.key(root, None, environment | shell) == key
    assert daemon.key(root, None, {"HOME": "/home/me"}) == key
    others = {
        "an environment variable": daemon.key(root, None, environment | {"AWS_REGION": "x"}),
        "another value": daemon.key(root, None, environment | {"HOME": "/home/you"}),
        "--env": daemon.key(root, "dev", environment),
        "--project": daemon.key(tmp_path / "other", None, environment),
    }
    monkeypatch.chdir(root.parent.parent)
    others["the working folder"] = daemon.key(root, None, environment)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(daemon, "toolkit_key", lambda: "toolkit two")
    others["the toolkit"] = daemon.key(root, None, environment)
    monkeypatch.setattr(daemon, "toolkit_key", lambda: "toolkit one")
    with monkeypatch.context() as patched:
        patched.setattr(sys, "executable", "/another/python")
        others["Python"] = daemon.key(root, None, environment)
    with monkeypatch.context() as patched:
        patched.setattr(daemon, "_interpreter_flags", lambda: ["-s"])
        others["Python's flags"] = daemon.key(root, None, environment)
    with monkeypatch.context() as patched:
        patched.setattr(cfn_lint, "cores", lambda: 64)
        others["the cores"] = daemon.key(root, None, environment)
    umask = os.umask(0o077)
    try:
        others["the umask"] = daemon.key(root, None, environment)
    finally:
        os.umask(umask)
    assert daemon.key(root, None, environment) == key
    assert len({key, *others.values()}) == len(others) + 1, others


def test_a_daemon_started_for_another_command_line_ends_at_once(
    project: ProjectDir, daemons: Daemons
) -> None:
    """It computes its own key: a toolkit changed on disk, or an environment not the client's,
    gives another one, and it never listens."""
    other = daemon.key(project.root, "dev", dict(os.environ))
    started = subprocess.run(
        [sys.executable, "-m", "foundation.daemon", other, str(project.root), ""],
        cwd=project.root,
        env=daemons.environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (started.returncode, started.stdout, started.stderr) == (0, "", "")
    assert not daemons.folder.exists() or list(daemons.folder.glob("*.sock")) == []


def test_a_daemon_in_use_stays_and_one_idle_ends_and_tidies_up(
    project: ProjectDir, example_synth, daemons: Daemons
) -> None:
    """Each synth starts its idle time again; a look (`foundation daemon`) does not."""
    with_previous(project, example_synth)
    daemons.environment[daemon.IDLE] = "4"
    daemons.run(project.root, "synth")
    found = daemons.one()
    daemons.run(project.root, "synth")  # waits until it is warm
    for _ in range(4):
        time.sleep(1.5)
        assert "Nothing changed" in daemons.run(project.root, "synth").stdout
    assert daemons.one().pid == found.pid
    assert daemons.one().used > found.used  # `running` lists the one unused longest first
    assert daemons.served(found) == ["rebuilt 0 stack(s), written: True"] * 5
    for _ in range(4):
        daemons.run(project.root, "daemon")
        time.sleep(0.5)
    assert still_running({found.pid}, within=10) == []
    assert sorted(p.name for p in daemons.folder.iterdir()) == [
        f"{found.address.key}.lock",
        f"{found.address.key}.log",
    ]


# A daemon as `running` and `stop` see one: it holds its lock, has said who it is and runs
# with its key in its command line; it does not listen, so a stop must end it with a TERM.
STAND_IN = """
import fcntl, os, sys, time
lock = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(lock, fcntl.LOCK_EX)
print("ready", flush=True)
time.sleep(600)
"""


def test_starting_one_daemon_more_than_the_most_stops_the_one_unused_longest(
    daemons: Daemons, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = daemon.private_folder()
    assert folder is not None
    stand_ins = {}
    for age, name in enumerate(["newest", "older", "oldest"]):
        where = daemon.Address(folder, name)
        process = subprocess.Popen(
            [sys.executable, "-c", STAND_IN, str(where.lock), "foundation.daemon", name],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout and process.stdout.readline() == "ready\n"
        info = {"pid": process.pid, "project": name, "env": None, "cwd": "/", "started": 0}
        where.info.write_text(json.dumps(info))
        os.utime(where.info, (time.time() - 60 * age,) * 2)
        stand_ins[name] = process
    started, popen = [], subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda args, **_: started.append(args))
    assert [d.project for d in daemon.running()] == ["oldest", "older", "newest"]
    daemon.start(daemon.Address(folder, "another"), tmp_path, None)
    assert len(started) == 1
    assert stand_ins["oldest"].wait(timeout=30) == -signal.SIGTERM
    assert [d.project for d in daemon.running()] == ["older", "newest"]
    for process in stand_ins.values():
        process.kill()
        process.wait()
    # an info file left by a daemon killed outright, its pid now another process's
    other = popen(["sleep", "60"])
    daemon._terminate(daemon.Running(other.pid, "x", None, "/", 0, 0, daemon.Address(folder, "x")))
    time.sleep(0.5)
    assert other.poll() is None
    other.kill()
    other.wait()


# A daemon whose toolkit changes on disk once it has started (a stand-in for the change: the
# code is shared by the suite's other processes), looking every half second.
CHANGED_TOOLKIT = """
import os, sys
from pathlib import Path
from foundation import daemon
calls = []
def toolkit_key():
    calls.append(1)
    return "changed on disk" if len(calls) > 3 else "as loaded"
daemon.toolkit_key = toolkit_key
daemon.LOOK_EVERY = 0.5
root = Path(sys.argv[1])
daemon.serve(daemon.key(root, None, dict(os.environ)), root, None)
"""


def test_an_idle_daemon_whose_toolkit_changed_ends(project: ProjectDir, daemons: Daemons) -> None:
    """No client asks it any more (their key is another), so it ends at its next look rather
    than hold its memory until its idle time is up."""
    started = subprocess.Popen(
        [sys.executable, "-c", CHANGED_TOOLKIT, str(project.root)],
        cwd=project.root,
        env=daemons.environment,
    )
    assert started.wait(timeout=120) == 0
    assert sorted(p.suffix for p in daemons.folder.iterdir()) == [".lock"]


@pytest.mark.parametrize(
    ("environment", "wanted"),
    [
        ({}, True),
        ({"CI": "true"}, False),
        ({"CI": "true", "FOUNDATION_DAEMON": "on"}, True),
        ({"FOUNDATION_DAEMON": " OFF "}, False),
        ({"FOUNDATION_DAEMON": "0"}, False),
        ({"FOUNDATION_DAEMON": "yes"}, True),
        ({"CI": "false"}, True),
        ({"BUILD_NUMBER": "12"}, False),  # Jenkins
        ({"CODEBUILD_BUILD_ID": "b:1"}, False),
        ({"TF_BUILD": "True"}, False),  # Azure Pipelines
    ],
)
def test_when_synth_goes_through_a_daemon(
    environment: dict[str, str], wanted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On by default where a person works; off in CI (as Gradle's and Nx's are), unless asked."""
    for name in (*daemon.CI_VARIABLES, "FOUNDATION_DAEMON"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert daemon.wanted() is wanted


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("FOUNDATION_DAEMON", "maybe", "FOUNDATION_DAEMON='maybe': use on or off"),
        (
            "FOUNDATION_DAEMON_IDLE",
            "soon",
            "FOUNDATION_DAEMON_IDLE='soon': use a number of seconds above 0",
        ),
        (
            "FOUNDATION_DAEMON_IDLE",
            "0",
            "FOUNDATION_DAEMON_IDLE='0': use a number of seconds above 0",
        ),
    ],
)
def test_a_bad_daemon_setting_is_said_and_nothing_runs(
    project: ProjectDir, variable: str, value: str, said: str, tmp_path: Path
) -> None:
    env = {"FOUNDATION_DAEMON": "on", variable: value, "XDG_RUNTIME_DIR": str(tmp_path)}
    done = project.run_with_env(env, "synth")
    assert (done.exit_code, done.stdout, done.stderr) == (2, "", f"error: {said}\n")
    assert not (project.root / "cdk.out").exists()
    assert list(tmp_path.glob("foundation-*/*")) == []


def test_the_wire_format_is_a_length_then_a_pickle() -> None:
    """What OTHER_USER_CLIENT writes is what the client sends."""
    left, right = socket.socketpair()
    with left, right:
        daemon._send(left, ("synth", {"out": None, "cold": False}))
        data = pickle.dumps(("synth", {"out": None, "cold": False}))
        assert right.recv(1000) == struct.pack(">Q", len(data)) + data


def _serve_one_here(
    project: ProjectDir, request: tuple[str, object] | None, session: object
) -> tuple[str, list[tuple[str, object]]]:
    """What `_serve_one` (the daemon's part of one request) does in this process, asked over a
    socket pair (each end this process's user); its answers."""
    client, server = socket.socketpair()
    answers: list[tuple[str, object]] = []

    def read() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                answers.append(daemon._receive(client))

    reader = threading.Thread(target=read, daemon=True)
    with client:
        if request:
            daemon._send(client, request)
        reader.start()
        with server:
            done = daemon._serve_one(server, session, project.root, None)
        reader.join(timeout=60)
    return done, answers


def test_each_synth_of_the_daemon_checks_the_trigger_classes_again(
    project: ProjectDir, example_synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class the config adds passed its check when the daemon last loaded the project; its
    module may have changed since (outside the inputs), so the next synth checks it again, as a
    synth in a process of its own does, rather than trust the memo a watch keeps."""
    monkeypatch.chdir(tmp_path)
    with_previous(project, example_synth)
    session = synth.Session(daemon.toolkit_key())
    session.memo = Memo(triggers={"teams.triggers.Passed"})
    try:
        done, answers = _serve_one_here(project, ("synth", {"out": None, "cold": False}), session)
    finally:
        session.close()
    assert (done, [kind for kind, _ in answers][-1]) == (daemon.SERVED, "result")
    assert session.memo.triggers == set()


def test_a_client_that_connects_and_says_nothing_holds_no_one_up(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon, "REQUEST_WAIT", 0.5)
    done: list[object] = []
    thread = threading.Thread(
        target=lambda: done.append(_serve_one_here(project, None, synth.Session("toolkit"))),
        daemon=True,
    )
    thread.start()
    thread.join(timeout=10)
    assert done == [(daemon.IDLE_LOOK, [])]


def test_ctrl_c_on_a_first_synth_starts_no_daemon(project: ProjectDir, daemons: Daemons) -> None:
    """The user stopped the command: nothing more of it runs on."""
    first = subprocess.Popen(
        [*CLI, "synth", "--cold"],
        cwd=project.root,
        env=daemons.environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2)  # building: a cold synth of the example takes several seconds
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130
    time.sleep(1)
    assert not daemons.folder.exists() or list(daemons.folder.iterdir()) == []


# Another user's process that listens where a daemon's socket would be
OTHER_USER_SERVER = """
import socket, sys, time
sock = socket.socket(socket.AF_UNIX)
sock.bind(sys.argv[1])
sock.listen(1)
print("listening", flush=True)
conn, _ = sock.accept()
time.sleep(30)
"""


@pytest.mark.skipif(os.getuid() != 0, reason="needs root, to run a server as another user")
def test_a_client_talks_to_no_daemon_of_another_user() -> None:
    """Should another user's socket stand where the daemon's would (a folder swapped after it
    was checked), the command does not send it a request or read its answer."""
    folder = Path(tempfile.mkdtemp(prefix="fd-", dir="/tmp"))
    folder.chmod(0o777)
    where = daemon.Address(folder, "theirs")
    other = subprocess.Popen(
        ["/usr/bin/python3", "-c", OTHER_USER_SERVER, str(where.socket)],
        user=65534,
        group=0,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout and other.stdout.readline() == "listening\n"
        assert daemon._connect(where) is None
    finally:
        other.kill()
        other.wait()
        shutil.rmtree(folder)
