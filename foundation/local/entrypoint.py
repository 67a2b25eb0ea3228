"""The official Airflow image's entrypoint (`scripts/docker/entrypoint_prod.sh` of
apache/airflow, as shipped with the 3.3 images), as far as a container of this toolkit meets it:

- `CONNECTION_CHECK_MAX_COUNT` (default 20) runs of `airflow db check`,
  `CONNECTION_CHECK_SLEEP_TIME` (default 3) seconds apart, before anything else; 0 skips it;
- `_AIRFLOW_DB_MIGRATE` runs `airflow db migrate` (its failure ignored, as there);
- a first argument `bash` or `python` is exec'd as it is; otherwise `airflow` is dropped if
  given, and the Celery broker is awaited before `scheduler`/`celery` when `[core] executor` is
  exactly `CeleryExecutor`; then `exec airflow ARGS`.

Not reproduced (nothing here depends on them): the libstdc++ LD_PRELOAD, the passwd entry for
an arbitrary uid, PYTHONPATH for root, `_AIRFLOW_WWW_USER_CREATE` and
`_PIP_ADDITIONAL_REQUIREMENTS`.

Run as `python -m foundation.local.entrypoint ARGS...`: the process becomes the command, as the
container's does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

BROKER_PORTS = {"redis": 6379, "amqp": 5672, "postgres": 5432, "mysql": 3306}


def _with_retries(check, what: str) -> None:
    count = int(os.environ.get("CONNECTION_CHECK_MAX_COUNT", "20"))
    sleep = float(os.environ.get("CONNECTION_CHECK_SLEEP_TIME", "3"))
    while True:
        ok, last = check()
        if ok:
            return
        count -= 1
        if count <= 0:
            sys.stderr.write(
                f"ERROR! Maximum number of retries reached.\nLast check result:\n$ {what}\n{last}\n"
            )
            raise SystemExit(1)
        time.sleep(sleep)


def _db_check() -> tuple[bool, str]:
    done = subprocess.run(["airflow", "db", "check"], capture_output=True, text=True)
    return done.returncode == 0, done.stdout + done.stderr


def _broker_check(url: str) -> tuple[bool, str]:
    parts = urlsplit(url)
    port = parts.port or next(
        (p for scheme, p in BROKER_PORTS.items() if parts.scheme.startswith(scheme)), None
    )
    if port is None:  # like the image: details it cannot determine skip the check
        return True, ""
    try:
        socket.create_connection((parts.hostname or "localhost", port), timeout=3).close()
        return True, ""
    except OSError as error:
        return False, str(error)


def _airflow_config(section: str, key: str) -> str:
    done = subprocess.run(
        ["airflow", "config", "get-value", section, key], capture_output=True, text=True
    )
    return done.stdout.strip()


def main(argv: list[str]) -> None:
    os.umask(0o002)
    if int(os.environ.get("CONNECTION_CHECK_MAX_COUNT", "20")) > 0:
        _with_retries(_db_check, "airflow db check")
    if os.environ.get("_AIRFLOW_DB_MIGRATE") or os.environ.get("_AIRFLOW_DB_UPGRADE"):
        subprocess.run(["airflow", "db", "migrate"])
    if argv and argv[0] == "bash":
        os.execvp("/bin/bash", ["/bin/bash", *argv[1:]])
    if argv and argv[0] == "python":
        os.execvp("python", ["python", *argv[1:]])
    if argv and argv[0] == "airflow":
        argv = argv[1:]
    checks = int(os.environ.get("CONNECTION_CHECK_MAX_COUNT", "20")) > 0
    broker = argv and argv[0] in ("scheduler", "celery") and checks
    if broker and _airflow_config("core", "executor") == "CeleryExecutor":
        url = _airflow_config("celery", "broker_url")
        _with_retries(lambda: _broker_check(url), f"connect {url}")
    os.execvp("airflow", ["airflow", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
