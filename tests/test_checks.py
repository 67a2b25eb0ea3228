"""Each rule against good and bad fixture templates (tests/fixtures/templates/<rule>/)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundation.checks import cfn_lint
from foundation.checks.model import Assembly, StackTemplate
from foundation.checks.rules import ALL
from foundation.checks.rules.fa302_plaintext_secrets import URL_WITH_PASSWORD, _urls_with_password
from foundation.project import load_project
from tests.conftest import ROOT, ProjectDir, mutated

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
CONTEXT = {
    "project": "acme",
    "partition": "aws",
    "region": "us-east-1",
    "account": "111122223333",
    "max_managed_policies_per_role": "2",
}
RULES = {rule.id: rule for rule in ALL}
# Where each bad fixture's findings are: "Policy" unless listed
RESOURCES = {
    "FA302": ["Secret", "Database"] + ["Task"] * 7 + ["Function"],
    "FA104": ["Task"],
    "FA105": ["Task"] * 9 + ["ImportedTask", "NoRoleTask", "IfTask", "UnnamedLogsTask"],
    "FA004": ["Policy"] * 5 + ["DagPolicy"] * 2,
    "FA005": ["Policy", "RolePolicy", "Managed", "Split"],
    "FA006": ["Role", "Role", "User"],
}
BAD = {
    "FA001": ["wildcard action 's3:Get*'", "NotAction grants every other action"],
    "FA002": ["Resource '*' for s3:GetObject, which takes resource ARNs"],
    "FA003": [
        "'arn:aws:secretsmanager:us-east-1:111122223333:secret:*' matches more than one resource",
        "'arn:aws-us-gov:s3:::acme-*' matches more than one resource",
        # every bucket whose name starts so; a key prefix not ending in '/' (sales_eu too)
        "'arn:aws:s3:::acme-raw*/x' matches more than one resource",
        "'arn:aws:s3:::acme-raw/sales*' matches more than one resource",
    ],
    "FA004": [
        "ecs:runtask on 'arn:aws:ecs:us-east-1:111122223333:task-definition/acme-*:*': not an "
        "allow-listed prefix",
        "ecs:runtask on 'arn:aws:ecs:us-east-1:111122223333:task-definition/acme--worker-*:*' "
        "lacks its condition",
        "iam:PassRole without StringEquals iam:PassedToService",
        "iam:passrole on 'arn:aws:iam::111122223333:role/acme/dags/*' lacks its condition",
        "iam:passrole on 'arn:aws:iam::111122223333:role/*': not an allow-listed prefix",
        # the scheduler's own grants, on a DAG's role: the prefixes are the scheduler's alone
        "ecs:runtask on 'arn:aws:ecs:us-east-1:111122223333:task-definition/acme--worker-*:*': "
        "not an allow-listed prefix",
        "iam:passrole on 'arn:aws:iam::111122223333:role/acme/dags/*': not an allow-listed prefix",
    ],
    "FA005": [
        "Statement[0].Resource holds <unresolved:Fn::If>: the checks cannot tell what it grants",
        "Statement[0].Action holds <unresolved:Fn::FindInMap>",
        "PolicyDocument is <unresolved:Fn::If>",
        "Statement[0].Resource holds <unresolved:Fn::Split>",
    ],
    "FA006": [
        "ManagedPolicyArns attaches arn:aws:iam::aws:policy/AdministratorAccess: no rule can read",
        "ManagedPolicyArns attaches arn:aws-us-gov:iam::aws:policy/AmazonS3FullAccess",
        "ManagedPolicyArns attaches arn:aws:iam::111122223333:policy/made-elsewhere",
    ],
    "FA104": [
        "task definition is 66,217 bytes; ECS takes 65,536 (largest environment variable: "
        "FOUNDATION_RUNTIME, 66,040 bytes)"
    ],
    "FA105": [
        "execution role acme-exec is denied secretsmanager:GetSecretValue arn:aws:secretsmanager:"
        "us-east-1:111122223333:secret:acme/db-AbC123 by guard (container app's secret DB)",
        "execution role acme-exec may not secretsmanager:GetSecretValue arn:aws:secretsmanager:"
        "us-east-1:111122223333:secret:acme/git-AbC123 (container app's secret GIT)",
        "container app's secret GITHUB names arn:aws:secretsmanager:us-east-1:111122223333:secret:"
        "acme/team-github by partial ARN, and its name ends as a complete ARN does (a dash and "
        "six characters): Secrets Manager reads it as complete and finds no secret; rename the "
        "secret",
        "container app's secret OTHER names ${Unnamed}, which FA105 cannot resolve to a resource",
        "execution role acme-exec may not ssm:GetParameters arn:aws:ssm:us-east-1:111122223333:"
        "parameter/acme/runtime/0 (container app's secret RUNTIME_0)",
        "container app's secret CONFIG names arn:aws:s3:::acme-config/app.env: ECS injects only "
        "Secrets Manager secrets and SSM parameters",
        "container app's secret EMPTY has no ValueFrom",
        "execution role acme-exec may not logs:CreateLogStream arn:aws:logs:eu-west-1:"
        "111122223333:log-group:/acme/tasks:log-stream:app/app/0123456789abcdef0123456789abcdef "
        "(container app's awslogs driver)",
        "execution role acme-exec may not logs:PutLogEvents arn:aws:logs:eu-west-1:111122223333:"
        "log-group:/acme/tasks:log-stream:app/app/0123456789abcdef0123456789abcdef (container "
        "app's awslogs driver)",
        "execution role arn:aws:iam::111122223333:role/made-elsewhere: not a role of the "
        "assembly, so its reads cannot be checked",
        "no execution role: ECS could not read its secrets or write its logs",
        "ContainerDefinitions is not a list of containers: its reads cannot be checked",
        "container app's awslogs driver: its log group, region or stream prefix is not one FA105 "
        "can resolve",
    ],
    "FA302": [
        "SecretString holds a literal value",
        "MasterUserPassword holds a literal value",
        "environment variable AIRFLOW__API_AUTH__JWT_SECRET holds a value; inject it as an ECS "
        "secret",
        "environment variable AIRFLOW_CONN_WAREHOUSE holds a value",
        "environment variable AIRFLOW_CONN_SHOP holds a value",
        "environment variable DB_PASS holds a value",
        "environment variable AIRFLOW__CELERY__BROKER_URL holds a value",
        "a URL with a password at Properties/ContainerDefinitions/0/Environment/1/Value",
        "a URL with a password at Properties/ContainerDefinitions/0/Environment/4/Value",
        "environment variable GITHUB_PAT holds a value",
    ],
}


def assembly_of(*templates: dict, manifest: dict | None = None, root: Path = FIXTURES) -> Assembly:
    stacks = [
        StackTemplate(f"stack{i}", t, json.dumps(t, indent=1)) for i, t in enumerate(templates)
    ]
    return Assembly(root, manifest or {}, stacks, CONTEXT)


def load(rule: str, kind: str) -> dict:
    return json.loads((FIXTURES / rule / f"{kind}.json").read_text())


@pytest.mark.parametrize("rule", sorted(BAD))
def test_good_template_passes(rule: str) -> None:
    assert list(RULES[rule].check(assembly_of(load(rule, "good")))) == []


@pytest.mark.parametrize("rule", sorted(BAD))
def test_bad_template_is_caught(rule: str) -> None:
    findings = list(RULES[rule].check(assembly_of(load(rule, "bad"))))
    assert len(findings) == len(BAD[rule])
    resources = RESOURCES.get(rule, ["Policy"] * len(findings))
    for expected, resource, finding in zip(BAD[rule], resources, findings, strict=True):
        assert expected in finding.message
        assert (finding.rule, finding.resource) == (rule, resource)


def test_fa105_names_each_read_the_execution_role_may_not_make_exactly() -> None:
    findings = RULES["FA105"].check(assembly_of(load("FA105", "bad")))
    assert [f.message for f in findings] == BAD["FA105"]


@pytest.mark.parametrize(
    "odd",
    [
        {"ExecutionRoleArn": {"Fn::GetAtt": ["ExecRole"]}},
        {"ExecutionRoleArn": 5},
        {"ContainerDefinitions": [{"Name": "app", "Secrets": {"Fn::If": ["C", [], []]}}]},
        {"ContainerDefinitions": [{"Name": "app", "Secrets": [{"Fn::If": ["C", {}, {}]}]}]},
        {"ContainerDefinitions": [{"Name": "app", "Secrets": [{"Name": "X", "ValueFrom": 5}]}]},
        {"ContainerDefinitions": [{"Secrets": [{"ValueFrom": {"Fn::Join": ["", ["a"], "x"]}}]}]},
        {"ContainerDefinitions": [{"LogConfiguration": {"LogDriver": "awslogs", "Options": None}}]},
    ],
)
def test_fa105_reads_an_odd_task_definition_as_a_finding_never_a_crash(odd: dict) -> None:
    template = load("FA105", "good")
    task = template["Resources"]["WorkerTask"]["Properties"]
    task.update(odd)
    template["Resources"]["Role"] = {"Type": "AWS::IAM::Role"}  # no Properties at all
    findings = list(RULES["FA105"].check(assembly_of(template)))
    assert [f.resource for f in findings] == ["WorkerTask"] * len(findings) and findings


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["Ref", "*"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["Ref", "Fn::GetAtt", "Fn::Join", "Fn::Sub", "Name", "ValueFrom", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)
SPOTS = [
    ("WorkerTask", "ExecutionRoleArn"),
    ("WorkerTask", "ContainerDefinitions"),
    ("Task", "ContainerDefinitions"),
    ("Policy", "PolicyDocument"),
    ("Policy", "Roles"),
    ("ExecRole", "RoleName"),
    ("Secret", "Name"),
    ("Logs", "LogGroupName"),
]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SPOTS), JSON)
def test_fa105_never_raises_whatever_a_template_holds(spot: tuple[str, str], value) -> None:
    """Any JSON in any place FA105 reads gives findings or none, never an exception (the synth
    runs every rule unguarded)."""
    template = load("FA105", "good")
    resource, prop = spot
    template["Resources"][resource]["Properties"][prop] = value
    for finding in RULES["FA105"].check(assembly_of(template)):
        assert finding.rule == "FA105" and finding.message


def test_fa105_follows_an_exported_role_and_resolves_no_reference_by_its_name_alone() -> None:
    """A task definition may name its execution role through another stack's export: the role
    is that stack's, and so is a policy of any stack that names the role by its name (a Deny
    here). A secret imported from another stack that declares it without a name has no ARN
    FA105 can tell; the same logical id granted in the role's own stack is another secret, not
    a match."""
    exporter = load("FA105", "good")
    exporter["Outputs"] = {
        "Role": {"Value": {"Fn::GetAtt": ["ExecRole", "Arn"]}, "Export": {"Name": "exec-arn"}},
        "Unnamed": {"Value": {"Ref": "Unnamed"}, "Export": {"Name": "unnamed-secret"}},
    }
    importer = json.loads(json.dumps(exporter["Resources"]["WorkerTask"]))
    importer["Properties"]["ExecutionRoleArn"] = {"Fn::ImportValue": "exec-arn"}
    container = importer["Properties"]["ContainerDefinitions"][0]
    container["Secrets"] = [
        {"Name": "DB", "ValueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:acme/db"},
        {"Name": "OTHER", "ValueFrom": {"Fn::ImportValue": "unnamed-secret"}},
    ]
    container["LogConfiguration"]["Options"]["awslogs-group"] = "/acme/tasks"
    exporter["Resources"]["Policy"]["Properties"]["PolicyDocument"]["Statement"].append(
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Ref": "Unnamed"},
        }
    )
    guard = {  # in the importing stack, naming the role by its name
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "guard",
            "Roles": ["acme-exec"],
            "PolicyDocument": {
                "Statement": [
                    {"Effect": "Deny", "Action": "secretsmanager:Get*", "Resource": "*:acme/db-*"},
                ]
            },
        },
    }
    importing = {"Resources": {"Task": importer, "Guard": guard}}
    findings = RULES["FA105"].check(assembly_of(exporter, importing))
    denied = (
        "execution role acme-exec is denied secretsmanager:GetSecretValue arn:aws:secretsmanager:"
        "us-east-1:111122223333:secret:acme/db-AbC123 by guard (container app's secret {})"
    )
    assert [(f.stack, f.resource, f.message) for f in findings] == [
        ("stack0", "Task", denied.format("DB")),  # the role's, wherever its task definitions are
        ("stack0", "Task", denied.format("DB_PASSWORD")),
        ("stack1", "Task", denied.format("DB")),
        (
            "stack1",
            "Task",
            "container app's secret OTHER names ${Unnamed}, which FA105 cannot resolve to a "
            "resource",
        ),
    ]


def test_fa105_names_each_component_whose_role_may_no_longer_read_its_secret(templates) -> None:
    """The example passes FA105 (its synth runs every rule). With the statement that lets the
    components' execution role read the Fernet key material taken out of core, FA105 names each
    component that injects it: the tasks ECS could no longer start. The toolkit's IAM
    evaluation stands in for ECS here (a secret's ARN ends in a sample of its random suffix)."""
    assert list(RULES["FA105"].check(mutated(templates, lambda name, resources: None))) == []

    def without_fernet(name: str, resources: dict) -> None:
        for resource in resources.values():
            if resource["Type"] == "AWS::IAM::Policy":
                document = resource["Properties"]["PolicyDocument"]
                document["Statement"] = [
                    st for st in document["Statement"] if "FernetKeyMaterial" not in str(st)
                ]

    secret = "arn:aws:secretsmanager:us-east-1:111122223333:secret:acme-airflow/cluster/"
    findings = RULES["FA105"].check(mutated(templates, without_fernet))
    assert [(f.stack, f.resource.split("TaskDefinition")[0], f.message) for f in findings] == [
        (
            "acme-airflow-core",
            component,
            "execution role acme-airflow--task-execution may not secretsmanager:GetSecretValue "
            f"{secret}fernet-key-material-AbC123 (container {container}'s secret "
            "FOUNDATION_FERNET_MATERIAL)",
        )
        for component, container in (
            ("ApiServer", "api-server"),
            ("Scheduler", "scheduler"),
            ("Triggerer", "triggerer"),
            ("DbMigrate", "db-migrate"),
        )
    ]


def test_fa105_names_each_dag_worker_whose_logs_the_shared_role_may_not_write(templates) -> None:
    """Every DAG's task definition logs through the workers' execution role, which core makes
    and grants: a worker stack names it by ARN. Without core's logs statement, FA105 names
    both of the awslogs driver's calls for each of the example's 7 DAGs."""

    def without_logs(name: str, resources: dict) -> None:
        if name == "acme-airflow-core":
            policy = resources["WorkerExecutionRoleDefaultPolicy2AE0C78C"]["Properties"]
            policy["PolicyDocument"]["Statement"] = []

    deployment = load_project(ROOT).deployment
    task_definitions = {
        r["Properties"]["Family"]: (stack, logical_id)
        for stack, template in templates.items()
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::ECS::TaskDefinition"
    }
    group = "arn:aws:logs:us-east-1:111122223333:log-group:/acme-airflow/workers:log-stream:"
    expected = []
    for manifest in (ROOT / "dag_permissions").glob("*.yaml"):
        names = deployment.dag_names(manifest.stem)
        expected += [
            (
                *task_definitions[names.task_family],
                f"execution role acme-airflow--worker-execution may not {action} {group}"
                f"{names.suffix}/airflow-worker/0123456789abcdef0123456789abcdef (container "
                "airflow-worker's awslogs driver)",
            )
            for action in ("logs:CreateLogStream", "logs:PutLogEvents")
        ]
    findings = RULES["FA105"].check(mutated(templates, without_logs))
    assert sorted((f.stack, f.resource, f.message) for f in findings) == sorted(expected)
    assert len(expected) == 14 and all(s.startswith("acme-airflow-workers-") for s, *_ in expected)


def test_every_rule_has_an_id_and_a_one_line_description() -> None:
    ids = [rule.id for rule in ALL]
    assert len(ids) == len(set(ids))
    for rule in ALL:
        assert rule.id.startswith("FA") and rule.description and "\n" not in rule.description


def _many(count: int) -> dict:
    return {
        "Resources": {
            f"Topic{i}": {"Type": "AWS::SNS::Topic", "Properties": {}} for i in range(count)
        }
    }


def test_template_limits() -> None:
    rule = RULES["FA101"]
    assert list(rule.check(assembly_of(_many(500)))) == []
    (finding,) = rule.check(assembly_of(_many(501)))
    assert "501 resources; CloudFormation takes 500" in finding.message
    big = StackTemplate("big", {"Resources": {}}, " " * 1_000_001)
    (finding,) = rule.check(Assembly(FIXTURES, {}, [big], CONTEXT))
    assert "template is 1,000,001 bytes" in finding.message


def _managed(index: int, resources: int) -> dict:
    return {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": [
                            {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::b/p{index}-{i}/*"}
                            for i in range(resources)
                        ],
                    }
                ],
            },
            "Roles": [{"Ref": "Role"}],
        },
    }


def test_iam_limits_count_policies_per_role_and_worst_case_size() -> None:
    rule = RULES["FA102"]
    role = {"Type": "AWS::IAM::Role", "Properties": {}}
    fits = {"Resources": {"Role": role, "P1": _managed(1, 10), "P2": _managed(2, 10)}}
    assert list(rule.check(assembly_of(fits))) == []
    too_many = {"Resources": {**fits["Resources"], "P3": _managed(3, 1)}}
    (finding,) = rule.check(assembly_of(too_many))
    assert finding.resource == "Role" and "3 managed policies attached" in finding.message
    # 200 ARNs of 29 characters: about 6,000 with "aws", over 6,144 with "aws-us-gov"
    too_big = {"Resources": {"Role": role, "P1": _managed(1, 200)}}
    (finding,) = rule.check(assembly_of(too_big))
    assert finding.resource == "P1" and "at worst case" in finding.message


def test_missing_context_is_an_error() -> None:
    manifest = {"missing": [{"key": "availability-zones:account=1:region=us-east-1"}]}
    (finding,) = RULES["FA201"].check(assembly_of(manifest=manifest))
    assert "needs a context lookup (availability-zones" in finding.message


def test_docker_assets_and_missing_files_are_errors(tmp_path: Path) -> None:
    (tmp_path / "asset.1.zip").write_text("x")
    assets = {
        "files": {
            "present": {"source": {"path": "asset.1.zip"}},
            "gone": {"source": {"path": "asset.2.zip"}},
        },
        "dockerImages": {"img": {"source": {"directory": "asset.3"}}},
    }
    (tmp_path / "s.assets.json").write_text(json.dumps(assets))
    manifest = {
        "artifacts": {
            "s.assets": {"type": "cdk:asset-manifest", "properties": {"file": "s.assets.json"}}
        }
    }
    findings = list(RULES["FA202"].check(assembly_of(manifest=manifest, root=tmp_path)))
    assert [(f.resource, f.message) for f in findings] == [
        ("img", "Docker image asset: the deploy cannot build it"),
        ("gone", "file asset asset.2.zip is missing"),
    ]


def test_cfn_lint_errors_are_errors_and_warnings_warnings() -> None:
    template = {
        "Resources": {
            "Group": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {"GroupDescription": "it's not allowed", "VpcId": "vpc-12345678"},
            }
        }
    }
    findings = cfn_lint.run(assembly_of(template)).findings
    assert [(f.rule, f.severity) for f in findings] == [("E3031", "error")]


def test_role_quota() -> None:
    role = {"Type": "AWS::IAM::Role", "Properties": {}}
    template = {"Resources": {f"Role{i}": role for i in range(3)}}
    rule = RULES["FA103"]
    assembly = assembly_of(template, template)
    assert list(rule.check(assembly)) == []
    assembly.context = {**CONTEXT, "role_quota": "5"}
    (finding,) = rule.check(assembly)
    assert finding.message == "6 IAM roles; the account quota is 5 (iam.role_quota)"


def test_cdk_nag_findings_fail_the_synth_and_an_empty_report_passes() -> None:
    rule = RULES["FA301"]
    assert list(rule.check(assembly_of(root=FIXTURES / "FA301" / "good"))) == []
    (finding,) = rule.check(assembly_of(root=FIXTURES / "FA301" / "bad"))
    assert (finding.stack, finding.resource) == ("acme-network", "Vpc/Resource")
    assert finding.message == "AwsSolutions-VPC7: The VPC does not have an associated Flow Log."


def test_a_widened_scheduler_grant_fails_the_synth(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FA004's allow-list is spelled from the config (checks/launch.py), not taken from the code
    that makes the grant: widening that code (RunTask of every family of the deployment, the
    components' included) fails the synth instead of widening what the rule accepts."""
    from foundation.iam import cluster

    real = cluster.launch_dag_tasks

    def wider(ns, ctx):
        grant = real(ns, ctx)
        return dataclasses.replace(grant, params=grant.params | {"family_prefix": ns.stem})

    monkeypatch.setattr(cluster, "launch_dag_tasks", wider)
    result = project.run("synth")
    assert result.exit_code == 2
    at = "acme-airflow-core/SchedulerTaskRoleDefaultPolicyF12C0747"
    wide = "'arn:aws:ecs:us-east-1:111122223333:task-definition/acme-airflow--*:*'"
    assert [line for line in result.stderr.splitlines() if line.startswith("error")] == [
        f"error: FA003 {at}: {wide} matches more than one resource",
        f"error: FA004 {at}: ecs:runtask on {wide}: not an allow-listed prefix",
    ]


def test_every_rule_reads_every_iam_shape_without_crashing() -> None:
    """An unreadable value is FA005's finding, never another rule's exception; a policy in an
    AWS::IAM::RolePolicy is read like any other."""
    assembly = assembly_of(load("FA005", "bad"), load("FA006", "bad"))
    for rule in ALL:
        list(rule.check(assembly))
    role_policy = {
        "Resources": {
            "RolePolicy": {
                "Type": "AWS::IAM::RolePolicy",
                "Properties": {
                    "PolicyName": "p",
                    "RoleName": "r",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                    },
                },
            }
        }
    }
    findings = [f for rule in ALL for f in rule.check(assembly_of(role_policy))]
    assert [(f.rule, f.resource, f.message) for f in findings] == [
        ("FA001", "RolePolicy", "wildcard action 's3:*'"),
        ("FA002", "RolePolicy", "s3:* is not in the IAM action database"),
    ]


URL_PARTS = st.text(alphabet=st.sampled_from(list('ab9+.-:/@{$%s "\\\t\n\x01\u00e9\u2028')))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["https://", "u:p@", "%s@", "{x}", "$y"]) | URL_PARTS, max_size=8))
def test_fa302_finds_a_url_in_the_json_text_exactly_when_in_the_string(parts: list[str]) -> None:
    """FA302 rules resources out by searching their JSON text: it must never rule out one whose
    string holds a URL with a password, whatever escaping the string needs."""
    value = "".join(parts)
    props = {"Environment": [{"Value": value}, {"Value": "plain"}]}
    expected = ["/Environment/0/Value"] if URL_WITH_PASSWORD.search(value) else []
    assert list(_urls_with_password(props)) == expected
