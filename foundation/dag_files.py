"""The dag_ids a DAG file declares, read from its syntax with `ast`: the file is never run.

Found: `DAG("id")` and `DAG(dag_id="id")` calls (`with DAG(...)`, `models.DAG(...)` too);
`@dag`, `@dag("id")`, `@dag(dag_id="id")` (else the function's name, as Airflow does);
`@asset(...)` (`dag_id=`, else `name=`, else the function's name) and `@asset.multi(...)`
(`dag_id=`, else the function's name). A DAG call or decorator whose dag_id is not a string
literal is refused, and so is a file declaring none: what either declares is known only by
running it. A check against mistakes, not a defence: code can make a DAG in ways no reading
finds; the executor refuses at run time a dag_id without a manifest or from another bundle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import InvalidInput, Problem


@dataclass(frozen=True)
class Declared:
    dag_id: str
    line: int


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_asset_multi(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "multi" and _name(node.value) == "asset"


class _Reader(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[Declared] = []
        self.refused: list[tuple[int, str]] = []

    def _take(self, node: ast.expr | None, line: int, what: str) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
            self.found.append(Declared(node.value, line))
        else:
            self.refused.append((line, f"{what}: the dag_id is not a string literal"))

    def visit_Call(self, node: ast.Call) -> None:
        if _name(node.func) == "DAG":
            given = _keyword(node, "dag_id") or (node.args[0] if node.args else None)
            self._take(given, node.lineno, "DAG(...)")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self._decorator(decorator, node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def _decorator(self, decorator: ast.expr, function: str) -> None:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call else decorator
        line = decorator.lineno
        default = ast.Constant(function)
        if _name(target) == "dag":
            given = None
            if call is not None:
                given = _keyword(call, "dag_id") or (call.args[0] if call.args else None)
            self._take(given or default, line, "@dag")
        elif _is_asset_multi(target) and call is not None:
            self._take(_keyword(call, "dag_id") or default, line, "@asset.multi")
        elif _name(target) == "asset" and call is not None:
            given = _keyword(call, "dag_id") or _keyword(call, "name")
            self._take(given or default, line, "@asset")


def declared(path: Path) -> list[Declared]:
    """Every dag_id the file declares, in order; InvalidInput naming the line of any that
    cannot be read, or the file if it declares none."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as error:
        message = f"not valid Python: {error.msg}"
        raise InvalidInput([Problem(path, error.lineno or 0, "", message)]) from None
    reader = _Reader()
    reader.visit(tree)
    if reader.refused:
        raise InvalidInput([Problem(path, line, "", why) for line, why in reader.refused])
    if not reader.found:
        message = (
            "declares no DAG with a literal dag_id (DAG('id'), DAG(dag_id='id'), @dag, @asset); "
            "a bundle holds DAG files only: put shared code in the image (airflow.image)"
        )
        raise InvalidInput([Problem(path, 0, "", message)])
    return reader.found


def dag_ids(path: Path) -> list[str]:
    return [d.dag_id for d in declared(path)]
