"""A component's start (foundation_start.py), with real Airflow and a real PostgreSQL: it runs
its command only once the database answers and its schema is this Airflow's, waiting through
both, and gives up after its timeout having started nothing. The image's own check (`airflow db
check`) is off for components (CONNECTION_CHECK_MAX_COUNT=0: test_synth.py), so this wait is the
only thing between a component and a database that is not there yet. The whole cluster starts
this way in test_e2e*.py."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from foundation.airflow import runtime_files
from foundation.local.postgres import SUPERUSER, LocalPostgres, free_port

PASSWORD = "start-test-password"
WAITING_FOR_DATABASE = "Waiting for the metadata database"
WAITING_FOR_MIGRATIONS = "Waiting for migrations"


def environment(home: Path, port: int) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://airflow:{PASSWORD}@127.0.0.1:{port}/airflow"
        ),
    }


def start(home: Path, port: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(home / "config" / runtime_files.START), *args],
        env=environment(home, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def migrate(home: Path, port: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=environment(home, port),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def sql(postgres: LocalPostgres, statement: str) -> list[tuple]:
    """A statement on the Airflow database, as the server's superuser over its socket."""
    import psycopg2

    conn = psycopg2.connect(
        host=str(postgres.folder), port=postgres.port, user=SUPERUSER, dbname="airflow"
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("start")
    runtime_files.write(home / "config", "ecs")
    return home


def test_a_component_runs_only_once_the_database_answers_and_is_migrated(home: Path) -> None:
    port = free_port()
    component = start(home, port, runtime_files.WAIT_OPTION, "600", "version")
    postgres = LocalPostgres(port=port)
    try:
        time.sleep(8)  # nothing listens on the port: it waits, and ran nothing
        assert component.poll() is None
        postgres.start().ensure("airflow", PASSWORD, "airflow")
        time.sleep(6)  # the database answers, with no schema: it waits still
        assert component.poll() is None
        migrate(home, port)
        output, _ = component.communicate(timeout=120)
    finally:
        component.kill()
        postgres.stop()
    assert component.returncode == 0, output
    lines = output.splitlines()
    assert lines[-1] == version("apache-airflow")  # `airflow version` ran, once, last
    assert output.count(version("apache-airflow")) == 1
    waited = [line for line in lines if WAITING_FOR_DATABASE in line]
    # nothing listened at first; then the server may have refused the login a moment, until
    # its role existed: both are waited through
    assert waited and "Connection refused" in waited[0], output
    assert any(WAITING_FOR_MIGRATIONS in line for line in lines), output


def test_a_component_whose_schema_never_matches_exits_having_run_nothing(home: Path) -> None:
    port = free_port()
    postgres = LocalPostgres(port=port).start()
    try:
        postgres.ensure("airflow", PASSWORD, "airflow")
        component = start(home, port, runtime_files.WAIT_OPTION, "3", "version")
        output, _ = component.communicate(timeout=120)
    finally:
        postgres.stop()
    assert component.returncode == 1
    assert version("apache-airflow") not in output
    last = output.splitlines()[-1]
    assert last == "the metadata database's schema is not this Airflow's after 3 s"


def test_a_component_with_no_database_gives_up_after_its_wait(home: Path) -> None:
    # 15 s: a first try under load (imports, the engine) has taken more than 4 s
    component = start(home, free_port(), runtime_files.WAIT_OPTION, "15", "version")
    output, _ = component.communicate(timeout=120)
    assert component.returncode == 1
    assert version("apache-airflow") not in output
    last = output.splitlines()[-1]
    assert last.startswith("the metadata database did not answer in 15 s: (psycopg2.Operational")
    assert WAITING_FOR_DATABASE in output  # it tried again before it gave up


def test_a_sealed_component_waits_the_same_way_before_it_seals(home: Path) -> None:
    component = subprocess.run(
        [
            sys.executable,
            str(home / "config" / runtime_files.SEALED),
            runtime_files.WAIT_OPTION,
            "4",
            "dag-processor",
        ],
        env=environment(home, free_port()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert component.returncode == 1
    last = component.stderr.splitlines()[-1]
    assert last.startswith("the metadata database did not answer in 4 s: (psycopg2.Operational")


def test_a_database_that_accepts_and_never_answers_cannot_hold_the_start(home: Path) -> None:
    """A connection that hangs (libpq waits forever by default; a security group that drops
    packets, a half-open endpoint) ends the process HANG_SECONDS after its wait, by SIGALRM."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, says nothing
        port = silent.getsockname()[1]
        started = time.monotonic()
        component = start(home, port, runtime_files.WAIT_OPTION, "2", "version")
        output, _ = component.communicate(timeout=120)
        took = time.monotonic() - started
    assert component.returncode == -signal.SIGALRM
    assert version("apache-airflow") not in output
    assert took < 60  # Airflow's import, then 12 s


def test_the_database_may_restart_while_the_start_waits_for_a_migration(home: Path) -> None:
    """The server restarts (every connection dropped) while the start waits for the schema:
    it waits on through the restart, and through FAB's schema alone not matching (the
    deploy's `fab-db migrate` runs after `db migrate`), then runs its command once both do."""
    port = free_port()
    postgres = LocalPostgres(port=port).start()
    try:
        postgres.ensure("airflow", PASSWORD, "airflow")
        migrate(home, port)
        heads = {
            table: sql(postgres, f"SELECT version_num FROM {table}")[0][0]
            for table in ("alembic_version", "alembic_version_fab")
        }
        for table in heads:
            sql(postgres, f"UPDATE {table} SET version_num = 'not-yet'")
        component = start(home, port, runtime_files.WAIT_OPTION, "600", "version")
        time.sleep(10)
        assert component.poll() is None
        data = str(postgres.folder / "data")
        log = str(postgres.folder / "server.log")  # not the pipe _run reads to its end
        postgres._run("pg_ctl", "-D", data, "-l", log, "-m", "fast", "-w", "restart")
        time.sleep(6)
        assert component.poll() is None
        sql(postgres, f"UPDATE alembic_version SET version_num = '{heads['alembic_version']}'")
        time.sleep(6)  # Airflow's schema matches, FAB's not yet
        assert component.poll() is None
        fab = heads["alembic_version_fab"]
        sql(postgres, f"UPDATE alembic_version_fab SET version_num = '{fab}'")
        output, _ = component.communicate(timeout=120)
    finally:
        component.kill()
        postgres.stop()
    assert component.returncode == 0, output
    assert output.splitlines()[-1] == version("apache-airflow")
