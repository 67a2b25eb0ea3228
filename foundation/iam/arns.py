"""ARN shape rules shared by the manifest checks and the template checks."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ARN = re.compile(r"arn:([^:]*):([^:]*):([^:]*):([^:]*):(.+)")
WILDCARD = re.compile(r"[*?]")
SECRET_SUFFIX = "-??????"


ECR_IMAGE = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?P<cn>\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?"
)


def ecr_repository(image: str) -> str | None:
    """The ARN of the ECR repository an image URI names (None: not an ECR image)."""
    found = ECR_IMAGE.fullmatch(image)
    if found is None:
        return None
    partition = "aws-cn" if found["cn"] else "aws"
    return (
        f"arn:{partition}:ecr:{found['region']}:{found['account']}:repository/{found['repository']}"
    )


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse(text: str) -> Arn | None:
    match = _ARN.fullmatch(text)
    return Arn(*match.groups()) if match else None


def wider_than_one_resource(arn: Arn) -> bool:
    """A wildcard may follow a named resource and a path delimiter, never stand for the name.

    Refused: arn:aws:s3:::*, bucket*, bucket/sales*, secret:*, table/sales_*. Allowed:
    bucket/prefix/*, bucket/* (one bucket's objects: an s3 entry without prefix),
    parameter/sales/*, table/t/index/*, function:f:*, secret:name-?????? (the suffix Secrets
    Manager appends).
    """
    rest = arn.resource
    if arn.service == "s3":
        # a named bucket, then a whole key prefix (ending in '/') or none before any wildcard
        first = WILDCARD.search(rest)
        return first is not None and not re.fullmatch(r"[^/]+/(.*[^/]/)?", rest[: first.start()])
    split = re.search(r"[/:]", rest)
    if split and WILDCARD.search(rest[: split.start()]):
        return True
    name = rest[split.end() :] if split else rest
    first = WILDCARD.search(name)
    if first is None:
        return False
    if arn.service == "secretsmanager" and name.endswith(SECRET_SUFFIX):
        return WILDCARD.search(name[: -len(SECRET_SUFFIX)]) is not None
    head = name[: first.start()].lstrip("/:")
    return not re.search(r"[^/:][/:]", head)
