"""The shipped example, synthesized once: snapshots of every template, then per-component checks."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from foundation.airflow import runtime_files
from foundation.airflow.settings import AIRFLOW_PORT
from foundation.naming import DagNames, Namespace, worker_shard
from foundation.project import load_project, stack_loads
from stacks.app import shards
from tests.conftest import ROOT, ProjectDir, identity_resources

PROJECT = load_project(ROOT)
NAME = PROJECT.deployment.name
NS = PROJECT.deployment.namespace
WORKER_STACKS = [f"{NAME}-workers-{shard:02d}" for shard in shards(PROJECT)]
STACKS = [f"{NAME}-network", f"{NAME}-data", f"{NAME}-core", *WORKER_STACKS]


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def env_of(container: dict) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def test_validate_counts_each_worker_stacks_resources_as_synth_makes_them(templates) -> None:
    counted = {
        int(stack.rsplit("-", 1)[1]): len(t["Resources"])
        for stack, t in templates.items()
        if "-workers-" in stack
    }
    assert counted == dict(stack_loads(PROJECT, PROJECT.deployment.worker_stacks))


def test_synth_passes_every_check_and_writes_the_assembly(example_synth) -> None:
    assert example_synth.written, [str(f) for f in example_synth.errors]
    assert example_synth.errors == []
    assert sorted(s.name for s in example_synth.stacks) == sorted(STACKS)
    assert (example_synth.out / "manifest.json").is_file()
    assert not list(example_synth.out.parent.glob(".synth-*")), "staging folder left behind"
    airflow = example_synth.out / "airflow"
    assert sorted(p.name for p in airflow.iterdir()) == [
        "airflow_foundation_executor.py",
        "airflow_local_settings.py",
        "foundation_identity.py",
        "foundation_names.py",
        "foundation_refusal.py",
        "foundation_roles.py",
        "foundation_sealed.py",
        "foundation_start.py",
        "foundation_web.py",
        "foundation_workload.py",
        "plugins",
        "webserver_config.py",
    ]
    assert sorted(p.name for p in (airflow / "plugins").iterdir()) == [
        "foundation_deferral.py",
        "foundation_execution_api.py",
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_template_snapshot(templates: dict, stack: str, snapshot) -> None:
    assert templates[stack] == snapshot(extension_class=JSONSnapshotExtension)


def test_no_stack_needs_bootstrap_or_lookups(example_synth, templates: dict) -> None:
    manifest = json.loads((example_synth.out / "manifest.json").read_text())
    assert "missing" not in manifest
    for template in templates.values():
        assert "BootstrapVersion" not in template.get("Parameters", {})
        assert "CDKMetadata" not in template["Resources"]


def test_core_never_references_a_worker_stack(templates: dict) -> None:
    core = json.dumps(templates[f"{NAME}-core"])
    for stack in WORKER_STACKS:
        assert stack not in core
        outputs = templates[stack].get("Outputs", {})
        assert not any("Export" in o for o in outputs.values()), "worker stacks export nothing"


def test_every_dag_has_its_own_identity(templates: dict) -> None:
    seen = set()
    for dag in PROJECT.dags:
        names = DagNames(NAME, dag.dag_id)
        stack = next(
            t for s, t in templates.items() if s in WORKER_STACKS and names.role in json.dumps(t)
        )
        roles = [
            r
            for r in resources(stack, "AWS::IAM::Role").values()
            if r["Properties"]["RoleName"] == names.role
        ]
        (role,) = roles
        props = role["Properties"]
        assert props["Path"] == f"/{NAME}/dags/"
        (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert trust["Condition"] == {
            "StringEquals": {"aws:SourceAccount": PROJECT.deployment.account}
        }
        assert {"Key": "foundation:dag_id", "Value": dag.dag_id} in props["Tags"]
        (task_def,) = [
            t
            for t in resources(stack, "AWS::ECS::TaskDefinition").values()
            if t["Properties"]["Family"] == names.task_family
        ]
        size = dag.manifest.worker or PROJECT.deployment.worker_defaults
        assert task_def["Properties"]["Cpu"] == str(size.cpu)
        assert task_def["Properties"]["Memory"] == str(size.memory)
        assert {"Key": "foundation:dag_id", "Value": dag.dag_id} in task_def["Properties"]["Tags"]
        (container,) = task_def["Properties"]["ContainerDefinitions"]
        env = env_of(container)
        secrets = {x["Name"] for x in container.get("Secrets", [])}
        assert secrets == set(), "the S3 bundle needs no key: the task role reads it"
        assert env["CONNECTION_CHECK_MAX_COUNT"] == "0"
        assert not any("SQL_ALCHEMY" in k or "JWT" in k or "FERNET" in k for k in env)
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            f"http://api-server.{NAME}.internal"
        )
        kwargs = json.loads(env["AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS"])
        assert kwargs["connections_prefix"] == f"{NAME}/dags/{dag.dag_id}/connections"
        policies = [
            p
            for p in resources(stack, "AWS::IAM::ManagedPolicy").values()
            if p["Properties"]["ManagedPolicyName"].startswith(names.role)
        ]
        generated = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
        assert len(generated) == len(dag.policy.statements)
        (param,) = [
            p
            for p in resources(stack, "AWS::SSM::Parameter").values()
            if p["Properties"]["Name"] == Namespace(NAME).identity_parameter(dag.dag_id)
        ]
        assert {"foundation:dag_id": dag.dag_id}.items() <= param["Properties"]["Tags"].items()
        seen.add(names.role.lower())
    assert len(seen) == len(PROJECT.dags)


def test_only_a_dags_own_role_reads_its_secrets_and_no_component_has_a_backend(
    templates: dict,
) -> None:
    """The Execution API hands a task any connection the api-server can resolve: the api-server
    must have no secrets backend, and no role but the DAG's may read its prefix."""
    from foundation.iam.effective import roles_of
    from foundation.iam.evaluate import Request, allows

    deployment = PROJECT.deployment
    pseudo = {"AWS::Partition": "aws", "AWS::Region": deployment.region}
    roles = roles_of(templates, {}, pseudo | {"AWS::AccountId": deployment.account})
    prefix = f"arn:aws:secretsmanager:{deployment.region}:{deployment.account}:secret:"
    for dag in PROJECT.dags:
        secret = f"{prefix}{NAME}/dags/{dag.dag_id}/connections/warehouse-AbCdEf"
        readers = {
            r.name
            for r in roles
            if allows(r.statements(), Request("secretsmanager:GetSecretValue", secret))
        }
        assert readers == {deployment.dag_names(dag.dag_id).role}, dag.dag_id
    core = templates[f"{NAME}-core"]
    for task_def in resources(core, "AWS::ECS::TaskDefinition").values():
        env = env_of(task_def["Properties"]["ContainerDefinitions"][0])
        assert not {"AIRFLOW__SECRETS__BACKEND", "AIRFLOW__WORKERS__SECRETS_BACKEND"} & set(env)


def test_exactly_the_bundle_readers_may_make_the_s3_bundles_requests(templates: dict) -> None:
    """The amazon provider's S3DagBundle (9.39.0) calls HeadBucket (s3:ListBucket with no
    s3:prefix), lists the bucket's root with delimiter "/", then syncs `dags/`. Evaluated with
    the toolkit's IAM evaluation: moto ignores the s3:prefix condition that once refused it."""
    from foundation.iam.effective import roles_of
    from foundation.iam.evaluate import Request, allows

    deployment = PROJECT.deployment
    bucket = f"arn:aws:s3:::{deployment.dags_bucket}"
    bundle_requests = [
        Request("s3:ListBucket", bucket),
        Request("s3:ListBucket", bucket, {"s3:prefix": "", "s3:delimiter": "/"}),
        Request("s3:ListBucket", bucket, {"s3:prefix": "dags/"}),
        Request("s3:GetObject", f"{bucket}/dags/sales_daily.py"),
    ]
    pseudo = {"AWS::Partition": "aws", "AWS::Region": deployment.region}
    roles = roles_of(templates, {}, pseudo | {"AWS::AccountId": deployment.account})
    readers = {r.name for r in roles if all(allows(r.statements(), q) for q in bundle_requests)}
    dag_roles = {deployment.dag_names(dag.dag_id).role for dag in PROJECT.dags}
    assert readers == dag_roles | {f"{NAME}--dag-processor"}
    logs = f"arn:aws:s3:::{deployment.logs_bucket}"
    assert not any(allows(r.statements(), Request("s3:ListBucket", logs)) for r in roles)


def test_scheduler_holds_exactly_the_two_prefix_grants(templates: dict) -> None:
    core = templates[f"{NAME}-core"]
    (policy,) = [
        p
        for k, p in resources(core, "AWS::IAM::Policy").items()
        if k.startswith("SchedulerTaskRole")
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_action = {json.dumps(s["Action"]): s for s in statements}
    run_task = by_action['"ecs:RunTask"']
    assert (
        run_task["Resource"]
        == f"arn:aws:ecs:us-east-1:111122223333:task-definition/{NAME}--worker-*:*"
    )
    assert run_task["Condition"] == {
        "ArnEquals": {"ecs:cluster": f"arn:aws:ecs:us-east-1:111122223333:cluster/{NAME}"}
    }
    pass_role = by_action['"iam:PassRole"']
    assert pass_role["Resource"] == [
        f"arn:aws:iam::111122223333:role/{NAME}/dags/*",
        f"arn:aws:iam::111122223333:role/{NAME}--worker-execution",
    ]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    # no list of DAGs anywhere in the scheduler's grants
    text = json.dumps(statements)
    assert not any(dag.dag_id in text for dag in PROJECT.dags)


def test_the_dag_processor_role_reads_the_dag_bundle_and_nothing_else(templates: dict) -> None:
    """DAG files at parse time run with the dag-processor's task role (the container's
    credentials endpoint): it reads the bundle they come from, no secret, no other bucket."""
    core = templates[f"{NAME}-core"]
    documents = [
        p["Properties"]["PolicyDocument"]
        for p in [
            *resources(core, "AWS::IAM::Policy").values(),
            *resources(core, "AWS::IAM::ManagedPolicy").values(),
        ]
        if "DagProcessorTaskRole" in json.dumps(p["Properties"].get("Roles", []))
    ]
    bucket = f"arn:aws:s3:::{PROJECT.deployment.dags_bucket}"
    assert [(s["Action"], s["Resource"]) for d in documents for s in d["Statement"]] == [
        ("s3:GetObject", f"{bucket}/dags/*"),
        ("s3:ListBucket", bucket),
    ]


def test_the_triggerer_holds_no_aws_permission(templates: dict) -> None:
    """Triggers run under the triggerer's role: it can do nothing on AWS, so no trigger acts on
    AWS as anyone (deferral to AWS triggers is refused besides)."""
    core = templates[f"{NAME}-core"]
    policies = [
        p
        for p in [
            *resources(core, "AWS::IAM::Policy").values(),
            *resources(core, "AWS::IAM::ManagedPolicy").values(),
        ]
        if "TriggererTaskRole" in json.dumps(p["Properties"].get("Roles", []))
    ]
    assert policies == []
    [role] = [
        r
        for r in resources(core, "AWS::IAM::Role").values()
        if r["Properties"]["RoleName"] == f"{NAME}--triggerer"
    ]
    assert "Policies" not in role["Properties"] and "ManagedPolicyArns" not in role["Properties"]
    [task_def] = [
        t
        for t in resources(core, "AWS::ECS::TaskDefinition").values()
        if t["Properties"]["Family"] == f"{NAME}--triggerer"
    ]
    env = env_of(task_def["Properties"]["ContainerDefinitions"][0])
    assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "False"


def test_signing_key_and_database_only_where_needed(templates: dict) -> None:
    core = templates[f"{NAME}-core"]
    secrets_by_family, fernet = {}, set()
    for task_def in resources(core, "AWS::ECS::TaskDefinition").values():
        (container,) = task_def["Properties"]["ContainerDefinitions"]
        family = task_def["Properties"]["Family"]
        secrets_by_family[family] = {
            s["Name"] for s in container.get("Secrets", []) if not s["Name"][-1].isdigit()
        }
        env = env_of(container)
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"].startswith("python -c")
        if "AIRFLOW__CORE__FERNET_KEY_CMD" in env:
            assert env["AIRFLOW__CORE__FERNET_KEY_CMD"].startswith("python -c")
            fernet.add(family)
    jwt = "AIRFLOW__API_AUTH__JWT_SECRET"
    assert {f for f, s in secrets_by_family.items() if jwt in s} == {
        f"{NAME}--api-server",
        f"{NAME}--scheduler",
    }
    assert all("FOUNDATION_DB_SECRET" in s for s in secrets_by_family.values())
    # The dag-processor decrypts nothing of the cluster's: no Fernet key where DAG files parse.
    everything = set(secrets_by_family)
    assert fernet == everything - {f"{NAME}--dag-processor"}
    assert {f for f, s in secrets_by_family.items() if "FOUNDATION_FERNET_MATERIAL" in s} == fernet
    # The triggerer: the database and the Fernet material, nothing else.
    assert secrets_by_family[f"{NAME}--triggerer"] == {
        "FOUNDATION_DB_SECRET",
        "FOUNDATION_FERNET_MATERIAL",
    }


def test_the_components_running_dag_authors_code_start_sealed(templates: dict) -> None:
    """The dag-processor and the triggerer: the non-dumpable init in place of dumb-init, and
    foundation_sealed.py in place of `airflow`; the other components as the image starts them,
    each service's through foundation_start.py."""
    core = templates[f"{NAME}-core"]
    config = "/opt/airflow/config"
    sealed = f"exec python {config}/{runtime_files.SEALED} --wait-for-migrations 3600"
    start = f"exec python {config}/{runtime_files.START} --wait-for-migrations 3600"
    lasts = {}
    for task_def in resources(core, "AWS::ECS::TaskDefinition").values():
        (container,) = task_def["Properties"]["ContainerDefinitions"]
        component = task_def["Properties"]["Family"].removeprefix(f"{NAME}--")
        lasts[component] = container["Command"][2].split(" && ")[-1]
        checks = {e["Name"]: e["Value"] for e in container["Environment"]}.get(
            "CONNECTION_CHECK_MAX_COUNT"
        )
        if component in ("dag-processor", "triggerer"):
            assert container["EntryPoint"] == runtime_files.init_entry_point()
        else:
            assert "EntryPoint" not in container
        # every service waits in its own process (foundation_start.py), not the entrypoint's
        # `airflow db check`, which only the migration keeps (test_component_start.py)
        assert checks == (None if component == "db-migrate" else "0"), component
    assert lasts == {
        "api-server": f"{start} api-server",
        "scheduler": f"{start} scheduler",
        "dag-processor": f"{sealed} dag-processor",
        "triggerer": f"{sealed} triggerer",
        "db-migrate": "exec airflow db migrate",
    }


def test_no_plaintext_secret_in_any_template(templates: dict) -> None:
    for name, template in templates.items():
        text = json.dumps(template)
        assert not re.search(r'"(Password|SecretString|MasterUserPassword)":\s*"', text), name
        for secret in resources(template, "AWS::SecretsManager::Secret").values():
            assert "GenerateSecretString" in secret["Properties"]


def test_data_is_encrypted_and_kept(templates: dict) -> None:
    data = templates[f"{NAME}-data"]
    (db,) = resources(data, "AWS::RDS::DBInstance").values()
    assert db["Properties"]["StorageEncrypted"] is True
    assert db["Properties"]["DeletionProtection"] is True
    assert db["DeletionPolicy"] == "Snapshot" and db["UpdateReplacePolicy"] == "Snapshot"
    assert db["Properties"]["PubliclyAccessible"] is False
    for bucket in resources(data, "AWS::S3::Bucket").values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert (
            bucket["DeletionPolicy"] == "RetainExceptOnCreate"
        )  # kept, except when its first create fails
    for policy in resources(data, "AWS::S3::BucketPolicy").values():
        (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_web_access_only_from_allowed_cidrs_over_https(templates: dict) -> None:
    core = templates[f"{NAME}-core"]
    (alb,) = resources(core, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert alb["Properties"]["Scheme"] == "internal"
    (listener,) = resources(core, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["Protocol"] == "HTTPS" and listener["Properties"]["Port"] == 443
    alb_sg = next(
        g
        for g in resources(core, "AWS::EC2::SecurityGroup").values()
        if g["Properties"]["GroupDescription"] == "Load balancer"
    )
    ingress = alb_sg["Properties"]["SecurityGroupIngress"]
    assert [(r["CidrIp"], r["FromPort"]) for r in ingress] == [("10.0.0.0/8", 443)]


def test_synth_refuses_invalid_input_and_writes_nothing(project: ProjectDir) -> None:
    project.manifest("housekeeping", "dag_id: housekeeping\nowner: x\nworker: {cpu: 3}\n")
    result = project.run("synth")
    assert result.exit_code == 2
    assert "housekeeping.yaml:3: worker: cpu 3 is not a Fargate size" in result.stderr
    assert not (project.root / "cdk.out").exists()


def test_cdk_nag_ran_on_every_stack_with_every_finding_acknowledged(example_synth) -> None:
    report = json.loads((example_synth.out / "validation-report.json").read_text())
    assert report["pluginReports"] == []  # the plugin reports only unacknowledged findings
    assert not [f for f in example_synth.findings if f.rule in ("FA301", "FA302")]


def test_an_unacknowledged_cdk_nag_finding_fails_the_synth(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stacks import nag

    unrelated = nag.Acknowledgement("AwsSolutions-RDS2", "not the finding this test leaves open")
    monkeypatch.setitem(nag.CLUSTER, "database_port", unrelated)
    result = project.run("synth")
    assert result.exit_code == 2
    assert "FA301 acme-airflow-data/Database/Resource: AwsSolutions-RDS11" in result.stderr
    assert not (project.root / "cdk.out").exists()


def test_the_vpc_logs_its_flows(templates: dict) -> None:
    (flow_log,) = resources(templates[f"{NAME}-network"], "AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    (group,) = resources(templates[f"{NAME}-network"], "AWS::Logs::LogGroup").values()
    assert group["Properties"]["RetentionInDays"] == 90


def test_a_failing_check_keeps_the_previous_assembly(project: ProjectDir) -> None:
    out = project.root / "cdk.out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / "previous").write_text("kept")
    lines = ["dag_id: big", "owner: x", "permissions:", "  s3:"] + [
        f"    - {{bucket: bucket-{i:04d}-long-name, prefix: a/long/prefix/{i}/, access: read}}"
        for i in range(400)
    ]
    project.manifest("big", "\n".join(lines) + "\n")
    result = project.run("synth")
    assert result.exit_code == 2
    assert "needs" in result.stderr and "managed policies" in result.stderr
    assert "the assembly was not written" in result.stderr
    assert (out / "previous").read_text() == "kept"
    assert [p.name for p in project.root.iterdir() if p.name.startswith(".synth-")] == []


ALTERNATIVE_CONFIG = """
name: acme-alt
region: eu-west-1
account: "111122223333"
airflow: {unmanaged_dags: baseline}
network:
  vpc_id: vpc-0abc1234def567890
  availability_zones: [eu-west-1a, eu-west-1b]
  private_subnet_ids: [subnet-0aaa1111bbbb2222c, subnet-0ddd3333eeee4444f]
  public_subnet_ids: [subnet-0aaa1111bbbb2222d, subnet-0ddd3333eeee4444e]
web: {internal: false, allow_http: true, allowed_cidrs: [203.0.113.0/24]}
dags: {bundle: s3}
"""


@pytest.fixture(scope="module")
def alternative(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """An existing VPC, plain HTTP on a public ALB, an S3 DAG bundle, unmanaged DAGs allowed."""
    root = tmp_path_factory.mktemp("alternative")
    (root / "config").mkdir()
    (root / "config" / "foundation.yaml").write_text(ALTERNATIVE_CONFIG)
    (root / "dag_permissions").mkdir()
    (root / "dag_permissions" / "etl.yaml").write_text("dag_id: etl\nowner: x\n")
    result = ProjectDir(root).run("synth")
    assert result.exit_code == 0, result.stderr
    out = root / "cdk.out"
    return {
        p.name.removesuffix(".template.json"): json.loads(p.read_text())
        for p in out.glob("*.template.json")
    }


def test_existing_vpc_is_used_by_id_without_lookups(alternative: dict) -> None:
    assert resources(alternative["acme-alt-network"], "AWS::EC2::VPC") == {}
    text = json.dumps(alternative)
    assert "vpc-0abc1234def567890" in text and "subnet-0aaa1111bbbb2222c" in text


def test_plain_http_only_when_asked_and_only_from_allowed_cidrs(alternative: dict) -> None:
    core = alternative["acme-alt-core"]
    (alb,) = resources(core, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert alb["Properties"]["Scheme"] == "internet-facing"
    (listener,) = resources(core, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert (listener["Properties"]["Protocol"], listener["Properties"]["Port"]) == ("HTTP", 80)
    alb_sg = next(
        g
        for g in resources(core, "AWS::EC2::SecurityGroup").values()
        if g["Properties"]["GroupDescription"] == "Load balancer"
    )
    ingress = alb_sg["Properties"]["SecurityGroupIngress"]
    assert [(r["CidrIp"], r["FromPort"]) for r in ingress] == [("203.0.113.0/24", 80)]


def test_s3_bundle_is_read_by_the_dag_processor_and_each_dag(alternative: dict) -> None:
    bucket = "acme-alt-dags-111122223333-eu-west-1"
    (data_bucket,) = [
        b
        for b in resources(alternative["acme-alt-data"], "AWS::S3::Bucket").values()
        if b["Properties"]["BucketName"] == bucket
    ]
    assert data_bucket["DeletionPolicy"] == "RetainExceptOnCreate"
    core = json.dumps(alternative["acme-alt-core"])
    assert f"arn:aws:s3:::{bucket}/dags/*" in core
    worker = json.dumps(next(t for n, t in alternative.items() if "-workers-" in n))
    assert f"arn:aws:s3:::{bucket}/dags/*" in worker
    assert '\\"classpath\\": \\"airflow.providers.amazon.aws.bundles.s3.S3DagBundle\\"' in worker


def test_unmanaged_dags_can_run_under_an_identity_with_no_grants(alternative: dict) -> None:
    name = "acme-alt"
    core = alternative[f"{name}-core"]
    (role,) = [
        r
        for r in resources(core, "AWS::IAM::Role").values()
        if r["Properties"]["RoleName"] == f"{name}--dag-unmanaged"
    ]
    assert role["Properties"]["Path"] == f"/{name}/dags/"
    assert "ManagedPolicyArns" not in role["Properties"] and "Policies" not in role["Properties"]
    policies = [
        *resources(core, "AWS::IAM::Policy").values(),
        *resources(core, "AWS::IAM::ManagedPolicy").values(),
    ]
    granted = [
        s
        for p in policies
        if "UnmanagedDags" in json.dumps(p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    # nothing but reading the S3 DAG bundle, which even a DAG without grants needs
    assert {json.dumps(s["Action"]) for s in granted} == {'"s3:GetObject"', '"s3:ListBucket"'}
    assert all("acme-alt-dags-111122223333-eu-west-1" in json.dumps(s) for s in granted)
    (param,) = [
        p
        for p in resources(core, "AWS::SSM::Parameter").values()
        if p["Properties"]["Name"] == f"/{name}/dags/unmanaged/baseline"
    ]
    assert f"{name}--worker-unmanaged" in json.dumps(param["Properties"]["Value"])
    scheduler = next(
        t
        for t in resources(core, "AWS::ECS::TaskDefinition").values()
        if t["Properties"]["Family"] == f"{name}--scheduler"
    )
    env = env_of(scheduler["Properties"]["ContainerDefinitions"][0])
    assert env["FOUNDATION_UNMANAGED_DAGS"] == "baseline"


def test_synth_never_replaces_what_is_not_an_assembly(project: ProjectDir) -> None:
    for out in (project.root / "config", project.root, project.root.parent):
        result = project.run("synth", "--out", str(out))
        assert result.exit_code == 2
        assert "--out" in result.stderr and "Traceback" not in result.stderr
    assert (project.root / "config" / "foundation.yaml").is_file()


def test_private_endpoints_leave_tasks_only_the_endpoints(project: ProjectDir) -> None:
    config = project.root / "config" / "foundation.yaml"
    text = config.read_text().replace(
        "  nat_gateways: 2\n",
        "  nat_gateways: 2\n  private_endpoints: true\n  s3_prefix_list_id: pl-63a5400a\n",
    )
    ecr = "111122223333.dkr.ecr.us-east-1.amazonaws.com/airflow:3.3.2"
    text = text.replace("image: apache/airflow:3.3.2", f"image: {ecr}")
    config.write_text(text)  # the example's bundle is S3: tasks need no git host
    refused = project.run("synth")  # Data Pipeline has no VPC endpoint
    assert refused.exit_code == 2
    assert "inventory_events.yaml: permissions: datapipeline has no VPC endpoint" in refused.stderr
    manifest = project.root / "dag_permissions" / "inventory_events.yaml"
    egress = "    - {cidr: 52.0.0.0/8, port: 443, description: Data Pipeline API}\n"
    manifest.write_text(manifest.read_text() + "network:\n  egress:\n" + egress)
    result = project.run("synth")
    assert result.exit_code == 0, result.stderr
    out = project.root / "cdk.out"
    network = json.loads((out / f"{NAME}-network.template.json").read_text())
    endpoints = resources(network, "AWS::EC2::VPCEndpoint").values()
    kinds = sorted(e["Properties"].get("VpcEndpointType", "Gateway") for e in endpoints)
    assert kinds.count("Gateway") == 1
    names = {str(e["Properties"]["ServiceName"]).rsplit(".", 1)[-1] for e in endpoints}
    base = {"sqs", "logs", "api", "dkr", "secretsmanager", "sts", "kms", "ssm", "ecs"}
    used = {"athena", "glue", "elasticmapreduce", "redshift", "redshift-data", "sns", "lambda"}
    used.add("dynamodb")  # each service some example DAG is granted
    assert base | used <= names  # the cluster's, and those the example's DAGs are granted

    interface = [e for e in endpoints if e["Properties"].get("VpcEndpointType") == "Interface"]
    assert all(e["Properties"]["PrivateDnsEnabled"] for e in interface)
    core = json.loads((out / f"{NAME}-core.template.json").read_text())
    workers = next(
        k for k, r in resources(core, "AWS::EC2::SecurityGroup").items() if k.startswith("Workers")
    )
    egress = [
        r["Properties"]
        for r in resources(core, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [workers, "GroupId"]}
    ]
    assert sorted((e["FromPort"], e.get("DestinationPrefixListId", "sg")) for e in egress) == [
        (443, "pl-63a5400a"),
        (443, "sg"),
        (AIRFLOW_PORT, "sg"),
    ]
    assert not core["Resources"][workers]["Properties"].get("SecurityGroupEgress")
    open_egress = [
        rule
        for r in resources(core, "AWS::EC2::SecurityGroup").values()
        for rule in r["Properties"].get("SecurityGroupEgress", [])
        if rule.get("CidrIp") == "0.0.0.0/0"
    ] + [
        r
        for r in resources(core, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"].get("CidrIp") == "0.0.0.0/0"
    ]
    assert open_egress == []  # components too reach AWS only through the endpoints
    # both execution roles may pull the ECR image (tasks and components alike)
    for role in ("TaskExecutionRole", "WorkerExecutionRole"):
        statements = next(
            r["Properties"]["PolicyDocument"]["Statement"]
            for k, r in resources(core, "AWS::IAM::Policy").items()
            if k.startswith(f"{role}DefaultPolicy")
        )
        pulls = [s for s in statements if "ecr:BatchGetImage" in s["Action"]]
        assert pulls[0]["Resource"] == "arn:aws:ecr:us-east-1:111122223333:repository/airflow"
        assert any(s["Action"] == "ecr:GetAuthorizationToken" for s in statements)


def test_organisation_role_path_and_prefix_reach_every_role(project: ProjectDir) -> None:
    config = project.root / "config" / "foundation.yaml"
    config.write_text(
        config.read_text().replace(
            "  allow_escalation_for: []\n",
            "  allow_escalation_for: []\n"
            "  role_path: /platform/airflow/\n  role_name_prefix: org_\n",
        )
    )
    result = project.run("synth")
    assert result.exit_code == 0, result.stderr
    out = project.root / "cdk.out"
    built = {
        p.name.removesuffix(".template.json"): json.loads(p.read_text())
        for p in out.glob("*.template.json")
    }
    roles = [
        r["Properties"] for t in built.values() for r in resources(t, "AWS::IAM::Role").values()
    ]
    assert len(roles) == 15
    assert all(r["RoleName"].startswith("org_acme-airflow--") for r in roles)
    assert all(r["Path"].startswith("/platform/airflow/") for r in roles)
    dag_roles = [r for r in roles if any(t["Key"] == "foundation:dag_id" for t in r["Tags"])]
    assert len(dag_roles) == 7
    assert {r["Path"] for r in dag_roles} == {"/platform/airflow/acme-airflow/dags/"}
    core = built[f"{NAME}-core"]
    scheduler = next(
        r["Properties"]["PolicyDocument"]["Statement"]
        for k, r in resources(core, "AWS::IAM::Policy").items()
        if k.startswith("SchedulerTaskRole")
    )
    passing = next(s for s in scheduler if s["Action"] == "iam:PassRole")
    assert passing["Resource"] == [
        "arn:aws:iam::111122223333:role/platform/airflow/acme-airflow/dags/*",
        "arn:aws:iam::111122223333:role/platform/airflow/org_acme-airflow--worker-execution",
    ]
    (container,) = next(
        r["Properties"]["ContainerDefinitions"]
        for r in resources(core, "AWS::ECS::TaskDefinition").values()
        if r["Properties"]["Family"] == f"{NAME}--scheduler"
    )
    env = env_of(container)
    assert (env["FOUNDATION_ROLE_PATH"], env["FOUNDATION_ROLE_PREFIX"]) == (
        "/platform/airflow/",
        "org_",
    )


def test_a_value_of_the_wrong_type_is_refused_by_jsiis_kernel() -> None:
    """stacks/__init__.py turns off jsii's Python-side type checks (as `python -O` would): the
    kernel in Node.js still refuses a value of the wrong type, naming what it was passed to."""
    import jsii._type_checking

    from foundation import synth

    synth._start_cdk()
    import aws_cdk as cdk
    from aws_cdk import aws_ecs as ecs

    off = jsii._type_checking.check_type(argname="cpu", value="512", expected_type=int)
    assert off is None  # typeguard would raise
    stack = cdk.Stack(cdk.App(), "Typed")
    refused = r"^Passed to parameter props of new aws-cdk-lib\.aws_ecs\.FargateTaskDefinition: "
    with pytest.raises(RuntimeError, match=refused + "Unable to deserialize value as "):
        ecs.FargateTaskDefinition(stack, "TaskDefinition", cpu="512")


# What a DAG's identity construct holds besides its managed policies. Its cdk-nag
# acknowledgements are made on the construct and so cover all of it (stacks/nag.py): IAM5 for
# the wildcard resources its managed policies grant, ECS2 for its task definition. That covers
# no other finding only while no other resource under it can have one: no inline policy, one
# task definition.
IDENTITY = Counter(
    {
        "AWS::IAM::Role": 1,
        "AWS::EC2::SecurityGroup": 1,
        "AWS::ECS::TaskDefinition": 1,
        "AWS::SSM::Parameter": 1,
    }
)


def test_an_identity_holds_no_resource_its_acknowledgements_could_cover(example_synth) -> None:
    identities = identity_resources(example_synth.out)
    assert sorted(identities) == sorted(
        f"{NS.worker_stack(worker_shard(dag.dag_id, PROJECT.deployment.worker_stacks))}"
        f"/Dag-{dag.dag_id}"
        for dag in PROJECT.dags
    )
    for path, resources in identities.items():
        kinds = Counter(kind for kind, _ in resources)
        assert kinds.pop("AWS::IAM::ManagedPolicy") >= 1, path  # the baseline's at least
        assert kinds == IDENTITY, path
        roles = [props for kind, props in resources if kind == "AWS::IAM::Role"]
        assert [sorted(r) for r in roles] == [
            ["assumeRolePolicyDocument", "description", "path", "roleName", "tags"]
        ], path
