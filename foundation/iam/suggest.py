"""A refused call -> the manifest entry that would allow it: the catalog read backwards.

For each kind of manifest grant, its access levels are tried from the narrowest; the first whose
statements hold the action on a resource of that ARN format names the entry, its fields read off
the resource's ARN. What an ARN does not tell (a Redshift database, a PassRole's service) is left
as a `<placeholder>` for the author.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from foundation.iam.catalog import catalog
from foundation.iam.evaluate import glob_regex

_FIELD = re.compile(r"\{(\w+)\}")
# What a field may span in an ARN; any other field is one name with no ':' or '/'.
_SPANS = {"prefix": ".*", "name": ".+", "key_arn": ".+", "role": ".+", "db_user": "[^:]+"}


@dataclass(frozen=True)
class Entry:
    kind: str
    access: str
    fields: dict[str, str]
    text: str  # the lines to add under the manifest's `permissions:`


Section = dict[str, Any]  # a manifest's `permissions` content, as data


def _listed(section: str, key: str, field: str) -> Callable[[str, dict[str, str]], Section]:
    return lambda access, f: {section: {key: [f[field]]}}


def _items(section: str, *keys: str, access: bool = False) -> Callable[..., Section]:
    def item(level: str, f: dict[str, str]) -> Section:
        return {section: [{k: f[k] for k in keys} | ({"access": level} if access else {})]}

    return item


# the manifest section of each kind a manifest can grant (the toolkit's own baseline kinds: none)
SECTIONS: dict[str, Callable[[str, dict[str, str]], Section]] = {
    "s3": _items("s3", "bucket", "prefix", access=True),
    "s3_bucket": _items("s3", "bucket", access=True),
    "secret": lambda access, f: {"secrets": [f["name"]]},
    "kms": _items("kms", "key_arn", access=True),
    "dynamodb": _items("dynamodb", "table", access=True),
    "sqs": _items("sqs", "queue", access=True),
    "sns": _items("sns", "topic"),
    "lambda": _items("lambda", "function"),
    "glue_job": _listed("glue", "jobs", "job"),
    "glue_crawler": _listed("glue", "crawlers", "crawler"),
    "athena_workgroup": lambda access, f: {
        "athena": {
            "workgroups": [f["workgroup"]],
            "results": {"bucket": "<bucket>", "prefix": "<prefix>/"},
        }
    },
    "athena_results": lambda access, f: {
        "athena": {"results": {"bucket": f["bucket"], "prefix": f["prefix"]}}
    },
    "glue_catalog": _listed("athena", "databases", "database"),
    "emr_cluster": _listed("emr", "clusters", "cluster"),
    "redshift_data": _items("redshift_data", "cluster", "database", "db_user"),
    "redshift_serverless": _items("redshift_data", "workgroup", "workgroup_id", "database"),
    "redshift_statements": lambda access, f: {},  # comes with any redshift_data entry
    "datapipeline": _listed("datapipeline", "pipelines", "pipeline"),
    "pass_role": _items("pass_roles", "role", "service"),
}


def merged(sections: list[Section]) -> Section:
    """Sections as one `permissions` mapping: lists joined without repeats, mappings merged (a
    value holding placeholders gives way to one that holds none)."""
    out: Section = {}
    for section in sections:
        _merge_into(out, section)
    return out


def _merge_into(out: Section, section: Section) -> None:
    for key, value in section.items():
        held = out.get(key)
        if isinstance(value, list) and isinstance(held, list):
            held.extend(v for v in value if v not in held)
        elif isinstance(value, dict) and isinstance(held, dict) and key != "results":
            _merge_into(held, value)
        elif held is None or _placeholders(held):
            out[key] = copy.deepcopy(value)


def _placeholders(value: Any) -> bool:
    return "<" in str(value)


def text(permissions: Section, indent: str = "") -> str:
    """A `permissions` mapping as the manifest reference writes it: a section per line, its
    items in flow style."""
    lines = []
    for key, value in permissions.items():
        if isinstance(value, list) and not any(isinstance(v, dict) for v in value):
            lines.append(f"{key}: {_flow(value)}")
            continue
        lines.append(f"{key}:")
        if isinstance(value, list):
            lines += [f"  - {_flow(item)}" for item in value]
        else:
            lines += [f"  {k}: {_flow(v)}" for k, v in value.items()]
    return "\n".join(f"{indent}{line}" for line in lines)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return f'"{value}"' if ":" in str(value) else str(value)


_PLACEHOLDERS = {
    "prefix": "<prefix>/",
    "workgroup": "<workgroup name>",
    "database": "<database>",
    "db_user": "<db_user>",
    "service": "<service>",
}


def entry_for(action: str, resource: str, context: dict[str, str] | None = None) -> Entry | None:
    """The narrowest manifest entry whose grant holds `action` on `resource`, or None."""
    cat = catalog()
    for kind, section in SECTIONS.items():
        for access, statements in cat.grants[kind].items():
            if any(isinstance(s, str) for s in statements):
                continue  # a union of narrower levels, tried on their own
            for template in cat.templates(kind, access):
                if action.lower() not in {a.lower() for a in template.actions}:
                    continue
                for key in template.resources:
                    fields = _read(cat.arns[key], resource)
                    if kind == "s3" and _whole_bucket(action, key, context or {}):
                        break  # a prefix's listing never is: the whole bucket's (s3_bucket) is
                    if fields is not None:
                        fields = _completed(kind, fields, context or {})
                        return Entry(kind, access, fields, text(section(access, fields)))
    return None


def _whole_bucket(action: str, arn_key: str, context: dict[str, str]) -> bool:
    """A listing of a bucket's root (HeadBucket, or ListBucket with no prefix), which only an
    s3 entry without prefix grants: one with a prefix limits its listing to it."""
    return (
        action.lower() == "s3:listbucket"
        and arn_key == "s3_bucket"
        and not context.get("s3:prefix")
    )


def _read(arn_format: str, arn: str) -> dict[str, str] | None:
    """The manifest fields an ARN of this format carries; None if it is not of the format."""
    if "*" in (arn_format, arn):
        return None  # a grant on, or a call about, every resource names nothing
    pattern = ""
    for i, piece in enumerate(_FIELD.split(arn_format)):
        if i % 2:
            pattern += f"(?P<{piece}>{_SPANS.get(piece, '[^:/]+')})"
        else:
            pattern += glob_regex(piece)
    found = re.fullmatch(pattern, arn, re.DOTALL)
    if found is None:
        return None
    return {
        k: v for k, v in found.groupdict().items() if k not in ("partition", "region", "account")
    }


def _completed(kind: str, fields: dict[str, str], context: dict[str, str]) -> dict[str, str]:
    """The S3 prefix: the top folder of the object's key or of the listing's prefix (a run's
    own key, `orders/2026-12-01/x.json`, is too narrow for the next run); placeholders for the
    fields the ARN does not carry."""
    if kind == "s3":
        key = fields.get("prefix") or context.get("s3:prefix", "")
        top, slash, _ = key.partition("/")
        fields["prefix"] = f"{top}/" if top and slash else _PLACEHOLDERS["prefix"]
    if kind == "pass_role" and context.get("iam:PassedToService"):
        fields["service"] = context["iam:PassedToService"]
    return {k: fields.get(k) or _PLACEHOLDERS.get(k, f"<{k}>") for k in _wanted(kind, fields)}


def _wanted(kind: str, fields: dict[str, str]) -> list[str]:
    extra = {
        "redshift_data": ["database", "db_user"],
        "redshift_serverless": ["workgroup", "workgroup_id", "database"],
        "pass_role": ["service"],
    }
    return list(dict.fromkeys([*fields, *extra.get(kind, [])]))
