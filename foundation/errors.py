"""One error type for invalid input: it always knows the file, the line and the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    file: Path
    line: int


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, pinned to where it is."""

    file: Path
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        shown = (
            self.file.relative_to(Path.cwd()) if self.file.is_relative_to(Path.cwd()) else self.file
        )
        where = f"{shown}:{self.line}" if self.line else str(shown)
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class InvalidInput(Exception):
    """Raised with every problem found, so the user can fix them all in one pass."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (str(p.file), p.line, p.field))
        super().__init__("\n".join(str(p) for p in self.problems))
