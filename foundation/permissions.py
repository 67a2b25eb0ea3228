"""`foundation permissions`: effective permissions computed from the synthesized templates, per
DAG, per resource (`--who-can`), or as a DAGs x resources matrix for reviews."""

from __future__ import annotations

import difflib
import html
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.cloudformation.target import assembly_for
from foundation.errors import InvalidInput, Problem
from foundation.iam.catalog import is_escalation, lookup
from foundation.iam.coverage import S3_OBJECTS, Reach, object_patterns, overlapping
from foundation.iam.effective import (
    Access,
    Grant,
    RoleGrants,
    access_level,
    resource_arns,
    roles_of,
    through_pass_role,
    who_can,
)
from foundation.iam.evaluate import covers
from foundation.project import Project, load_project


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


def _escalates(grant: Grant) -> bool:
    if grant.not_action or grant.unknown:
        return True  # every action but a few, or unknown ones: escalating ones among them
    infos = [lookup(a) for a in grant.actions]
    return any(info is not None and is_escalation(info) for info in infos)


def load(root: Path, env: str | None, out: Path | None) -> Audit:
    project = load_project(root, env)
    assembly = assembly_for(project, env, out)
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


def matrix(audit: Audit) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """Resources (rows), DAGs (columns) and the access levels in each cell."""
    cells: dict[tuple[str, str], set[str]] = defaultdict(set)
    for role in audit.dag_roles:
        for grant in role.grants:
            for resource in grant.resources:
                cells[(resource, role.dag_id or "")] |= {access_level(a) for a in grant.actions}
    resources = sorted({r for r, _ in cells})
    dags = [r.dag_id or "" for r in audit.dag_roles]
    return resources, dags, {k: ", ".join(sorted(v)) for k, v in cells.items()}


def _header(audit: Audit, dag: str) -> str:
    allowed = audit.project.deployment.iam.allow_escalation_for
    return f"{dag} (escalation allowed)" if dag in allowed else dag


def matrix_markdown(audit: Audit) -> str:
    resources, dags, cells = matrix(audit)
    lines = [
        "| resource | " + " | ".join(_header(audit, d) for d in dags) + " |",
        "|---|" + "---|" * len(dags),
    ]
    for resource in resources:
        row = [cells.get((resource, d), "") for d in dags]
        lines.append(f"| `{resource}` | " + " | ".join(row) + " |")
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


def matrix_html(audit: Audit) -> str:
    """One self-contained HTML file: no script, no external stylesheet."""
    resources, dags, cells = matrix(audit)
    name = html.escape(audit.project.deployment.name)
    head = "".join(f"<th>{html.escape(_header(audit, d))}</th>" for d in dags)
    rows = "".join(
        f"<tr><th><code>{html.escape(r)}</code></th>"
        + "".join(f"<td>{html.escape(cells.get((r, d), ''))}</td>" for d in dags)
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
        f"<ul>{escalations}</ul>"
        + (f"<h2>Overlapping S3 grants</h2><ul>{overlaps}</ul>" if overlaps else "")
        + "</body></html>\n"
    )
