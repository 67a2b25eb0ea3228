"""Parse a DAG folder with the real Airflow and write what check-dags needs, as JSON.

Run as a script, `python child.py REQUEST.json OUT.json` (Airflow logs to stdout), in a process
with no AWS credentials and no database (foundation/check_dags/parse.py builds its
environment); it imports nothing of the toolkit. Each task's file and line are where the DAG
folder's code created it: the innermost frame in the folder when its operator (or its mapped
operator) was constructed.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import types
from typing import Any

_CREATED: dict[int, tuple[str, int]] = {}


def _creation_site(folder: str) -> tuple[str, int] | None:
    frame = sys._getframe(2)
    while frame is not None:
        filename = os.path.realpath(frame.f_code.co_filename)
        if filename.startswith(folder):
            return filename, frame.f_lineno
        frame = frame.f_back
    return None


def _recording(original: Any, folder: str) -> Any:
    @functools.wraps(original)  # partial() reads the signature: keep it
    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        site = _creation_site(folder)
        if site is not None and id(self) not in _CREATED:
            _CREATED[id(self)] = site
        return original(self, *args, **kwargs)

    return recorded


def _record_creations(folder: str) -> None:
    from airflow.sdk.bases.operator import BaseOperator
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    for cls, method in ((BaseOperator, "__init__"), (MappedOperator, "__attrs_post_init__")):
        setattr(cls, method, _recording(getattr(cls, method), folder))


def _value(value: Any) -> Any:
    """An attribute as JSON: plain data as is; what only a run decides, marked."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, XComArg):
        return {"$run": f"the XCom of {', '.join(t.task_id for t, _ in value.iter_references())}"}
    kind = type(value)
    return {"$run": f"a {kind.__module__}.{kind.__qualname__} object"}


AWS_MODULES = ("boto3", "botocore", "aiobotocore", "aioboto3", "airflow.providers.amazon")


def _aws_references(callable_: Any) -> list[str]:
    """The names a Python task's code uses (its nested functions' too) that are AWS SDK or amazon
    provider modules, classes or functions: its own imports, or its module's globals."""
    function = inspect.unwrap(callable_)
    code = getattr(function, "__code__", None)
    names: set[str] = set()
    stack = [code] if code else []
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack += [c for c in current.co_consts if isinstance(c, types.CodeType)]
    scope = getattr(function, "__globals__", {})
    found = []
    for name in sorted(names):
        held = scope.get(name)
        module = held.__name__ if isinstance(held, types.ModuleType) else ""
        module = module or getattr(held, "__module__", None) or name
        if any(module == m or module.startswith(f"{m}.") for m in AWS_MODULES):
            found.append(name)
    return found


def _classpath(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _task(task: Any, attributes: dict[str, list[str]], fileloc: str) -> dict[str, Any]:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    mapped = isinstance(task, MappedOperator)
    kind = task.operator_class if mapped else type(task)
    if mapped and not isinstance(kind, type):  # a decorated task: its class is serialized
        kind = type(task)
    classpath = _classpath(kind)
    file, line = _CREATED.get(id(task), (fileloc, 0))
    values = task.partial_kwargs if mapped else vars(task)
    callable_ = getattr(task, "python_callable", None)
    wanted = attributes.get(classpath, [])
    return {
        "task_id": task.task_id,
        "classpath": classpath,
        "bases": [_classpath(base) for base in kind.__mro__[1:]],
        "file": file,
        "line": line,
        "mapped": mapped,
        "mapped_arguments": sorted(task.expand_input.value) if mapped else [],
        "python": callable(callable_),
        "aws_references": _aws_references(callable_) if callable(callable_) else [],
        "template_fields": list(task.template_fields),
        "attributes": {name: _value(values[name]) for name in wanted if name in values},
        "deferrable": bool(values.get("deferrable", False)),
        "start_from_trigger": bool(getattr(task, "start_from_trigger", False)),
        "queue": task.queue,
        "executor_config": _value(task.executor_config or {}),
    }


def _naming_each_file(current_path: str) -> None:
    """Each file's path written before it is parsed: a file that ends the process on import
    (sys.exit, os._exit) is then named by the parent."""
    from airflow.dag_processing.dagbag import DagBag

    original = DagBag.process_file

    @functools.wraps(original)
    def process_file(self: Any, filepath: str, *args: Any, **kwargs: Any) -> Any:
        with open(current_path, "w") as handle:
            handle.write(str(filepath))
        return original(self, filepath, *args, **kwargs)

    DagBag.process_file = process_file


def main(request_path: str, out_path: str) -> None:
    with open(request_path) as handle:
        request = json.load(handle)
    folder = os.path.realpath(request["folder"])
    _record_creations(folder)
    _naming_each_file(f"{out_path}.current")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(folder)
    dags = []
    for dag_id, dag in sorted(bag.dags.items()):
        fileloc = os.path.realpath(dag.fileloc)
        tasks = [_task(t, request["attributes"], fileloc) for t in dag.tasks]
        dags.append({"dag_id": dag_id, "file": fileloc, "tasks": tasks})
    errors = {os.path.join(folder, path): text for path, text in bag.import_errors.items()}
    with open(out_path, "w") as handle:
        json.dump({"dags": dags, "import_errors": errors}, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
