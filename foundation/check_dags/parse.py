"""Parse a DAG folder with the pinned Airflow in a subprocess (child.py): no AWS credentials, no
database, a throwaway AIRFLOW_HOME. The DAG files' code runs there, as in a dag-processor."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("child.py")
PARSE_SECONDS = 600


class ParseFailed(Exception):
    """Airflow could not parse the folder at all (not a DAG file's import error)."""


@dataclass(frozen=True)
class Task:
    dag_id: str
    task_id: str
    classpath: str
    bases: list[str]
    file: Path
    line: int
    mapped: bool
    mapped_arguments: list[str]
    python: bool
    aws_references: list[str]
    template_fields: list[str]
    attributes: dict[str, Any]
    deferrable: bool
    start_from_trigger: bool
    queue: str
    executor_config: Any

    @property
    def operator(self) -> str:
        return self.classpath.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class ParsedDag:
    dag_id: str
    file: Path
    tasks: list[Task]


@dataclass
class Parsed:
    dags: list[ParsedDag] = field(default_factory=list)
    import_errors: dict[Path, str] = field(default_factory=dict)


# What the parse keeps of this process's environment: an allowlist, so no credential source of
# boto3's (variables, files under HOME, container or instance endpoints) reaches the DAG files.
KEPT_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def environment(home: Path, folder: Path, region: str) -> dict[str, str]:
    """A fresh environment: no AWS credentials (no variables, no files, no instance metadata),
    a throwaway HOME and Airflow home, no database."""
    kept = {k: os.environ[k] for k in KEPT_ENVIRONMENT if k in os.environ}
    return kept | {
        "HOME": str(home),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": region,
        # Airflow imports each file with SourceFileLoader: no __pycache__ in the user's folder
        "PYTHONDONTWRITEBYTECODE": "1",
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # the cluster's setting: operators read it as their `deferrable` default
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "False",
    }


def parse(folder: Path, region: str, attributes: dict[str, list[str]]) -> Parsed:
    """Every DAG of `folder` and its tasks, with `attributes` (per operator classpath)."""
    if importlib.util.find_spec("airflow") is None:
        raise ParseFailed(
            "check-dags parses DAG files with Airflow: install airflow-foundation[dev]"
        )
    with tempfile.TemporaryDirectory(prefix="foundation-check-dags-") as scratch:
        home = Path(scratch)
        request, out = home / "request.json", home / "parsed.json"
        request.write_text(json.dumps({"folder": str(folder), "attributes": attributes}))
        try:
            done = subprocess.run(
                [sys.executable, str(CHILD), str(request), str(out)],
                env=environment(home, folder, region),
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=PARSE_SECONDS,
            )
        except subprocess.TimeoutExpired:
            raise ParseFailed(f"parsing {folder} took over {PARSE_SECONDS} s") from None
        if done.returncode != 0 or not out.is_file():
            tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            current = out.with_name(f"{out.name}.current")
            where = f" (while reading {current.read_text()})" if current.is_file() else ""
            raise ParseFailed(f"Airflow could not parse {folder}{where}: {tail[0]}")
        data = json.loads(out.read_text())
    return Parsed(
        [
            ParsedDag(d["dag_id"], Path(d["file"]), [_task(d["dag_id"], t) for t in d["tasks"]])
            for d in data["dags"]
        ],
        {Path(path): text for path, text in data["import_errors"].items()},
    )


def _task(dag_id: str, data: dict[str, Any]) -> Task:
    return Task(dag_id=dag_id, **(data | {"file": Path(data["file"])}))
