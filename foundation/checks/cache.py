"""Findings kept by content: an entry's key hashes everything its findings depend on, so an entry
is either exactly right or never found. Entries are plain JSON files; deleting the folder at any
time only costs the next synth its speed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

# Under the project, beside `foundation dev`'s state (.foundation/ is ignored by git)
CACHE_DIR = ".foundation/cache"
CACHE_ENV = "FOUNDATION_CACHE_DIR"  # another folder, e.g. one shared by several projects
_CHECKS = Path(__file__).resolve().parent


def cache_folder(project_root: Path) -> Path:
    return Path(os.environ.get(CACHE_ENV) or project_root / CACHE_DIR)


@cache
def checks_version() -> str:
    """A hash of the toolkit's own check code: a change to how findings are made or read makes
    every earlier entry unreachable."""
    digest = hashlib.sha256()
    for path in sorted(_CHECKS.rglob("*.py")):
        digest.update(str(path.relative_to(_CHECKS)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def content_key(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


class FindingsCache:
    """One JSON file per key in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> Any | None:
        try:
            return json.loads((self.folder / f"{key}.json").read_bytes())
        except (OSError, ValueError):  # absent, or cut short by a crash: linted again
            return None

    def put(self, key: str, value: Any) -> None:
        """Written whole or not at all: two synths at once never see half an entry. A folder
        that cannot be written (a read-only checkout) keeps nothing: only speed is lost."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(value, file)
            os.replace(temporary, self.folder / f"{key}.json")
        except OSError:
            pass  # a full disk keeps nothing either
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
