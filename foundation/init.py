"""`foundation init [DIR]`: a new project, ready for `foundation validate` and `synth`.

The files come from the package (foundation/templates/project/ and the JSON Schemas), so an
installed toolkit needs no clone. The schemas are written into the project (schemas/), not
referenced in the package: an editor then finds them offline, on every machine the project is
cloned to, whatever the toolkit's install path; `foundation schema KIND --output` refreshes them
after an upgrade.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from foundation import schema
from foundation.errors import InvalidInput, Problem
from foundation.project import BASE_CONFIG, CONFIG_DIR, MANIFEST_DIR

SCHEMA_DIR = "schemas"
GITIGNORE = "cdk.out/\n.foundation/\n.venv/\n"
# Each schema's files, for the YAML language server (VS Code's YAML extension reads this
# setting; other editors read the modeline at the top of each written YAML file).
# config/foundation.yaml matches both config globs; its modeline names the config schema, and a
# valid base config is a valid overlay too, so no choice among them flags a valid file.
SCHEMA_FILES: dict[schema.Kind, list[str]] = {
    "config": [f"{CONFIG_DIR}/{BASE_CONFIG}"],
    "overlay": [f"{CONFIG_DIR}/*.yaml"],
    "manifest": [f"{MANIFEST_DIR}/*.yaml"],
}


def _templates() -> Traversable:
    return resources.files("foundation").joinpath("templates", "project")


def _template_files(folder: Traversable, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.name == "__pycache__":  # an install compiles the example DAG
            continue
        if entry.is_dir():
            out.update(_template_files(entry, f"{name}/"))
        else:
            out[name] = entry.read_text()
    return out


def _editor_settings() -> str:
    bound = {f"./{SCHEMA_DIR}/{schema.file_name(k)}": globs for k, globs in SCHEMA_FILES.items()}
    return json.dumps({"yaml.schemas": bound}, indent=2) + "\n"


def files() -> dict[str, str]:
    """Every file `init` writes, by its path in the project."""
    out = _template_files(_templates())
    out.update({f"{SCHEMA_DIR}/{schema.file_name(k)}": schema.shipped(k) for k in schema.KINDS})
    out[".gitignore"] = GITIGNORE
    out[".vscode/settings.json"] = _editor_settings()
    return dict(sorted(out.items()))


def _occupied(root: Path, name: str) -> Problem | None:
    """Why `name` cannot be written under `root` without touching what is there, if so."""
    path = root / name
    if path.exists() or path.is_symlink():
        return Problem(path, 0, "", "already exists; foundation init overwrites nothing")
    for parent in path.relative_to(root).parents:
        folder = root / parent
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            return Problem(folder, 0, "", "is not a folder; foundation init needs one there")
    return None


def run(root: Path) -> list[str]:
    """Write the project into `root` (made if missing); refuse, writing nothing, if any of its
    files is already there."""
    if root.exists() and not root.is_dir():
        raise InvalidInput([Problem(root, 0, "", "is a file; give a folder to initialise")])
    wanted = files()
    problems = [problem for name in wanted if (problem := _occupied(root, name))]
    if problems:
        raise InvalidInput(list(dict.fromkeys(problems)))  # a folder in the way, named once
    for name, text in wanted.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:  # never over a file made meanwhile
            handle.write(text)
    return list(wanted)
