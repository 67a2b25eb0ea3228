"""The operator table (operators.yaml) applied to a parsed task: the manifest entries it needs.

A need's fields are read off the operator's attributes after construction. What only a run
decides stays a pattern: each Jinja expression of a templated field becomes IAM's `*` (and a
sensor's Unix wildcards too), so a need is covered only if the policy allows whatever the
template renders to. An argument from another task's XCom, or any object, is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from foundation import yamlio
from foundation.check_dags.parse import Task
from foundation.iam.policy import ArnContext

DEFAULT_CONNECTIONS = ("aws_conn_id",)
# Connections that are the task's own role: none (boto3's default chain) or the default one,
# which a DAG without an `aws_default` connection of its own falls back from to that chain.
OWN_ROLE_CONNECTIONS = (None, "aws_default")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_GLOB = re.compile(r"[*?\[].*", re.DOTALL)
READERS = ("fields", "s3", "s3_url", "queue", "topic", "function", "name_in")


class Unknown(Exception):
    """What only a run (or code check-dags does not read) decides."""


@dataclass(frozen=True)
class Need:
    """One manifest entry a task needs: a catalog grant kind, its access, its fields."""

    kind: str
    access: str
    params: dict[str, str]
    run_decides: bool  # some field holds a pattern for what a run renders


@dataclass(frozen=True)
class Operator:
    needs: list[dict[str, Any]]
    unknown_if: list[dict[str, Any]]
    connections: tuple[str, ...]

    def attributes(self) -> list[str]:
        """Every attribute of the operator the table reads."""
        names: list[str] = ["region_name", *self.connections]
        for need in self.needs:
            for reader in READERS:
                spec = need.get(reader)
                if isinstance(spec, dict):
                    names += spec.values()
                elif isinstance(spec, list):
                    names += spec[:1] if reader == "name_in" else spec
                elif spec:
                    names.append(spec)
            if isinstance(need["access"], dict):
                names += need["access"]
            if "glob_if" in need:
                names.append(need["glob_if"])
        names += [rule["attribute"] for rule in self.unknown_if]
        return list(dict.fromkeys(names))


@cache
def table() -> dict[str, Operator]:
    folder = resources.files("foundation.check_dags")
    with resources.as_file(folder.joinpath("operators.yaml")) as path:
        data = yamlio.load(path).data
    return {
        classpath: Operator(
            entry["needs"],
            entry.get("unknown_if", []),
            tuple(entry.get("connections", DEFAULT_CONNECTIONS)),
        )
        for classpath, entry in data.items()
    }


def needs(task: Task, operator: Operator, ctx: ArnContext) -> list[Need | Unknown]:
    """The entries `task` needs, or why a run decides one; [Unknown] when it calls as another
    identity or region, or does more than any entry grants."""
    attrs = task.attributes
    for name in operator.connections:
        conn = attrs.get(name)
        if conn not in OWN_ROLE_CONNECTIONS:
            return [
                Unknown(
                    f"{name}={_shown(conn)}: a connection may hold keys or a role_arn of its own "
                    "(another identity, maybe another account); only a run knows"
                )
            ]
    region = attrs.get("region_name")
    if region is not None and region != ctx.region:
        return [Unknown(f"region_name={_shown(region)}: manifests grant in {ctx.region} only")]
    for rule in operator.unknown_if:
        value = attrs.get(rule["attribute"])
        if ("set" in rule and value not in (None, "", [], {})) or (
            "equals" in rule and value == rule["equals"]
        ):
            return [Unknown(f"{rule['attribute']}={_shown(value)}: {rule['why']}")]
    out: list[Need | Unknown] = []
    for spec in operator.needs:
        try:
            out += _needs_of(task, spec, ctx)
        except Unknown as why:
            out.append(why)
    return out


def _needs_of(task: Task, spec: dict[str, Any], ctx: ArnContext) -> list[Need]:
    access = spec["access"]
    if isinstance(access, dict):
        [(attribute, levels)] = access.items()
        access = levels[str(task.attributes.get(attribute))]
    [reader] = [r for r in READERS if r in spec]
    found = []
    for params in _READ[reader](task, spec[reader], spec, ctx):
        run_decides = any("*" in v or "?" in v for v in params.values())
        found.append(Need(spec["grant"], access, params, run_decides))
    return found


def _value(task: Task, name: str) -> Any:
    """The attribute, with each Jinja expression of a templated field as `*`."""
    value = task.attributes.get(name)
    if isinstance(value, dict) and "$run" in value:
        raise Unknown(f"{name} is {value['$run']}: only a run knows it")
    if name in task.template_fields:
        return _patterned(value)
    return value


def _patterned(value: Any) -> Any:
    if isinstance(value, str):
        return _JINJA.sub("*", value)
    if isinstance(value, list):
        return [_patterned(v) for v in value]
    if isinstance(value, dict):
        if "$run" in value:
            raise Unknown(f"an argument is {value['$run']}: only a run knows it")
        return {k: _patterned(v) for k, v in value.items()}
    return value


def _text(task: Task, name: str) -> str:
    value = _value(task, name)
    if not isinstance(value, str) or not value:
        raise Unknown(f"{name}={_shown(value)}: names no resource check-dags can read")
    return value


def _fields(task: Task, spec: dict[str, str], *_: Any) -> list[dict[str, str]]:
    return [{field: _text(task, attribute) for field, attribute in spec.items()}]


def _s3(task: Task, spec: list[str], need: dict[str, Any], _: ArnContext) -> list[dict[str, str]]:
    """Keys (a key, a list of keys, or a prefix) in a bucket; none set: no call."""
    bucket_attr, key_attr = spec
    keys = _value(task, key_attr)
    if keys is None:
        return []
    bucket = _value(task, bucket_attr)
    globbing = bool(need.get("glob_if")) and task.attributes.get(need["glob_if"]) is True
    out = []
    for key in keys if isinstance(keys, list) else [keys]:
        if not isinstance(key, str):
            raise Unknown(f"{key_attr}={_shown(key)}: not a key check-dags can read")
        where = (bucket, key) if bucket else _split_s3_url(key, key_attr)
        prefix = _GLOB.sub("*", where[1]) if globbing else where[1]
        bucket_of = bucket_attr if bucket else key_attr
        out.append({"bucket": _bucket(task, where[0], bucket_of), "prefix": prefix})
    return out


def _s3_url(task: Task, attribute: str, *_: Any) -> list[dict[str, str]]:
    bucket, prefix = _split_s3_url(_text(task, attribute), attribute)
    return [{"bucket": _bucket(task, bucket, attribute), "prefix": prefix}]


def _split_s3_url(url: str, attribute: str) -> tuple[str, str]:
    found = re.fullmatch(r"s3a?://([^/]*)/?(.*)", url, re.DOTALL)
    if found is None:
        raise Unknown(f"{attribute}={_shown(url)}: not an s3:// URL")
    return found.group(1), found.group(2)


def _bucket(task: Task, bucket: Any, attribute: str) -> str:
    if not isinstance(bucket, str) or not bucket or "*" in bucket:
        raw = task.attributes.get(attribute)
        raise Unknown(f"the bucket ({attribute}={_shown(raw)}) is decided at run time")
    return bucket


def _queue(task: Task, attribute: str, _: Any, ctx: ArnContext) -> list[dict[str, str]]:
    """A queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>) or name."""
    url = _text(task, attribute)
    if "/" not in url:
        return [{"queue": url}]
    found = re.fullmatch(r"https?://([^/]+)/([^/]+)/([^/]+)/?", url)
    if found is None:
        raise Unknown(f"{attribute}={_shown(url)}: not a queue URL")
    host, account, name = found.groups()
    _same_account(account, ctx, attribute)
    region = re.fullmatch(r"(?:sqs\.)?([a-z0-9-]+)\.(?:queue\.)?amazonaws\.com(?:\.cn)?", host)
    if region and region.group(1) not in (ctx.region, "queue"):
        raise Unknown(f"{attribute}: a queue in {region.group(1)}: manifests grant in {ctx.region}")
    return [{"queue": name}]


def _topic(task: Task, attribute: str, _: Any, ctx: ArnContext) -> list[dict[str, str]]:
    parts = _text(task, attribute).split(":")
    if len(parts) != 6 or parts[2] != "sns" or "/" in parts[5]:
        raise Unknown(f"{attribute}={_shown(':'.join(parts))}: not a topic ARN")
    _same_account(parts[4], ctx, attribute)
    if parts[3] != ctx.region:
        raise Unknown(f"{attribute}: a topic in {parts[3]}: manifests grant in {ctx.region}")
    return [{"topic": parts[5]}]


def _function(task: Task, attribute: str, _: Any, ctx: ArnContext) -> list[dict[str, str]]:
    """A name, `name:qualifier`, `account:function:name` or a function ARN."""
    parts = _text(task, attribute).split(":")
    if "function" in parts:
        at = parts.index("function")
        if at >= 1:
            _same_account(parts[at - 1], ctx, attribute)
        if at >= 2 and parts[at - 2] != ctx.region:
            raise Unknown(f"{attribute}: a function in {parts[at - 2]}")
        parts = parts[at + 1 :]
    return [{"function": parts[0]}]


def _name_in(task: Task, spec: list[str], *_: Any) -> list[dict[str, str]]:
    attribute, key = spec
    value = _value(task, attribute)
    if not isinstance(value, dict) or not isinstance(value.get(key), str):
        raise Unknown(f"{attribute}[{key!r}]: not a name check-dags can read")
    if set(value) != {key}:
        raise Unknown(
            f"{attribute} sets more than {key}: the operator creates or updates the resource "
            "to match it, which no manifest entry grants"
        )
    return [{"crawler": value[key]}]


def _same_account(account: str, ctx: ArnContext, attribute: str) -> None:
    if account != ctx.account:
        raise Unknown(
            f"{attribute}: account {account}, not the deployment's {ctx.account}: manifests "
            "grant in its own account only (the other account's resource policy decides)"
        )


def _shown(value: Any) -> str:
    if isinstance(value, dict) and "$run" in value:
        return f"<{value['$run']}>"
    return repr(value)


_READ: dict[str, Callable[..., list[dict[str, str]]]] = {
    "fields": _fields,
    "s3": _s3,
    "s3_url": _s3_url,
    "queue": _queue,
    "topic": _topic,
    "function": _function,
    "name_in": _name_in,
}
