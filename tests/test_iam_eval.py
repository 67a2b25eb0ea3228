"""The toolkit's IAM evaluation (foundation/iam/evaluate.py) agrees with AWS's documented
examples."""

import pytest

from foundation.iam.evaluate import Request, allows, allows_every, covers, decide, overlaps

OBJECTS = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/sales/*"]}
LIST = {
    "Effect": "Allow",
    "Action": "s3:ListBucket",
    "Resource": "arn:aws:s3:::b",
    "Condition": {"StringLike": {"s3:prefix": "sales/*"}},
}
SECRET = {
    "Effect": "Allow",
    "Action": "secretsmanager:GetSecretValue",
    "Resource": "arn:aws:secretsmanager:r:1:secret:shared/a-??????",
}
OWNER = {
    "Effect": "Allow",
    "Action": "redshift-data:DescribeStatement",
    "Resource": "*",
    "Condition": {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}},
}


def test_wildcards_span_slashes_but_not_sibling_prefixes() -> None:
    assert allows([OBJECTS], Request("s3:GetObject", "arn:aws:s3:::b/sales/x/y.csv"))
    assert allows([OBJECTS], Request("S3:getobject", "arn:aws:s3:::b/sales/x"))
    assert not allows([OBJECTS], Request("s3:GetObject", "arn:aws:s3:::b/sales_eu/x"))
    assert not allows([OBJECTS], Request("s3:GetObject", "arn:aws:s3:::b/Sales/x"))
    assert not allows([OBJECTS], Request("s3:PutObject", "arn:aws:s3:::b/sales/x"))


def test_conditions_need_the_key_and_a_matching_value() -> None:
    bucket = "arn:aws:s3:::b"
    assert allows([LIST], Request("s3:ListBucket", bucket, {"s3:prefix": "sales/"}))
    assert not allows([LIST], Request("s3:ListBucket", bucket, {"s3:prefix": "sales_eu/"}))
    assert not allows([LIST], Request("s3:ListBucket", bucket))


def test_question_mark_is_exactly_one_character() -> None:
    base = "arn:aws:secretsmanager:r:1:secret:"
    assert allows([SECRET], Request("secretsmanager:GetSecretValue", base + "shared/a-AbCdEf"))
    assert not allows([SECRET], Request("secretsmanager:GetSecretValue", base + "shared/ab-AbCdEf"))
    assert not allows(
        [SECRET], Request("secretsmanager:GetSecretValue", base + "shared/a-bcdefg-AbCdEf")
    )


def test_policy_variables_come_from_the_request() -> None:
    mine = Request(
        "redshift-data:DescribeStatement",
        "*",
        {"aws:userid": "AROA1:task", "redshift-data:statement-owner-iam-userid": "AROA1:task"},
    )
    theirs = Request(
        "redshift-data:DescribeStatement",
        "*",
        {"aws:userid": "AROA1:task", "redshift-data:statement-owner-iam-userid": "AROA2:task"},
    )
    assert allows([OWNER], mine)
    assert not allows([OWNER], theirs)


def test_arn_conditions_match_part_by_part() -> None:
    cluster = "arn:aws:ecs:r:1:cluster/acme"
    statement = {
        "Effect": "Allow",
        "Action": "ecs:StopTask",
        "Resource": "*",
        "Condition": {"ArnEquals": {"ecs:cluster": "arn:aws:ecs:*:1:cluster/acme"}},
    }
    assert allows([statement], Request("ecs:StopTask", "t", {"ecs:cluster": cluster}))
    other = {"ecs:cluster": "arn:aws:ecs:r:1:cluster/acme-staging"}
    assert not allows([statement], Request("ecs:StopTask", "t", other))
    assert not allows([statement], Request("ecs:StopTask", "t", {"ecs:cluster": "acme"}))


def test_a_key_the_request_lacks_fails_the_condition_unless_if_exists() -> None:
    """HeadBucket is authorised as s3:ListBucket and carries no s3:prefix (AWS's S3 condition
    keys table): StringLike on the prefix refuses it, StringLikeIfExists admits it."""
    head_bucket = Request("s3:ListBucket", "arn:aws:s3:::b")
    assert not allows([LIST], head_bucket)
    if_exists = LIST | {"Condition": {"StringLikeIfExists": {"s3:prefix": "sales/*"}}}
    assert allows([if_exists], head_bucket)
    assert not allows([if_exists], Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "x/"}))
    present = LIST | {"Condition": {"Null": {"s3:prefix": "false"}}}
    absent = LIST | {"Condition": {"Null": {"s3:prefix": "true"}}}
    assert not allows([present], head_bucket) and allows([absent], head_bucket)
    listing = Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": ""})
    assert allows([present], listing) and not allows([absent], listing)


def test_a_negated_operator_holds_when_the_key_is_absent() -> None:
    statement = LIST | {"Condition": {"StringNotLike": {"s3:prefix": "private/*"}}}
    bucket = "arn:aws:s3:::b"
    assert allows([statement], Request("s3:ListBucket", bucket))  # no key: AWS's "true"
    assert allows([statement], Request("s3:ListBucket", bucket, {"s3:prefix": "public/"}))
    assert not allows([statement], Request("s3:ListBucket", bucket, {"s3:prefix": "private/a"}))


TAGGING = {
    "Effect": "Allow",
    "Action": "ec2:DeleteTags",
    "Resource": "arn:aws:ec2:r:1:vpc/*",
    "Condition": {
        "Null": {"aws:TagKeys": "false"},
        "ForAllValues:StringNotEquals": {"aws:TagKeys": ["foundation:project"]},
    },
}


def test_for_all_values_reads_every_value_of_a_multivalued_key() -> None:
    vpc = "arn:aws:ec2:r:1:vpc/vpc-1"
    assert allows([TAGGING], Request("ec2:DeleteTags", vpc, {"aws:TagKeys": ["team", "cost"]}))
    both = {"aws:TagKeys": ["team", "foundation:project"]}
    assert not allows([TAGGING], Request("ec2:DeleteTags", vpc, both))
    # ForAllValues holds for an absent key (AWS's documented trap): Null refuses it here
    assert not allows([TAGGING], Request("ec2:DeleteTags", vpc))
    without_null = TAGGING | {
        "Condition": {k: v for k, v in TAGGING["Condition"].items() if k != "Null"}
    }
    assert allows([without_null], Request("ec2:DeleteTags", vpc))
    any_value = TAGGING | {"Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}}}
    assert allows([any_value], Request("ec2:DeleteTags", vpc, {"aws:TagKeys": ["x", "team"]}))
    assert not allows([any_value], Request("ec2:DeleteTags", vpc, {"aws:TagKeys": ["x"]}))
    assert not allows([any_value], Request("ec2:DeleteTags", vpc))


def test_policy_variables_in_patterns_are_refused_not_matched() -> None:
    statement = OBJECTS | {"Resource": "arn:aws:s3:::b/${aws:username}/*"}
    with pytest.raises(ValueError, match="policy variable"):
        allows([statement], Request("s3:GetObject", "arn:aws:s3:::b/x/y"))
    with pytest.raises(NotImplementedError):
        allows(
            [LIST | {"Condition": {"StringEquals": {"k": "v"}}}],
            Request("s3:ListBucket", "arn:aws:s3:::b", {"k": ["v"]}),
        )


QUEUE = "arn:aws:sqs:r:1:q"
OWNER_ROLE = "arn:aws:iam::1:role/path/owner"
ANYONE_SENDS = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}
ONLY_OWNER_SENDS = {
    "Effect": "Deny",
    "Principal": {"AWS": "*"},
    "Action": "sqs:SendMessage",
    "Resource": QUEUE,
    "Condition": {"ArnNotEquals": {"aws:PrincipalArn": OWNER_ROLE}},
}
TLS_ONLY = {
    "Effect": "Deny",
    "Principal": {"AWS": "*"},
    "Action": "sqs:*",
    "Resource": QUEUE,
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def by(principal: str, tls: str = "true") -> dict[str, str]:
    return {"aws:PrincipalArn": principal, "aws:SecureTransport": tls}


def test_a_resource_policys_deny_beats_an_identity_allow_for_everyone_it_names() -> None:
    """Same account: an explicit Deny anywhere refuses; an Allow in either policy allows."""
    send = "sqs:SendMessage"
    other = "arn:aws:iam::1:role/other"
    policy = [TLS_ONLY, ONLY_OWNER_SENDS]
    assert not decide([ANYONE_SENDS], policy, Request(send, QUEUE, by(other)))
    assert decide([ANYONE_SENDS], policy, Request(send, QUEUE, by(OWNER_ROLE)))
    assert not decide([ANYONE_SENDS], policy, Request(send, QUEUE, by(OWNER_ROLE, "false")))
    assert not decide([], policy, Request(send, QUEUE, by(OWNER_ROLE)))  # a Deny allows nothing
    # the same role name on another path is another role
    moved = "arn:aws:iam::1:role/owner"
    assert not decide([ANYONE_SENDS], policy, Request(send, QUEUE, by(moved)))


def test_a_resource_policys_allow_concerns_only_the_principal_it_names() -> None:
    allow = {"Effect": "Allow", "Principal": {"AWS": [OWNER_ROLE]}} | {
        k: ONLY_OWNER_SENDS[k] for k in ("Action", "Resource")
    }
    assert decide([], [allow], Request("sqs:SendMessage", QUEUE, by(OWNER_ROLE)))
    assert not decide([], [allow], Request("sqs:SendMessage", QUEUE, by("arn:aws:iam::1:role/x")))


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "NotAction": "s3:PutObject", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "NotResource": "x"},
    ],
    ids=["no action", "action and notaction", "no resource", "resource and notresource"],
)
def test_a_statement_iam_would_refuse_allows_nothing_and_raises_nothing(statement: dict) -> None:
    assert not allows([statement], Request("s3:GetObject", "arn:aws:s3:::b/k"))


# --- pattern requests: what a templated argument may render to (check-dags) ---


@pytest.mark.parametrize(
    ("pattern", "wanted", "held"),
    [
        ("b/sales/*", "b/sales/*/a.json", True),  # whatever the run renders stays under sales/
        ("b/sales/*", "b/*", False),  # may render anywhere in the bucket
        ("b/sales/*", "b/sales*", False),  # may render sales_eu/
        ("job/sales-curate", "job/sales-*", False),
        ("a-??????", "a-*", False),  # `?` is one character; `*` any run
        ("a-??????", "a-??????", True),
        ("a*", "a?", True),
        ("*", "*", True),
        ("b/x", "b/x", True),
    ],
)
def test_a_pattern_covers_another_only_if_it_matches_every_value(
    pattern: str, wanted: str, held: bool
) -> None:
    assert covers(pattern, wanted) is held


@pytest.mark.parametrize(
    ("pattern", "other", "met"),
    [
        ("b/sales/*", "b/*", True),
        ("b/orders/*", "b/sales/*/a.json*", False),
        ("job/sales-curate", "job/sales-*", True),
        ("a-??????", "a-b", False),
        ("a?c", "*c", True),
    ],
)
def test_two_patterns_overlap_when_some_value_matches_both(
    pattern: str, other: str, met: bool
) -> None:
    assert overlaps(pattern, other) is met


def test_allows_every_reads_conditions_with_patterns_and_variables() -> None:
    bucket = "arn:aws:s3:::b"
    assert allows_every([LIST], Request("s3:ListBucket", bucket, {"s3:prefix": "sales/2026/*"}))
    assert not allows_every([LIST], Request("s3:ListBucket", bucket, {"s3:prefix": "*"}))
    assert not allows_every([LIST], Request("s3:ListBucket", bucket))
    mine = {"aws:userid": "AROA1:task", "redshift-data:statement-owner-iam-userid": "AROA1:task"}
    assert allows_every([OWNER], Request("redshift-data:DescribeStatement", "*", mine))
    any_owner = mine | {"redshift-data:statement-owner-iam-userid": "*"}
    assert not allows_every([OWNER], Request("redshift-data:DescribeStatement", "*", any_owner))
    assert not allows_every(
        [SECRET], Request("secretsmanager:GetSecretValue", SECRET["Resource"][:-6] + "*")
    )


def test_a_templated_value_is_not_covered_by_a_pattern_one_of_its_values_matches() -> None:
    """`day-{{ x }}.csv` may render day-10.csv, which `day-?.csv` does not grant (read as a
    value, `*` is one character `?` matches)."""
    days = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/day-?.csv"}
    assert allows_every([days], Request("s3:GetObject", "arn:aws:s3:::b/day-1.csv"))
    assert not allows_every([days], Request("s3:GetObject", "arn:aws:s3:::b/day-*.csv"))
