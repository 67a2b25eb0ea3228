"""cfn-lint, in-process, on every template: errors fail the synth, warnings are shown."""

from __future__ import annotations

import json
from collections.abc import Iterator

from cfnlint.api import ManualArgs, lint

from foundation.checks.model import ERROR, WARNING, Assembly, Finding

# Availability zones come from config on purpose: synthesis must never look them up.
IGNORED = ["W3010"]


def run(assembly: Assembly) -> Iterator[Finding]:
    config = ManualArgs(regions=[assembly.context["region"]], ignore_checks=IGNORED)
    for stack in assembly.stacks:
        for match in lint(json.dumps(stack.template, indent=1), config=config):
            severity = ERROR if match.rule.severity == "error" else WARNING
            where = "/".join(str(p) for p in match.path[:2]) if match.path else ""
            yield Finding(match.rule.id, severity, stack.name, where, match.message)
