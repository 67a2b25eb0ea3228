"""A need against a DAG's generated policy, with the toolkit's own IAM evaluation.

A need is the statements its catalog entry renders (foundation/iam/policy.py `render`, from
catalog.yaml). Each (action, resource) of those, with the condition's values as the request's
context, is a pattern request: it stands for every request the operator may make for that
entry (a templated key: every key the template may render to). The need is covered when the
DAG's statements allow every one of them (`evaluate.allows_every`); each covering statement's
source names the manifest line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from foundation.check_dags.operators import Need
from foundation.iam.evaluate import Request, allows_every, glob, overlaps
from foundation.iam.policy import ArnContext, Grant, render
from foundation.project import Dag, Project, dag_grants

# The caller's aws:userid, for conditions that compare a key with ${aws:userid}
TASK_USERID = "AROAEXAMPLEDAGROLE:task"


@dataclass(frozen=True)
class Result:
    covered: bool
    missing: list[Request] = field(default_factory=list)  # the requests no statement allows
    sources: list[str] = field(default_factory=list)  # the manifest lines that allow the rest
    # a missing request no statement allows any value of: whatever a run renders, refused
    refused_whatever: bool = False


def requests(need: Need, ctx: ArnContext) -> list[Request]:
    """Every pattern request of the need's entry."""
    out = []
    for statement in render(Grant(need.kind, need.access, need.params, ""), ctx):
        context: dict[str, str | list[str]] = {"aws:userid": TASK_USERID}
        for pairs in (statement.condition or {}).values():
            for key, value in pairs.items():
                context[key] = value.replace("${aws:userid}", TASK_USERID)
        for action in statement.actions:
            out += [Request(action, resource, context) for resource in statement.resources]
    return out


def statements_of(need: Need, ctx: ArnContext) -> list[dict[str, Any]]:
    """The IAM statements the need's entry renders, as a policy would hold them."""
    return [
        {k: v for k, v in s.document().items() if k != "Sid"}
        for s in render(Grant(need.kind, need.access, need.params, ""), ctx)
    ]


class Policy:
    """A DAG's generated statements, and the grant behind each of their sources."""

    def __init__(self, project: Project, dag: Dag | None) -> None:
        self.ctx = ArnContext.of(project.deployment)
        self.statements = dag.policy.statements if dag else []
        grants = dag_grants(project, dag) if dag else []
        self.by_source = {g.source: [s.document() for s in render(g, self.ctx)] for g in grants}

    def check(self, need: Need) -> Result:
        missing, sources = [], []
        for request in requests(need, self.ctx):
            allowing = [s for s in self.statements if allows_every([s.document()], request)]
            if not allowing:
                missing.append(request)
            for statement in allowing:
                sources += [s for s in statement.sources if self._grants(s, request)]
        whatever = any(not self._may_allow(r) for r in missing)
        return Result(not missing, missing, list(dict.fromkeys(sources)), whatever)

    def _may_allow(self, request: Request) -> bool:
        """Whether some statement allows the action on some value of the request's resource
        (conditions not read: a request it may allow is never said to be refused)."""
        return any(
            any(glob(a, request.action, case_sensitive=False) for a in s.actions)
            and any(overlaps(r, request.resource) for r in s.resources)
            for s in self.statements
        )

    def _grants(self, source: str, request: Request) -> bool:
        """A merged statement's source that allows the request on its own (an escape-hatch
        statement is one source: it does)."""
        own = self.by_source.get(source)
        return own is None or allows_every(own, request)
