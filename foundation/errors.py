"""One error type for invalid input: it always knows the file, the line and the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    @property
    def shown_file(self) -> Path:
        """The file as the user would name it: relative to the current folder when inside it."""
        cwd = Path.cwd()
        return self.file.relative_to(cwd) if self.file.is_relative_to(cwd) else self.file

    def __str__(self) -> str:
        where = f"{self.shown_file}:{self.line}" if self.line else str(self.shown_file)
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"

    def as_data(self) -> dict[str, Any]:
        """For --json: a line of 0 (the whole file) and an empty field are null."""
        return {
            "file": self.shown_file.as_posix(),
            "line": self.line or None,
            "field": self.field or None,
            "message": self.message,
        }


class InvalidInput(Exception):
    """Raised with every problem found, so the user can fix them all in one pass."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (str(p.file), p.line, p.field))
        super().__init__("\n".join(str(p) for p in self.problems))
