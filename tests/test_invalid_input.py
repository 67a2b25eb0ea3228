"""Every invalid manifest or config: exit 2, one message naming file, line and field, no traceback.

Fixtures live in tests/fixtures/invalid/{manifests,config}; each is dropped into a copy of the
shipped example (a manifest as dag_permissions/bad.yaml, a config as config/foundation.yaml).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import botocore
import pytest

from tests.conftest import ProjectDir

FIXTURES = Path(__file__).parent / "fixtures" / "invalid"

MANIFEST = "dag_permissions/bad.yaml"
REDSHIFT_SECRET_IS_THE_TOOLKITS = (
    " is the toolkit's (any deployment's <name>/cluster/ and <name>/dags/, this one's under "
    "acme-airflow/, the DAG bundle's key, the web login's): keep the Data API's secret under a "
    "name of your own"
)
MANIFEST_CASES = {
    "empty": ":1: file is empty",
    "top_level_list": ":1: expected a mapping at the top level, got list",
    "syntax_error": ":3: YAML syntax error",
    "duplicate_key": ":3: owner: duplicate key 'owner' (first set on line 2)",
    "unknown_key": ":5: permissions.s3[0].acess: unknown field 'acess'; did you mean 'access'?",
    "unknown_permission": ":4: permissions.secret: unknown field 'secret'; did you mean 'secrets'?",
    "alias_bomb": ":4: YAML aliases (*name) are not allowed",
    "python_tag": ":2: YAML tag !!python/object/apply:os.system is not allowed",
    "custom_tag": ":2: YAML tag !Ref is not allowed",
    "wrong_type": ":4: permissions.s3: expected a list",
    "pass_bootstrap_role": ":5: permissions.pass_roles[0].role: "
    "'foundation/acme-airflow-cloudformation' is one of a cluster's roles",
    "prefix_with_brackets": ":5: permissions.s3[0].prefix: 'salesforce/q)1/' is not an S3 key "
    "prefix",
    "dag_id_mismatch": ":1: dag_id: dag_id 'not_bad' must match the file name ('bad')",
    "dag_id_bad_chars": ":1: dag_id: 'bad dag/../x' is not a valid dag_id",
    "missing_owner": ":1: owner: required field is missing",
    "access_without_fab": ":3: access: DAG-level access needs web.auth manager: fab",
    "wildcard_action": ":5: permissions.statements[0].actions[0]: wildcard action 's3:Get*'",
    "star_action": ":5: permissions.statements[0].actions[0]: wildcard action '*'",
    "unknown_action": ":5: permissions.statements[0].actions[0]: 's3:GetObjekt' is not in the IAM "
    "action database; did you mean 's3:GetObject'?",
    "star_resource_for_scoped_action": ":6: permissions.statements[0].resources: '*' is not "
    "allowed for ssm:GetParameter",
    "all_buckets": ":6: permissions.statements[0].resources[0]: 'arn:aws:s3:::*' matches more "
    "than one resource",
    "all_secrets": ":6: permissions.statements[0].resources[0]: 'arn:aws:secretsmanager:us-east-1:"
    "111122223333:secret:*' matches more than one resource",
    "other_dags_secrets": ":6: permissions.statements[0].resources[0]: this is the cluster's own",
    "cluster_secret_statement": ":6: permissions.statements[0].resources[0]: this is the "
    "cluster's own",
    "cluster_secret": ":4: permissions.secrets[0]: 'acme-airflow/cluster/jwt-secret' is the "
    "toolkit's",
    "dag_identity_parameter": ":6: permissions.statements[0].resources[0]: this is the cluster's",
    "workers_log_group": ":6: permissions.statements[0].resources[0]: this is the cluster's own",
    "pass_toolkit_role": ":5: permissions.pass_roles[0].role: 'acme-airflow/dags/acme-airflow--"
    "dag-sales-daily-c2237c' is one of a cluster's roles",
    "prefix_without_slash_statement": ":6: permissions.statements[0].resources[0]: "
    "'arn:aws:s3:::acme-raw/sales*' matches more than one resource",
    "start_service": ":5: permissions.statements[0].actions[0]: ecs:CreateService (Write) can "
    "escalate privileges",
    "unknown_bundle": ":3: bundle: bundle 'sales' is not configured; this deployment's is 'dags'",
    "escalation": ":5: permissions.statements[0].actions[0]: iam:AttachRolePolicy (Permissions "
    "management) can escalate privileges",
    "assume_role": ":5: permissions.statements[0].actions[0]: sts:AssumeRole (Write) can escalate",
    "kms_grant": ":5: permissions.statements[0].actions[0]: kms:CreateGrant (Permissions "
    "management) can escalate privileges",
    "untyped_pass_role": ":5: permissions.statements[0].actions[0]: iam:PassRole is granted "
    "through pass_roles only",
    "bad_arn": ":6: permissions.statements[0].resources[0]: 'ssm:parameter/x' is not an ARN",
    "wrong_partition": ":6: permissions.statements[0].resources[0]: 'arn:aws-cn:ssm:cn-north-1:"
    "111122223333:parameter/x': partition 'aws-cn' is not this deployment's (aws)",
    "resource_type_mismatch": ":6: permissions.statements[0].resources: no resource here is of a "
    "type s3:GetObject takes",
    "prefix_without_slash": ":5: permissions.s3[0].prefix: 'sales' is not an S3 key prefix ending",
    "prefix_wildcard": ":5: permissions.s3[0].prefix: 'sales/*/' contains a wildcard",
    "bucket_wildcard": ":5: permissions.s3[0].bucket: 'acme-*' is not an S3 bucket name",
    "bad_access": ":5: permissions.s3[0].access: Input should be 'read', 'write' or 'read_write'",
    "logs_bucket": ":5: permissions.s3[0].bucket: this bucket is the toolkit's (a deployment's",
    # a whole-bucket grant (no prefix) of a bucket of the toolkit's, this deployment's or another's
    "logs_bucket_whole": ":5: permissions.s3[0].bucket: this bucket is the toolkit's (a "
    "deployment's task logs, DAG code or templates); each DAG already gets exactly what it needs "
    "of its own",
    "dags_bucket_whole": ":5: permissions.s3[0].bucket: this bucket is the toolkit's (a "
    "deployment's task logs, DAG code or templates); each DAG already gets exactly what it needs "
    "of its own",
    "artifacts_bucket_whole": ":5: permissions.s3[0].bucket: this bucket is the toolkit's (a "
    "deployment's task logs, DAG code or templates); each DAG already gets exactly what it needs "
    "of its own",
    "other_deployments_bucket_whole": ":5: permissions.s3[0].bucket: this bucket is the toolkit's "
    "(a deployment's task logs, DAG code or templates); each DAG already gets exactly what it "
    "needs of its own",
    "other_deployments_secret": ":4: permissions.secrets[0]: 'acme-airflow-stg/cluster/database' "
    "is the toolkit's (any deployment's <name>/cluster/ and <name>/dags/",
    "secret_escapes_prefix": ":4: permissions.secrets[0]: 'acme-airflow/dags/sales_daily/"
    "salesforce' is the toolkit's",
    "secret_dotdot": ":4: permissions.secrets[0]: 'shared/../airflow/connections/x': empty, '.' "
    "or '..' path segments are not allowed",
    "secret_wildcard": ":4: permissions.secrets[0]: 'shared/*' contains a wildcard",
    "bad_kms_arn": ":5: permissions.kms[0].key_arn: 'arn:aws:kms:us-east-1:111122223333:alias/*' "
    "is not a KMS key ARN",
    "invalid_fargate_pair": ":3: worker: memory 4096 MiB does not fit cpu 256 on Fargate",
    "invalid_cpu": ":3: worker: cpu 300 is not a Fargate size",
    "min_over_max": ":3: worker: min_count (3) is greater than max_count (2)",
    "bad_cidr": ":5: network.egress[0].cidr: '10.0.0.300/8' is not an IPv4 CIDR block",
    "cidr_host_bits": ":5: network.egress[0].cidr: '10.0.0.1/8' is not an IPv4 CIDR block",
    "ipv6_cidr": ":5: network.egress[0].cidr: '::/0' is not an IPv4 CIDR block",
    "bad_port": ":5: network.egress[0].port: Input should be less than or equal to 65535",
    "pass_role_bad_service": ":5: permissions.pass_roles[0].service: '*' is not a service",
    "athena_without_results": ":4: permissions.athena.results: required field is missing",
    # Redshift Data: a cluster or a workgroup (by name and id), and one way to log in
    "redshift_workgroup_without_id": ":5: permissions.redshift_data[0]: workgroup needs "
    "workgroup_id: IAM names a workgroup by its id (aws redshift-serverless get-workgroup "
    "--workgroup-name reports --query workgroup.workgroupId)",
    "redshift_cluster_and_workgroup": ":5: permissions.redshift_data[0]: name either cluster "
    "(provisioned) or workgroup (Redshift Serverless)",
    "redshift_cluster_without_login": ":5: permissions.redshift_data[0]: a cluster needs either "
    "db_user (temporary credentials) or secret (Secrets Manager), not both",
    "redshift_workgroup_db_user": ":5: permissions.redshift_data[0]: db_user is for a cluster: on "
    "a workgroup the database user is the task's role (IAMR:<role>), or the secret's",
    "redshift_workgroup_name_as_id": ":5: permissions.redshift_data[0].workgroup_id: 'reports' is "
    "not a Redshift Serverless workgroup id (a lowercase UUID)",
    # the Data API's secret is never the cluster's, another DAG's or another deployment's
    "redshift_cluster_secret": ":5: permissions.redshift_data[0].secret: "
    "'acme-airflow/cluster/database'" + REDSHIFT_SECRET_IS_THE_TOOLKITS,
    "redshift_other_dags_secret": ":5: permissions.redshift_data[0].secret: "
    "'acme-airflow/dags/sales_daily/redshift'" + REDSHIFT_SECRET_IS_THE_TOOLKITS,
    "redshift_other_deployments_secret": ":5: permissions.redshift_data[0].secret: "
    "'acme-airflow-stg/dags/x/y'" + REDSHIFT_SECRET_IS_THE_TOOLKITS,
    "redshift_secret_wildcard": ":5: permissions.redshift_data[0].secret: 'shared/*' contains a "
    "wildcard",
}

CONFIG = "config/foundation.yaml"
CONFIG_CASES = {
    "unknown_key": ":9: databse: unknown field 'databse'; did you mean 'database'?",
    "bad_region": ":2: region: 'US East' is not an AWS region name",
    "unknown_region": ":2: region: 'mars-east-1' is not a region of any AWS partition (botocore "
    f"{botocore.__version__} lists 46 for ecs; a region launched since needs a newer "
    "botocore); did you mean 'us-east-1'?",
    "bad_account": ":3: account: '1234' is not a 12-digit AWS account id",
    "bad_name": ":1: name: 'Acme_Airflow' is not a lowercase name",
    "http_without_opt_in": ":6: web: give certificate_arn for HTTPS, or set allow_http: true",
    "bad_allowed_cidr": ":7: web.allowed_cidrs[0]: '10.0.0.0/33' is not an IPv4 CIDR block",
    "git_url_with_token": ":11: dags.url: 'https://x-token:ghp_abc@github.com/acme/dags.git' is "
    "not an https git URL without credentials",
    "git_ssh_url": ":11: dags.url: 'git@github.com:acme/dags.git' is not an https git URL",
    "sg_name": ":1: name: 'sg-prod' is not a lowercase name",
    "cidr_too_small": ":4: network: cidr 10.0.0.0/24 holds 256 addresses; 2 AZs need 9,216",
    "no_nat": ":7: network.nat_gateways: Input should be greater than or equal to 1",
    "public_alb_without_public_subnets": ":1: web.internal: false needs network.public_subnet_ids",
    "git_without_url": ":9: dags: bundle: git needs url",
    "vpc_and_cidr": ":4: network: give either vpc_id (use a VPC) or cidr/nat_gateways",
    "one_az": ":5: network.availability_zones: List should have at least 2 items",
    "escalation_for_unknown_dag": ":10: iam.allow_escalation_for[0]: 'no_such_dag' has no manifest",
    "bad_executor": ":10: airflow.executor: Input should be 'ecs' or 'celery'",
    "simple_users_without_secret": ":9: web.auth: more than one user needs passwords_secret",
    "ldap_in_the_clear": ":11: web.auth.ldap: ldap:// without use_tls: true would send the bind "
    "password and every user's password in the clear",
    "unknown_auth_manager": ":9: web.auth: Input tag 'kerberos' found using 'manager' does not "
    "match any of the expected tags: 'simple', 'fab'",
    "unknown_simple_role": ":11: web.auth.users.alice: Input should be 'viewer', 'user', 'op' or "
    "'admin'",
    "worker_defaults_bad_pair": ":9: worker_defaults: memory 1024 MiB does not fit cpu 1024",
    "aws_tag_key": ":10: tags.aws:owner: 'aws:owner' is not a tag key (1-128 chars, not 'aws:' "
    "or 'foundation:': the toolkit's own, foundation:project scopes the CloudFormation service "
    "role)",
    "endpoints_without_prefix_list": ":4: network: private_endpoints: true needs s3_prefix_list_id",
    "endpoints_in_existing_vpc": ":4: network: private_endpoints: true builds the endpoints into "
    "the VPC this toolkit creates",
    "endpoints_with_public_image": ":5: airflow.image: network.private_endpoints: true leaves "
    "tasks no way to a public registry",
    "endpoints_with_git_bundle": ":15: dags.bundle: network.private_endpoints: true leaves tasks "
    "no way to a git host",
    "bad_role_path": ":11: iam.role_path: 'platform' is not an IAM path",
    # two deployments in one account with different role paths and prefixes share no role
    "role_path_dags": ":11: iam.role_path: '/platform/acme-airflow/dags/' is not an IAM path "
    "of at most 62 characters: '/' or '/a/b/' (letters, digits, +=,.@_-), without '--' or a "
    "'dags' segment (a deployment's DAG roles live under <path><name>/dags/)",
    "role_prefix_open": ":11: iam.role_name_prefix: 'org-' is not a role name prefix of at most "
    "16 characters (letters, digits, +=,.@_-) without '--', ending in one of + = , . @ _ so "
    "that no deployment's name can continue it ('org_')",
    "foundation_tag_key": ":10: tags.foundation:project: 'foundation:project' is not a tag key "
    "(1-128 chars, not 'aws:' or 'foundation:': the toolkit's own, foundation:project scopes "
    "the CloudFormation service role)",
    "bad_boundary": ":11: iam.permissions_boundary_arn: 'arn:aws:iam::111122223333:role/not-a-"
    "policy' is not an IAM managed policy ARN",
    # trigger classes a task may defer to (airflow.triggers): checked statically, then imported
    # in a fresh interpreter of this environment's Airflow
    "trigger_not_a_classpath": ":11: airflow.triggers[0]: 'subprocess; os.system' is not a "
    "trigger's exact classpath (package.module.ClassName)",
    "trigger_amazon": ":11: airflow.triggers[0]: airflow.providers.amazon.aws.triggers.s3."
    "S3KeyTrigger may not be deferred to: the amazon provider's triggers call AWS as the "
    "triggerer, not as the DAG; run the operator with deferrable=False on the DAG's own worker",
    "trigger_callback": ":11: airflow.triggers[0]: airflow.triggers.callback.CallbackTrigger may "
    "not be deferred to: it imports and runs any callable its kwargs name, in the triggerer",
    "trigger_listed_by_default": ":11: airflow.triggers[0]: airflow.providers.standard.triggers."
    "temporal.DateTimeTrigger is allowed by default",
    "trigger_not_a_trigger": ":12: airflow.triggers[1]: subprocess.Popen is not a trigger (a "
    "BaseTrigger subclass)",
    "trigger_does_not_import": ":11: airflow.triggers[0]: airflow.providers.nothing.triggers."
    "NoTrigger does not import here (ModuleNotFoundError: No module named "
    "'airflow.providers.nothing')",
    "trigger_loads_aws": ":11: airflow.triggers[0]: tests.fixtures.triggers.aws_trigger."
    "AwsTrigger loads botocore: it can call AWS with the triggerer's identity",
    "trigger_alias": ":11: airflow.triggers[0]: tests.fixtures.triggers.aws_trigger.Alias is an "
    "alias of tests.fixtures.triggers.aws_trigger.AwsTrigger: name the class where it is "
    "defined, as its serialize() does",
}


def test_every_fixture_has_a_case() -> None:
    assert {p.stem for p in (FIXTURES / "manifests").glob("*.yaml")} == set(MANIFEST_CASES)
    assert {p.stem for p in (FIXTURES / "config").glob("*.yaml")} == set(CONFIG_CASES)


def assert_refused(project: ProjectDir, file: str, expected: str) -> None:
    before = sorted(p.relative_to(project.root) for p in project.root.rglob("*"))
    result = project.run("validate")
    assert result.exit_code == 2, result.stdout
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    assert f"{file}{expected}" in result.stderr.replace(str(project.root) + "/", ""), result.stderr
    assert result.stdout == ""
    assert sorted(p.relative_to(project.root) for p in project.root.rglob("*")) == before


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_invalid_manifest(empty_project: ProjectDir, case: str) -> None:
    shutil.copy(FIXTURES / "manifests" / f"{case}.yaml", empty_project.root / MANIFEST)
    assert_refused(empty_project, MANIFEST, MANIFEST_CASES[case])


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_invalid_config(project: ProjectDir, case: str) -> None:
    shutil.copy(FIXTURES / "config" / f"{case}.yaml", project.root / CONFIG)
    assert_refused(project, CONFIG, CONFIG_CASES[case])


def test_oversized_file_is_refused_before_it_is_read(empty_project: ProjectDir) -> None:
    path = empty_project.root / MANIFEST
    with path.open("w") as f:
        f.write("dag_id: bad\nowner: x\ndescription: '")
        f.write("x" * (20 * 1024 * 1024))
        f.write("'\n")
    size = path.stat().st_size
    assert_refused(empty_project, MANIFEST, f": file is {size:,} bytes; the limit is 1,048,576")


def test_non_utf8_bytes_name_their_line(empty_project: ProjectDir) -> None:
    (empty_project.root / MANIFEST).write_bytes(b"dag_id: bad\nowner: \xff\xfe\n")
    assert_refused(empty_project, MANIFEST, ":2: file is not valid UTF-8")


@pytest.mark.parametrize("levels", [33, 5000])  # the toolkit's limit; libyaml's (1000)
def test_deep_nesting_is_refused(empty_project: ProjectDir, levels: int) -> None:
    (empty_project.root / MANIFEST).write_text("dag_id: bad\nx: " + "[" * levels + "]" * levels)
    assert_refused(empty_project, MANIFEST, ":2: YAML nesting is deeper than 32 levels")


def test_control_characters_are_refused(empty_project: ProjectDir) -> None:
    (empty_project.root / MANIFEST).write_bytes(b"dag_id: bad\nowner: a\x00b\n")
    assert_refused(empty_project, MANIFEST, ":2: character '\\x00' is not allowed")


def test_dag_ids_that_differ_only_in_case_collide(empty_project: ProjectDir) -> None:
    empty_project.manifest("Sales", "dag_id: Sales\nowner: a\n")
    empty_project.manifest("sales", "dag_id: sales\nowner: b\n")
    assert_refused(
        empty_project,
        "dag_permissions/sales.yaml",
        ":1: dag_id: 'sales' and 'Sales' differ only in case",
    )


def test_every_problem_is_reported_at_once(empty_project: ProjectDir) -> None:
    empty_project.manifest("a", "dag_id: a\nowner: x\nworker: {cpu: 3}\n")
    empty_project.manifest("b", "dag_id: b\n")
    result = empty_project.run("validate")
    assert result.exit_code == 2
    assert "a.yaml:3: worker: cpu 3 is not a Fargate size" in result.stderr
    assert "b.yaml:1: owner: required field is missing" in result.stderr
    assert "2 problem(s); nothing was written." in result.stderr


def test_dag_ids_whose_derived_names_collide_are_refused(
    empty_project: ProjectDir, monkeypatch
) -> None:
    import foundation.naming

    # Force a hash collision: every DAG gets the same 6-character hash.
    monkeypatch.setattr(foundation.naming, "dag_hash", lambda dag_id: "abc123")
    empty_project.manifest("sales_eu", "dag_id: sales_eu\nowner: a\n")
    empty_project.manifest("sales.eu", "dag_id: sales.eu\nowner: b\n")
    assert_refused(
        empty_project,
        "dag_permissions/sales_eu.yaml",
        ":1: dag_id: derives the same AWS names as 'sales.eu'",
    )


def test_config_and_manifest_problems_are_reported_together(project: ProjectDir) -> None:
    config = project.root / "config" / "foundation.yaml"
    config.write_text(config.read_text().replace("region: us-east-1", "region: nowhere"))
    project.manifest("housekeeping", "dag_id: housekeeping\nowner: x\nworkr: {}\n")
    result = project.run("validate")
    assert result.exit_code == 2
    assert "config/foundation.yaml:3: region: 'nowhere' is not an AWS region name" in result.stderr
    assert "housekeeping.yaml:3: workr: unknown field 'workr'" in result.stderr
