"""A throwaway PostgreSQL server of the machine's own installation: initdb into a folder,
listening on 127.0.0.1 at a free port, stopped and gone with the folder. It stands in for the
deployment's RDS instance (rds.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
INSTALL_HINT = (
    "PostgreSQL's server programs (initdb, pg_ctl) are not installed: on Debian or Ubuntu "
    "`sudo apt-get install postgresql`, on macOS `brew install postgresql@16` and its "
    "`$(brew --prefix postgresql@16)/bin` on PATH, or put their folder (`pg_config --bindir`) "
    "on PATH"
)


class PostgresMissing(RuntimeError):
    pass


def bindir() -> Path:
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    # Debian keeps the server programs off PATH, under /usr/lib/postgresql/<major>/bin
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(n) for n in p.parts[-3].split(".") if n.isdigit()],
        reverse=True,
    )
    if versions:
        return versions[0].parent
    raise PostgresMissing(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalPostgres:
    """Its folder is made in the system's temporary folder, which the `postgres` user can
    reach when the server must run as that user."""

    port: int = 0
    folder: Path = Path()

    def _run(self, *args: str) -> None:
        """initdb and the server refuse to run as root: then they run as the `postgres` user
        the distribution's package creates."""
        argv = [str(bindir() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                raise PostgresMissing(
                    "PostgreSQL refuses to run as root, and `runuser` (util-linux) is missing "
                    "to run it as the `postgres` user: run as another user"
                )
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> LocalPostgres:
        self.folder = Path(tempfile.mkdtemp(prefix="foundation-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, SUPERUSER)
        data = self.folder / "data"
        self.port = self.port or free_port()
        # the superuser over the socket only; everyone else over TCP with a password, as on RDS
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}"
        log = self.folder / "server.log"
        self._run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        if self.folder == Path():  # never started: nothing of its own to stop or remove
            return
        if (self.folder / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def ensure(self, user: str, password: str, database: str) -> None:
        """A login role with this password owning this database, as RDS makes its master
        user and initial database."""
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(host=str(self.folder), port=self.port, user=SUPERUSER)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
                verb = "ALTER" if cursor.fetchone() else "CREATE"
                cursor.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(user)),
                    (password,),
                )
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if not cursor.fetchone():
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(database), sql.Identifier(user)
                        )
                    )
        finally:
            conn.close()
