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
import sys
import time

WAIT_OPTION = "--wait-for-migrations"
RETRY_SECONDS = 3  # between tries while the database does not answer (the image's sleep)
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
    does not answer yet counts as one not migrated yet (what the entrypoint's `airflow db
    check` loop waited for): returns once the schema is this Airflow's; exits 1 after
    `seconds`, having started nothing."""
    from airflow.utils.db import check_migrations
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + seconds
    while True:
        try:
            check_migrations(timeout=1)  # one look; when the heads differ, a second's sleep
            return
        except TimeoutError:
            answer, pause = "", 0
            why = f"the metadata database's schema is not this Airflow's after {seconds} s"
        except OperationalError as error:
            answer, pause = str(error).splitlines()[0], RETRY_SECONDS
            why = f"the metadata database did not answer in {seconds} s: {answer}"
        if time.monotonic() + pause >= deadline:
            raise SystemExit(why)
        if answer:
            log.info("Waiting for the metadata database: %s", answer)
        time.sleep(pause)


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
