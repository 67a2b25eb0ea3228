"""check-dags' report as a rich table, JSON (for tools) or markdown (a pull-request comment),
and `--suggest`'s manifest text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text

from foundation.check_dags import (
    COVERED,
    FAILING,
    NO_AWS,
    Finding,
    Report,
    Suggestion,
    shown,
)
from foundation.iam.suggest import text

STYLES = {"missing": "red", "refused": "red", "unknown": "yellow", "ignored": "yellow"}
# the validator refuses an empty owner: the draft does not pass until its author fills it
OWNER_LINE = 'owner: ""  # required: the person or team that owns this DAG'


def where(finding: Finding, root: Path) -> str:
    at = shown(finding.file, root)
    return f"{at}:{finding.line}" if finding.line else at


def suggestion_text(suggestion: Suggestion) -> str:
    """A whole draft manifest, or the lines to add under an existing one's `permissions:`."""
    entries = text(suggestion.permissions, "  ")
    if not suggestion.create:
        return f"permissions:\n{entries}\n"
    lines = [f"dag_id: {suggestion.dag_id}", OWNER_LINE]
    if suggestion.permissions:
        lines += ["permissions:", entries]
    return "\n".join(lines) + "\n"


def suggestion_title(suggestion: Suggestion, root: Path) -> str:
    path = shown(suggestion.manifest, root)
    return f"create {path}:" if suggestion.create else f"add to {path}:"


def lines(report: Report, verbose: bool) -> list[Text]:
    """One line per finding, `where` first; covered and no-AWS ones only when `verbose`."""
    root = report.project.root
    out = []
    for f in report.findings:
        if not verbose and f.status in (COVERED, NO_AWS):
            continue
        task = f"{f.dag_id}.{f.task_id} ({f.operator})" if f.task_id else f.dag_id
        granted = f"; granted by {', '.join(f.covered_by)}" if f.covered_by else ""
        out.append(
            Text.assemble(
                (f"{f.status:8}", STYLES.get(f.status, "green")),
                f" {where(f, root)}: {task}: {f.detail}{granted}",
            )
        )
    return out


def summary(report: Report) -> str:
    counts = report.counts()
    parts = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no tasks"
    return f"{len(report.findings)} finding(s): {parts}"


def as_data(report: Report) -> dict[str, Any]:
    root = report.project.root
    return {
        "project": str(root),
        "dag_folder": str(report.folder),
        "counts": report.counts(),
        "findings": [
            {
                "status": f.status,
                "dag_id": f.dag_id,
                "task_id": f.task_id or None,
                "operator": f.operator or None,
                "file": shown(f.file, root),
                "line": f.line or None,
                "detail": f.detail,
                "entry": text(f.entry) if f.entry else None,
                "statements": f.statements,
                "covered_by": f.covered_by,
            }
            for f in report.findings
        ],
        "suggestions": [
            {
                "dag_id": s.dag_id,
                "manifest": shown(s.manifest, root),
                "create": s.create,
                "text": suggestion_text(s),
            }
            for s in report.suggestions
        ],
    }


def markdown(report: Report, suggest: bool) -> str:
    """Every finding that is not covered, as a pull-request comment."""
    root = report.project.root
    lines = [f"### foundation check-dags: {summary(report)}", ""]
    shown_rows = [f for f in report.findings if f.status not in (COVERED, NO_AWS)]
    if shown_rows:
        lines += ["| status | DAG | task | where | detail |", "|---|---|---|---|---|"]
        for f in shown_rows:
            mark = "**" if f.status in FAILING else ""
            cells = [
                f"{mark}{f.status}{mark}",
                f"`{f.dag_id}`",
                f"`{f.task_id}`" if f.task_id else "-",
                f"`{where(f, root)}`",
                _cell(f.detail),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("Every AWS call check-dags can read is granted.")
    if suggest:
        for s in report.suggestions:
            lines += ["", suggestion_title(s, root), "```yaml", suggestion_text(s).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")
