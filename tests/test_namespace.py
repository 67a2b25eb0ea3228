"""Two deployments in one account share nothing: no grant, pattern or prefix of one reaches a
resource of the other, whatever the two names are (one a prefix of the other included), with
the same DAG ids on both sides.

The grants are the real ones: the CloudFormation service role's (deployer.yaml), the
scheduler's (both executors), every DAG's baseline, and the escape hatch's reserved names
(`owns`). Each is matched with the toolkit's one IAM wildcard matcher (evaluate.glob) against
every resource the other deployment's namespace names, and the last test checks that list
against the physical names of the synthesized example, so it cannot fall behind the stacks.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from foundation.config import Deployment
from foundation.iam import cluster, deployer
from foundation.iam.arns import parse, wider_than_one_resource
from foundation.iam.evaluate import glob, listed
from foundation.iam.policy import ArnContext, grants, render
from foundation.manifest import DagManifest
from foundation.naming import UNMANAGED_PARAMETER_NAME, Namespace
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


@st.composite
def pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Two distinct names, often one the other's prefix (`acme` and `acme-stg`)."""
    a = draw(names)
    tail = draw(st.from_regex(r"[a-z0-9-]{0,10}[a-z0-9]", fullmatch=True))
    b = draw(st.one_of(names, st.just(f"{a}-{tail}"[:20].rstrip("-"))))
    b = b if "--" not in b else draw(names)
    assume(a != b)
    return (a, b) if draw(st.booleans()) else (b, a)


def deployment(name: str, celery: bool = False) -> Deployment:
    airflow = EXAMPLE.airflow.model_copy(update={"executor": "celery" if celery else "ecs"})
    return EXAMPLE.model_copy(update={"name": name, "airflow": airflow})


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
    yield f"arn:{P}:dynamodb:{region}:table/{ns.celery_results_table}"
    for bucket in ns.buckets:
        yield f"arn:{P}:s3:::{bucket}"
        yield f"arn:{P}:s3:::{bucket}/dags/x.py"


def patterns_of(name: str, dag_ids: list[str]) -> Iterator[str]:
    """Every resource pattern the deployment's own grants hold."""
    ctx = ArnContext(P, R, A)
    boundary = f"arn:{P}:iam::{A}:policy/boundary"
    for statement in deployer.statements(deployer.values(deployment(name).namespace, P, boundary)):
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


@settings(max_examples=150, deadline=None)
@given(pairs())
def test_no_pattern_of_one_deployment_reaches_the_others_resources(pair: tuple[str, str]) -> None:
    a, b = pair
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
    pair: tuple[str, str],
) -> None:
    """What a manifest may name (an escape-hatch resource, a bucket, queue, secret or role to
    pass): every resource of the other deployment, and every pattern the escape hatch would
    otherwise take that reaches one (each prefix of its ARN, then `*` or `?`), is reserved."""
    a, b = pair
    ours = deployment(a)
    for arn in resources_of(deployment(b).namespace, DAG_IDS):
        parsed = parse(arn)
        assert parsed is not None
        if parsed.service == "ecs" and not parsed.resource.startswith("task-definition/"):
            continue  # ECS_CLUSTER_GAP: the cluster is named <name>, a shape of any name
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
