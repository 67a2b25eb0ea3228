"""`region` is checked against botocore's regions (offline), and its partition comes from them."""

from __future__ import annotations

import pytest

from foundation.config import (
    WORST_CASE_PARTITION,
    WORST_CASE_REGION,
    partition_of,
)
from foundation.regions import partitions, unknown_region


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("mx-central-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("us-isof-south-1", "aws-iso-f"),
        ("eusc-de-east-1", "aws-eusc"),
    ],
)
def test_a_real_region_is_accepted_with_its_partition(region: str, partition: str) -> None:
    assert unknown_region(region) is None
    assert partition_of(region) == partition


@pytest.mark.parametrize("region", ["mars-east-1", "us-east-9", "cn-south-7", "us-gov-north-1"])
def test_a_region_of_the_right_shape_that_aws_does_not_have_is_refused(region: str) -> None:
    assert unknown_region(region) is not None


def test_the_worst_case_arn_parts_are_at_least_as_long_as_every_real_one() -> None:
    assert len(WORST_CASE_REGION) >= max(map(len, partitions()))
    assert len(WORST_CASE_PARTITION) >= max(map(len, partitions().values()))
