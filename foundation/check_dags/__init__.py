"""`foundation check-dags`: each DAG file's tasks against the DAG's generated policy.

The DAG folder is parsed by the pinned Airflow in a subprocess (parse.py); each task of a
supported amazon operator gets its manifest entries from operators.yaml (operators.py), and
each entry's statements, from the catalog, are evaluated against the DAG's policy with the
toolkit's own IAM evaluation (coverage.py). What check-dags cannot read is `unknown`: listed,
never counted as covered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation.check_dags.coverage import Policy, statements_of
from foundation.check_dags.operators import Need, Unknown, needs, table
from foundation.check_dags.parse import Parsed, ParsedDag, Task, parse
from foundation.errors import InvalidInput, Problem
from foundation.iam.catalog import catalog
from foundation.iam.policy import Grant
from foundation.iam.suggest import SECTIONS, Section, merged
from foundation.project import MANIFEST_DIR, Dag, Project, load_project

COVERED, MISSING, UNKNOWN, REFUSED = "covered", "missing", "unknown", "refused"
IGNORED, NO_AWS, UNUSED, UNMANAGED = "ignored", "no-aws", "unused", "unmanaged"
STATUSES = (MISSING, REFUSED, UNKNOWN, IGNORED, UNMANAGED, UNUSED, COVERED, NO_AWS)
FAILING = frozenset({MISSING, REFUSED})
FAILING_STRICT = FAILING | {UNKNOWN, IGNORED, UNMANAGED, UNUSED}
AMAZON = "airflow.providers.amazon."
DEFAULT_QUEUE = "default"


@dataclass
class Finding:
    status: str
    dag_id: str
    task_id: str  # "" for what concerns the whole DAG
    operator: str
    file: Path
    line: int
    detail: str
    grant: Grant | None = None  # the manifest entry that would grant what is missing
    statements: list[dict[str, Any]] = field(default_factory=list)  # what the entry renders
    covered_by: list[str] = field(default_factory=list)

    @property
    def entry(self) -> Section | None:
        return _section(self.grant) if self.grant else None


@dataclass(frozen=True)
class Suggestion:
    dag_id: str
    manifest: Path
    create: bool  # no manifest yet: a whole draft
    permissions: Section


@dataclass
class Report:
    project: Project
    folder: Path
    findings: list[Finding]
    suggestions: list[Suggestion]

    def counts(self) -> dict[str, int]:
        return {s: n for s in STATUSES if (n := sum(f.status == s for f in self.findings))}

    def failed(self, strict: bool) -> bool:
        gate = FAILING_STRICT if strict else FAILING
        return any(f.status in gate for f in self.findings)


def run(root: Path, env: str | None, folder: Path | None) -> Report:
    project = load_project(root, env)
    folder = (folder or project.root / "dags").resolve()
    if not folder.is_dir():
        raise InvalidInput([Problem(folder, 0, "", "not a folder of DAG files")])
    attributes = {path: op.attributes() for path, op in table().items()}
    parsed = parse(folder, project.deployment.region, attributes)
    _refuse_import_errors(parsed)
    return check(project, folder, parsed)


def check(project: Project, folder: Path, parsed: Parsed) -> Report:
    manifests = {dag.dag_id: dag for dag in project.dags}
    report = Report(project, folder, [], [])
    for parsed_dag in parsed.dags:
        dag = manifests.get(parsed_dag.dag_id)
        findings = _dag_findings(project, parsed_dag, dag)
        report.findings += findings
        wanted = [f.grant for f in findings if f.grant and f.status in (MISSING, UNKNOWN)]
        if wanted or dag is None:
            path = project.root / MANIFEST_DIR / f"{parsed_dag.dag_id}.yaml"
            entries = merged([_section(g) for g in _combined(wanted)])
            report.suggestions.append(Suggestion(parsed_dag.dag_id, path, dag is None, entries))
    parsed_ids = {d.dag_id for d in parsed.dags}
    for dag in project.dags:
        if dag.dag_id not in parsed_ids:
            line = dag.document.location_of(("dag_id",)).line
            detail = (
                f"no DAG file in {shown(folder, project.root)} declares {dag.dag_id!r}: its "
                "grants serve nothing"
            )
            report.findings.append(Finding(UNUSED, dag.dag_id, "", "", dag.file, line, detail))
    return report


def shown(path: Path, root: Path) -> str:
    """A path relative to the project when it is inside it."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _refuse_import_errors(parsed: Parsed) -> None:
    problems = []
    for path, text in sorted(parsed.import_errors.items()):
        lines = [n for f, n in re.findall(r'File "([^"]+)", line (\d+)', text) if Path(f) == path]
        last = text.strip().splitlines()[-1] if text.strip() else "import error"
        problems.append(
            Problem(path, int(lines[-1]) if lines else 0, "", f"does not import: {last}")
        )
    if problems:
        raise InvalidInput(problems)


def _dag_findings(project: Project, parsed: ParsedDag, dag: Dag | None) -> list[Finding]:
    out = []
    if dag is None:
        mode = project.deployment.airflow.unmanaged_dags
        why = (
            "the executor refuses its tasks"
            if mode == "refuse"
            else "its tasks run under the baseline identity, with no grants"
        )
        status = REFUSED if mode == "refuse" else UNMANAGED
        detail = f"no manifest ({MANIFEST_DIR}/{parsed.dag_id}.yaml): {why}"
        out.append(Finding(status, parsed.dag_id, "", "", parsed.file, 0, detail))
    policy = Policy(project, dag)
    for task in parsed.tasks:
        out += _task_findings(task, policy)
    return out


def _task_findings(task: Task, policy: Policy) -> list[Finding]:
    def finding(status: str, detail: str, **more: Any) -> Finding:
        return Finding(
            status, task.dag_id, task.task_id, task.operator, task.file, task.line, detail, **more
        )

    out = [finding(status, detail) for status, detail in _cluster_findings(task)]
    operator = table().get(task.classpath)
    if operator is not None:
        mapped = sorted(set(task.mapped_arguments) & set(operator.attributes()))
        if mapped:
            detail = f"mapped over {', '.join(mapped)}: each mapped task's values come at run time"
            return [*out, finding(UNKNOWN, detail)]
        for need in needs(task, operator, policy.ctx):
            out.append(_need_finding(need, policy, finding))
        return out
    if task.python:
        if task.aws_references:
            detail = (
                f"Python code using {', '.join(task.aws_references)}: check-dags does not read "
                "what it calls; grant it by hand (foundation dev reports each refused call)"
            )
            return [*out, finding(UNKNOWN, detail)]
        return [*out, finding(NO_AWS, "Python code with no AWS SDK or amazon provider name")]
    if task.classpath.startswith(AMAZON) or any(b.startswith(AMAZON) for b in task.bases):
        detail = "an amazon provider operator not in check-dags' table (or a subclass of one)"
        return [*out, finding(UNKNOWN, detail)]
    return [*out, finding(NO_AWS, "not an amazon provider operator")]


def _cluster_findings(task: Task) -> list[tuple[str, str]]:
    """What the cluster refuses or ignores of a task, whatever it calls."""
    found = []
    if task.start_from_trigger:
        found.append(
            (REFUSED, "start_from_trigger=True: the cluster never starts a task from a trigger")
        )
    if task.deferrable:
        if task.classpath.startswith(AMAZON):
            found.append(
                (
                    REFUSED,
                    "deferrable=True: the api-server refuses the amazon provider's triggers "
                    "(with deferrable=False it polls from the DAG's own worker, with its grants)",
                )
            )
        else:
            found.append((UNKNOWN, "deferrable=True: only listed trigger classes run"))
    if task.executor_config:
        found.append((IGNORED, "executor_config is dropped: every task runs as its DAG's identity"))
    if task.queue != DEFAULT_QUEUE:
        found.append(
            (IGNORED, f"queue={task.queue!r} chooses nothing: a DAG's tasks go to its own identity")
        )
    return found


def _need_finding(need: Need | Unknown, policy: Policy, finding: Any) -> Finding:
    if isinstance(need, Unknown):
        return finding(UNKNOWN, str(need))
    result = policy.check(need)
    what = describe(need)
    if result.covered:
        return finding(COVERED, what, covered_by=result.sources)
    grant = suggested_grant(need)
    statements = statements_of(need, policy.ctx)
    if need.run_decides and not result.refused_whatever:
        detail = f"{what}: the run decides part of it, and not all it may be is granted"
        return finding(UNKNOWN, detail, grant=grant, statements=statements)
    first = result.missing[0]
    more = f" (and {len(result.missing) - 1} more)" if len(result.missing) > 1 else ""
    detail = f"{what}: {first.action} on {first.resource} is not granted{more}"
    return finding(MISSING, detail, grant=grant, statements=statements)


def describe(need: Need) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in need.params.items())
    return f"{need.kind} {need.access} ({fields})"


def suggested_grant(need: Need) -> Grant | None:
    """The manifest entry for the need; a prefix narrowed to the folder its literal part names
    (a run's own key is too narrow for the next run); None when a run decides a name or the
    folder (a key at the bucket's root: no s3 entry grants it)."""
    fields = dict(need.params)
    if "prefix" in fields:
        literal = re.split(r"[*?]", fields["prefix"])[0]
        fields["prefix"] = literal[: literal.rfind("/") + 1] or "*"
    if any(re.search(r"[*?]", v) for v in fields.values()):
        return None
    return Grant(need.kind, need.access, fields, "")


def _section(grant: Grant) -> Section:
    return SECTIONS[grant.kind](grant.access, grant.params)


def _combined(grants: list[Grant]) -> list[Grant]:
    """One entry per resource: accesses of the same one joined into the catalog's level that
    includes them all (read and write: read_write)."""
    by_resource: dict[tuple[str, tuple[tuple[str, str], ...]], list[str]] = {}
    for g in grants:
        levels = by_resource.setdefault((g.kind, tuple(g.params.items())), [])
        levels += [] if g.access in levels else [g.access]
    return [
        Grant(kind, access, dict(params), "")
        for (kind, params), levels in by_resource.items()
        for access in _widest(kind, levels)
    ]


def _widest(kind: str, levels: list[str]) -> list[str]:
    if len(levels) == 1:
        return levels
    for level, entries in catalog().grants[kind].items():
        includes = {e for e in entries if isinstance(e, str)}
        if includes and set(levels) <= includes | {level}:
            return [level]
    return levels
