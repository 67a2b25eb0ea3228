"""The synth daemon: a process per project that keeps what a fresh `foundation synth` starts
again every time (the toolkit imported, aws-cdk-lib's Node.js, cfn-lint's workers with their
rules loaded, the project's DAGs), as `synth --watch` does, and synthesizes when a
`foundation synth` asks it to. Like Gradle's daemon: the first synth starts one for the next,
it ends after FOUNDATION_DAEMON_IDLE seconds unused, CI runs without one, and
`foundation daemon stop` ends them all.

A daemon serves one project as one command line would see it: the same working folder, --env,
toolkit code and environment (all in its address's key); any other asks another daemon. It
listens on a Unix socket in a folder only its user may enter, and answers only that user.
The client prints what the daemon returns as it prints a synth of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import signal
import socket
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

SWITCH = "FOUNDATION_DAEMON"  # on, off; unset: on unless CI is set
IDLE = "FOUNDATION_DAEMON_IDLE"  # seconds a daemon waits for a synth before it ends
IDLE_DEFAULT = 1800.0
ON, OFF = ("1", "on", "true", "yes"), ("0", "off", "false", "no")
# What a shell sets differently for each command, with nothing a synth reads
SHELL_VOLATILE = frozenset({"_", "OLDPWD", "PWD", "SHLVL"})
# A socket's path may be 104 bytes long on macOS, 108 on Linux; its name takes 21 here
SOCKET_FOLDER_MAX = 104 - 1 - 21
LOCK_WAIT = 10.0  # seconds a daemon waits for the one it replaces to end
LOOK_EVERY = 60.0  # seconds between an idle daemon's looks at the toolkit's code
_HEADER = struct.Struct(">Q")


class BadSwitch(Exception):
    """FOUNDATION_DAEMON or FOUNDATION_DAEMON_IDLE holds a value they do not take."""


def wanted() -> bool:
    """Whether `foundation synth` goes through a daemon."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if not value:
        return not os.environ.get("CI")
    if value in ON + OFF:
        return value in ON
    raise BadSwitch(f"{SWITCH}={value!r}: use on or off")


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
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"foundation-{os.getuid()}"
    try:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info = folder.lstat()
    except OSError:
        return None
    private = info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700
    return folder if private and folder.is_dir() and not folder.is_symlink() else None


def key(root: Path, env: str | None, environment: dict[str, str]) -> str:
    """What a synth's result depends on besides its inputs' files, as a command line started
    here would run it: the working folder (cfn-lint reads its settings there), the project,
    --env, Python, the toolkit's code and every environment variable a shell does not change
    from one command to the next."""
    variables = sorted((k, v) for k, v in environment.items() if k not in SHELL_VOLATILE)
    seen = [os.getcwd(), str(root.resolve()), env, sys.executable, toolkit_key(), variables]
    return hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:16]


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
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(where.socket))
    except OSError:
        sock.close()
        return None
    return sock


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
    return value if kind == "result" else None


def start(where: Address, root: Path, env: str | None) -> None:
    """Start the daemon in the background unless one runs or is starting (it holds its lock);
    its output goes to its log. A daemon that cannot start changes nothing: synths run here."""
    with contextlib.suppress(OSError), _held(where.lock) as free:
        if not free:
            return
        log = os.open(where.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            subprocess.Popen(
                [
                    sys.executable,
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
    address: Address


def running() -> list[Running]:
    """The user's daemons that answer, oldest first."""
    folder = private_folder()
    found = []
    for info in sorted(folder.glob("*.json")) if folder else []:
        where = Address(info.parent, info.stem)
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            data = json.loads(info.read_text("utf-8"))
            sock = _connect(where)
            if sock:
                sock.close()
                found.append(Running(**data, address=where))
    return sorted(found, key=lambda d: d.started)


def stop(where: Address) -> bool:
    """Ask the daemon to end; True once it has (its lock is free)."""
    sock = _connect(where)
    if sock is None:
        return False
    with sock, contextlib.suppress(OSError, EOFError, pickle.UnpicklingError):
        _send(sock, ("stop", None))
        _receive(sock)
    with _held(where.lock, LOCK_WAIT) as ended:
        return ended


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
            conn.settimeout(None)
            with conn:
                if not _serve_one(conn, session, root, env):
                    return
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


def _serve_one(conn: socket.socket, session: Session, root: Path, env: str | None) -> bool:
    """One client's request; whether to serve more."""
    from foundation import synth as synth_verb

    if not _same_user(conn):
        print("refused a client of another user", flush=True)
        return True
    try:
        kind, request = _receive(conn)
    except (OSError, EOFError, pickle.UnpicklingError):
        return True
    if kind == "stop":
        _send(conn, ("stopped", None))
        return False

    def on_stage(stage: str) -> None:
        # a client that hung up (Ctrl-C) makes this raise (EPIPE), at the latest when the
        # "write" stage starts: nothing is written
        _send(conn, ("stage", stage))

    start = time.monotonic()
    try:
        out = Path(request["out"]) if request["out"] else None
        result = synth_verb.run(root, env, out, request["cold"], on_stage, session)
    except InvalidInput as error:
        _log(f"invalid input: {len(error.problems)} problem(s)", start)
        _send(conn, ("invalid", error.problems))
        return True
    except OSError:
        _log("the client hung up; nothing written", start)
        return False
    except Exception:
        traceback.print_exc()  # to the log; the client synthesizes itself and says why
        with contextlib.suppress(OSError):
            _send(conn, ("failed", None))
        return False
    _log(f"rebuilt {len(result.built.rebuilt)} stack(s), written: {result.written}", start)
    with contextlib.suppress(OSError):
        _send(conn, ("result", result))
    return True


def _log(what: str, start: float) -> None:
    print(
        f"{time.strftime('%H:%M:%S')} synth: {what} ({time.monotonic() - start:.2f} s)", flush=True
    )


def _same_user(conn: socket.socket) -> bool:
    """Whether the client runs as this daemon's user (Linux says; elsewhere the private folder
    is the only way in)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1] == os.getuid()


if __name__ == "__main__":
    serve(sys.argv[1], Path(sys.argv[2]), sys.argv[3] or None)
    sys.stdout.flush()
    os._exit(0)  # as `foundation` does (cli.run): freeing aws-cdk-lib's bindings takes seconds
