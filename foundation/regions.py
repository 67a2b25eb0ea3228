"""The AWS regions this environment knows, by partition: botocore's endpoint data (offline,
pinned with botocore), the same data the AWS SDK resolves endpoints from."""

from __future__ import annotations

import difflib
from functools import cache

import botocore
import botocore.session

# The cluster runs on ECS (Fargate): a region is one ECS serves in its partition.
SERVICE = "ecs"


@cache
def partitions() -> dict[str, str]:
    """Every region botocore lists for ECS -> its partition (aws, aws-cn, aws-us-gov, ...)."""
    session = botocore.session.get_session()
    return {
        region: partition
        for partition in session.get_available_partitions()
        for region in session.get_available_regions(SERVICE, partition)
    }


def unknown_region(region: str) -> str | None:
    """Why `region` is not a region ECS serves in any partition, or None when it is."""
    known = partitions()
    if region in known:
        return None
    close = difflib.get_close_matches(region, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"{region!r} is not a region of any AWS partition (botocore {botocore.__version__} lists "
        f"{len(known)} for {SERVICE}; a region launched since needs a newer botocore){hint}"
    )
