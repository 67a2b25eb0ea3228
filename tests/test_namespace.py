"""Two deployments in one account share nothing: no grant, pattern or prefix of one reaches a
resource of the other, whatever the two names are (one a prefix of the other included), with
the same DAG ids on both sides.

The grants are the real ones: the CloudFormation service role's (deployer.yaml), the
scheduler's (both executors), every DAG's baseline, and the escape hatch's reserved names
(`owns`). Each is matched with the toolkit's one IAM wildcard matcher (evaluate.glob) against
every resource the other deployment's namespace names, and the last test checks that list
against the physical names of the synthesized example, so it cannot fall behind the stacks.
Each side has its own iam.role_path and iam.role_name_prefix (any the config accepts, often
the other's name as a path segment). The service role's tag-scoped statements (resources with
generated ids) are evaluated with the toolkit's IAM evaluation, conditions included (moto
evaluates none), on resources carrying the other deployment's project tag.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from foundation.config import Deployment, ProjectName, RoleNamePrefix, RolePath
from foundation.iam import cluster, deployer
from foundation.iam.arns import parse, wider_than_one_resource
from foundation.iam.evaluate import Request, allows, glob, listed
from foundation.iam.policy import ArnContext, grants, render
from foundation.manifest import DagManifest
from foundation.naming import PROJECT_TAG, UNMANAGED_PARAMETER_NAME, Namespace
from foundation.project import load_project
from tests.conftest import ROOT

EXAMPLE = load_project(ROOT).deployment
P, R, A = "aws", EXAMPLE.region, EXAMPLE.account
# dag-processor-team_a: a deployment with several bundles has one dag-processor per bundle
COMPONENTS = [
    "api-server",
    "scheduler",
    "dag-processor",
    "dag-processor-team_a",
    "triggerer",
    "db-migrate",
]
ROLES = [*COMPONENTS, "task-execution", "worker-execution", "vpc-flow-logs"]
DAG_IDS = ["sales", "sales_eu", "workers", "dag", "x"]

names = st.from_regex(r"[a-z][a-z0-9-]{1,18}[a-z0-9]", fullmatch=True).filter(
    lambda n: "--" not in n and not n.startswith(("sg-", "aws", "ssm")) and n != "foundation"
)


@dataclass(frozen=True)
class Side:
    """One deployment of a pair: its name and its organisation's role path and prefix."""

    name: str
    role_path: str = "/"
    role_prefix: str = ""


def _valid(adapter: TypeAdapter, value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


segments = st.from_regex(r"[A-Za-z0-9+=,.@_-]{1,8}", fullmatch=True)


@st.composite
def sides(draw: st.DrawFn, name: str, other: str) -> Side:
    """A role path and prefix the config accepts, often built from either name."""
    segment = st.one_of(st.just(name), st.just(other), st.just("dags"), segments)
    path = "/" + "".join(f"{s}/" for s in draw(st.lists(segment, max_size=3)))
    prefix = draw(
        st.one_of(
            st.just(""),
            st.from_regex(r"[A-Za-z0-9+=,.@_-]{0,6}[+=,.@_]", fullmatch=True),
            # what makes <prefix><name> read as the other's name, or a prefix of it
            st.sampled_from([f"{other}_", f"{name}.", other[: len(other) - len(name)], "x-"]),
        )
    )
    path = path if _valid(TypeAdapter(RolePath), path) else "/"
    prefix = prefix if _valid(TypeAdapter(RoleNamePrefix), prefix) else ""
    return Side(name, path, prefix)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Side, Side]:
    """Two distinct names, often one the other's prefix (`acme` and `acme-stg`) or suffix,
    each with its own role path and prefix, or the same."""
    a = draw(names)
    tail = draw(st.from_regex(r"[a-z0-9-]{0,10}[a-z0-9]", fullmatch=True))
    suffix = a[draw(st.integers(1, len(a) - 3)) :] if len(a) > 3 else a
    b = draw(st.one_of(names, st.just(f"{a}-{tail}"[:20].rstrip("-")), st.just(suffix)))
    b = b if "--" not in b and re.fullmatch(r"[a-z][a-z0-9-]+[a-z0-9]", b) else draw(names)
    assume(a != b)
    first = draw(st.one_of(st.just(Side(a)), sides(a, b)))
    second = draw(st.one_of(st.just(Side(b)), sides(b, a)))
    if draw(st.booleans()):
        second = Side(b, first.role_path, first.role_prefix)
    return (first, second) if draw(st.booleans()) else (second, first)


def deployment(side: Side | str, celery: bool = False) -> Deployment:
    side = side if isinstance(side, Side) else Side(side)
    airflow = EXAMPLE.airflow.model_copy(update={"executor": "celery" if celery else "ecs"})
    iam = EXAMPLE.iam.model_copy(
        update={"role_path": side.role_path, "role_name_prefix": side.role_prefix}
    )
    return EXAMPLE.model_copy(update={"name": side.name, "airflow": airflow, "iam": iam})


def resources_of(ns: Namespace, dag_ids: list[str]) -> Iterator[str]:
    """Every resource ARN this deployment's stacks, bootstrap and DAGs make or own."""
    iam, region = f"arn:{P}:iam::{A}", f"{R}:{A}"
    for component in ROLES:
        yield f"{iam}:role{ns.role_root}{ns.role(component)}"
    yield f"{iam}:role{ns.bootstrap_role_path}{ns.service_role}"
    yield f"{iam}:policy{ns.bootstrap_role_path}{ns.service_role}-1"
    for component in COMPONENTS:
        yield f"arn:{P}:ecs:{region}:task-definition/{ns.family(component)}:1"
        yield f"arn:{P}:ecs:{region}:service/{ns.cluster}/{ns.service(component)}"
        yield f"arn:{P}:logs:{region}:log-group:{ns.log_group(component)}"
    for names in [ns.unmanaged, *(ns.dag(d) for d in dag_ids)]:
        yield f"{iam}:role{ns.dag_role_path}{names.role}"
        yield f"{iam}:policy{ns.dag_role_path}{names.managed_policy(0)}"
        yield f"arn:{P}:ecs:{region}:task-definition/{names.task_family}:1"
        yield f"arn:{P}:sqs:{region}:{names.queue}"
        yield f"arn:{P}:ecs:{region}:service/{ns.cluster}/{names.service}"
        yield f"arn:{P}:cloudwatch:{region}:alarm:{names.alarm('backlog-upper')}"
    for dag_id in [*dag_ids, UNMANAGED_PARAMETER_NAME]:
        yield f"arn:{P}:ssm:{region}:parameter{ns.identity_parameter(dag_id)}"
    for dag_id in dag_ids:
        yield f"arn:{P}:secretsmanager:{region}:secret:{ns.dag_secrets_prefix(dag_id)}x-AbCdEf"
    for kind in ("database", "fernet-key-material", "web-passwords"):
        yield f"arn:{P}:secretsmanager:{region}:secret:{ns.secret(kind)}-AbCdEf"
    yield f"arn:{P}:ssm:{region}:parameter{ns.workers_security_group_parameter}"
    yield f"arn:{P}:ssm:{region}:parameter{ns.parameter('foundation-runtime/0123abcd/0')}"
    yield f"arn:{P}:ssm:{region}:parameter/{ns.name}/network/vpc-id"
    yield f"arn:{P}:logs:{region}:log-group:{ns.log_group('vpc-flow-logs')}"
    yield f"arn:{P}:logs:{region}:log-group:{ns.workers_log_group}"
    yield f"arn:{P}:ecs:{region}:cluster/{ns.cluster}"
    yield f"arn:{P}:ecs:{region}:task/{ns.cluster}/0123456789abcdef"
    yield f"arn:{P}:ecs:{region}:container-instance/{ns.cluster}/0123456789abcdef"
    yield f"arn:{P}:ecs:{region}:task-set/{ns.cluster}/{ns.service('api-server')}/ecs-svc/1"
    yield f"arn:{P}:ecs:{region}:service-deployment/{ns.cluster}/{ns.service('api-server')}/a1"
    yield f"arn:{P}:dynamodb:{region}:table/{ns.celery_results_table}"
    for bucket in ns.buckets:
        yield f"arn:{P}:s3:::{bucket}"
        yield f"arn:{P}:s3:::{bucket}/dags/x.py"


BOUNDARY = f"arn:{P}:iam::{A}:policy/boundary"


def service_role(side: Side) -> list[dict]:
    return deployer.statements(deployer.values(deployment(side).namespace, P, BOUNDARY))


def patterns_of(name: Side, dag_ids: list[str]) -> Iterator[str]:
    """Every resource pattern the deployment's own grants hold."""
    ctx = ArnContext(P, R, A)
    for statement in service_role(name):
        yield from listed(statement["Resource"])
    for celery in (False, True):
        d = deployment(name, celery)
        scheduler = (
            cluster.dispatch_celery(d.namespace)
            if celery
            else cluster.launch_dag_tasks(d.namespace, ctx)
        )
        for grant in [scheduler, cluster.read_task_logs(d.logs_bucket)]:
            for statement in render(grant, ctx):
                yield from statement.resources
        for dag_id in dag_ids:
            manifest = DagManifest(dag_id=dag_id, owner="a@example.com")
            for grant in grants(manifest, d, str):
                for statement in render(grant, ctx):
                    yield from statement.resources


def accepted(side: Side) -> bool:
    """Whether the config takes this side's name, role path and prefix."""
    return (
        _valid(TypeAdapter(ProjectName), side.name)
        and _valid(TypeAdapter(RolePath), side.role_path)
        and _valid(TypeAdapter(RoleNamePrefix), side.role_prefix)
    )


# What the config refuses, each a collision if it were taken: a role path through the other's
# DAG role path, a prefix that reads as the start of the other's name, '--' in either, the
# name `dags` under a path ending in the other's name.
@settings(max_examples=150, deadline=None)
@given(pairs())
@example((Side("acme", "/acme-stg/dags/"), Side("acme-stg")))
@example((Side("org-acme"), Side("acme", "/", "org-")))
@example((Side("acme"), Side("stg", "/", "acme--_")))
@example((Side("acme"), Side("x-y", "/acme--/")))
@example((Side("acme"), Side("dags", "/acme/")))
def test_no_pattern_of_one_deployment_reaches_the_others_resources(
    pair: tuple[Side, Side],
) -> None:
    a, b = pair
    assume(accepted(a) and accepted(b))
    theirs = list(resources_of(deployment(b).namespace, DAG_IDS))
    ours = deployment(a).namespace
    for pattern in set(patterns_of(a, DAG_IDS)):
        reached = [r for r in theirs if pattern != "*" and glob(pattern, r)]
        assert reached == [], f"{a}'s {pattern} reaches {b}'s {reached}"
    for arn in theirs:
        parsed = parse(arn)
        assert parsed is not None
        assert not ours.owns(parsed.service, parsed.resource), f"{a} owns {b}'s {arn}"


@settings(max_examples=60, deadline=None)
@given(pairs())
def test_no_dag_may_name_the_others_resources_or_a_pattern_reaching_them(
    pair: tuple[Side, Side],
) -> None:
    """What a manifest may name (an escape-hatch resource, a bucket, queue, secret or role to
    pass): every resource of the other deployment, and every pattern the escape hatch would
    otherwise take that reaches one (each prefix of its ARN, then `*` or `?`), is reserved."""
    a, b = pair
    ours = deployment(a)
    for arn in resources_of(deployment(b).namespace, DAG_IDS):
        parsed = parse(arn)
        assert parsed is not None
        assert ours.reserved_resource(parsed.service, parsed.resource), arn
        for end in range(len(parsed.resource)):
            for wildcard in ("*", "?"):
                rest = parsed.resource[:end] + wildcard
                pattern = dataclasses.replace(parsed, resource=rest)
                if wider_than_one_resource(pattern) or not glob(rest, parsed.resource[: end + 1]):
                    continue  # the escape hatch refuses it anyway, or it reaches nothing here
                assert ours.reserved_resource(parsed.service, rest), f"{a} may name {rest}"


def test_each_deployment_owns_every_resource_it_names() -> None:
    """`owns` is the reserved-name check: it must hold for the deployment's own names."""
    for name in ("acme-airflow", "acme-airflow-stg", "a1b"):
        ns = deployment(name).namespace
        for arn in resources_of(ns, DAG_IDS):
            parsed = parse(arn)
            assert parsed is not None
            assert ns.owns(parsed.service, parsed.resource), arn


# Properties holding a name the stacks give a resource, by type (a ServiceName is the
# cluster's: its ARN is service/<cluster>/<name>)
NAMED = {
    "AWS::IAM::Role": ("RoleName", "iam", lambda p: f"role{p.get('Path', '/')}{p['RoleName']}"),
    "AWS::IAM::ManagedPolicy": (
        "ManagedPolicyName",
        "iam",
        lambda p: f"policy{p.get('Path', '/')}{p['ManagedPolicyName']}",
    ),
    "AWS::ECS::TaskDefinition": ("Family", "ecs", lambda p: f"task-definition/{p['Family']}:1"),
    "AWS::SQS::Queue": ("QueueName", "sqs", lambda p: p["QueueName"]),
    "AWS::Logs::LogGroup": ("LogGroupName", "logs", lambda p: f"log-group:{p['LogGroupName']}"),
    "AWS::SSM::Parameter": ("Name", "ssm", lambda p: f"parameter{p['Name']}"),
    "AWS::SecretsManager::Secret": ("Name", "secretsmanager", lambda p: f"secret:{p['Name']}"),
    "AWS::S3::Bucket": ("BucketName", "s3", lambda p: p["BucketName"]),
    "AWS::DynamoDB::Table": ("TableName", "dynamodb", lambda p: f"table/{p['TableName']}"),
    "AWS::CloudWatch::Alarm": ("AlarmName", "cloudwatch", lambda p: f"alarm:{p['AlarmName']}"),
    "AWS::ECS::Cluster": ("ClusterName", "ecs", lambda p: f"cluster/{p['ClusterName']}"),
}


def test_every_name_in_the_synthesized_example_is_its_own_and_not_stagings(
    templates: dict,
) -> None:
    ours = EXAMPLE.namespace
    staging = load_project(ROOT, "staging").deployment.namespace
    assert staging.name.startswith(ours.name)  # the shipped pair: one the other's prefix
    seen = 0
    for template in templates.values():
        for resource in template["Resources"].values():
            named = NAMED.get(resource["Type"])
            props = resource.get("Properties", {})
            if named is None or not isinstance(props.get(named[0]), str):
                continue
            service, part = named[1], named[2](props)
            assert ours.owns(service, part), f"{resource['Type']} {part}"
            assert not staging.owns(service, part), f"{resource['Type']} {part}"
            seen += 1
    assert seen > 40
    text = json.dumps(templates)
    # no name of the toolkit's is left in the old '<name>-<kind>' form of a pattern-scoped type
    assert not re.search(r'"(RoleName|Family|QueueName|AlarmName)": "acme-airflow-[a-z]', text)


TAGS = ("aws:RequestTag/", "aws:ResourceTag/")
# Cloud Map's TagResource and UntagResource take no resource in the IAM database: the one place
# a service role may act on another deployment's resource (README, residual risks)
UNSCOPED_TAGGING = {"servicediscovery:TagResource", "servicediscovery:UntagResource"}
# takes no resource at all: it makes a namespace and acts on no existing one
MAKES_ONLY = {"servicediscovery:CreatePrivateDnsNamespace"}


def _concrete(pattern: str) -> str:
    return pattern.replace("*", "x-0123")


@settings(max_examples=40, deadline=None)
@given(pairs())
def test_no_tag_scoped_statement_of_one_service_role_reaches_the_others_resources(
    pair: tuple[Side, Side],
) -> None:
    """Every action of the service role's tag-scoped statements, on every resource type they
    name, as a request on the other deployment's resource (carrying its project tag) or making
    one with its tag: refused by the whole role, whatever it claims in its own request."""
    a, b = pair
    role = service_role(a)
    ours, theirs = f"aws:RequestTag/{PROJECT_TAG}", f"aws:ResourceTag/{PROJECT_TAG}"
    scoped = [
        s
        for s in role
        if any(k.startswith(TAGS) for o in s.get("Condition", {}).values() for k in o)
    ]
    assert len(scoped) > 20
    for statement in scoped:
        # a statement for what a request makes (its other resources are checked as existing)
        creates = f"aws:RequestTag/{PROJECT_TAG}" in statement["Condition"].get("StringEquals", {})
        for action in statement["Action"]:
            for resource in statement["Resource"]:
                arn = _concrete(resource)
                existing = (
                    ()
                    if action in MAKES_ONLY
                    else ({theirs: b.name}, {theirs: b.name, ours: a.name})
                )
                for request in existing:
                    keys = [PROJECT_TAG] if ours in request else ["team"]
                    context = request | {"aws:TagKeys": keys}
                    allowed = allows(role, Request(action, arn, context))
                    assert allowed == (action in UNSCOPED_TAGGING), f"{a} {action} {arn} {request}"
                if creates:
                    making = {ours: b.name, "aws:TagKeys": [PROJECT_TAG]}
                    assert not allows(role, Request(action, arn, making)), f"{a} {action} {arn}"
