"""The synth daemon: a process per project that keeps what a fresh `foundation synth` starts
again every time (the toolkit imported, aws-cdk-lib's Node.js, cfn-lint's workers with their
rules loaded, the project's DAGs), as `synth --watch` does, and synthesizes when a
`foundation synth` asks it to. Like Gradle's daemon: the first synth starts one for the next,
it ends after FOUNDATION_DAEMON_IDLE seconds unused, CI runs without one, and
`foundation daemon stop` ends them all.

A daemon serves one project as one command line would see it: the same working folder, --env,
Python and its flags, umask, cores, toolkit code and environment (all in its address's key); any
other asks another daemon. It listens on a Unix socket in a folder only its user may enter, and
each end checks that the other runs as the same user (Linux's SO_PEERCRED; elsewhere there is no
daemon). The client prints what the daemon returns as it prints a synth of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundation.errors import InvalidInput
from foundation.record import toolkit_key

if TYPE_CHECKING:
    from foundation.synth import Session, SynthResult

SWITCH = "FOUNDATION_DAEMON"  # on, off; unset: on unless a CI service runs it
IDLE = "FOUNDATION_DAEMON_IDLE"  # seconds a daemon waits for a synth before it ends
IDLE_DEFAULT = 1800.0
ON, OFF = ("1", "on", "true", "yes"), ("0", "off", "false", "no")
# What CI services set (those the ci-info package reads first): a daemon would outlive the job
CI_VARIABLES = (
    "CI",
    "CONTINUOUS_INTEGRATION",
    "BUILD_NUMBER",
    "RUN_ID",
    "JENKINS_URL",
    "CODEBUILD_BUILD_ID",
    "TF_BUILD",
    "TEAMCITY_VERSION",
)
# What a shell or a terminal sets differently for each command, tab or connection; nothing a
# synth reads. Any other variable is in the key: a new value is a new daemon (MAX_DAEMONS).
SHELL_VOLATILE = frozenset(
    {
        "_",
        "OLDPWD",
        "PWD",
        "SHLVL",
        "TERM_SESSION_ID",
        "ITERM_SESSION_ID",
        "TMUX_PANE",
        "WINDOWID",
        "GNOME_TERMINAL_SCREEN",
        "KITTY_WINDOW_ID",
        "SSH_CLIENT",
        "SSH_CONNECTION",
        "SSH_TTY",
        "SSH_AUTH_SOCK",
        "GPG_TTY",
        "TMUX",
        "STARSHIP_SESSION_KEY",
        "WT_SESSION",
        "WSL_INTEROP",
        "XDG_SESSION_ID",
        "ZELLIJ_PANE_ID",
        "WEZTERM_PANE",
        "ALACRITTY_WINDOW_ID",
        "VSCODE_GIT_IPC_HANDLE",
    }
)
MAX_DAEMONS = 3  # a user's; starting one more stops the one unused longest
# A socket's path may be 104 bytes long on macOS, 108 on Linux; its name takes 21 here
SOCKET_FOLDER_MAX = 104 - 1 - 21
LOCK_WAIT = 10.0  # seconds to wait for a daemon to end (and a new one for the last to)
REQUEST_WAIT = 10.0  # seconds a daemon waits for a client's request once it has connected
LOOK_EVERY = 60.0  # seconds between an idle daemon's looks at the toolkit's code
_HEADER = struct.Struct(">Q")
_CREDENTIALS = struct.Struct("iII")  # Linux's struct ucred: pid, uid, gid


class BadSwitch(Exception):
    """FOUNDATION_DAEMON or FOUNDATION_DAEMON_IDLE holds a value they do not take."""


def wanted() -> bool:
    """Whether `foundation synth` goes through a daemon."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if value and value not in ON + OFF:
        raise BadSwitch(f"{SWITCH}={value!r}: use on or off")
    if value in OFF or not hasattr(socket, "SO_PEERCRED"):
        return False
    return bool(value) or not any(
        os.environ.get(name, "").strip().lower() not in ("", "0", "false") for name in CI_VARIABLES
    )


def idle_seconds() -> float:
    value = os.environ.get(IDLE, "")
    try:
        seconds = float(value) if value else IDLE_DEFAULT
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise BadSwitch(f"{IDLE}={value!r}: use a number of seconds above 0")
    return seconds


@dataclass(frozen=True)
class Address:
    """Where the daemon of one project, as one command line sees it, listens."""

    folder: Path  # the user's daemons' folder (private_folder)
    key: str
    environment: dict[str, str] | None = None  # the client's, as the key saw it: the daemon's

    @property
    def socket(self) -> Path:
        return self.folder / f"{self.key}.sock"

    @property
    def lock(self) -> Path:
        return self.folder / f"{self.key}.lock"  # held by the daemon while it runs

    @property
    def info(self) -> Path:
        return self.folder / f"{self.key}.json"  # what it serves, for `foundation daemon`

    @property
    def log(self) -> Path:
        return self.folder / f"{self.key}.log"


def private_folder() -> Path | None:
    """The user's daemons' folder, made if missing: only its owner may enter it (a socket in it
    is then reachable by no other user). None when it exists and is not so."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / f"foundation-{os.getuid()}"
    try:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info, parent = folder.lstat(), base.stat()
    except OSError:
        return None
    # and in a folder no other user may replace it in: the user's own, or a shared one whose
    # sticky bit keeps each user's entries theirs (/tmp)
    owned = parent.st_uid == os.getuid() and not parent.st_mode & 0o022
    shared = parent.st_uid == 0 and parent.st_mode & stat.S_ISVTX
    private = info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700
    mode_ok = stat.S_ISDIR(info.st_mode)  # lstat: a link is not a folder
    return folder if private and mode_ok and (owned or shared) else None


def key(root: Path, env: str | None, environment: dict[str, str]) -> str:
    """What a synth's result depends on besides its inputs' files, as a command line started
    here would run it: the working folder (cfn-lint reads its settings there), the project,
    --env, Python and its flags, the umask (the files' modes), the cores (cfn-lint's workers),
    the toolkit's code and every environment variable a shell does not change from one command
    to the next."""
    from foundation.checks.cfn_lint import cores

    variables = sorted((k, v) for k, v in environment.items() if k not in SHELL_VOLATILE)
    umask = os.umask(0o22)
    os.umask(umask)
    process = [sys.executable, _interpreter_flags(), umask, cores()]
    seen = [os.getcwd(), str(root.resolve()), env, *process, toolkit_key(), variables]
    return hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:16]


def _interpreter_flags() -> list[str]:
    """Python's command-line flags (-E, -s, -X, -W...), but -P, which every daemon runs with:
    the working folder is not where the toolkit's modules come from."""
    return [f for f in subprocess._args_from_interpreter_flags() if f != "-P"]


def address(root: Path, env: str | None) -> Address | None:
    """This command line's daemon's, before the synth changes the environment (aws-cdk-lib's
    import sets variables for its Node.js)."""
    folder = private_folder()
    if folder is None or len(os.fsencode(folder)) > SOCKET_FOLDER_MAX:
        return None
    environment = dict(os.environ)
    return Address(folder, key(root, env, environment), environment)


# One message: its length, then its pickle. Both ends are the same user (private_folder, and
# the daemon checks its peer), running the same toolkit (the key).
def _send(sock: socket.socket, message: tuple[str, Any]) -> None:
    data = pickle.dumps(message)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _receive(sock: socket.socket) -> tuple[str, Any]:
    size = _HEADER.unpack(_exactly(sock, _HEADER.size))[0]
    kind, value = pickle.loads(_exactly(sock, size))
    return kind, value


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the other end hung up")
        data += chunk
    return bytes(data)


def _connect(where: Address) -> socket.socket | None:
    """A connection to the daemon, if one listens there as this user."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(where.socket))
        if _peer_uid(sock) == os.getuid():
            return sock
    except OSError:
        pass
    sock.close()
    return None


def _peer_uid(sock: socket.socket) -> int:
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
    return _CREDENTIALS.unpack(credentials)[1]


def synth(
    where: Address, out: Path | None, cold: bool, on_stage: Callable[[str], None]
) -> SynthResult | None:
    """The daemon's synth, its stages shown as they start; InvalidInput as a synth here would
    raise it; None when no daemon answered or it could not synthesize (a synth here says why)."""
    sock = _connect(where)
    if sock is None:
        return None
    with sock:
        try:
            _send(sock, ("synth", {"out": out and str(out.resolve()), "cold": cold}))
            while True:
                kind, value = _receive(sock)
                if kind != "stage":
                    break
                on_stage(value)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None
    if kind == "invalid":
        raise InvalidInput(value)
    if kind == "raise" and isinstance(value, Exception):
        raise value
    return value if kind == "result" else None


def start(where: Address, root: Path, env: str | None) -> None:
    """Start the daemon in the background unless one runs or is starting (it holds its lock);
    its output goes to its log. A daemon that cannot start changes nothing: synths run here."""
    with contextlib.suppress(OSError), _held(where.lock) as free:
        if not free:
            return
        others = [d for d in running() if d.address.key != where.key]  # its lock is ours now
        for unused in others[: max(0, len(others) - MAX_DAEMONS + 1)]:
            _ask_to_stop(unused)
        with contextlib.suppress(FileNotFoundError):  # the last one's, kept for a look
            where.log.replace(where.log.with_suffix(".log.1"))
        log = os.open(where.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            subprocess.Popen(
                [
                    sys.executable,
                    *_interpreter_flags(),
                    "-P",
                    "-m",
                    "foundation.daemon",
                    where.key,
                    str(root.resolve()),
                    env or "",
                ],
                env=where.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C in the terminal is for the client
            )
        finally:
            os.close(log)


@contextlib.contextmanager
def _held(lock: Path, wait: float = 0.0) -> Iterator[bool]:
    """The lock's file held (True) within `wait` seconds, or not (False)."""
    import fcntl  # here: Unix only, as daemons are (wanted)

    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Running:
    """A daemon as `foundation daemon status` shows it."""

    pid: int
    project: str
    env: str | None
    cwd: str
    started: float
    used: float  # when it last served a synth (or started)
    address: Address


def running() -> list[Running]:
    """The user's daemons (each holds its lock while it runs), the one unused longest first.
    Looking does not talk to them: a look is not a use."""
    folder = private_folder()
    found = []
    for info in sorted(folder.glob("*.json")) if folder else []:
        where = Address(info.parent, info.stem)
        with (
            contextlib.suppress(OSError, ValueError, TypeError, KeyError),
            _held(where.lock) as free,
        ):
            if not free:
                data = json.loads(info.read_text("utf-8"))
                found.append(Running(**data, used=info.stat().st_mtime, address=where))
    return sorted(found, key=lambda d: d.used)


def stop(daemon: Running) -> bool:
    """Ask the daemon to end, else (busy, or not answering) TERM it; True once it has ended
    (its lock is free)."""
    where = daemon.address
    sock = _connect(where)
    asked = False
    if sock:
        with sock, contextlib.suppress(OSError, EOFError, pickle.UnpicklingError):
            sock.settimeout(REQUEST_WAIT)
            _send(sock, ("stop", None))
            asked = _receive(sock) == ("stopped", None)
    for _ in range(2):
        with _held(where.lock, LOCK_WAIT if asked else 0.0) as ended:
            if ended:
                return True
        _terminate(daemon)
        asked = True  # a TERM ends it as a stop does
    return False


def _ask_to_stop(daemon: Running) -> None:
    """A stop request, not waited for: it ends once its synth under way, if any, is done. One
    that does not listen (it never will) is TERMed."""
    sock = _connect(daemon.address)
    if sock is None:
        _terminate(daemon)
        return
    with sock, contextlib.suppress(OSError):
        _send(sock, ("stop", None))


def _terminate(daemon: Running) -> None:
    """A TERM, to the daemon the info file names only: a pid the system gave another process
    since (the daemon killed outright, its info left behind) is left alone."""
    command = [os.fsencode(a) for a in ("foundation.daemon", daemon.address.key)]
    try:
        arguments = Path(f"/proc/{daemon.pid}/cmdline").read_bytes().split(b"\0")
        if all(a in arguments for a in command):
            os.kill(daemon.pid, signal.SIGTERM)
    except (OSError, ProcessLookupError):
        pass


# The daemon


def serve(given_key: str, root: Path, env: str | None) -> None:
    """Serve synths of `root` until idle for idle_seconds(), asked to stop, or a synth fails in
    a way that may leave its warm state wrong (anything but invalid input)."""
    folder = private_folder()
    if folder is None or key(root, env, dict(os.environ)) != given_key:
        return  # not the toolkit, folder or environment the client saw: it synthesizes itself
    where = Address(folder, given_key)
    with _held(where.lock, LOCK_WAIT) as mine:
        if mine:
            _listen(where, root, env)


def _listen(where: Address, root: Path, env: str | None) -> None:
    from foundation.synth import Session, release_node

    # SIGTERM ends it as cleanly as a stop: Node's folder removed, workers ended
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    where.socket.unlink(missing_ok=True)
    listener.bind(str(where.socket))
    os.chmod(where.socket, 0o600)
    listener.listen(16)
    info = {"pid": os.getpid(), "project": str(root), "env": env, "cwd": os.getcwd()}
    where.info.write_text(json.dumps(info | {"started": time.time()}), "utf-8")
    session = Session(toolkit_key())
    try:
        session.warm(root, env)  # a synth that connects meanwhile waits for it
        idle, used = idle_seconds(), time.monotonic()
        while True:
            listener.settimeout(max(0.01, min(LOOK_EVERY, used + idle - time.monotonic())))
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if time.monotonic() - used >= idle or toolkit_key() != session.toolkit:
                    return  # no client asks a daemon of a changed toolkit: its key is another
                continue
            with conn:
                done = _serve_one(conn, session, root, env)
            if done is END:
                return
            if done is SERVED:
                where.info.touch()  # when it was last used: `running` orders by it
                session.warm(root, env)
                used = time.monotonic()
    except KeyboardInterrupt:
        return
    finally:
        for ending in (signal.SIGTERM, signal.SIGINT):  # a second signal must not stop the end
            signal.signal(ending, signal.SIG_IGN)
        where.socket.unlink(missing_ok=True)
        where.info.unlink(missing_ok=True)
        listener.close()
        session.close()
        release_node()


SERVED, IDLE_LOOK, END = "served", "no request", "end"


class ClientGone(Exception):
    """The client hung up (Ctrl-C) while its synth ran."""


def _serve_one(conn: socket.socket, session: Session, root: Path, env: str | None) -> str:
    """One client's request: SERVED, IDLE_LOOK (nothing asked) or END (stop serving)."""
    from foundation import synth as synth_verb

    if _peer_uid(conn) != os.getuid():
        print("refused a client of another user", flush=True)
        return IDLE_LOOK
    conn.settimeout(REQUEST_WAIT)  # a client that connects and says nothing holds no one up
    try:
        kind, request = _receive(conn)
    except (OSError, EOFError, pickle.UnpicklingError):
        return IDLE_LOOK
    conn.settimeout(None)
    if kind == "stop":
        _send(conn, ("stopped", None))
        return END

    def on_stage(stage: str) -> None:
        # a client that hung up makes this fail (EPIPE), at the latest when the "write" stage
        # starts: nothing is written, as its own synth, interrupted, would write nothing
        try:
            _send(conn, ("stage", stage))
        except OSError as error:
            raise ClientGone() from error

    if session.memo:  # checked again, as a synth in a process of its own checks them
        session.memo.triggers.clear()
    start = time.monotonic()
    try:
        out = Path(request["out"]) if request["out"] else None
        result = synth_verb.run(root, env, out, request["cold"], on_stage, session)
    except InvalidInput as error:
        return _answer(conn, ("invalid", error.problems), "invalid input", start, SERVED)
    except (synth_verb.UnsafeOutput, synth_verb.SynthesisFailed, synth_verb.NodeMissing) as error:
        return _answer(conn, ("raise", error), type(error).__name__, start, SERVED)
    except ClientGone:
        _log("the client hung up; nothing written", start)
        return END
    except Exception:
        traceback.print_exc()  # to the log; the client synthesizes itself and says why
        return _answer(conn, ("failed", None), "failed", start, END)
    what = f"rebuilt {len(result.built.rebuilt)} stack(s), written: {result.written}"
    return _answer(conn, ("result", result), what, start, SERVED)


def _answer(
    conn: socket.socket, message: tuple[str, Any], what: str, start: float, then: str
) -> str:
    _log(what, start)
    with contextlib.suppress(OSError):  # hung up at the very end: nothing is lost
        _send(conn, message)
    return then


def _log(what: str, start: float) -> None:
    print(
        f"{time.strftime('%H:%M:%S')} synth: {what} ({time.monotonic() - start:.2f} s)", flush=True
    )


if __name__ == "__main__":
    serve(sys.argv[1], Path(sys.argv[2]), sys.argv[3] or None)
    sys.stdout.flush()
    os._exit(0)  # as `foundation` does (cli.run): freeing aws-cdk-lib's bindings takes seconds
