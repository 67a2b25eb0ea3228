"""Grants that reach into each other: a grant that adds nothing to the rest of its DAG's, and
DAGs whose grants reach the same S3 objects. Patterns are compared with IAM's own matcher
(evaluate.covers and effective.reaches, both on evaluate.glob)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from foundation.errors import Location, Problem
from foundation.iam.effective import head, reaches
from foundation.iam.evaluate import covers
from foundation.iam.policy import Statement


@dataclass
class Unit:
    """One grant of a DAG, rendered for the deployment; `entry` is the manifest line it came
    from (None for the toolkit's baseline, which is never warned about)."""

    source: str
    statements: list[Statement]
    entry: Location | None = None
    field: str = ""

    def problem(self, message: str) -> Problem:
        assert self.entry is not None
        return Problem(self.entry.file, self.entry.line, self.field, message)


def _allowed_by(statement: Statement, action: str, resource: str, condition: object) -> bool:
    """Whether `statement` allows `action` on everything `resource` names, under at most
    `condition` (a statement without a condition allows under any)."""
    return (
        action.lower() in {a.lower() for a in statement.actions}
        and (statement.condition is None or statement.condition == condition)
        and any(covers(wide, resource) for wide in statement.resources)
    )


def covering(unit: Unit, others: list[Unit]) -> list[str] | None:
    """The sources of the other grants that together allow all `unit` allows, or None."""
    used: dict[str, None] = {}
    for statement in unit.statements:
        for action in statement.actions:
            for resource in statement.resources:
                found = next(
                    (
                        other
                        for other in others
                        for wide in other.statements
                        if _allowed_by(wide, action, resource, statement.condition)
                    ),
                    None,
                )
                if found is None:
                    return None
                used[found.source] = None
    return list(used)


def _same(a: Unit, b: Unit) -> bool:
    return [s.document() | {"Sid": ""} for s in a.statements] == [
        s.document() | {"Sid": ""} for s in b.statements
    ]


def redundant(units: list[Unit]) -> list[tuple[Unit, list[str]]]:
    """Each manifest grant that the DAG's other grants already allow in full, with their
    sources. Of two identical grants the later is the one that adds nothing; a grant found so
    no longer counts for the next ones (of read_write, read and write on one prefix, only
    read_write adds nothing), so removing every one found leaves the DAG the same access."""
    found: list[tuple[Unit, list[str]]] = []
    spare: set[int] = set()
    for i, unit in enumerate(units):
        if unit.entry is None:
            continue
        others = [
            o
            for j, o in enumerate(units)
            if j != i and j not in spare and not (j > i and _same(o, unit))
        ]
        sources = covering(unit, others)
        if sources is not None:
            found.append((unit, sources))
            spare.add(i)
    return found


def redundancy_warnings(units: list[Unit]) -> tuple[list[Problem], list[Unit]]:
    """A warning for each grant that adds nothing, and the grants that do add something."""
    spare = redundant(units)
    warnings = [
        unit.problem(f"adds nothing: {'; '.join(sources)} already grants it all")
        for unit, sources in spare
    ]
    kept = [u for u in units if all(u is not unit for unit, _ in spare)]
    return warnings, kept


S3_OBJECTS = ":s3:::"


@dataclass(frozen=True)
class Reach:
    """S3 objects a DAG's grant reaches: an object ARN pattern, and where it was declared."""

    dag_id: str
    pattern: str
    source: str
    unit: Unit | None = field(default=None, compare=False, hash=False)

    @property
    def bucket(self) -> str:
        return self.pattern.split(S3_OBJECTS, 1)[1].split("/", 1)[0]


def object_patterns(statement_resources: tuple[str, ...] | list[str]) -> list[str]:
    """The S3 object ARNs (or patterns) among a statement's resources."""
    return [r for r in statement_resources if S3_OBJECTS in r and "/" in r.split(S3_OBJECTS)[1]]


def overlap(a: str, b: str) -> bool:
    """Whether two object patterns may name the same object: one reaches the other's literal
    start, as `foundation permissions --who-can s3://...` answers (exact for prefix patterns)."""
    return reaches(a, head(b), prefix=True) or reaches(b, head(a), prefix=True)


def overlapping(found: list[Reach]) -> list[tuple[Reach, Reach]]:
    """Pairs of different DAGs' reaches into the same objects, the wider of each pair first."""
    by_bucket: dict[str, list[Reach]] = defaultdict(list)
    for reach in dict.fromkeys(found):
        by_bucket[reach.bucket].append(reach)
    pairs = []
    for group in by_bucket.values():
        # two patterns overlap only if one's literal start begins the other's: in head order,
        # the candidates for each are the run of those after it that start with its head
        group.sort(key=lambda r: head(r.pattern))
        heads = [head(r.pattern) for r in group]
        for i, a in enumerate(group):
            j = i + 1
            while j < len(group) and heads[j].startswith(heads[i]):
                b = group[j]
                if a.dag_id != b.dag_id and overlap(a.pattern, b.pattern):
                    pairs.append((b, a) if covers(b.pattern, a.pattern) else (a, b))
                j += 1
    return pairs


def overlap_warnings(units_by_dag: dict[str, list[Unit]]) -> list[Problem]:
    """A warning at the wider grant of each pair of DAGs' grants that reach the same objects,
    naming the other's file and line."""
    found = [
        Reach(dag_id, pattern, unit.source, unit)
        for dag_id, units in units_by_dag.items()
        for unit in units
        if unit.entry is not None
        for statement in unit.statements
        for pattern in object_patterns(statement.resources)
    ]
    warnings = []
    for wide, other in overlapping(found):
        assert wide.unit is not None
        if wide.pattern == other.pattern:
            how = f"both grant {wide.pattern}"
        elif covers(wide.pattern, other.pattern):
            how = f"{wide.pattern} covers {other.pattern}"
        else:
            how = f"{wide.pattern} overlaps {other.pattern}"
        message = f"reaches objects DAG {other.dag_id!r} declared at {other.source}: {how}"
        warnings.append(wide.unit.problem(message))
    return warnings
