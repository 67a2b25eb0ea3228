"""The triggerer and parse time, attacked on real Airflow and PostgreSQL: only the listed trigger
classes run in the triggerer, only for deferred tasks; neither a DAG file at parse time nor a
trigger finds the database credentials or the Fernet key, except where stated (the parse
process's own memory), and each defence shows in what it refuses.

The scenario (tests/airflow_scenarios/triggers.py) runs each component in its own process with
that component's environment and secrets as ECS injects them, against one PostgreSQL database
whose password, like the Fernet material, has a shape the probes recognise. The processes run
without any capability (root's included): as Airflow does in its container, where the same user
owns every process and holds no CAP_SYS_PTRACE.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation.airflow import runtime_files, settings
from foundation.config import Deployment
from foundation.local.postgres import LocalPostgres, free_port
from foundation.project import load_project
from tests.airflow_scenarios import TEST_JWT_SECRET, local_bundle
from tests.conftest import ROOT

EXAMPLE = load_project(ROOT).deployment
PROBE = "tests.airflow_scenarios.probe.ProbeTrigger"
# The example, with the probe added to its trigger list as a deployment adds a class of its own.
DEPLOYMENT = Deployment.model_validate(
    EXAMPLE.model_dump() | {"airflow": EXAMPLE.airflow.model_dump() | {"triggers": [PROBE]}}
)
DB_PASSWORD = "dbpw" + secrets.token_hex(16)
FERNET_MATERIAL = "fernetmat" + secrets.token_hex(16)
FERNET_KEY = base64.urlsafe_b64encode(hashlib.sha256(FERNET_MATERIAL.encode()).digest()).decode()
REFUSED = ["popen", "dag_class", "amazon", "callback_trigger", "bad_kwargs"]
ALLOWED = ["datetime", "http", "http_sensor", "sql", "workflow", "dagstate", "probe"]
# Deferred through the guarded Execution API; then stored where no guard stands; then a listed
# class whose kwargs are stored encrypted (as the scheduler stores them)
DEFERRING = REFUSED + ALLOWED + [f"{t}_bypass" for t in REFUSED] + ["encrypted"]
CLASSPATHS = {
    "popen": "subprocess.Popen",
    "dag_class": "evil_dag.EvilTrigger",
    "amazon": "airflow.providers.amazon.aws.triggers.s3.S3KeyTrigger",
    "callback_trigger": "airflow.triggers.callback.CallbackTrigger",
    "bad_kwargs": "airflow.providers.standard.triggers.temporal.DateTimeTrigger",
    "datetime": "airflow.providers.standard.triggers.temporal.DateTimeTrigger",
    "http": "airflow.providers.http.triggers.http.HttpTrigger",
    "http_sensor": "airflow.providers.http.triggers.http.HttpSensorTrigger",
    "sql": "airflow.providers.common.sql.triggers.sql.SQLExecuteQueryTrigger",
    "workflow": "airflow.providers.standard.triggers.external_task.WorkflowTrigger",
    "dagstate": "airflow.providers.standard.triggers.external_task.DagStateTrigger",
    "probe": PROBE,
}
# Without capabilities, as root too (setpriv from util-linux).
UNPRIVILEGED = (
    ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"] if os.geteuid() == 0 else []
)


def injected(ref: settings.SecretRef, port: int) -> str:
    """What ECS injects for each of the cluster's secrets, here."""
    return {
        "db": json.dumps(
            {
                "username": "airflow",
                "password": DB_PASSWORD,
                "host": "127.0.0.1",
                "port": port,
                "engine": "postgres",
            }
        ),
        "fernet": FERNET_MATERIAL,
        "jwt": TEST_JWT_SECRET,
        "api": "api-secret-key-" + "y" * 32,
        "web_passwords": json.dumps({"admin": "admin"}),
    }[ref.secret]


class Cluster:
    """One metadata database and AIRFLOW_HOME, and each component's process environment."""

    def __init__(self, work: Path, postgres: LocalPostgres) -> None:
        self.work, self.postgres = work, postgres
        self.home, self.dags = work / "home", work / "dags"
        self.dags.mkdir(parents=True)
        runtime_files.write(self.home / "config", "ecs")
        self.http_port = free_port()
        self.marks = {m: str(work / "marks" / m) for m in [*REFUSED, "deadline"]}
        (work / "marks").mkdir()
        self.inputs = {
            "dags_folder": str(self.dags),
            "deferring_tasks": DEFERRING,
            "guarded_tasks": REFUSED + ALLOWED,
            "marks": self.marks,
            "fernet_key_sha256": hashlib.sha256(FERNET_KEY.encode()).hexdigest(),
            "parse_probe_out": str(work / "parse_probe.json"),
            "trigger_probe_out": str(work / "trigger_probe.json"),
            "watcher_probe_out": str(work / "watcher_probe.json"),
            "http_port": self.http_port,
            "trigger_seconds": 120,
        }

    def environment(self, component: str) -> dict[str, str]:
        ours = settings.cluster_component(DEPLOYMENT, component)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "AWS_", "FOUNDATION", "PYTHONPATH"))
        }
        env |= {
            k: v
            for k, v in ours.environment.items()
            if not k.startswith("AIRFLOW__LOGGING__") and k != runtime_files.RUNTIME_ENV
        }
        env |= {name: injected(ref, self.postgres.port) for name, ref in ours.secrets.items()}
        return env | {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",  # `python` of _CMD
            "HOME": str(self.work),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.work / "passwords"),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([local_bundle(self.dags)]),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": DEPLOYMENT.region,
        }

    def run(self, phase: str, component: str, extra: dict[str, str] | None = None) -> dict:
        inputs = self.work / f"{phase}.json"
        inputs.write_text(json.dumps(self.inputs))
        env = self.environment(component) | (extra or {})
        done = subprocess.run(
            [
                *UNPRIVILEGED,
                sys.executable,
                "-m",
                "tests.airflow_scenarios.triggers",
                phase,
                str(inputs),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-20000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def observed() -> Iterator[dict]:
    postgres = LocalPostgres().start()
    work = Path(tempfile.mkdtemp(prefix="foundation-triggers-"))
    try:
        postgres.ensure("airflow", DB_PASSWORD, settings.DB_NAME)
        cluster = Cluster(work, postgres)
        out = {"migrate": cluster.run("migrate", "db-migrate")}
        out["control"] = cluster.run("control", "triggerer")
        out["parse"] = cluster.run("parse", "dag-processor")
        plugins = {"AIRFLOW__CORE__PLUGINS_FOLDER": str(cluster.home / "config" / "plugins")}
        out["defer"] = cluster.run("defer", "api-server", plugins)
        cluster.inputs["run_id"] = out["defer"]["run_id"]
        out["plant"] = cluster.run("plant", "scheduler")
        cluster.inputs["start_run_id"] = out["plant"]["start_run_id"]
        out["trigger"] = cluster.run(
            "trigger",
            "triggerer",
            {
                "PYTHONPATH": str(cluster.dags),  # the DAG file's class would import there
                "AIRFLOW_CONN_HTTP_LOCAL": f"http://127.0.0.1:{cluster.http_port}",
                "AIRFLOW_CONN_SQL_LOCAL": "sqlite:///" + str(work / "sql.db"),
            },
        )
        out["files_at"] = {
            name: cluster.inputs[name]
            for name in ("parse_probe_out", "trigger_probe_out", "watcher_probe_out")
        }
        out["files"] = {
            name: json.loads(Path(cluster.inputs[name]).read_text())
            if Path(cluster.inputs[name]).exists()
            else None
            for name in ("parse_probe_out", "trigger_probe_out", "watcher_probe_out")
        }
        out["marks"] = sorted(p.name for p in (work / "marks").iterdir())
        yield out
    finally:
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


# -- expected answers ------------------------------------------------------------------------------


def api_refusal(task_id: str) -> str:
    classpath = CLASSPATHS[task_id]
    if task_id == "bad_kwargs":
        return f"deferral to {classpath!r} is refused: its trigger_kwargs are not a mapping"
    hint = (
        "; the amazon provider's triggers would call AWS as the triggerer, not as this DAG: run "
        "the operator with deferrable=False so it polls from the DAG's own worker with the DAG's "
        "own grants"
        if classpath.startswith("airflow.providers.amazon.")
        else ""
    )
    return (
        f"deferral to {classpath!r} is refused: triggers run in the shared triggerer, and only "
        f"the trigger classes the deployment lists (airflow.triggers) may run there{hint}"
    )


def triggerer_refusal(task_id: str, trigger_id: int) -> str:
    classpath = CLASSPATHS[task_id]
    if task_id == "bad_kwargs":
        return (
            f"foundation: the kwargs of trigger {trigger_id} ({classpath}) are not a readable "
            "mapping (InvalidToken); it does not run"
        )
    return (
        f"foundation: trigger {classpath} is not one a task may defer to (airflow.triggers in "
        "the deployment's config); it does not run in the triggerer"
    )


def failed_by(reason: str) -> dict:
    """A task instance whose trigger Airflow failed (Trigger.submit_failure): back to a worker,
    which fails it with the reason."""
    return {
        "state": "scheduled",
        "next_method": "__fail__",
        "next_kwargs": {"error": "Trigger failure", "traceback": [reason]},
    }


def without_id(ti: dict) -> dict:
    return {k: v for k, v in ti.items() if k != "id"}


NOTHING = {"db_password": [], "fernet_material": [], "fernet_key": []}


# -- the Execution API -----------------------------------------------------------------------------


def test_the_api_server_stores_a_deferral_only_to_a_listed_class(observed: dict) -> None:
    answers = {d["task_id"]: d for d in observed["defer"]["deferrals"]}
    assert list(answers) == REFUSED + ALLOWED
    # Popen, a DAG file's class, an amazon trigger, the callback trigger; a listed class whose
    # kwargs are a string (Airflow would store it as encrypted, for the triggerer to decrypt)
    for task_id in REFUSED:
        classpath = CLASSPATHS[task_id]
        assert answers[task_id] == {
            "task_id": task_id,
            "classpath": classpath,
            "status": 403,
            "body": {"detail": {"reason": "foundation", "message": api_refusal(task_id)}},
            "state": "running",  # nothing stored: still running on its worker
            "trigger": None,
            "trigger_id": None,
        }
    for task_id in ALLOWED:
        classpath = CLASSPATHS[task_id]
        assert isinstance(answers[task_id].pop("trigger_id"), int)
        assert answers[task_id] == {
            "task_id": task_id,
            "classpath": classpath,
            "status": 204,
            "body": None,
            "state": "deferred",
            "trigger": classpath,
        }


# -- the triggerer ---------------------------------------------------------------------------------


def test_the_triggerer_runs_no_unlisted_class_whatever_stored_it(observed: dict) -> None:
    """The same deferrals, stored by Airflow's own route where no guard stands (rows the guard
    never saw): the triggerer fails each task instance with its reason, and none of them ran
    (each would have left a mark: the command, the DAG file's class, the callable). The one
    whose kwargs cannot be decrypted is refused too, where it would have killed the trigger
    runner and every trigger in it."""
    planted = {d["task_id"]: d for d in observed["plant"]["bypassed"]}
    tis = observed["trigger"]["task_instances"]
    for task_id in REFUSED:
        bypass = planted[f"{task_id}_bypass"]
        assert (bypass["status"], bypass["trigger"]) == (204, CLASSPATHS[task_id])
        reason = triggerer_refusal(task_id, bypass["trigger_id"])
        assert without_id(tis[f"{task_id}_bypass"]) == failed_by(reason)
        assert without_id(tis[task_id])["state"] == "running"  # refused by the api-server
    assert observed["marks"] == []


def test_every_listed_trigger_runs_in_the_triggerer(observed: dict) -> None:
    tis = {t: without_id(ti) for t, ti in observed["trigger"]["task_instances"].items()}
    for task_id in ALLOWED:
        assert tis[task_id]["state"] == "scheduled"  # back to a worker, with its event
        assert tis[task_id]["next_method"] == "execute_complete"
    event = {t: tis[t]["next_kwargs"]["event"] for t in ALLOWED}
    assert event["datetime"]["__classname__"] == "datetime.datetime"
    http = event["http"]
    assert (http["status"], http["response"]["status_code"]) == ("success", 200)
    assert base64.b64decode(http["response"]["content"]) == b'{"ok": true}'
    assert event["http_sensor"] is True
    # Built and run by the trigger runner; its query needs a SQL provider's hook, and the
    # pinned environment has none for a local database (the failure is the trigger's own).
    assert event["sql"] == {"status": "failure", "message": 'Unknown hook type "sqlite"'}
    assert event["workflow"] == {"status": "success"}
    run_id = observed["defer"]["run_id"]
    assert event["dagstate"] == [
        CLASSPATHS["dagstate"],
        {
            "dag_id": "deferrer",
            "states": ["queued"],
            "run_ids": [run_id],
            "poll_interval": 1,
            "execution_dates": None,
            run_id: "queued",
        },
    ]
    assert event["probe"] == {"probed": observed["files_at"]["trigger_probe_out"]}


def test_a_listed_trigger_with_encrypted_kwargs_runs_without_the_key_in_its_runner(
    observed: dict,
) -> None:
    """The triggerer decrypts the kwargs the scheduler stored encrypted; the runner, which holds
    no Fernet key, gets them in the clear and the trigger fires."""
    assert observed["plant"]["encrypted_kwargs_stored"] is True
    encrypted = without_id(observed["trigger"]["task_instances"]["encrypted"])
    assert (encrypted["state"], encrypted["next_method"]) == ("scheduled", "execute_complete")
    assert encrypted["next_kwargs"]["event"]["__classname__"] == "datetime.datetime"


def test_a_deadline_callback_never_runs_in_the_triggerer(observed: dict) -> None:
    assert observed["parse"]["import_errors"]["async_deadline.py"] == (
        "AirflowClusterPolicyViolation: DAG async_deadline: a deadline's AsyncCallback "
        "(tests.airflow_scenarios.probe.touch) would run in the shared triggerer, not as this "
        "DAG; use a SyncCallback (it runs on the DAG's own worker)"
    )
    # Queued as the scheduler queues a missed deadline's callback: a CallbackTrigger with the
    # callable's path. The triggerer fails the callback and never imports the callable.
    assert observed["trigger"]["callbacks"] == [
        {
            "path": "tests.airflow_scenarios.probe.touch",
            "state": "failed",
            "output": triggerer_refusal("callback_trigger", 0),
        }
    ]
    assert "deadline" not in observed["marks"]


def test_an_asset_watcher_never_runs_in_the_triggerer(observed: dict) -> None:
    assert observed["parse"]["import_errors"]["asset_watcher.py"] == (
        "AirflowClusterPolicyViolation: DAG asset_watcher: asset 'landing' has a watcher, whose "
        "trigger would run in the shared triggerer, not as this DAG"
    )
    # A watcher row whose class is on the list (the probe): it has no task instance, so the
    # triggerer never builds it; had it run, it would have written its findings.
    assert observed["trigger"]["refused_watchers"] == [observed["plant"]["watcher_trigger_id"]]
    assert observed["files"]["watcher_probe_out"] is None
    assert observed["trigger"]["asset_events"] == []


def test_a_task_never_starts_from_a_trigger(observed: dict) -> None:
    assert observed["parse"]["import_errors"]["start_trigger.py"] == (
        "AirflowClusterPolicyViolation: start_trigger.wait: start_from_trigger=True would start "
        "the task in the shared triggerer, not as this DAG; start it on the DAG's worker (the "
        "default)"
    )
    # The policy runs beside the DAG file's code: a file that turns it off first gets its DAG
    # in, and the scheduler's own defer_task stores the trigger. The triggerer refuses it.
    assert "start_trigger_bypass" in observed["parse"]["dag_ids"]
    assert observed["plant"]["start_deferred"] is True
    assert without_id(observed["trigger"]["start_trigger"]) == failed_by(
        "foundation: task wait of DAG start_trigger_bypass starts from a trigger "
        "(start_from_trigger); the triggerer runs no such trigger"
    )


def test_the_policies_refuse_exactly_these_files(observed: dict) -> None:
    assert sorted(observed["parse"]["import_errors"]) == [
        "asset_watcher.py",
        "async_deadline.py",
        "start_trigger.py",
    ]
    assert observed["parse"]["dag_ids"] == ["deferrer", "probe_dag", "start_trigger_bypass"]


# -- secrets at parse time and in triggers ---------------------------------------------------------


def test_the_probe_finds_each_secret_where_nothing_is_sealed(observed: dict) -> None:
    """The same probe in the triggerer's environment as ECS starts it, unsealed: every channel
    that holds a secret there shows it (so an empty answer below is the seal's doing)."""
    found = observed["control"]["channels"]
    db, material, key = [DB_PASSWORD], [FERNET_MATERIAL], [FERNET_KEY]
    # Unsealed, Airflow derives the key at start only to mask it in logs, and may have freed
    # that copy by the time the probe reads its memory: there, it may or may not show.
    assert found["memory"].pop("fernet_key") in ([], key)
    assert found["memory"] == {"db_password": db, "fernet_material": material}
    both = {"db_password": db, "fernet_material": material, "fernet_key": []}
    assert found["os.environ"] == both  # FOUNDATION_DB_SECRET, FOUNDATION_FERNET_MATERIAL
    assert found["/proc/self/environ"] == both
    derived = {"db_password": db, "fernet_material": [], "fernet_key": key}
    assert found["_CMD programs"] == derived  # the URL and the key, computed
    assert found["airflow conf"] == derived
    assert observed["control"]["variables"] == [
        "AIRFLOW__CORE__FERNET_KEY_CMD",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "FOUNDATION_DB_SECRET",
        "FOUNDATION_FERNET_MATERIAL",
    ]


def test_a_dag_file_at_parse_time_reaches_the_database_password_only_in_its_memory(
    observed: dict,
) -> None:
    """Measured: the parse process is a fork of the dag-processor, whose memory holds the
    database URL it connects with; that copy is the one place the password is. No Fernet key:
    the dag-processor has none of the cluster's."""
    probe = observed["files"]["parse_probe_out"]
    assert probe["channels"] == {
        "memory": {"db_password": [DB_PASSWORD], "fernet_material": [], "fernet_key": []},
        "os.environ": NOTHING,
        "_CMD programs": NOTHING,
        "airflow conf": NOTHING,
        "/proc/self/environ": NOTHING,
        "/proc/parent/environ": "PermissionError",
        "/proc/parent/cmdline": NOTHING,
        "/proc/parent/mem": "PermissionError",
        "files under $AIRFLOW_HOME": NOTHING,
    }
    # Airflow's own block is what the parse process sees of the database; the AWS keys stand in
    # for the dag-processor's task role (it reads the DAG bundle only).
    assert probe["sql_alchemy_conn"] == "airflow-db-not-allowed:///"
    assert probe["variables"] == [
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ]


def test_a_trigger_reaches_neither_the_database_credentials_nor_the_fernet_key(
    observed: dict,
) -> None:
    probe = observed["files"]["trigger_probe_out"]
    assert probe["channels"] == {
        "memory": NOTHING,
        "os.environ": NOTHING,
        "_CMD programs": NOTHING,
        "airflow conf": NOTHING,
        "/proc/self/environ": NOTHING,
        "/proc/parent/environ": "PermissionError",
        "/proc/parent/cmdline": NOTHING,
        "/proc/parent/mem": "PermissionError",
        "files under $AIRFLOW_HOME": NOTHING,
    }
    assert probe["sql_alchemy_conn"] == "airflow-db-not-allowed:///"
    assert probe["variables"] == ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]  # no AWS credentials
