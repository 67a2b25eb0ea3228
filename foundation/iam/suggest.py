"""A refused call -> the manifest entry that would allow it: the catalog read backwards.

For each kind of manifest grant, its access levels are tried from the narrowest; the first whose
statements hold the action on a resource of that ARN format names the entry, its fields read off
the resource's ARN. What an ARN does not tell (a Redshift database, a PassRole's service) is left
as a `<placeholder>` for the author.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

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


def _s3(access: str, f: dict[str, str]) -> str:
    return f"s3:\n  - {{bucket: {f['bucket']}, prefix: {f['prefix']}, access: {access}}}"


def _listed(section: str, key: str, field: str) -> Callable[[str, dict[str, str]], str]:
    return lambda access, f: f"{section}:\n  {key}: [{f[field]}]"


# manifest section of each kind a manifest can grant (the toolkit's own baseline kinds: none)
_ENTRIES: dict[str, Callable[[str, dict[str, str]], str]] = {
    "s3": _s3,
    "secret": lambda access, f: f"secrets: [{f['name']}]",
    "kms": lambda access, f: f'kms:\n  - {{key_arn: "{f["key_arn"]}", access: {access}}}',
    "dynamodb": lambda access, f: f"dynamodb:\n  - {{table: {f['table']}, access: {access}}}",
    "sqs": lambda access, f: f"sqs:\n  - {{queue: {f['queue']}, access: {access}}}",
    "sns": lambda access, f: f"sns:\n  - {{topic: {f['topic']}}}",
    "lambda": lambda access, f: f"lambda:\n  - {{function: {f['function']}}}",
    "glue_job": _listed("glue", "jobs", "job"),
    "glue_crawler": _listed("glue", "crawlers", "crawler"),
    "athena_workgroup": lambda access, f: (
        f"athena:\n  workgroups: [{f['workgroup']}]\n"
        "  results: {bucket: <bucket>, prefix: <prefix>/}"
    ),
    "glue_catalog": _listed("athena", "databases", "database"),
    "emr_cluster": _listed("emr", "clusters", "cluster"),
    "s3_bucket": lambda access, f: f"s3:\n  - {{bucket: {f['bucket']}, access: {access}}}",
    "redshift_data": lambda access, f: (
        f"redshift_data:\n  - {{cluster: {f['cluster']}, database: {f['database']}, "
        f"db_user: {f['db_user']}}}"
    ),
    "redshift_serverless": lambda access, f: (
        f"redshift_data:\n  - {{workgroup: {f['workgroup']}, workgroup_id: {f['workgroup_id']}, "
        f"database: {f['database']}}}"
    ),
    "datapipeline": _listed("datapipeline", "pipelines", "pipeline"),
    "pass_role": lambda access, f: (
        f"pass_roles:\n  - {{role: {f['role']}, service: {f['service']}}}"
    ),
}
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
    for kind, render in _ENTRIES.items():
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
                        return Entry(kind, access, fields, render(access, fields))
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
