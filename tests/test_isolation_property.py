"""No DAG's statements reach a resource that only another DAG declared.

Hypothesis builds projects whose DAGs share buckets, secrets, tables and functions with names
chosen to collide: prefixes of prefixes (sales/ next to sales_eu/ and sales/eu/), whole buckets
whose names start another's (acme, acme-raw, acme-raw2), dag_ids that
differ in case or punctuation, and secret names that look like another's generated suffix. For
every request another DAG's grants make, each DAG's policy, evaluated with IAM's wildcard and
condition semantics, must deny it unless the DAG declared a scope containing that resource.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundation.errors import InvalidInput
from foundation.iam.evaluate import Request, allows
from foundation.iam.policy import (
    ArnContext,
    dag_logs_prefix,
    grants,
    render,
)
from foundation.naming import bundle_prefix
from foundation.project import Project, load_project
from tests.conftest import ROOT

DAG_IDS = ["sales", "Sales", "sales_eu", "sales.eu", "sales-eu", "s", "sa", "sales_e"]
BUCKETS = ["acme-raw", "acme-raw2", "acme"]
PREFIXES = ["sales/", "sales_eu/", "sales/eu/", "s/", "Sales/", "sales/e/"]
SECRETS = ["shared/a", "shared/ab", "shared/a-bcdefg", "Shared/a", "shared", "shared/a/b"]
TABLES = ["tab1", "tab1x", "Tab1", "tab1.idx"]
FUNCTIONS = ["enrich", "enrich-v2", "Enrich"]
USERID = "AROAEXAMPLE:task"

s3_grants = st.lists(
    st.fixed_dictionaries(
        {
            "bucket": st.sampled_from(BUCKETS),
            "access": st.sampled_from(["read", "write", "read_write"]),
        },
        optional={"prefix": st.sampled_from(PREFIXES)},  # without: the whole bucket
    ),
    max_size=3,
)
permissions = st.fixed_dictionaries(
    {},
    optional={
        "s3": s3_grants,
        "secrets": st.lists(st.sampled_from(SECRETS), max_size=2, unique=True),
        "dynamodb": st.lists(
            st.fixed_dictionaries(
                {"table": st.sampled_from(TABLES), "access": st.sampled_from(["read", "write"])}
            ),
            max_size=2,
        ),
        "lambda": st.lists(
            st.builds(lambda f: {"function": f}, st.sampled_from(FUNCTIONS)), max_size=2
        ),
        # the escape hatch, on the same colliding buckets and prefixes
        "statements": st.lists(
            st.builds(
                lambda bucket, prefix: {
                    "actions": ["s3:GetObject"],
                    "resources": [f"arn:aws:s3:::{bucket}/{prefix}*"],
                },
                st.sampled_from(BUCKETS),
                st.sampled_from(PREFIXES),
            ),
            max_size=2,
        ),
    },
)
projects = st.dictionaries(st.sampled_from(DAG_IDS), permissions, min_size=2, max_size=4)


def _scopes(project: Project, dag_id: str) -> list[tuple[str, str]]:
    """What a DAG declared, as (ARN or ARN prefix, how to compare)."""
    dag = next(d for d in project.dags if d.dag_id == dag_id)
    p = dag.manifest.permissions
    out = [
        (
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:"
            f"{project.deployment.namespace.dag_secrets_prefix(dag_id)}",
            "prefix",
        ),
        (f"arn:aws:s3:::{project.deployment.logs_bucket}/{dag_logs_prefix(dag_id)}", "prefix"),
        (f"list:{project.deployment.logs_bucket}:{dag_logs_prefix(dag_id)}", "prefix"),
    ]
    if project.deployment.dags_bucket:  # every DAG's tasks read its S3 bundle, as shipped
        bucket = project.deployment.dags_bucket
        prefix = bundle_prefix(project.deployment.bundle_of(dag.manifest.bundle))
        out += [
            (f"arn:aws:s3:::{bucket}/{prefix}", "prefix"),
            (f"list:{bucket}:", "prefix"),
        ]
    for s3 in p.s3:
        prefix = s3.prefix or ""  # a whole bucket: every object and every listing
        out += [
            (f"arn:aws:s3:::{s3.bucket}/{prefix}", "prefix"),
            (f"list:{s3.bucket}:{prefix}", "prefix"),
        ]
    for name in p.secrets:
        out.append((f"arn:aws:secretsmanager:us-east-1:111122223333:secret:{name}", "suffix6"))
    for statement in p.statements:
        out += [(resource.rstrip("*"), "prefix") for resource in statement.resources]
    for table in p.dynamodb:
        arn = f"arn:aws:dynamodb:us-east-1:111122223333:table/{table.table}"
        out += [(arn, "exact"), (arn + "/index/", "prefix")]
    for fn in p.lambda_:
        arn = f"arn:aws:lambda:us-east-1:111122223333:function:{fn.function}"
        out += [(arn, "exact"), (arn + ":", "prefix")]
    return out


def _covered(scopes: list[tuple[str, str]], request: Request) -> bool:
    target = request.resource
    if request.action == "s3:ListBucket":
        target = (
            f"list:{target.removeprefix('arn:aws:s3:::')}:{request.context.get('s3:prefix', '')}"
        )
    for scope, how in scopes:
        if how == "prefix" and target.startswith(scope):
            return True
        if how == "exact" and target == scope:
            return True
        if how == "suffix6" and re.fullmatch(re.escape(scope) + r"-[A-Za-z0-9]{6}", target):
            return True
    return False


def _concrete(pattern: str) -> str:
    return pattern.replace("*", "k1/part-0").replace("?", "Q")


def _requests(project: Project, dag_id: str) -> list[Request]:
    """Concrete requests that a DAG's own grants are meant to allow."""
    dag = next(d for d in project.dags if d.dag_id == dag_id)
    ctx = ArnContext.of(project.deployment)
    out = []
    rendered = [
        statement
        for grant in grants(dag.manifest, project.deployment, lambda path: "test")
        for statement in render(grant, ctx)
    ]
    raw = [s for s in dag.policy.statements if any("statements" in src for src in s.sources)]
    for statement in rendered + raw:
        context = {"aws:userid": USERID}
        for pairs in (statement.condition or {}).values():
            context |= {k: _concrete(v.replace("${aws:userid}", USERID)) for k, v in pairs.items()}
        for action in statement.actions:
            for resource in statement.resources:
                out.append(Request(action, _concrete(resource), context))
    return out


def _write(root: Path, dags: dict[str, dict]) -> None:
    (root / "config").mkdir()
    (root / "config" / "foundation.yaml").write_text(
        (ROOT / "config" / "foundation.yaml").read_text()
    )
    (root / "dag_permissions").mkdir()
    for dag_id, perms in dags.items():
        manifest = {"dag_id": dag_id, "owner": "t@example.com", "permissions": perms}
        (root / "dag_permissions" / f"{dag_id}.yaml").write_text(yaml.safe_dump(manifest))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(projects)
def test_no_dag_reaches_what_only_another_declared(dags: dict[str, dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), dags)
        folded = [d.lower() for d in dags]
        if len(set(folded)) < len(folded):
            try:
                load_project(Path(tmp))
            except InvalidInput as err:
                assert any("differ only in case" in p.message for p in err.problems)
                return
            raise AssertionError("case-colliding dag_ids were accepted")
        project = load_project(Path(tmp))
    policies = {d.dag_id: [s.document() for s in d.policy.statements] for d in project.dags}
    for owner in dags:
        for request in _requests(project, owner):
            assert allows(policies[owner], request), f"{owner} cannot use its own grant {request}"
            for other in dags:
                if other == owner or _covered(_scopes(project, other), request):
                    continue
                assert not allows(policies[other], request), (
                    f"{other} reaches {request} that only {owner} declared"
                )
