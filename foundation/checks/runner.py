"""Run every check on an assembly."""

from __future__ import annotations

from foundation.checks import cfn_lint
from foundation.checks.model import Assembly, Finding
from foundation.checks.rules import ALL


def run_checks(assembly: Assembly) -> list[Finding]:
    findings = [f for rule in ALL for f in rule.check(assembly)]
    findings += cfn_lint.run(assembly)
    return findings
