"""How deploy, diff, destroy and bootstrap show themselves: change sets, IAM statements, a live
view of CloudFormation at work, and the final table. User text is never read as rich markup."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from foundation.checks.cfn_lint import LintResult
from foundation.cloudformation.actions import Event
from foundation.cloudformation.plan import StackPlan
from foundation.deploy import Outcome
from foundation.synth import SynthResult

ACTION_STYLE = {"Add": "green", "Modify": "yellow", "Remove": "red", "Dynamic": "yellow"}


def change_table(plan: StackPlan) -> Table:
    table = Table(title=f"{plan.name}: {plan.action}", title_justify="left")
    for column in ("", "resource", "type", "replacement"):
        table.add_column(column)
    for c in plan.changes:
        replacement = c.replacement if c.action == "Modify" else ""
        table.add_row(
            Text(c.action, ACTION_STYLE.get(c.action, "")),
            Text(c.logical_id),
            c.resource_type,
            replacement,
        )
    return table


def iam_table(plan: StackPlan) -> Table | None:
    """Statement-level IAM changes, as `cdk diff` shows them."""
    changes = plan.iam
    if not changes:
        return None
    table = Table(title=f"{plan.name}: IAM statement changes", title_justify="left")
    for column in ("", "resource", "effect", "action", "resource ARN", "condition"):
        table.add_column(column)
    for change in changes:
        statement = json.loads(change.statement)
        sign = Text("+", "green") if change.added else Text("-", "red")
        table.add_row(
            sign,
            Text(change.resource),
            statement.get("Effect", ""),
            Text("\n".join(_listed(statement.get("Action")))),
            Text("\n".join(_listed(statement.get("Resource"), json.dumps))),
            Text(json.dumps(statement["Condition"]) if "Condition" in statement else ""),
        )
    return table


def _listed(value: object, show=str) -> list[str]:
    values = value if isinstance(value, list) else [value] if value is not None else []
    return [v if isinstance(v, str) else show(v) for v in values]


def show_plans(console: Console, plans: list[StackPlan], migration: str | None) -> None:
    changed = [p for p in plans if p.action != "none"]
    for plan in changed:
        console.print(change_table(plan))
        if table := iam_table(plan):
            console.print(table)
        for reason in plan.blocked:
            console.print(Text.assemble(("cannot deploy", "bold red"), f": {reason}"))
        for reason in plan.approval_reasons:
            console.print(Text.assemble(("needs approval", "yellow"), f": {reason}"))
    unchanged = [p.name for p in plans if p.action == "none"]
    if unchanged:
        console.print(Text(f"no changes: {', '.join(unchanged)}"))
    if migration:
        console.print(Text(f"airflow db migrate will run: {migration}"))


def outcome_table(outcomes: list[Outcome], title: str) -> Table:
    table = Table(title=title)
    for column in ("stack", "outcome", "status", "outputs / failures"):
        table.add_column(column)
    for o in outcomes:
        detail = [f"{k} = {v}" for k, v in sorted(o.outputs.items())]
        detail += [f"{e.logical_id} ({e.resource_type}): {e.reason}" for e in o.failures]
        detail += [o.message] if o.message else []
        style = "green" if o.ok else "red"
        table.add_row(Text(o.stack), Text(o.result, style), o.status, Text("\n".join(detail)))
    return table


class LiveReporter:
    """A live table of every stack at work: its status and latest resource event."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: dict[str, tuple[str, str]] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None

    def plan(self, plans: list[StackPlan], migration: str | None) -> None:
        show_plans(self.console, plans, migration)

    def close(self) -> None:
        if self.live:
            self.live.stop()
            self.live = None

    def event(self, stack: str, event: Event) -> None:
        what = f"{event.logical_id} {event.status}"
        if event.reason:
            what += f": {event.reason}"
        self._set(stack, event.status if event.logical_id == stack else None, what)
        if event.failed:
            self.console.print(Text(f"{stack}: {what}", "red"))

    def status(self, stack: str, text: str) -> None:
        self._set(stack, None, text)
        self.console.print(Text(f"{stack}: {text}"))

    def _set(self, stack: str, status: str | None, latest: str) -> None:
        with self.lock:
            previous = self.rows.get(stack, ("", ""))[0]
            self.rows[stack] = (status or previous, latest)
            if self.live is None:  # started with the first event: after any confirmation
                self.live = Live(self._render(), console=self.console, refresh_per_second=4)
                self.live.start()
            self.live.update(self._render())

    def _render(self) -> Group:
        table = Table(title="CloudFormation", title_justify="left")
        for column in ("stack", "status", "latest event"):
            table.add_column(column)
        for stack, (status, latest) in sorted(self.rows.items()):
            table.add_row(Text(stack), status, Text(latest))
        return Group(table)


def permissions_table(role: str, grouped: dict[str, list[dict]]) -> Table:
    table = Table(title=f"{role}: effective permissions")
    for column in ("service", "actions", "access", "resources", "condition", "source"):
        table.add_column(column)
    for service, entries in grouped.items():
        for e in entries:
            table.add_row(
                service,
                Text("\n".join(e["actions"])),
                ", ".join(e["access"]),
                Text("\n".join(e["resources"])),
                Text(json.dumps(e["condition"]) if e["condition"] else ""),
                Text(e["source"]),
            )
    return table


def who_can_table(resource: str, found: list[dict]) -> Table:
    table = Table(title=f"who can reach {resource}")
    for column in ("who", "access", "actions", "condition", "source"):
        table.add_column(column)
    for f in found:
        table.add_row(
            Text(f["who"]),
            ", ".join(f["access"]),
            Text("\n".join(f["actions"])),
            Text(json.dumps(f["condition"]) if f["condition"] else ""),
            Text(f["source"]),
        )
    return table


def dev_banner(session: Any) -> list[str]:
    """What `foundation dev` has running, and how to reach it (session: foundation.dev.Session)."""
    aws, options = session.aws, session.options
    lines = [f"Airflow is up: {session.url}"]
    lines += [f"  log in as {user} / {password}" for user, password in session.logins.items()]
    lines += [
        f"AWS (moto, IAM enforced) at {aws.url}, account {aws.account}; as its admin:",
        f"  export AWS_ENDPOINT_URL={aws.url} AWS_ACCESS_KEY_ID={aws.access_key_id} "
        f"AWS_SECRET_ACCESS_KEY={aws.secret_access_key} AWS_DEFAULT_REGION={aws.region}",
    ]
    if session.data:
        lines.append(f"Made empty for the DAGs: {', '.join(session.data)}")
    lines.append(
        f"Watching {options.dag_folder} (synced to s3://{session.project.deployment.dags_bucket}"
        f"/dags/). Every task runs under its DAG's role; refused calls show here. Ctrl-C stops."
    )
    return lines


def synth_table(result: SynthResult) -> Table:
    table = Table(title=f"{result.project.deployment.name}: cloud assembly")
    for column in ("stack", "resources", "template", "errors", "warnings"):
        table.add_column(column, justify="left" if column == "stack" else "right")
    for stack in result.stacks:
        errors = sum(f.severity == "error" for f in stack.findings)
        table.add_row(
            Text(stack.name),
            str(stack.resources),
            f"{stack.template_bytes / 1024:.1f} KiB",
            str(errors),
            str(len(stack.findings) - errors),
        )
    return table


def lint_summary(lint: LintResult, cache: Path) -> str:
    total = len(lint.linted) + len(lint.cached)
    return (
        f"cfn-lint: {len(lint.linted)} of {total} templates linted, "
        f"{len(lint.cached)} from the cache ({cache})"
    )


def timings_table(stages: dict[str, float]) -> Table:
    table = Table(title="time per stage")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in stages.items():
        table.add_row(stage, f"{seconds:.2f}")
    table.add_row("all stages", f"{sum(stages.values()):.2f}", style="bold")
    return table
