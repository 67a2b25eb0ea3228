"""foundation/yamlio.py with libyaml's parser and, for a PyYAML built without libyaml, with
PyYAML's own: the same data, lines and refusals either way."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import foundation.yamlio
from foundation.errors import InvalidInput, Problem


@pytest.fixture(params=["libyaml", "pyyaml"])
def yamlio(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    if request.param == "pyyaml":
        monkeypatch.setattr(yaml, "__with_libyaml__", False)
    yield importlib.reload(foundation.yamlio)
    monkeypatch.undo()
    importlib.reload(foundation.yamlio)


def test_the_parser_is_the_one_asked_for(
    yamlio: ModuleType, request: pytest.FixtureRequest
) -> None:
    libyaml = request.node.callspec.params["yamlio"] == "libyaml"
    assert (yamlio._Loader is yaml.SafeLoader) is not libyaml


def test_data_and_lines(yamlio: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("dag_id: a\nowner: 0123\nlist:\n  - x\n  - {k: 2024-01-01}\n")
    doc = yamlio.load_mapping(path)
    assert doc.data == {"dag_id": "a", "owner": "0123", "list": ["x", {"k": "2024-01-01"}]}
    lines = {p: loc.line for p, loc in doc.locations.items()}
    assert lines == {
        (): 1,
        ("dag_id",): 1,
        ("owner",): 2,
        ("list",): 3,
        ("list", 0): 4,
        ("list", 1): 5,
        ("list", 1, "k"): 5,
    }


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("a: &x 1\nb: *x\n", 2, "", "YAML aliases (*name) are not allowed"),
        ("a: 1\nx: " + "[" * 33 + "]" * 33, 2, "", "YAML nesting is deeper than 32 levels"),
        ("a: 1\nb: c\x00d\n", 2, "", "character '\\x00' is not allowed"),
        ("a: 1\nb: 2\na: 3\n", 3, "a", "duplicate key 'a' (first set on line 1)"),
        (
            "a: !!python/name:os.system x\n",
            1,
            "",
            "YAML tag !!python/name:os.system is not allowed",
        ),
    ],
    ids=["alias", "deep", "control", "duplicate", "tag"],
)
def test_refused(
    yamlio: ModuleType, tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as refused:
        yamlio.load(path)
    assert refused.value.problems == [Problem(path, line, field, message)]
