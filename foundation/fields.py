"""Validated field types shared by the config and manifest models.

Each validator raises ValueError with a sentence a user can act on; `foundation.models` turns it
into a message naming the file, the line and the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema


class Model(BaseModel):
    """Base for every user-facing model: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


@dataclass(frozen=True)
class Rule:
    """A check on a string field, run after its type's own, and the same rule as a JSON Schema
    pattern (ECMA-262, for editors: foundation/schema.py) as far as a pattern can say it."""

    check: Callable[[str], str]
    pattern: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        out = handler(schema)
        if "pattern" in out:
            out.setdefault("allOf", []).append({"pattern": self.pattern})
        else:
            out["pattern"] = self.pattern
        return out


def _matching(pattern: str, what: str) -> Rule:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return Rule(check, f"^(?:{pattern})$")


def _cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        raise ValueError(f"{value!r} is not an IPv4 CIDR block ({err})") from None
    return str(network)


def _no_wildcards(value: str) -> str:
    if "*" in value or "?" in value:
        raise ValueError(f"{value!r} contains a wildcard; name exactly one resource")
    if "${" in value:
        raise ValueError(f"{value!r} contains an IAM policy variable ('${{')")
    return value


_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"({_OCTET}\.){{3}}{_OCTET}"
# An address, an address/length or an address/netmask, as ipaddress reads them; host bits set
# cannot be told by a pattern.
Cidr = Annotated[str, Rule(_cidr, rf"^{_IPV4}(/(3[0-2]|[12]?\d|{_IPV4}))?$")]
NO_WILDCARDS = Rule(_no_wildcards, r"^(?!.*[*?])(?!.*\$\{)")
Port = Annotated[int, Field(ge=1, le=65535)]
AccountId = Annotated[str, _matching(r"\d{12}", "a 12-digit AWS account id")]
Region = Annotated[str, _matching(r"[a-z]{2,4}(-[a-z]+)+-\d{1,2}", "an AWS region name")]
DagId = Annotated[
    str, _matching(r"[A-Za-z0-9_.-]{1,250}", "a valid dag_id ([A-Za-z0-9_.-], 1 to 250 chars)")
]
BucketName = Annotated[
    str,
    _matching(
        r"(?!xn--)(?!sthree-)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
        "an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
    ),
]
S3Prefix = Annotated[
    str,
    NO_WILDCARDS,
    _matching(
        r"(?!/)[^\x00-\x1f()\[\]{}]{0,1023}/",
        "an S3 key prefix ending in '/' (not starting with it, without brackets)",
    ),
]


def _clean_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or "" in parts or "." in parts or ".." in parts:
        raise ValueError(f"{value!r}: empty, '.' or '..' path segments are not allowed")
    return value


CLEAN_PATH = Rule(_clean_path, r"^(?!/)(?!.*//)(?!.*/$)(?!(.*/)?\.\.?(/|$))")


SecretName = Annotated[
    str,
    NO_WILDCARDS,
    CLEAN_PATH,
    _matching(r"[A-Za-z0-9/_+=.@-]{1,512}", "a Secrets Manager name ([A-Za-z0-9/_+=.@-])"),
]
KmsKeyArn = Annotated[
    str,
    _matching(
        r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/(mrk-)?[0-9a-f-]{32,36}",
        "a KMS key ARN (arn:<partition>:kms:<region>:<account>:key/<id>)",
    ),
]
DynamoTable = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"[A-Za-z0-9_.-]{3,255}", "a DynamoDB table name"),
]
QueueName = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"[A-Za-z0-9_-]{1,80}(\.fifo)?", "an SQS queue name"),
]
TopicName = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"[A-Za-z0-9_-]{1,256}(\.fifo)?", "an SNS topic name"),
]
FunctionName = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"[A-Za-z0-9_-]{1,64}", "a Lambda function name"),
]
GlueName = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"[A-Za-z0-9 _.-]{1,255}", "a Glue job or crawler name"),
]
GlueDatabase = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"[a-z0-9_-]{1,255}", "a Glue database name (lowercase)"),
]
AthenaWorkgroup = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"[A-Za-z0-9._-]{1,128}", "an Athena workgroup name"),
]
EmrClusterId = Annotated[str, _matching(r"j-[A-Z0-9]{1,13}", "an EMR cluster id (j-...)")]
RedshiftIdentifier = Annotated[
    str,
    _matching(r"[a-z][a-z0-9-]{0,62}", "a Redshift cluster identifier (lowercase)"),
]
RedshiftName = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"[A-Za-z_][A-Za-z0-9_$]{0,126}", "a Redshift database or user name"),
]
PipelineId = Annotated[str, _matching(r"df-[A-Z0-9]{1,32}", "a Data Pipeline id (df-...)")]
RoleName = Annotated[
    str,
    NO_WILDCARDS,
    _matching(r"([A-Za-z0-9_+=,.@-]+/)*[A-Za-z0-9_+=,.@-]{1,64}", "an IAM role name (path/name)"),
]
ServicePrincipal = Annotated[
    str,
    _matching(r"[a-z0-9.-]+\.amazonaws\.com(\.cn)?", "a service principal (name.amazonaws.com)"),
]

# Fargate task sizes: cpu units -> allowed memory in MiB.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}


def fargate_schema(schema: dict[str, Any]) -> None:
    """The Fargate pairs in a worker size's JSON Schema: cpu one of the sizes, and memory one
    that fits it (cpu and memory each default to the model's when absent)."""
    fields = schema["properties"]
    cpu_default, memory_default = fields["cpu"]["default"], fields["memory"]["default"]
    fields["cpu"]["enum"] = sorted(FARGATE_SIZES)
    rules = []
    for cpu, memories in sorted(FARGATE_SIZES.items()):
        chosen: dict[str, Any] = {"properties": {"cpu": {"const": cpu}}, "required": ["cpu"]}
        if cpu == cpu_default:
            chosen = {"anyOf": [chosen, {"not": {"required": ["cpu"]}}]}
        then: dict[str, Any] = {"properties": {"memory": {"enum": list(memories)}}}
        if memory_default not in memories:
            then["required"] = ["memory"]
        rules.append({"if": chosen, "then": then})
    schema["allOf"] = rules


def check_fargate_size(cpu: int, memory: int) -> None:
    if cpu not in FARGATE_SIZES:
        raise ValueError(f"cpu {cpu} is not a Fargate size; use one of {sorted(FARGATE_SIZES)}")
    allowed = FARGATE_SIZES[cpu]
    if memory not in allowed:
        shown = (
            ", ".join(map(str, allowed))
            if len(allowed) <= 4
            else (f"{allowed[0]} to {allowed[-1]} in steps of {allowed[1] - allowed[0]}")
        )
        raise ValueError(f"memory {memory} MiB does not fit cpu {cpu} on Fargate; use {shown}")


def check_counts(min_count: int, max_count: int) -> None:
    if min_count > max_count:
        raise ValueError(f"min_count ({min_count}) is greater than max_count ({max_count})")
