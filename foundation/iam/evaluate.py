"""The toolkit's IAM evaluation, written from AWS's documented semantics. It checks what moto
cannot (moto evaluates no Condition and no resource policy, and never checks iam:PassRole).

- Action and resource matching: `*` matches any run of characters (slashes and colons
  included), `?` exactly one; actions are case-insensitive, ARNs case-sensitive. NotAction and
  NotResource match what their lists do not.
- ArnEquals and ArnLike (the same operator in IAM): the six `:`-separated parts of the ARN
  each match the pattern's part, wildcards included.
- Conditions: every operator must hold, every key within an operator must hold, any value of a
  key may match (a negated operator: none may). A key absent from the request fails a positive
  operator (HeadBucket carries no `s3:prefix`, so a `StringLike` on it refuses HeadBucket) and
  satisfies a negated one, and satisfies any operator ending in `IfExists`; `Null` tests
  presence itself; `Bool` compares true/false case-insensitively. Other operators raise
  NotImplementedError. Policy variables such as ${aws:userid} are replaced from the request
  context in condition values before matching; in an action or resource pattern they are
  refused (ValueError): the toolkit writes none.
- Multivalued keys (`aws:TagKeys`: a list in the context): `ForAllValues:` holds when every
  value in the request matches (an absent key too, as AWS documents: pair it with `Null`),
  `ForAnyValue:` when at least one does (never for an absent key). A single-valued operator on
  a list raises NotImplementedError.
- `allows`: whether Allow statements allow a request. `allows_every`: whether one Allow
  statement allows every request a pattern request stands for (its resource and condition
  values are IAM patterns: what an operator's templated argument may render to), through
  `covers`. `decide`: a request in the account that
  owns the resource, under the caller's identity policy and the resource's policy: an explicit
  Deny in either refuses it, else an Allow in either allows it. A resource policy's statement
  concerns the caller when its Principal is `*` (or {"AWS": "*"}) or names the caller's
  `aws:PrincipalArn` (the role's ARN for a role's session).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: dict[str, str | list[str]] = field(default_factory=dict)


def glob(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM's wildcard matching: `*` any run of characters, `?` exactly one, nothing else.
    Actions are compared case-insensitively (`case_sensitive=False`), ARNs case-sensitively."""
    return _compiled(pattern, case_sensitive).fullmatch(value) is not None


def glob_regex(pattern: str, one: str = ".") -> str:
    """The regular expression of an IAM pattern, for a caller that reads parts out of what it
    matches (iam/suggest.py): the same semantics as `glob`, from the same place. `one` is what
    `?` matches."""
    if "${" in pattern:
        raise ValueError(f"{pattern!r} holds a policy variable: the toolkit matches none")
    return "".join(".*" if ch == "*" else one if ch == "?" else re.escape(ch) for ch in pattern)


def covers(wide: str, narrow: str) -> bool:
    """Whether the IAM pattern `wide` matches every value the IAM pattern `narrow` stands for
    (ARNs and condition values: case-sensitive): each of `narrow`'s wildcards falls inside one
    of `wide`'s that matches at least as much (its `*` inside a `*`, its `?` inside a `?` or a
    `*`). Sufficient, not necessary: `a?` and `a??*` together cover `a*` but neither does
    alone, and neither is said to."""
    if wide == narrow:
        return True
    literal_start = re.split(r"[*?]", wide, maxsplit=1)[0]  # to skip compiling most patterns
    return narrow.startswith(literal_start) and _covering(wide).fullmatch(narrow) is not None


@cache
def _covering(pattern: str) -> re.Pattern[str]:
    return re.compile(glob_regex(pattern, one="[^*]"), re.DOTALL)


@cache
def _compiled(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    return re.compile(glob_regex(pattern), (0 if case_sensitive else re.IGNORECASE) | re.DOTALL)


def _substitute(value: str, context: dict[str, str | list[str]]) -> str:
    def variable(match: re.Match[str]) -> str:
        found = context.get(match.group(1), match.group(0))
        return found if isinstance(found, str) else match.group(0)

    return re.sub(r"\$\{([^}]+)\}", variable, value)


def listed(value: Any) -> list[Any]:
    """A policy element as IAM reads it: one value, or a list of them."""
    return value if isinstance(value, list) else [value]


def arn_like(pattern: str, arn: str) -> bool:
    """ArnLike: each of the six `:`-separated parts matches the pattern's, wildcards included."""
    parts, wanted = arn.split(":", 5), pattern.split(":", 5)
    return len(parts) == len(wanted) == 6 and all(map(glob, wanted, parts))


MATCHERS = {
    "StringEquals": lambda actual, wanted: actual == wanted,
    "StringLike": lambda actual, wanted: glob(wanted, actual),
    "ArnEquals": lambda actual, wanted: arn_like(wanted, actual),
    "ArnLike": lambda actual, wanted: arn_like(wanted, actual),
    "Bool": lambda actual, wanted: str(actual).lower() == str(wanted).lower(),
}
QUANTIFIERS = {"ForAllValues": all, "ForAnyValue": any}
NEGATED = {
    f"{name.replace('Equals', 'NotEquals').replace('Like', 'NotLike')}": name
    for name in MATCHERS
    if name != "Bool"
}


def _value_holds(operator: str, actual: str, wanted: list[str]) -> bool:
    """One request value against an operator's values (without IfExists or a set prefix)."""
    positive = NEGATED.get(operator, operator)
    matched = any(MATCHERS[positive](actual, w) for w in wanted)
    return not matched if operator in NEGATED else matched


def _key_holds(operator: str, key: str, expected: Any, context: dict[str, str | list[str]]) -> bool:
    """One key of one operator. A key absent from the request fails a positive operator and
    satisfies a negated one (StringNotEquals...), as AWS documents; IfExists makes an absent
    key satisfy either."""
    if operator == "Null":
        return any(str(v).lower() == str(key not in context).lower() for v in listed(expected))
    quantifier, _, operator = operator.rpartition(":")
    base = operator.removesuffix("IfExists")
    if NEGATED.get(base, base) not in MATCHERS or (quantifier and quantifier not in QUANTIFIERS):
        raise NotImplementedError(operator)
    wanted = [_substitute(v, context) for v in listed(expected)]
    actual = context.get(key)
    if quantifier:
        values = listed(actual) if actual is not None else []
        return QUANTIFIERS[quantifier](_value_holds(base, v, wanted) for v in values)
    if actual is None:
        return base != operator or base in NEGATED
    if not isinstance(actual, str):
        raise NotImplementedError(f"{operator} on the multivalued key {key}")
    return _value_holds(base, actual, wanted)


def _condition_holds(
    condition: dict[str, dict[str, Any]],
    context: dict[str, str | list[str]],
    known: frozenset[str] | None,
) -> bool:
    return all(
        _key_holds(operator, key, expected, context)
        for operator, pairs in condition.items()
        for key, expected in pairs.items()
        if known is None or key in known
    )


def _applies(st: dict[str, Any], request: Request, known: frozenset[str] | None) -> bool:
    """Whether one statement's actions, resources and conditions cover the request (NotAction
    and NotResource: what their lists do not match). A statement with both or neither of a pair
    covers nothing: IAM refuses such a policy, so it never reaches an account."""
    if ("Action" in st) == ("NotAction" in st) or ("Resource" in st) == ("NotResource" in st):
        return False
    actions = listed(st.get("Action", st.get("NotAction")))
    if any(glob(a, request.action, case_sensitive=False) for a in actions) == ("NotAction" in st):
        return False
    resources = listed(st.get("Resource", st.get("NotResource")))
    if any(glob(r, request.resource) for r in resources) == ("NotResource" in st):
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


def overlaps(pattern: str, other: str) -> bool:
    """Whether two IAM patterns match some value in common (`*` any run, `?` one character)."""

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(pattern) or j == len(other):
            rest = pattern[i:] + other[j:]
            return rest.count("*") == len(rest)
        if pattern[i] == "*":
            return meet(i + 1, j) or meet(i, j + 1)
        if other[j] == "*":
            return meet(i, j + 1) or meet(i + 1, j)
        one = "?" in (pattern[i], other[j]) or pattern[i] == other[j]
        return one and meet(i + 1, j + 1)

    return meet(0, 0)


def allows_every(statements: list[dict[str, Any]], request: Request) -> bool:
    """Whether one Allow statement allows every request `request` stands for: its resource and
    its context's values are IAM patterns (`covers`); a policy variable in a statement's
    condition is replaced from the context. Statements with NotAction or NotResource, and
    negated or set operators, are not read (they never count as allowing)."""
    return any(_covers_request(st, request) for st in statements if st["Effect"] == "Allow")


def _covers_request(st: dict[str, Any], request: Request) -> bool:
    if "Action" not in st or "Resource" not in st or "NotAction" in st or "NotResource" in st:
        return False
    if not any(glob(a, request.action, case_sensitive=False) for a in listed(st["Action"])):
        return False
    if not any(covers(r, request.resource) for r in listed(st["Resource"])):
        return False
    return all(
        _key_covers(operator, key, expected, request.context)
        for operator, pairs in st.get("Condition", {}).items()
        for key, expected in pairs.items()
    )


def _key_covers(
    operator: str, key: str, expected: Any, context: dict[str, str | list[str]]
) -> bool:
    base = operator.removesuffix("IfExists")
    actual = context.get(key)
    if actual is None:
        return base != operator
    if not isinstance(actual, str) or base not in MATCHERS:
        return False
    wanted = [_substitute(v, context) for v in listed(expected)]
    if base in ("StringEquals", "Bool"):
        return not re.search(r"[*?]", actual) and any(MATCHERS[base](actual, w) for w in wanted)
    if base == "StringLike":
        return any(covers(w, actual) for w in wanted)
    # ArnEquals/ArnLike: part by part, a wildcard only in the last part (which may hold ':')
    parts = actual.split(":", 5)
    if len(parts) != 6 or re.search(r"[*?]", ":".join(parts[:5])):
        return False
    return any(
        len(w.split(":", 5)) == 6 and all(map(covers, w.split(":", 5), parts)) for w in wanted
    )


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
