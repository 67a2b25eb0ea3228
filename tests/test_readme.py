"""The README's manifest reference lists exactly the actions the catalog grants."""

from __future__ import annotations

from foundation.iam.catalog import catalog
from tests.conftest import ROOT

# manifest field -> (catalog kind, access levels as the manifest spells them)
FIELDS = {
    "(baseline) own secrets": ("secret_prefix", {"read": "-"}),
    "(baseline) own task logs": ("task_logs", {"read_write": "-"}),
    "(baseline, S3 bundle) DAG code": ("dag_bundle", {"read": "-"}),
    "(baseline, Celery) own queue": ("celery_worker", {"consume": "-"}),
    "(baseline, Celery) task results": ("celery_worker", {"results": "-"}),
    "(baseline, Celery) scale-in protection": ("celery_worker", {"protect": "-"}),
    "s3": ("s3", {"read": "read", "write": "write", "read_write": "read_write"}),
    "s3 (no prefix)": ("s3_bucket", {"read": "read", "write": "write", "read_write": "read_write"}),
    "secrets": ("secret", {"read": "-"}),
    "kms": (
        "kms",
        {"decrypt": "decrypt", "encrypt": "encrypt", "encrypt_decrypt": "encrypt_decrypt"},
    ),
    "dynamodb": ("dynamodb", {"read": "read", "write": "write", "read_write": "read_write"}),
    "sqs": ("sqs", {"send": "send", "consume": "consume"}),
    "sns": ("sns", {"publish": "-"}),
    "lambda": ("lambda", {"invoke": "-"}),
    "glue.jobs": ("glue_job", {"start": "-"}),
    "glue.crawlers": ("glue_crawler", {"start": "-"}),
    "athena.workgroups": ("athena_workgroup", {"query": "-"}),
    "athena.results": ("athena_results", {"write": "-"}),
    "athena.databases": ("glue_catalog", {"read": "-"}),
    "emr.clusters": ("emr_cluster", {"steps": "-"}),
    "redshift_data (cluster)": ("redshift_data", {"db_user": "db_user", "secret": "secret"}),
    "redshift_data (workgroup)": ("redshift_serverless", {"iam": "-", "secret": "secret"}),
    "redshift_data (any, once)": ("redshift_statements", {"own": "-"}),
    "datapipeline.pipelines": ("datapipeline", {"activate": "-"}),
    "pass_roles": ("pass_role", {"pass": "-"}),
}


def reference_rows() -> list[str]:
    cat = catalog()
    rows = []
    for field, (kind, levels) in FIELDS.items():
        for access, shown in levels.items():
            actions = ", ".join(f"`{a}`" for a in cat.granted_actions(kind, access))
            rows.append(f"| `{field}` | {shown} | {actions} |")
    return rows


def test_every_catalog_grant_has_a_readme_row() -> None:
    covered = {(kind, access) for kind, levels in FIELDS.values() for access in levels}
    assert covered == {(k, a) for k, levels in catalog().grants.items() for a in levels}


def test_readme_rows_match_the_catalog() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [row for row in reference_rows() if row not in readme]
    assert not missing, "README is out of date; expected rows:\n" + "\n".join(missing)


def test_the_readme_lists_every_cdk_nag_acknowledgement() -> None:
    from stacks import nag

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Security gates on every synth") : text.index("## Threat model")]
    for ack in nag.CLUSTER.values():
        assert f"| `{ack.rule}` |" in section, ack.rule
    assert "| `AwsSolutions-IAM5[Resource::...]` |" in section
