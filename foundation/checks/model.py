"""What every check works on and returns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    stack: str
    resource: str
    message: str

    def __str__(self) -> str:
        where = f"{self.stack}/{self.resource}" if self.resource else self.stack
        return f"{self.rule} {where}: {self.message}"


@dataclass
class StackTemplate:
    name: str
    template: dict[str, Any]
    text: str  # the template file, as CDK wrote it
    # What checks derive from the template once for every rule that reads it (policies.py)
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def size(self) -> int:
        """Bytes of the template file."""
        return len(self.text.encode())

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})


@dataclass
class Assembly:
    """A cloud assembly folder as the checks see it."""

    root: Path
    manifest: dict[str, Any]
    stacks: list[StackTemplate] = field(default_factory=list)
    context: dict[str, str] = field(default_factory=dict)  # names rules may need (project, ...)

    @classmethod
    def read(cls, root: Path, context: dict[str, str]) -> Assembly:
        manifest = json.loads((root / "manifest.json").read_text())
        stacks = []
        for name, artifact in manifest.get("artifacts", {}).items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            text = (root / artifact["properties"]["templateFile"]).read_text(encoding="utf-8")
            stacks.append(StackTemplate(name, json.loads(text), text))
        return cls(root, manifest, stacks, context)


class Rule:
    """One check with an id and a one-line description, like a cfn-lint rule."""

    id: ClassVar[str]
    description: ClassVar[str]
    severity: ClassVar[str] = ERROR

    def check(self, assembly: Assembly) -> Iterator[Finding]:
        for stack in assembly.stacks:
            yield from self.check_stack(stack, assembly)

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        return iter(())

    def finding(self, stack: str, resource: str, message: str) -> Finding:
        return Finding(self.id, self.severity, stack, resource, message)
