"""The trigger classes a task may defer to: exact classpaths, the rest refused.

Triggers run in the shared triggerer, under its identity and next to its database credentials,
with the kwargs a task chose. So only classes on this list run there: the api-server's guard
(`plugins/foundation_deferral.py`) refuses a deferral to any other, and the triggerer itself
(`foundation_sealed.py`) refuses to run any other, whatever put it in the database.

The defaults were read from apache-airflow-core 3.3.2 and the providers pinned with it (standard
1.21.0, http 6.3.0, common-sql 2.4.0); each is the classpath its `serialize()` returns, which is
what a worker sends (`TimeDeltaTrigger` is stored as `DateTimeTrigger`, so that one covers both).
tests/test_triggers.py checks each against the installed Airflow with `check()`. Event triggers
(asset watchers) are not listed: the triggerer runs no trigger without a task instance.
"""

from __future__ import annotations

import json
import subprocess
import sys

DEFAULT_TRIGGERS = (
    # time and date (TimeDeltaTrigger serializes as DateTimeTrigger)
    "airflow.providers.standard.triggers.temporal.DateTimeTrigger",
    # HTTP, through a connection the triggerer can read
    "airflow.providers.http.triggers.http.HttpTrigger",
    "airflow.providers.http.triggers.http.HttpSensorTrigger",
    # SQL, through a connection the triggerer can read
    "airflow.providers.common.sql.triggers.sql.SQLExecuteQueryTrigger",
    # external task and DAG state, through the Execution API
    "airflow.providers.standard.triggers.external_task.WorkflowTrigger",
    "airflow.providers.standard.triggers.external_task.DagStateTrigger",
)

# Refused whatever the config says, without importing anything: the amazon provider's triggers
# call AWS with the triggerer's identity, and the callback trigger imports and awaits whatever
# callable its kwargs name.
REFUSED_PREFIXES = {
    "airflow.providers.amazon.": "the amazon provider's triggers call AWS as the triggerer, not "
    "as the DAG; run the operator with deferrable=False on the DAG's own worker",
}
REFUSED_CLASSES = {
    "airflow.triggers.callback.CallbackTrigger": "it imports and runs any callable its kwargs "
    "name, in the triggerer",
}
# Modules whose loading means the class can call AWS (with the triggerer's credentials, boto's
# default chain): the SDKs, and the amazon provider's code (its package marker and provider info
# load with Airflow's provider discovery, so those two do not count).
AWS_MODULES = ("boto3", "botocore", "aiobotocore", "aioboto3", "airflow.providers.amazon.aws")


def static_refusal(classpath: str) -> str | None:
    """Why this classpath may never be allowed, known without importing it."""
    if classpath in REFUSED_CLASSES:
        return f"{classpath} may not be deferred to: {REFUSED_CLASSES[classpath]}"
    for prefix, why in REFUSED_PREFIXES.items():
        if classpath.startswith(prefix):
            return f"{classpath} may not be deferred to: {why}"
    return None


# Run in a fresh interpreter per classpath: what importing it loads is what it brings.
_CHECK = r"""
import importlib, json, sys
classpath, aws = sys.argv[1], tuple(json.loads(sys.argv[2]))
def out(problem):
    print(json.dumps(problem)); raise SystemExit(0)
try:
    from airflow.triggers.base import BaseTrigger
except Exception as err:
    out(f"{classpath} cannot be checked: apache-airflow-core is not importable here "
        f"({type(err).__name__}: {err}); install airflow-foundation[dev] where foundation runs")
before = set(sys.modules)
module_name, _, name = classpath.rpartition(".")
try:
    cls = getattr(importlib.import_module(module_name), name)
except Exception as err:
    out(f"{classpath} does not import here ({type(err).__name__}: {err})")
if not (isinstance(cls, type) and issubclass(cls, BaseTrigger)):
    out(f"{classpath} is not a trigger (a BaseTrigger subclass)")
if f"{cls.__module__}.{cls.__qualname__}" != classpath:
    out(f"{classpath} is an alias of {cls.__module__}.{cls.__qualname__}: name the class "
        "where it is defined, as its serialize() does")
loaded = sorted({a for m in set(sys.modules) - before for a in aws
                 if m == a or m.startswith(a + ".")})
if loaded:
    out(f"{classpath} loads {', '.join(loaded)}: it can call AWS with the triggerer's identity")
out(None)
"""


def check(classpath: str) -> str | None:
    """Why `classpath` may not be deferred to, or None: it must import, in this environment's
    Airflow, to a BaseTrigger subclass whose import loads no AWS SDK (so it makes no AWS call
    with the triggerer's identity)."""
    refused = static_refusal(classpath)
    if refused:
        return refused
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, classpath, json.dumps(AWS_MODULES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return f"{classpath} could not be checked: {(done.stderr or done.stdout)[-300:]}"
    return json.loads(lines[-1])


def allowed(extra: list[str] | tuple[str, ...]) -> list[str]:
    """Every classpath a task may defer to: the defaults and the config's additions."""
    return sorted({*DEFAULT_TRIGGERS, *extra})
