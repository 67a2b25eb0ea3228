"""`validate --format sarif`: problems as SARIF 2.1.0, for code-scanning annotations on the
lines of the config and manifests that hold them."""

from __future__ import annotations

from typing import Any

from foundation.errors import Problem

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INVALID_INPUT = "invalid-input"
CHECK_FAILED = "check-failed"
RULES = {
    INVALID_INPUT: "The config or a manifest does not read as the toolkit's schema says.",
    CHECK_FAILED: "The project reads, but a check refuses it (a policy that cannot fit IAM's "
    "limits, a service the DAG's tasks cannot reach, a worker stack too full).",
}


def _location(problem: Problem) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": problem.shown_file.as_posix()}}
    if problem.line:
        physical["region"] = {"startLine": problem.line}
    return {"physicalLocation": physical}


def _result(problem: Problem, rule: str) -> dict[str, Any]:
    text = f"{problem.field}: {problem.message}" if problem.field else problem.message
    return {
        "ruleId": rule,
        "level": "error",
        "message": {"text": text},
        "locations": [_location(problem)],
    }


def report(problems: list[Problem], rule: str) -> dict[str, Any]:
    """One run of the `foundation` tool; every problem a result of `rule`."""
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "foundation",
                        "rules": [
                            {"id": rule_id, "shortDescription": {"text": text}}
                            for rule_id, text in RULES.items()
                        ],
                    }
                },
                "results": [_result(p, rule) for p in problems],
            }
        ],
    }
