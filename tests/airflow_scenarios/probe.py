"""Code a DAG author gets run in the cluster (a DAG file at parse time, a trigger), looking for the
cluster's secrets through every channel it has: its environment, the `_CMD` programs that
environment names, Airflow's configuration, files, the parent process's /proc entries, and its
own memory.

The secrets are recognised by shape, never by value (a probe that held the values would find
them in its own memory): the database password is `dbpw` + 32 hex digits, the Fernet material
`fernetmat` + 32 hex digits, and the Fernet key any url-safe base64 key whose SHA-256 is the one
given. Each channel reports the values it held, or the error that kept the probe out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

DB_PASSWORD = re.compile(rb"dbpw[0-9a-f]{32}")
FERNET_MATERIAL = re.compile(rb"fernetmat[0-9a-f]{32}")
FERNET_KEY_SHAPE = re.compile(rb"[A-Za-z0-9_-]{43}=")
# The variables that carry (or name how to compute) a secret of the cluster's
SECRET_VARIABLES = (
    "FOUNDATION_DB_SECRET",
    "FOUNDATION_FERNET_MATERIAL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__FERNET_KEY_CMD",
    "AIRFLOW__CORE__FERNET_KEY_SECRET",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def secrets_in(data: bytes, fernet_key_sha256: str) -> dict[str, list[str]]:
    keys = {
        c.decode()
        for c in FERNET_KEY_SHAPE.findall(data)
        if hashlib.sha256(c).hexdigest() == fernet_key_sha256
    }
    return {
        "db_password": sorted({m.decode() for m in DB_PASSWORD.findall(data)}),
        "fernet_material": sorted({m.decode() for m in FERNET_MATERIAL.findall(data)}),
        "fernet_key": sorted(keys),
    }


def own_memory() -> bytes:
    """Every readable mapping of this process, as /proc/self/mem gives it (always open to the
    process itself, dumpable or not)."""
    chunks = []
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1] or (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, OverflowError, ValueError):
                continue
    return b"\0".join(chunks)


def read(path: str) -> bytes | str:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        return type(err).__name__


def observe(fernet_key_sha256: str) -> dict:
    def look(data: bytes | str) -> dict | str:
        return data if isinstance(data, str) else secrets_in(data, fernet_key_sha256)

    # Memory first: what the probe reads through the other channels lands in its memory too.
    channels: dict[str, dict | str] = {"memory": look(own_memory())}
    environ = "\0".join(f"{k}={v}" for k, v in os.environ.items()).encode()
    channels["os.environ"] = look(environ)
    programs = b""
    for name in sorted(k for k in os.environ if k.endswith("_CMD")):
        done = subprocess.run(os.environ[name], shell=True, capture_output=True, timeout=60)
        programs += done.stdout + b"\0"
    channels["_CMD programs"] = look(programs)
    from airflow.configuration import conf

    values = []
    for section, key in sorted(conf.sensitive_config_values):
        try:
            values.append(str(conf.get(section, key, fallback="")))
        except Exception as err:
            values.append(type(err).__name__)
    channels["airflow conf"] = look("\0".join(values).encode())
    parent = os.getppid()
    channels["/proc/self/environ"] = look(read("/proc/self/environ"))
    channels["/proc/parent/environ"] = look(read(f"/proc/{parent}/environ"))
    channels["/proc/parent/cmdline"] = look(read(f"/proc/{parent}/cmdline"))
    try:
        with open(f"/proc/{parent}/mem", "rb"):
            channels["/proc/parent/mem"] = "opened"
    except OSError as err:
        channels["/proc/parent/mem"] = type(err).__name__
    home = Path(os.environ["AIRFLOW_HOME"])
    files = b""
    for path in sorted(home.rglob("*")):
        if path.is_file() and path.stat().st_size < 4 << 20:
            content = read(str(path))
            files += content if isinstance(content, bytes) else b""
    channels["files under $AIRFLOW_HOME"] = look(files)
    return {
        "channels": channels,
        "variables": sorted(v for v in SECRET_VARIABLES if v in os.environ),
        "sql_alchemy_conn": os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
    }


class ProbeTrigger(BaseEventTrigger):
    """A trigger a deployment added to its list (or an allowed one a bug made do this): writes
    what it reached to `out`, then fires."""

    def __init__(self, out: str, fernet_key_sha256: str) -> None:
        super().__init__()
        self.out, self.fernet_key_sha256 = out, fernet_key_sha256

    def serialize(self) -> tuple[str, dict]:
        return (
            "tests.airflow_scenarios.probe.ProbeTrigger",
            {"out": self.out, "fernet_key_sha256": self.fernet_key_sha256},
        )

    async def run(self):
        Path(self.out).write_text(json.dumps(observe(self.fernet_key_sha256)))
        yield TriggerEvent({"probed": self.out})


async def touch(path: str) -> str:
    """A deadline callback that leaves a mark where it ran."""
    Path(path).write_text(f"ran in pid {os.getpid()}")
    return path
