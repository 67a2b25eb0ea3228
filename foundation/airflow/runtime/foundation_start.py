"""A cluster component's start in one Python process: wait until the metadata database answers
and its schema is this Airflow's, then run the airflow command in place.

Written by airflow-foundation to $AIRFLOW_HOME/config and run as a component's first airflow
command:

    python /opt/airflow/config/foundation_start.py --wait-for-migrations SECONDS ARGS...

The image's entrypoint (`airflow db check`, up to CONNECTION_CHECK_MAX_COUNT times) and the Helm
chart's wait-for-migrations (`airflow db check-migrations`) each start an interpreter that
imports Airflow before the component's own does: 2 to 4 s of CPU each, measured on a 2-core
machine, and several times that on a Fargate task's share of a vCPU. Components skip the
entrypoint's check (CONNECTION_CHECK_MAX_COUNT=0) and wait here, with the Airflow the command
then runs; foundation_sealed.py waits the same way.
"""

from __future__ import annotations

import logging
import signal
import sys
import time

WAIT_OPTION = "--wait-for-migrations"
RETRY_SECONDS = 3  # between tries while the database does not answer (the image's sleep)
# How long the database may not answer (the image's 20 tries, 3 s apart): a wrong password,
# host or security group fails the task within a minute, not after the hour a migration gets
ANSWER_SECONDS = 60
# A try that hangs (libpq has no connect timeout) ends the process this long after the wait;
# the loop's own limits come first: a try takes a second or two, several on a loaded machine
HANG_SECONDS = 10
log = logging.getLogger(__name__)


def split(argv: list[str]) -> tuple[int | None, list[str]]:
    """The seconds to wait for the migrations, if asked, and the airflow command."""
    if argv[:1] == [WAIT_OPTION]:
        if len(argv) < 2 or not argv[1].isdigit():
            raise SystemExit(f"{WAIT_OPTION} takes a number of seconds")
        return int(argv[1]), argv[2:]
    return None, argv


def wait_for_migrations(seconds: int) -> None:
    """As `airflow db check-migrations --migration-wait-timeout SECONDS`, where a database that
    does not answer counts as one not migrated yet for up to ANSWER_SECONDS at a time (what
    the entrypoint's `airflow db check` loop waited for): returns once the schema is this
    Airflow's; exits 1 after `seconds` (or once the database has not answered for
    ANSWER_SECONDS), having started nothing. A connection that hangs cannot hold it longer: the
    process is killed by SIGALRM HANG_SECONDS after `seconds`."""
    from airflow import settings
    from airflow.utils.db import check_migrations
    from sqlalchemy.exc import OperationalError

    signal.alarm(seconds + HANG_SECONDS)  # its default action ends the process
    deadline = time.monotonic() + seconds
    answered = time.monotonic()  # when the database last answered (or the wait began)
    try:
        while True:
            try:
                check_migrations(timeout=1)  # one look; when the heads differ, a second's sleep
                return
            except TimeoutError:
                answer, pause, answered = "", 0, time.monotonic()
                why = f"the metadata database's schema is not this Airflow's after {seconds} s"
            except OperationalError as error:
                answer, pause = str(error).splitlines()[0], RETRY_SECONDS
                waited = min(seconds, ANSWER_SECONDS)
                why = f"the metadata database did not answer in {waited} s: {answer}"
            finally:
                _forget_session(settings)
            limit = min(deadline, answered + ANSWER_SECONDS) if answer else deadline
            if time.monotonic() + pause >= limit:
                raise SystemExit(why)
            if answer:
                log.info("Waiting for the metadata database: %s", answer)
            time.sleep(pause)
    finally:
        signal.alarm(0)


def _forget_session(settings) -> None:
    """Airflow's thread-local session, which check_migrations leaves in a transaction: closed,
    so that the wait holds no lock, and a connection the database dropped is not kept (its
    next use would raise PendingRollbackError)."""
    try:
        settings.Session.remove()
    except Exception:  # the connection is gone: closing it failed; drop the session anyway
        settings.Session.registry.clear()


def run_airflow(argv: list[str]) -> None:
    """`airflow ARGS` in this process, as the `airflow` console script runs it."""
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *argv]
    sys.exit(airflow_main())


def main(argv: list[str]) -> None:
    seconds, command = split(argv)
    if not command:
        raise SystemExit(f"usage: {sys.argv[0]} [{WAIT_OPTION} SECONDS] ARGS...")
    if seconds is not None:
        wait_for_migrations(seconds)
    run_airflow(command)


if __name__ == "__main__":
    main(sys.argv[1:])
