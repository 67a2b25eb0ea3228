"""The toolkit's IAM evaluation, written from AWS's documented semantics. It checks what moto
cannot (moto evaluates no Condition and no resource policy, and never checks iam:PassRole).

- Action and resource matching: `*` matches any run of characters (slashes and colons
  included), `?` exactly one; actions are case-insensitive, ARNs case-sensitive.
- ArnEquals and ArnLike (the same operator in IAM): the six `:`-separated parts of the ARN
  each match the pattern's part, wildcards included.
- Conditions: every operator must hold, every key within an operator must hold, any value of a
  key may match (a negated operator: none may). A key absent from the request fails a positive
  operator (HeadBucket carries no `s3:prefix`, so a `StringLike` on it refuses HeadBucket) and
  satisfies a negated one, and satisfies any operator ending in `IfExists`; `Null` tests
  presence itself; `Bool` compares true/false case-insensitively. Other operators raise
  NotImplementedError. Policy variables such as ${aws:userid} are replaced from the request
  context before matching.
- `allows`: whether Allow statements allow a request. `decide`: a request in the account that
  owns the resource, under the caller's identity policy and the resource's policy: an explicit
  Deny in either refuses it, else an Allow in either allows it. A resource policy's statement
  concerns the caller when its Principal is `*` (or {"AWS": "*"}) or names the caller's
  `aws:PrincipalArn` (the role's ARN for a role's session).
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


def glob(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM's wildcard matching: `*` any run of characters, `?` exactly one, nothing else."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _substitute(value: str, context: dict[str, str]) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: context.get(m.group(1), m.group(0)), value)


def listed(value: Any) -> list[Any]:
    """A policy element as IAM reads it: one value, or a list of them."""
    return value if isinstance(value, list) else [value]


def _arn_matches(pattern: str, arn: str) -> bool:
    parts, wanted = arn.split(":", 5), pattern.split(":", 5)
    return len(parts) == len(wanted) == 6 and all(map(glob, wanted, parts))


MATCHERS = {
    "StringEquals": lambda actual, wanted: actual == wanted,
    "StringLike": lambda actual, wanted: glob(wanted, actual),
    "ArnEquals": lambda actual, wanted: _arn_matches(wanted, actual),
    "ArnLike": lambda actual, wanted: _arn_matches(wanted, actual),
    "Bool": lambda actual, wanted: str(actual).lower() == str(wanted).lower(),
}
NEGATED = {
    f"{name.replace('Equals', 'NotEquals').replace('Like', 'NotLike')}": name
    for name in MATCHERS
    if name != "Bool"
}


def _key_holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    """One key of one operator. A key absent from the request fails a positive operator and
    satisfies a negated one (StringNotEquals...), as AWS documents; IfExists makes an absent
    key satisfy either."""
    if operator == "Null":
        return any(str(v).lower() == str(key not in context).lower() for v in listed(expected))
    base = operator.removesuffix("IfExists")
    negated = base in NEGATED
    positive = NEGATED.get(base, base)
    if positive not in MATCHERS:
        raise NotImplementedError(operator)
    if key not in context:
        return base != operator or negated
    wanted = [_substitute(v, context) for v in listed(expected)]
    matched = any(MATCHERS[positive](context[key], w) for w in wanted)
    return not matched if negated else matched


def _condition_holds(
    condition: dict[str, dict[str, Any]], context: dict[str, str], known: frozenset[str] | None
) -> bool:
    return all(
        _key_holds(operator, key, expected, context)
        for operator, pairs in condition.items()
        for key, expected in pairs.items()
        if known is None or key in known
    )


def _applies(st: dict[str, Any], request: Request, known: frozenset[str] | None) -> bool:
    """Whether one statement's actions, resources and conditions cover the request."""
    if not any(glob(a, request.action, case_sensitive=False) for a in listed(st["Action"])):
        return False
    if not any(glob(r, request.resource) for r in listed(st["Resource"])):
        return False
    return _condition_holds(st.get("Condition", {}), request.context, known)


def allows(
    statements: list[dict[str, Any]], request: Request, known: frozenset[str] | None = None
) -> bool:
    """Whether an Allow statement allows the request. With `known`, only conditions on those
    keys are evaluated (the rest hold): for a caller that knows only some of a request's keys."""
    for st in statements:
        assert st["Effect"] == "Allow"
        if _applies(st, request, known):
            return True
    return False


def _names_caller(principal: Any, caller: str | None) -> bool:
    if principal == "*":
        return True
    return any(p == "*" or p == caller for p in listed((principal or {}).get("AWS", [])))


def _concerning(resource_policy: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
    caller = request.context.get("aws:PrincipalArn")
    return [s for s in resource_policy if _names_caller(s.get("Principal"), caller)]


def refuses(resource_policy: list[dict[str, Any]], request: Request) -> bool:
    """Whether an explicit Deny of the resource's policy refuses the caller's request."""
    return any(
        s["Effect"] == "Deny" and _applies(s, request, None)
        for s in _concerning(resource_policy, request)
    )


def decide(
    identity: list[dict[str, Any]], resource_policy: list[dict[str, Any]], request: Request
) -> bool:
    """Whether the account that owns the resource lets the caller (`aws:PrincipalArn` in the
    request's context) make the request."""
    statements = identity + _concerning(resource_policy, request)
    if any(s["Effect"] == "Deny" and _applies(s, request, None) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _applies(s, request, None) for s in statements)
