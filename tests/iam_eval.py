"""A small evaluator of IAM Allow statements, written from AWS's documented semantics.

- Action and resource matching: `*` matches any run of characters (slashes and colons
  included), `?` exactly one; actions are case-insensitive, ARNs case-sensitive.
- ArnEquals and ArnLike (the same operator in IAM): the six `:`-separated parts of the ARN
  each match the pattern's part, wildcards included.
- Conditions: every operator must hold, every key within an operator must hold, any value of a
  key may match. A key absent from the request fails the condition. Policy variables such as
  ${aws:userid} are replaced from the request context before matching.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


def _glob(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _substitute(value: str, context: dict[str, str]) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: context.get(m.group(1), m.group(0)), value)


def _values(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def _arn_matches(pattern: str, arn: str) -> bool:
    parts, wanted = arn.split(":", 5), pattern.split(":", 5)
    return len(parts) == len(wanted) == 6 and all(map(_glob, wanted, parts))


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, pairs in condition.items():
        for key, expected in pairs.items():
            if key not in context:
                return False
            actual = context[key]
            wanted = [_substitute(v, context) for v in _values(expected)]
            if operator == "StringEquals":
                ok = actual in wanted
            elif operator == "StringLike":
                ok = any(_glob(w, actual) for w in wanted)
            elif operator in ("ArnEquals", "ArnLike"):
                ok = any(_arn_matches(w, actual) for w in wanted)
            else:
                raise NotImplementedError(operator)
            if not ok:
                return False
    return True


def allows(statements: list[dict[str, Any]], request: Request) -> bool:
    for st in statements:
        assert st["Effect"] == "Allow"
        if not any(_glob(a, request.action, case_sensitive=False) for a in _values(st["Action"])):
            continue
        if not any(_glob(r, request.resource) for r in _values(st["Resource"])):
            continue
        if _condition_holds(st.get("Condition", {}), request.context):
            return True
    return False
