"""`foundation deploy`: publish the assembly's templates, show every stack's change set, then
execute them layer by layer (worker stacks side by side), migrating the database when needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from foundation.airflow import runtime_files
from foundation.cloudformation import actions
from foundation.cloudformation.actions import SUCCESS, Event
from foundation.cloudformation.plan import (
    MigrationTarget,
    StackPlan,
    migration_reason,
    migration_target,
    removed_worker_families,
    service_parameters,
)
from foundation.cloudformation.target import Target, discard, open_target, plan_all
from foundation.naming import Namespace

DRAIN_TIMEOUT_SECONDS = 3600
MIGRATION_TIMEOUT_SECONDS = runtime_files.MIGRATION_WAIT_SECONDS  # as long as components wait


class Reporter(Protocol):
    def plan(self, plans: list[StackPlan], migration: str | None) -> None: ...
    def event(self, stack: str, event: Event) -> None: ...
    def status(self, stack: str, text: str) -> None: ...


Confirm = Callable[[list[str]], bool]


@dataclass(frozen=True)
class Options:
    root: Path
    env: str | None = None
    out: Path | None = None
    profile: str | None = None
    region: str | None = None
    stacks: list[str] = field(default_factory=list)
    yes: bool = False
    migrate: bool = True
    concurrency: int = 4
    drain_timeout: float = DRAIN_TIMEOUT_SECONDS
    migration_timeout: float = MIGRATION_TIMEOUT_SECONDS


@dataclass
class Outcome:
    stack: str
    result: str  # created, updated, deleted, no changes, failed, skipped, interrupted
    status: str = ""
    failures: list[Event] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.result in ("created", "updated", "deleted", "no changes")

    def as_data(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "result": self.result,
            "ok": self.ok,
            "status": self.status,
            "outputs": self.outputs,
            "failures": [
                {"logical_id": e.logical_id, "resource_type": e.resource_type, "reason": e.reason}
                for e in self.failures
            ],
            "message": self.message,
        }


@dataclass
class Result:
    outcomes: list[Outcome]
    migration: str | None = None  # why it ran, with its result

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def changed(self) -> bool:
        return any(o.result != "no changes" for o in self.outcomes)

    def as_data(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "changed": self.changed,
            "migration": self.migration,
            "outcomes": [o.as_data() for o in self.outcomes],
        }


class Refused(Exception):
    """The deploy did not start: nothing was changed (exit 1)."""


class UsageError(Exception):
    """An option names something that does not exist (exit 2)."""


class Interrupted(Exception):
    """Ctrl-C: waiting stopped; the outcomes say what CloudFormation was doing."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__("interrupted")
        self.outcomes = outcomes


def run(options: Options, reporter: Reporter, confirm: Confirm | None) -> Result:
    target = open_target(options.root, options.env, options.out, options.profile, options.region)
    unknown = sorted(set(options.stacks) - set(target.assembly.bodies) - set(target.orphans))
    if unknown:
        raise UsageError(f"--stack: no such stack: {', '.join(unknown)}")
    if target.busy:
        busy = ", ".join(f"{s.name} ({s.status})" for s in target.busy)
        raise Refused(f"a CloudFormation operation is under way: {busy}; wait for it to end")
    actions.acquire_lock(target.aws, target.bootstrap.bucket)
    try:
        return _deploy(target, options, reporter, confirm)
    finally:
        actions.release_lock(target.aws, target.bootstrap.bucket)


def _deploy(
    target: Target, options: Options, reporter: Reporter, confirm: Confirm | None
) -> Result:
    plans = plan_all(target, options.stacks, options.concurrency)
    try:
        migration = _migration(target, plans) if options.migrate else None
        reporter.plan(plans, migration)
        if all(p.action == "none" for p in plans):
            return Result([Outcome(p.name, "no changes", _status(target, p.name)) for p in plans])
        blocked = [f"{p.name}: {r}" for p in plans for r in p.blocked]
        if blocked:
            raise Refused(
                "this deploy would fail half-way; nothing was changed:\n" + "\n".join(blocked)
            )
        reasons = [f"{p.name}: {r}" for p in plans for r in p.approval_reasons]
        if reasons and not options.yes and not (confirm and confirm(reasons)):
            raise Refused(
                f"{len(reasons)} change(s) need approval (IAM that broadens, or stateful "
                "resources replaced or removed); nothing was changed. Run again with --yes to "
                "approve."
            )
        return _apply(target, options, reporter, plans, migration)
    finally:
        discard(target, plans)  # whatever was not executed: no change set is left behind


def _migration(target: Target, plans: list[StackPlan]) -> str | None:
    _, data_name, core_name = Namespace(target.name).cluster_stacks
    by_name = {p.name: p for p in plans}
    if core_name not in by_name or by_name[core_name].action == "delete":
        return None
    return migration_reason(by_name[core_name], by_name.get(data_name), target.name)


def _layers(target: Target, plans: list[StackPlan]) -> list[list[StackPlan]]:
    by_name = {p.name: p for p in plans if p.action != "none"}
    layers = [[by_name[n] for n in layer if n in by_name] for layer in target.assembly.layers]
    layers.append([by_name[n] for n in target.orphans if n in by_name])
    return [layer for layer in layers if layer]


def _apply(
    target: Target,
    options: Options,
    reporter: Reporter,
    plans: list[StackPlan],
    migration: str | None,
) -> Result:
    stop = threading.Event()
    outcomes = {p.name: Outcome(p.name, "no changes", _status(target, p.name)) for p in plans}
    runner = StackRunner(target, reporter, stop, options.drain_timeout)
    migrator = Migrator(target, reporter, stop, migration, options) if migration else None
    try:
        for layer in _layers(target, plans):
            outcomes |= _run_layer(target, layer, runner, migrator, options.concurrency, stop)
            if not all(outcomes[p.name].ok for p in layer):
                break
        core = Namespace(target.name).cluster_stacks[2]
        unchanged_core = migrator and migrator.where is None and core in outcomes
        if unchanged_core and all(o.ok for o in outcomes.values()):
            # core itself did not change (the database did): migrate with the deployed task
            assert migrator is not None
            migrator.prepare(next(p for p in plans if p.name == core))
            migrator.finish(True, runner.sleep)
            if not migrator.ok:
                outcomes[core].result, outcomes[core].message = "failed", migrator.summary
    except KeyboardInterrupt:
        stop.set()
        raise Interrupted(_interrupted(target, plans, outcomes)) from None
    for plan in plans:
        if plan.action != "none" and outcomes[plan.name].result == "no changes":
            outcomes[plan.name].result = "skipped"  # a layer before it failed
    ran = migrator is not None and migrator.where is not None
    return Result(list(outcomes.values()), migrator.summary if migrator and ran else None)


def _run_layer(
    target: Target,
    layer: list[StackPlan],
    runner: StackRunner,
    migrator: Migrator | None,
    concurrency: int,
    stop: threading.Event,
) -> dict[str, Outcome]:
    """The layer's stacks side by side. On Ctrl-C no further stack starts; those under way stop
    waiting before their next call to CloudFormation."""
    pool = ThreadPoolExecutor(max_workers=concurrency)
    futures = {
        pool.submit(runner.apply, p, migrator if _is_core(target, p) else None): p for p in layer
    }
    try:
        while any(not f.done() for f in futures):
            time.sleep(0.1)  # wakes for Ctrl-C, which only the main thread receives
    except KeyboardInterrupt:
        stop.set()
        while True:  # a second Ctrl-C must not leave threads running behind the report
            try:
                pool.shutdown(wait=True, cancel_futures=True)
                break
            except KeyboardInterrupt:
                continue
        raise
    pool.shutdown()
    return {plan.name: future.result() for future, plan in futures.items()}


def _is_core(target: Target, plan: StackPlan) -> bool:
    return plan.name == Namespace(target.name).cluster_stacks[2]


def _status(target: Target, name: str) -> str:
    state = target.live.get(name)
    return state.status if state else "NOT_DEPLOYED"


def _interrupted(target: Target, plans: list[StackPlan], outcomes: dict) -> list[Outcome]:
    """What each stack was doing when waiting stopped: CloudFormation carries on regardless."""
    out = []
    for plan in plans:
        outcome = outcomes[plan.name]
        if plan.action != "none" and outcome.result == "no changes":
            state = actions.describe_stack(target.aws.cfn, plan.name)
            status = state.status if state else "NOT_DEPLOYED"
            executing = status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS"
            outcome = Outcome(plan.name, "interrupted" if executing else "stopped", status)
        out.append(outcome)
    return out


class Stopped(Exception):
    pass


class StackRunner:
    """Takes one stack through its plan and follows it to the end."""

    def __init__(
        self, target: Target, reporter: Reporter, stop: threading.Event, drain_timeout: float
    ) -> None:
        self.target, self.reporter, self.stop = target, reporter, stop
        self.drain_timeout = drain_timeout

    def apply(self, plan: StackPlan, migrator: Migrator | None) -> Outcome:
        """Never raises: whatever goes wrong becomes this stack's failed outcome, so the other
        stacks' outcomes are still reported."""
        try:
            return self._apply(plan, migrator)
        except Stopped:
            return Outcome(plan.name, "interrupted", _status(self.target, plan.name))
        except Exception as error:
            message = str(error) if isinstance(error, actions.ChangeSetFailed) else repr(error)
            return Outcome(plan.name, "failed", _status(self.target, plan.name), message=message)

    def _apply(self, plan: StackPlan, migrator: Migrator | None) -> Outcome:
        self._drain(plan)
        if plan.action == "delete":
            return self._delete(plan)
        if plan.replaces_failed_create:
            self.reporter.status(plan.name, "deleting the stack a failed create left behind")
            deleted = self._delete(plan)
            if not deleted.ok:
                return deleted
        if plan.action == "create":
            self._check_stop()
            change_set = actions.create_change_set(
                self.target.aws,
                plan.name,
                template=plan.template_url or "",
                role_arn=self.target.bootstrap.role_arn,
                create=True,
                parameters=service_parameters(plan.template or {}, None),
            )
            plan.change_set_id = change_set.id
        return self._execute(plan, migrator)

    def _check_stop(self) -> None:
        """Before every call that changes something: after Ctrl-C nothing new starts."""
        if self.stop.is_set():
            raise Stopped

    def _drain(self, plan: StackPlan) -> None:
        """A removed DAG's running tasks finish before its role and security group go."""
        families = removed_worker_families(plan, self.target.name)
        deadline = time.monotonic() + self.drain_timeout
        for family in families:
            while tasks := actions.running_tasks(self.target.aws, self.target.name, family):
                if time.monotonic() > deadline:
                    raise actions.ChangeSetFailed(
                        plan.name, f"{len(tasks)} task(s) of {family} still run; not removed"
                    )
                self.reporter.status(plan.name, f"waiting for {len(tasks)} task(s) of {family}")
                self.sleep()

    def sleep(self) -> None:
        if self.stop.wait(self.target.aws.poll_seconds):
            raise Stopped

    def _delete(self, plan: StackPlan) -> Outcome:
        self._check_stop()
        after = actions.newest_event(self.target.aws, plan.name)
        actions.delete_stack(self.target.aws, plan.name, self.target.bootstrap.role_arn)
        return self._follow(plan.name, after, "deleted")

    def _execute(self, plan: StackPlan, migrator: Migrator | None) -> Outcome:
        if migrator:
            migrator.prepare(plan)
        self._check_stop()
        after = actions.newest_event(self.target.aws, plan.name)
        actions.execute_change_set(self.target.aws, plan.change_set_id or "")
        plan.change_set_id = None
        done = "created" if plan.action == "create" else "updated"
        outcome = self._follow(plan.name, after, done, migrator.tick if migrator else None)
        if migrator:
            migrator.finish(outcome.ok, self.sleep)
            if outcome.ok and not migrator.ok:
                outcome.result, outcome.message = "failed", migrator.summary
        return outcome

    def _follow(
        self, stack: str, after: str | None, done: str, tick: Callable[[], None] | None = None
    ) -> Outcome:
        def on_tick() -> None:
            if self.stop.is_set():
                raise Stopped
            if tick:
                tick()

        return follow(self.target.aws, stack, after, done, self.reporter, on_tick)


def follow(
    aws: actions.Aws,
    stack: str,
    after: str | None,
    done: str,
    reporter: Reporter,
    on_tick: Callable[[], None] = lambda: None,
) -> Outcome:
    """Wait for a stack to settle after the event `after`: its outcome, failures and outputs."""
    status, events = actions.wait_for_stack(
        aws, stack, after, lambda e: reporter.event(stack, e), on_tick
    )
    state = actions.describe_stack(aws.cfn, stack)
    return Outcome(
        stack,
        done if status in SUCCESS else "failed",
        status,
        [e for e in events if e.failed],
        state.outputs if state else {},
    )


# What the migration task needs before it can start: its task definition, and the roles,
# policies, secrets, log groups and network rules that let it read secrets and reach the database.
MIGRATION_PREREQUISITES = {
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::SecretsManager::Secret",
    "AWS::Logs::LogGroup",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress",
}
READY = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}


class Migrator:
    """Runs `airflow db migrate` while core deploys: as soon as what the migration task needs
    exists, and before the components (which wait for the migration) can become healthy."""

    def __init__(
        self,
        target: Target,
        reporter: Reporter,
        stop: threading.Event,
        reason: str,
        options: Options,
    ) -> None:
        self.target, self.reporter, self.stop, self.reason = target, reporter, stop, reason
        self.timeout = options.migration_timeout
        self.stack = Namespace(target.name).cluster_stacks[2]
        self.where: MigrationTarget | None = None
        self.prerequisites: set[str] = set()
        self.previous: str | None = None
        self.task: str | None = None
        self.deadline = 0.0
        self.exit: actions.TaskOutcome | None = None

    def prepare(self, plan: StackPlan) -> None:
        template = plan.template or {}
        self.where = migration_target(template, self.target.name)
        self.prerequisites = {
            logical_id
            for logical_id, r in template.get("Resources", {}).items()
            if r["Type"] in MIGRATION_PREREQUISITES
        } | {self.where.task_definition}
        self.deadline = time.monotonic() + self.timeout
        changing = {c.logical_id for c in plan.changes if c.action in ("Add", "Modify")}
        if plan.action == "update" and self.where.task_definition in changing:
            # wait for the new revision, not the one deployed now
            before = actions.stack_resources(self.target.aws, self.stack)
            self.previous = before.get(self.where.task_definition, ("", ""))[0]

    def tick(self) -> None:
        if self.exit or self.where is None:
            return
        if time.monotonic() > self.deadline:
            detail = f"timed out after {self.timeout:.0f} s"
            self.exit = actions.TaskOutcome(False, None, detail)
            self.reporter.status(self.stack, f"airflow db migrate: {detail}")
        elif self.task is None:
            self._start_when_ready()
        else:
            self._check()

    def finish(self, stack_ok: bool, sleep: Callable[[], None]) -> None:
        """After core settles: the migration must have run to its end."""
        if not stack_ok and self.task is None:
            self.exit = actions.TaskOutcome(True, None, "core failed before the migration ran")
            return
        while not self.exit:
            self.tick()
            if not self.exit:
                sleep()

    def _start_when_ready(self) -> None:
        assert self.where is not None
        resources = actions.stack_resources(self.target.aws, self.stack)
        if any(resources.get(r, ("", ""))[1] not in READY for r in self.prerequisites):
            return
        task_def = resources[self.where.task_definition][0]
        if task_def == self.previous:
            return
        group = resources[self.where.security_group][0]
        subnets = self._subnets()
        self.task = actions.run_task(self.target.aws, self.target.name, task_def, subnets, group)
        self.reporter.status(self.stack, f"airflow db migrate: started ({self.reason})")

    def _subnets(self) -> list[str]:
        assert self.where is not None
        wanted = [s["Fn::ImportValue"] for s in self.where.subnets if isinstance(s, dict)]
        exports = {}
        if wanted:
            for page in self.target.aws.cfn.get_paginator("list_exports").paginate():
                exports |= {e["Name"]: e["Value"] for e in page["Exports"]}
        return [
            exports[s["Fn::ImportValue"]] if isinstance(s, dict) else s for s in self.where.subnets
        ]

    def _check(self) -> None:
        outcome = actions.task_outcome(self.target.aws, self.target.name, self.task or "")
        if outcome.stopped:
            self.exit = outcome
            result = "done" if self.ok else f"failed (exit {outcome.exit_code}: {outcome.reason})"
            self.reporter.status(self.stack, f"airflow db migrate: {result}")

    @property
    def ok(self) -> bool:
        return self.exit is not None and self.exit.exit_code == 0

    @property
    def summary(self) -> str:
        if self.ok:
            return f"airflow db migrate ran ({self.reason})"
        detail = self.exit.reason if self.exit else "did not finish"
        return f"airflow db migrate FAILED ({self.reason}): {detail}"
