"""How deploy, diff, destroy and bootstrap show themselves: change sets, IAM statements, a live
view of CloudFormation at work, and the final table. User text is never read as rich markup."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from foundation.checks.cfn_lint import LintResult
    from foundation.cloudformation.actions import Event, StackState
    from foundation.cloudformation.plan import StackPlan
    from foundation.daemon import Running
    from foundation.deploy import Outcome
    from foundation.permissions import Answer
    from foundation.synth import SynthResult

ACTION_STYLE = {"Add": "green", "Modify": "yellow", "Remove": "red", "Dynamic": "yellow"}


def table(title: str, columns: list[str], right: tuple[str, ...] = (), **options: Any) -> Table:
    """Every table of the toolkit: a cell too long for its column wraps, and a word longer than
    the column (an ARN) folds onto the next line; nothing is cut with an ellipsis."""
    made = Table(title=title, **options)
    for column in columns:
        made.add_column(column, overflow="fold", justify="right" if column in right else "left")
    return made


def change_table(plan: StackPlan) -> Table:
    shown = table(
        f"{plan.name}: {plan.action}", ["", "resource", "type", "replacement"], title_justify="left"
    )
    for c in plan.changes:
        replacement = c.replacement if c.action == "Modify" else ""
        shown.add_row(
            Text(c.action, ACTION_STYLE.get(c.action, "")),
            Text(c.logical_id),
            c.resource_type,
            replacement,
        )
    return shown


def iam_table(plan: StackPlan) -> Table | None:
    """Statement-level IAM changes, as `cdk diff` shows them."""
    changes = plan.iam
    if not changes:
        return None
    shown = table(
        f"{plan.name}: IAM statement changes",
        ["", "resource", "effect", "action", "resource ARN", "condition"],
        title_justify="left",
    )
    for change in changes:
        statement = json.loads(change.statement)
        sign = Text("+", "green") if change.added else Text("-", "red")
        shown.add_row(
            sign,
            Text(change.resource),
            statement.get("Effect", ""),
            Text("\n".join(_listed(statement.get("Action")))),
            Text("\n".join(_listed(statement.get("Resource"), json.dumps))),
            Text(json.dumps(statement["Condition"]) if "Condition" in statement else ""),
        )
    return shown


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
    shown = table(title, ["stack", "outcome", "status", "outputs / failures"])
    for o in outcomes:
        detail = [f"{k} = {v}" for k, v in sorted(o.outputs.items())]
        detail += [f"{e.logical_id} ({e.resource_type}): {e.reason}" for e in o.failures]
        detail += [o.message] if o.message else []
        style = "green" if o.ok else "red"
        shown.add_row(Text(o.stack), Text(o.result, style), o.status, Text("\n".join(detail)))
    return shown


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
        shown = table("CloudFormation", ["stack", "status", "latest event"], title_justify="left")
        for stack, (status, latest) in sorted(self.rows.items()):
            shown.add_row(Text(stack), status, Text(latest))
        return Group(shown)


def permissions_table(role: str, grouped: dict[str, list[dict]]) -> Table:
    shown = table(
        f"{role}: effective permissions",
        ["service", "actions", "access", "resources", "condition", "source"],
    )
    for service, entries in grouped.items():
        for e in entries:
            shown.add_row(
                service,
                Text("\n".join(e["actions"])),
                ", ".join(e["access"]),
                Text("\n".join(e["resources"])),
                Text(json.dumps(e["condition"]) if e["condition"] else ""),
                Text(e["source"]),
            )
    return shown


def who_can_table(resource: str, found: list[dict]) -> Table:
    shown = table(f"who can reach {resource}", ["who", "access", "actions", "condition", "source"])
    for f in found:
        shown.add_row(
            Text(f["who"]),
            ", ".join(f["access"]),
            Text("\n".join(f["actions"])),
            Text(json.dumps(f["condition"]) if f["condition"] else ""),
            Text(f["source"]),
        )
    return shown


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


def daemon_data(daemon: Running) -> dict[str, Any]:
    """`foundation daemon --json`: one running daemon."""
    return {
        "pid": daemon.pid,
        "project": daemon.project,
        "env": daemon.env,
        "cwd": daemon.cwd,
        "started": daemon.started,
    }


def daemon_lines(running: list[Running], now: float) -> list[str]:
    """`foundation daemon`: one line per running daemon."""
    lines = []
    for daemon in running:
        env = f" --env {daemon.env}" if daemon.env else ""
        minutes = int((now - daemon.started) // 60)
        lines.append(
            f"pid {daemon.pid}: {daemon.project}{env}, from {daemon.cwd}, up {minutes} min"
        )
    return lines


def synth_table(result: SynthResult) -> Table:
    columns = ["stack", "resources", "template", "errors", "warnings"]
    shown = table(f"{result.name}: cloud assembly", columns, tuple(columns[1:]))
    for stack in result.stacks:
        errors = sum(f.severity == "error" for f in stack.findings)
        shown.add_row(
            Text(stack.name),
            str(stack.resources),
            f"{stack.template_bytes / 1024:.1f} KiB",
            str(errors),
            str(len(stack.findings) - errors),
        )
    return shown


def lint_summary(lint: LintResult, cache: Path) -> str:
    total = len(lint.linted) + len(lint.cached)
    return (
        f"cfn-lint: {len(lint.linted)} of {total} templates linted, "
        f"{len(lint.cached)} from the cache ({cache})"
    )


def timings_table(stages: dict[str, float]) -> Table:
    shown = table("time per stage", ["stage", "seconds"], ("seconds",))
    for stage, seconds in stages.items():
        shown.add_row(stage, f"{seconds:.2f}")
    shown.add_row("all stages", f"{sum(stages.values()):.2f}", style="bold")
    return shown


def status_table(stacks: list[tuple[str, StackState | None]]) -> Table:
    shown = table("stacks", ["stack", "status", "drift", "last update", "outputs"])
    for name, state in stacks:
        if state is None:
            shown.add_row(Text(name), "not deployed", "-", "-", "")
            continue
        outputs = "\n".join(f"{k} = {v}" for k, v in sorted(state.outputs.items()))
        updated = state.updated.isoformat(timespec="seconds") if state.updated else "-"
        shown.add_row(Text(name), state.status, state.drift, updated, Text(outputs))
    return shown


def answer_lines(answer: Answer) -> list[str]:
    """`permissions --can`: yes or no first, then each statement that allows it."""
    request = f"{answer.action} on {answer.resource}"
    if not answer.allowed:
        return [f"no: no statement of DAG {answer.dag_id}'s role ({answer.role}) allows {request}."]
    first = answer.statements[0]
    verdict = "yes, when the condition holds" if first.condition else "yes"
    lines = [f"{verdict}: DAG {answer.dag_id} ({answer.role}) may {request}"]
    for grant in answer.statements:
        where = f"Sid {grant.sid}" if grant.sid else f"statement {grant.index}"
        lines.append(f"  allowed by policy {grant.policy}, {where}:")
        lines.append(f"    {json.dumps(grant.as_statement())}")
        if grant.condition:
            lines.append(f"    condition: {json.dumps(grant.condition)}")
        lines.append(f"    source: {grant.source}")
    return lines
