"""`foundation permissions`: read from the synthesized templates (the session's example assembly),
answered per DAG, per resource and as a matrix."""

from __future__ import annotations

import json

import pytest

from foundation.project import load_project
from tests.conftest import ROOT, ProjectDir, Run

LOGS = "acme-airflow-logs-111122223333-us-east-1"


@pytest.fixture
def permissions(example_synth):
    from typer.testing import CliRunner

    from foundation.cli import app

    def run(*args: str) -> Run:
        argv = ["permissions", *args, "--project", str(ROOT), "--out", str(example_synth.out)]
        result = CliRunner().invoke(app, argv)
        return Run(result.exit_code, result.stdout, result.stderr, result.exception)

    return run


def test_a_dags_permissions_come_from_its_templates_with_their_sources(
    permissions, templates: dict
) -> None:
    result = permissions("sales_daily", "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["role"] == "acme-airflow--dag-sales-daily-c2237c"
    assert sorted(shown["services"]) == ["dynamodb", "kms", "s3", "secretsmanager"]
    reads = [e for e in shown["services"]["s3"] if e["actions"] == ["s3:GetObject"]]
    assert reads == [
        {
            "actions": ["s3:GetObject"],
            "access": ["Read"],
            "resources": [
                "arn:aws:s3:::acme-airflow-dags-111122223333-us-east-1/dags/*",
                "arn:aws:s3:::acme-raw/salesforce/*",
            ],
            "condition": None,
            "source": "baseline: the DAG bundle (tasks load their DAG's code from it); "
            "dag_permissions/sales_daily.yaml:8 permissions.s3[0]",
        }
    ]
    sources = {e["source"] for entries in shown["services"].values() for e in entries}
    assert "baseline: the DAG's own task-log prefix" in sources
    # exactly what the template's managed policies hold, action for action
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for t in templates.values()
        for r in t["Resources"].values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
        and r["Properties"]["ManagedPolicyName"].startswith(shown["role"])
    ]
    in_template = sorted(a for policy in policies for st in policy for a in _listed(st["Action"]))
    shown_actions = sorted(a for es in shown["services"].values() for e in es for a in e["actions"])
    assert shown_actions == in_template


def _listed(value):
    return value if isinstance(value, list) else [value]


def test_an_unknown_dag_is_invalid_input_with_a_suggestion(permissions) -> None:
    result = permissions("sales_dialy")
    assert result.exit_code == 2
    assert "no manifest for DAG 'sales_dialy' (did you mean sales_daily?)" in result.stderr


def test_who_can_reach_a_prefix_names_only_the_dag_that_declared_it(permissions) -> None:
    result = permissions("--who-can", "s3://acme-raw/salesforce/2026/11/", "--json")
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)["access"]
    assert {f["who"] for f in found} == {"DAG sales_daily", "cluster role acme-airflow--scheduler"}
    (passing,) = [f for f in found if f["who"] == "cluster role acme-airflow--scheduler"]
    assert passing["actions"] == ["iam:PassRole"]  # it launches tasks as sales_daily
    assert passing["source"] == "passes DAG sales_daily's role, which reaches it"
    found = [f for f in found if f["who"] == "DAG sales_daily"]
    assert {level for f in found for level in f["access"]} == {"List", "Read", "Write"}
    listing = next(f for f in found if f["actions"] == ["s3:ListBucket"])
    assert listing["condition"] == {"StringLike": {"s3:prefix": "salesforce/*"}}


def test_who_can_reach_a_dags_task_logs(permissions) -> None:
    prefix = f"s3://{LOGS}/task-logs/dag_id=sales_daily/run_id=x/task_id=y/attempt=1.log"
    found = json.loads(permissions("--who-can", prefix, "--json").stdout)["access"]
    who = {f["who"] for f in found}
    assert "DAG sales_daily" in who
    assert not {w for w in who if w.startswith("DAG ")} - {"DAG sales_daily"}
    assert "cluster role acme-airflow--api-server" in who  # reads every DAG's logs


def test_who_can_read_a_cluster_secret(permissions) -> None:
    found = json.loads(
        permissions("--who-can", "acme-airflow/cluster/jwt-secret", "--json").stdout
    )["access"]
    assert [f["who"] for f in found] == ["cluster role acme-airflow--task-execution"]


def test_the_matrix_as_markdown_and_self_contained_html(permissions) -> None:
    markdown = permissions("--matrix", "--format", "markdown").stdout
    header = markdown.splitlines()[0]
    for dag in ("sales_daily", "orders_glue_transform", "housekeeping"):
        assert f" {dag} |" in header
    dags = [c.strip() for c in header.split("|")[2:-1]]
    row = next(line for line in markdown.splitlines() if "acme-raw/salesforce/*" in line)
    cells = dict(zip(dags, [c.strip() for c in row.split("|")[2:-1]], strict=True))
    assert cells["sales_daily"] == "Read, **Write**"  # read_write in its manifest; write in bold
    assert {d for d, c in cells.items() if c} == {"sales_daily"}
    page = permissions("--matrix", "--format", "html").stdout
    assert page.startswith("<!DOCTYPE html>") and "acme-raw/salesforce/*" in page
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")


def test_escalation_is_reported_in_synth_and_the_matrix(project: ProjectDir) -> None:
    config = project.root / "config" / "foundation.yaml"
    config.write_text(
        config.read_text().replace(
            "allow_escalation_for: []", "allow_escalation_for: [housekeeping]"
        )
    )
    manifest = project.root / "dag_permissions" / "housekeeping.yaml"
    manifest.write_text(
        manifest.read_text()
        + "permissions:\n  statements:\n    - actions: [lambda:UpdateFunctionCode]\n"
        + '      resources: ["arn:aws:lambda:us-east-1:111122223333:function:cleanup"]\n'
    )
    synth = project.run("synth")
    assert synth.exit_code == 0, synth.stderr
    assert (
        "escalation allowed (iam.allow_escalation_for): housekeeping: lambda:UpdateFunctionCode"
        in " ".join(synth.stdout.split())
    )
    markdown = project.run("permissions", "--matrix", "--format", "markdown").stdout
    assert " housekeeping (escalation allowed) |" in markdown.splitlines()[0]
    assert (
        "- `lambda:UpdateFunctionCode` on `arn:aws:lambda:us-east-1:111122223333:function:cleanup`"
        in markdown
    )


def test_exactly_one_question_at_a_time(permissions) -> None:
    result = permissions("sales_daily", "--matrix")
    assert result.exit_code == 2 and "give one of DAG_ID" in result.stderr


@pytest.mark.parametrize(
    ("secret", "readers"),
    [
        # CDK grants these through an export (the database) and a Ref in the same stack
        ("acme-airflow/cluster/database", {"cluster role acme-airflow--task-execution"}),
        ("acme-airflow/cluster/web-passwords", {"cluster role acme-airflow--task-execution"}),
        (
            "s3://acme-airflow-dags-111122223333-us-east-1/dags/sales_daily.py",
            {
                *(f"DAG {dag.dag_id}" for dag in load_project(ROOT).dags),
                "cluster role acme-airflow--dag-processor",
                "cluster role acme-airflow--scheduler",  # it passes every DAG's role
            },
        ),
    ],
)
def test_who_can_resolves_references_across_stacks(permissions, secret, readers) -> None:
    found = json.loads(permissions("--who-can", secret, "--json").stdout)["access"]
    assert {f["who"] for f in found} == readers
    assert not any(f["unresolved"] for f in found)


def test_a_question_about_a_prefix_shows_the_grants_inside_it(permissions) -> None:
    found = json.loads(permissions("--who-can", "s3://acme-raw/", "--json").stdout)["access"]
    by_dag: dict[str, set[str]] = {}
    for f in found:
        by_dag.setdefault(f["who"], set()).update(f["actions"])
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= by_dag["DAG sales_daily"]
    assert "s3:GetObject" in by_dag["DAG orders_glue_transform"]


@pytest.mark.parametrize("bad", ["arn:", "arn:aws", "arn:aws::us-east-1:1:x"])
def test_a_malformed_arn_is_invalid_input(permissions, bad: str) -> None:
    result = permissions("--who-can", bad)
    assert result.exit_code == 2 and "is not an ARN" in result.stderr
    assert "Traceback" not in result.stderr


SHAPES = ROOT / "tests" / "fixtures" / "templates" / "effective" / "shapes.json"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "111122223333"}


def _shapes() -> dict:
    from foundation.iam.effective import roles_of

    roles = roles_of({"shapes": json.loads(SHAPES.read_text())}, {}, PSEUDO)
    return {r.logical_id: r for r in roles}


def test_managed_policy_arns_are_read_or_reported_never_dropped() -> None:
    from foundation.iam.effective import Grant

    dag = _shapes()["DagRole"]
    unknown = "not in the templates, its statements unknown (may grant anything)"
    assert dag.grants == [
        # NamingPolicy names the role and is in ManagedPolicyArns: read once
        Grant(
            ("s3:PutObject",),
            ("arn:aws:s3:::b/own/*",),
            None,
            "added by CDK",
            policy="NamingPolicy",
        ),
        Grant(
            ("*",),
            ("*",),
            None,
            f"managed policy arn:aws:iam::aws:policy/AdministratorAccess: {unknown}",
            unknown=True,
            policy="arn:aws:iam::aws:policy/AdministratorAccess",
        ),
        Grant(
            ("*",),
            ("*",),
            None,
            f"managed policy arn:aws:iam::aws:policy/ReadOnlyAccess: {unknown}",
            unknown=True,
            policy="arn:aws:iam::aws:policy/ReadOnlyAccess",
        ),
        Grant(
            ("s3:GetObject",), ("arn:aws:s3:::b/own/*",), None, "added by CDK", policy="OwnPolicy"
        ),
    ]


def test_not_action_and_not_resource_are_read_as_what_they_grant() -> None:
    from foundation.iam.effective import who_can

    roles = _shapes()
    cluster = roles["ClusterRole"]
    queue = "arn:aws:sqs:us-east-1:111122223333:any-queue"
    private, public = "arn:aws:s3:::b/private/x", "arn:aws:s3:::b/public/x"

    def reach(arn: str) -> list[tuple[str, tuple[str, ...], str, bool]]:
        return [
            (a.role.logical_id, a.actions, a.source, a.unresolved)
            for a in who_can([cluster], [arn])
        ]

    not_action = "the toolkit's cluster grants (NotAction: every action but these)"
    not_resource = "the toolkit's cluster grants (NotResource: every resource but these)"
    assert reach(queue) == [("ClusterRole", ("*",), not_action, False)]
    # NotAction takes out every s3 action; NotResource takes out b/private/ only
    assert reach(public) == [("ClusterRole", ("s3:GetObject",), not_resource, False)]
    assert reach(private) == []
    # the same statements as IAM evaluates them
    statements = cluster.statements()
    assert statements == [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "NotResource": ["arn:aws:s3:::b/private/*"],
        },
        {"Effect": "Allow", "NotAction": ["s3:*", "iam:*"], "Resource": ["*"]},
    ]
    from foundation.iam.evaluate import Request, allows

    assert allows(statements, Request("sqs:SendMessage", queue))
    assert not allows(statements, Request("iam:PassRole", "arn:aws:iam::111122223333:role/x"))
    assert allows(statements, Request("s3:GetObject", public))
    assert not allows(statements, Request("s3:GetObject", private))


def test_an_unknown_managed_policy_may_reach_anything_and_says_so() -> None:
    from foundation.iam.effective import who_can

    dag = _shapes()["DagRole"]
    found = who_can([dag], ["arn:aws:secretsmanager:us-east-1:111122223333:secret:x-AbC123"])
    assert [(a.actions, a.unresolved, a.source.split(":")[0]) for a in found] == [
        (("*",), True, "managed policy arn"),
        (("*",), True, "managed policy arn"),
    ]


ROLE = "acme-airflow--dag-sales-daily-c2237c"
POLICY = f"{ROLE}-1"


def test_can_answers_yes_with_the_statement_that_allows_it(permissions) -> None:
    """The toolkit's own IAM evaluation (foundation/iam/evaluate.py), not moto: moto evaluates no
    condition."""
    result = permissions("--can", "sales_daily", "s3:GetObject", "s3://acme-raw/salesforce/a.csv")
    assert result.exit_code == 0, result.stderr
    bundle = "arn:aws:s3:::acme-airflow-dags-111122223333-us-east-1/dags/*"
    statement = {
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": [bundle, "arn:aws:s3:::acme-raw/salesforce/*"],
    }
    assert result.stdout.splitlines() == [
        f"yes: DAG sales_daily ({ROLE}) may s3:GetObject on arn:aws:s3:::acme-raw/salesforce/a.csv",
        f"  allowed by policy {POLICY}, Sid S34:",
        f"    {json.dumps(statement)}",
        "    source: baseline: the DAG bundle (tasks load their DAG's code from it); "
        "dag_permissions/sales_daily.yaml:8 permissions.s3[0]",
    ]
    data = json.loads(
        permissions(
            "--can", "sales_daily", "s3:GetObject", "s3://acme-raw/salesforce/a.csv", "--json"
        ).stdout
    )
    assert data == {
        "allowed": True,
        "dag_id": "sales_daily",
        "role": ROLE,
        "action": "s3:GetObject",
        "resource": "arn:aws:s3:::acme-raw/salesforce/a.csv",
        "statements": [
            {
                "policy": POLICY,
                "sid": "S34",
                "index": data["statements"][0]["index"],
                "statement": statement,
                "condition": None,
                "source": "baseline: the DAG bundle (tasks load their DAG's code from it); "
                "dag_permissions/sales_daily.yaml:8 permissions.s3[0]",
            }
        ],
    }


def test_can_answers_no_with_exit_4_for_another_prefix_or_dag(permissions) -> None:
    """The attacker's question: may sales_daily write outside its prefix, or read another
    DAG's prefix? Refused, by the same evaluation."""
    outside = permissions("--can", "sales_daily", "s3:PutObject", "s3://acme-raw/orders/a.csv")
    assert outside.exit_code == 4
    assert outside.stdout == (
        f"no: no statement of DAG sales_daily's role ({ROLE}) allows s3:PutObject on "
        "arn:aws:s3:::acme-raw/orders/a.csv.\n"
    )
    other = permissions("--can", "housekeeping", "s3:GetObject", "s3://acme-raw/salesforce/a.csv")
    assert other.exit_code == 4
    data = json.loads(
        permissions(
            "--can", "housekeeping", "s3:GetObject", "s3://acme-raw/salesforce/a", "--json"
        ).stdout
    )
    assert data["allowed"] is False and data["statements"] == []


def test_can_shows_the_condition_a_yes_depends_on(permissions) -> None:
    result = permissions("--can", "sales_daily", "s3:ListBucket", "s3://acme-raw")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"yes, when the condition holds: DAG sales_daily ({ROLE}) may s3:ListBucket on "
        "arn:aws:s3:::acme-raw"
    )
    assert '    condition: {"StringLike": {"s3:prefix": "salesforce/*"}}' in lines


def test_can_refuses_an_unknown_action_or_dag_as_invalid_input(permissions) -> None:
    typo = permissions("--can", "sales_daily", "s3:GetObjekt", "s3://acme-raw/x", "--json")
    assert typo.exit_code == 2
    assert json.loads(typo.stdout) == {
        "errors": [
            {
                "file": "ACTION",
                "line": None,
                "field": None,
                "message": "'s3:GetObjekt' is not an IAM action (service:Action) "
                "(did you mean s3:GetObject?)",
            }
        ]
    }
    assert permissions("--can", "sales_dialy", "s3:GetObject", "s3://acme-raw/x").exit_code == 2


def test_who_can_says_plainly_when_nobody_can(permissions) -> None:
    result = permissions("--who-can", "s3://nobody-has-this-bucket/x")
    assert result.exit_code == 0
    assert result.stdout == (
        "Nobody can reach s3://nobody-has-this-bucket/x: no statement of any DAG role or "
        "cluster role in the templates names it.\n"
    )
    data = json.loads(permissions("--who-can", "s3://nobody-has-this-bucket/x", "--json").stdout)
    assert data == {"resource": "s3://nobody-has-this-bucket/x", "reachable": False, "access": []}


def test_json_keys_of_a_dag_and_who_can(permissions) -> None:
    dag = json.loads(permissions("sales_daily", "--json").stdout)
    assert set(dag) == {"dag_id", "role", "services", "overlaps"}
    assert set(dag["services"]["s3"][0]) == {
        "actions",
        "access",
        "resources",
        "condition",
        "source",
    }
    reach = json.loads(permissions("--who-can", "s3://acme-raw/salesforce/", "--json").stdout)
    assert set(reach) == {"resource", "reachable", "access"}
    assert set(reach["access"][0]) == {
        "who",
        "role",
        "stack",
        "actions",
        "access",
        "condition",
        "source",
        "unresolved",
    }


def test_the_matrix_marks_write_access_and_shows_conditions(permissions) -> None:
    data = json.loads(permissions("--matrix", "--json").stdout)
    assert set(data) == {"dags", "escalation_allowed", "resources", "overlaps"}
    assert data["overlaps"] == []  # the example's DAGs share no S3 objects
    rows = {r["resource"]: r["access"] for r in data["resources"]}
    assert rows["arn:aws:s3:::acme-raw/salesforce/*"] == {
        "sales_daily": [{"levels": ["Read", "Write"], "write": True, "condition": None}]
    }
    listing = rows["arn:aws:s3:::acme-raw"]["sales_daily"]
    assert {
        "levels": ["List"],
        "write": False,
        "condition": {"StringLike": {"s3:prefix": "salesforce/*"}},
    } in listing
    markdown = permissions("--matrix").stdout
    header = markdown.splitlines()[0]
    dags = [c.strip() for c in header.split("|")[2:-1]]
    row = next(
        line for line in markdown.splitlines() if line.startswith("| `arn:aws:s3:::acme-raw` |")
    )
    cells = dict(zip(dags, [c.strip() for c in row.split("|")[2:-1]], strict=True))
    assert 'List if `{"StringLike": {"s3:prefix": "salesforce/*"}}`' in cells["sales_daily"].split(
        "; "
    )
    assert "Write access in **bold**; a condition follows the levels it limits." in markdown
    page = permissions("--matrix", "--format", "html").stdout
    assert "<td>Read, <strong>Write</strong></td>" in page


def test_no_dag_role_policy_holds_a_deny(templates: dict) -> None:
    """--can reads Allow statements (foundation/iam/effective.py keeps only those): it is right
    only while the toolkit writes no Deny into a role's own policies."""
    denies = [
        (stack, logical_id)
        for stack, template in templates.items()
        for logical_id, r in template["Resources"].items()
        if r["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy")
        for st in _listed(r["Properties"]["PolicyDocument"]["Statement"])
        if st["Effect"] != "Allow"
    ]
    assert denies == []


def test_a_piped_table_shows_every_arn_whole(permissions, monkeypatch) -> None:
    """CliRunner's stdout is no terminal, as a pipe or a CI log: no ARN is cut or folded."""
    monkeypatch.delenv("COLUMNS", raising=False)
    shown = json.loads(permissions("sales_daily", "--json").stdout)
    arns = {r for entries in shown["services"].values() for e in entries for r in e["resources"]}
    table = permissions("sales_daily").stdout
    assert "…" not in table
    cells = {cell.strip() for line in table.splitlines() for cell in line.split("│")}
    assert arns <= cells
