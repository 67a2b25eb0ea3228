"""Safe YAML: plain data only, with the line of every value, and guards against hostile files.

PyYAML's safe loader still expands aliases (a billion-laughs file needs only a few KB) and drops
duplicate keys silently. We compose nodes ourselves so that aliases, tags other than the plain
ones, duplicate keys and oversized or undecodable files are refused with the line they are on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

if yaml.__with_libyaml__:
    from yaml._yaml import CParser

from foundation.errors import InvalidInput, Location, Problem

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
_TOO_DEEP = f"YAML nesting is deeper than {MAX_DEPTH} levels"
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"

FieldPath = tuple[str | int, ...]

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_INT = "tag:yaml.org,2002:int"


def _tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def format_path(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class Document:
    """YAML data and where each field path was written (file and line).

    One file's document has one file throughout; a merged config maps each path to the file
    that set it.
    """

    file: Path
    data: Any
    locations: dict[FieldPath, Location] = field(default_factory=dict)
    sha256: str = ""  # of the bytes read (the file may have changed since): one file's only

    def location_of(self, path: FieldPath) -> Location:
        """Where `path` was written, or its closest ancestor that was."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.locations:
                return self.locations[path[:end]]
        return Location(self.file, 1)

    def problem(self, path: FieldPath, message: str) -> Problem:
        where = self.location_of(path)
        return Problem(where.file, where.line, format_path(path), message)


class _Refused(Exception):
    def __init__(self, line: int, message: str, path: FieldPath = ()):
        self.line, self.message, self.path = line, message, path


if yaml.__with_libyaml__:

    class _Loader(Composer, CParser, SafeConstructor, Resolver):
        """libyaml's parser (eight times faster than PyYAML's own, measured on the example's
        manifests) under PyYAML's composer, which is Python: each node is seen as it is
        composed, so aliases and deep nesting are refused before they are built."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:  # a PyYAML built without libyaml
    _Loader = yaml.SafeLoader  # type: ignore[assignment,misc]


class _NoAliasLoader(_Loader):
    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        mark = self.peek_event().start_mark
        if self.check_event(AliasEvent):
            raise _Refused(mark.line + 1, "YAML aliases (*name) are not allowed")
        if self.depth >= MAX_DEPTH:
            raise _Refused(mark.line + 1, _TOO_DEEP)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load(path: Path, max_bytes: int = MAX_BYTES) -> Document:
    """Read one YAML file into plain data with line numbers, or raise InvalidInput."""
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidInput(
            [Problem(path, 0, "", f"file is {size:,} bytes; the limit is {max_bytes:,}")]
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InvalidInput([Problem(path, line, "", "file is not valid UTF-8")]) from None
    if bad := yaml.reader.Reader.NON_PRINTABLE.search(text):
        line = text[: bad.start()].count("\n") + 1
        raise InvalidInput([Problem(path, line, "", f"character {bad.group()!r} is not allowed")])
    doc = Document(path, None, sha256=hashlib.sha256(raw).hexdigest())
    lines: dict[FieldPath, int] = {}
    try:
        loader = _NoAliasLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                doc.data = _convert(loader, node, (), lines)
        finally:
            loader.dispose()
    except _Refused as err:
        raise InvalidInput([Problem(path, err.line, format_path(err.path), err.message)]) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        message = f"YAML syntax error: {err.problem or err.context}"
        if err.problem == _LIBYAML_TOO_DEEP:  # libyaml's own limit, far beyond ours
            message = _TOO_DEEP
        raise InvalidInput([Problem(path, line, "", message)]) from None
    except yaml.YAMLError as err:
        raise InvalidInput([Problem(path, 0, "", f"YAML error: {err}")]) from None
    doc.locations = {p: Location(path, line) for p, line in lines.items()}
    return doc


def load_mapping(path: Path, max_bytes: int = MAX_BYTES) -> Document:
    """Like `load`, but the top level must be a non-empty mapping."""
    doc = load(path, max_bytes)
    if doc.data is None:
        raise InvalidInput([Problem(path, 1, "", "file is empty; expected a mapping of fields")])
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__
        raise InvalidInput(
            [Problem(path, 1, "", f"expected a mapping at the top level, got {kind}")]
        )
    return doc


def _convert(
    loader: _NoAliasLoader, node: Node, path: FieldPath, lines: dict[FieldPath, int]
) -> Any:
    line = node.start_mark.line + 1
    lines.setdefault(path, line)
    if isinstance(node, MappingNode):
        return _convert_mapping(loader, node, path, lines)
    if isinstance(node, SequenceNode):
        if node.tag != "tag:yaml.org,2002:seq":
            raise _Refused(line, f"YAML tag {_tag(node.tag)} is not allowed")
        return [_convert(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    assert isinstance(node, ScalarNode)
    if node.tag == _TIMESTAMP or (node.tag == _INT and re.fullmatch(r"0\d+", node.value)):
        # Dates stay text, and so do zero-led numbers such as account ids (YAML 1.1 octal).
        return node.value
    if node.tag not in _PLAIN_TAGS:
        raise _Refused(line, f"YAML tag {_tag(node.tag)} is not allowed")
    return loader.construct_object(node)


def _convert_mapping(
    loader: _NoAliasLoader, node: MappingNode, path: FieldPath, lines: dict
) -> dict:
    if node.tag != "tag:yaml.org,2002:map":
        raise _Refused(node.start_mark.line + 1, f"YAML tag {_tag(node.tag)} is not allowed")
    out: dict = {}
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, ScalarNode) or key_node.tag not in _PLAIN_TAGS:
            raise _Refused(key_line, "mapping keys must be plain strings")
        key = str(loader.construct_object(key_node))
        if key in out:
            first = lines[(*path, key)]
            message = f"duplicate key {key!r} (first set on line {first})"
            raise _Refused(key_line, message, (*path, key))
        lines[(*path, key)] = key_line
        out[key] = _convert(loader, value_node, (*path, key), lines)
        lines[(*path, key)] = key_line
    return out
