"""Turn pydantic's errors into problems that name the file, the line and the field."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from foundation.errors import InvalidInput, Problem
from foundation.yamlio import Document, FieldPath

M = TypeVar("M", bound=BaseModel)

_MESSAGES = {
    "missing": "required field is missing",
    "model_type": "expected a mapping of fields",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "string_type": "expected a string",
}


def parse(doc: Document, model: type[M]) -> M:
    """Validate a document's data against `model`, or raise every problem found."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as err:
        problems = [_problem(doc, model, error) for error in err.errors()]
        raise InvalidInput(_dedupe(problems)) from None


def _is_tag(part: Any, data: Any) -> bool:
    """A discriminated union's tag: `manager: fab` chose the model, or the value's shape did
    (`<mapping>`, `<list>`, config.DagsConfig)."""
    if not isinstance(part, str) or (isinstance(data, dict) and part in data):
        return False
    shape = part.startswith("<") and part.endswith(">")
    return shape or (isinstance(data, dict) and data.get("manager") == part)


def _without_tags(loc: tuple, data: Any) -> FieldPath:
    """Drop the tags pydantic puts in a location for a discriminated union (`web.auth.fab.ldap`
    is `web.auth.ldap` in the file)."""
    out = []
    for part in loc:
        if _is_tag(part, data):
            continue
        out.append(part)
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            data = None
    return tuple(out)


def _problem(doc: Document, model: type[BaseModel], error: Any) -> Problem:
    loc = _without_tags(tuple(p for p in error["loc"] if p != "[key]"), doc.data)
    if error["type"] == "extra_forbidden":
        return doc.problem(loc, _unknown_key(model, loc))
    message = _MESSAGES.get(error["type"], error["msg"]).removeprefix("Value error, ")
    return doc.problem(loc, message)


def _unknown_key(model: type[BaseModel], loc: FieldPath) -> str:
    key = str(loc[-1])
    allowed = allowed_keys(model, loc[:-1])
    match = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {match[0]!r}?" if match else ""
    listing = f" (allowed: {', '.join(allowed)})" if allowed and not match else ""
    return f"unknown field {key!r}{hint}{listing}"


def allowed_keys(model: type[BaseModel], path: FieldPath) -> list[str]:
    """The keys a mapping at `path` may hold, found by walking the model's annotations."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            current = _item_type(current)
            continue
        if not _is_model(current):
            return []
        fields = {f.alias or name: f for name, f in current.model_fields.items()}
        if part not in fields:
            return []
        current = _unwrap(fields[part].annotation)
    return (
        sorted(f.alias or n for n, f in current.model_fields.items()) if _is_model(current) else []
    )


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X; Annotated[X, ...] -> X; X | list[X] -> X."""
    if typing.get_origin(tp) is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [_unwrap(a) for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        models = {_item_type(a) for a in args}  # X for X and for list[X]
        (model, *others) = models
        return model if not others and _is_model(model) else tp
    return tp


def _item_type(tp: Any) -> Any:
    """A list's items; a model stands for its own items where it may also be a list of them."""
    if _is_model(tp):
        return tp
    args = typing.get_args(tp)
    return _unwrap(args[-1]) if args else None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
