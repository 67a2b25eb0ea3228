"""cfn-lint with the toolkit's shortcuts (foundation/checks/cfn_lint_speedups.py) finds exactly
what cfn-lint as shipped finds: the same rows in the same order, on cfn-lint's own test
templates and on the toolkit's synthesized ones. Each arm runs in a process of its own: the
shortcuts patch cfn-lint's modules for the whole process, so one that had applied them could
not also lint as shipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CORPUS = ROOT / "tests" / "fixtures" / "templates" / "cfn-lint-corpus"
SNAPSHOTS = ROOT / "tests" / "__snapshots__"

# lints each template named after the arm and prints its rows, in one JSON document
_LINT = """
import json, sys
from foundation.checks import cfn_lint, cfn_lint_speedups
if sys.argv[1] == "as shipped":
    cfn_lint_speedups.apply = lambda rules: None
elif sys.argv[1] == "versions":
    cfn_lint_speedups.READ = ()
files = sys.argv[2:]
rows = {f: cfn_lint._lint_job((open(f).read(), "us-east-1"))[1] for f in files}
from cfnlint.jsonschema import validators
from cfnlint.rules.jsonschema.CfnLint import CfnLint
config, rules = cfn_lint._linter("us-east-1", tuple(cfn_lint.settings_files()))
patched = {
    "create": getattr(validators.create, "_foundation", False),
    "E1101": rules["E1101"].cfnLint.__func__.__name__ != "cfnLint",
}
print(json.dumps({"rows": rows, "patched": patched}))
"""


def templates() -> list[Path]:
    found = sorted(p for p in CORPUS.iterdir() if p.suffix in (".json", ".yaml", ".yml"))
    return found + sorted(SNAPSHOTS.glob("*/*.json"))


def start(arm: str, files: list[Path]) -> subprocess.Popen[str]:
    # cfn-lint names sets in some messages: one hash seed, so both print them in one order
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, "-c", _LINT, arm, *map(str, files)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def result(process: subprocess.Popen[str]) -> dict:
    """Its output; a lint that has not ended in 5 minutes (about 15 s each, here) fails."""
    try:
        out, _ = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0
    return json.loads(out)


def test_the_shortcuts_find_what_cfn_lint_as_shipped_finds() -> None:
    files = templates()
    as_shipped, fast = start("as shipped", files), start("fast", files)
    try:
        expected, found = result(as_shipped), result(fast)
    finally:
        fast.kill()
    assert expected["patched"] == {"create": False, "E1101": False}
    assert found["patched"] == {"create": True, "E1101": True}
    assert found["rows"] == expected["rows"]
    rows = [row for rows in expected["rows"].values() for row in rows]
    # what the comparison covers: cfn-lint's test templates find much, of many rules
    assert len(files) == 109 + len(list(SNAPSHOTS.glob("*/*.json")))
    assert len(rows) > 700
    assert len({row[0] for row in rows}) > 100


def test_another_cfn_lint_version_lints_as_shipped() -> None:
    """The shortcuts replace code as read in the versions named: any other, they leave be."""
    process = start("versions", [CORPUS / "bad__generic.yaml"])
    assert result(process)["patched"] == {"create": False, "E1101": False}


def test_the_installed_cfn_lint_is_one_the_shortcuts_were_read_against() -> None:
    """A cfn-lint upgrade fails here, not silently at a third slower: read its code again."""
    from foundation.checks import cfn_lint_speedups

    assert cfn_lint_speedups.applies()


def test_a_keyword_validator_that_cannot_be_hashed_still_validates() -> None:
    """cfn-lint takes any callable as a custom rule's keyword validator; one that cannot be a
    key of the class cache gets a class of its own, as cfn-lint as shipped would make."""
    from cfnlint.jsonschema import ValidationError, validators

    from foundation.checks import cfn_lint

    cfn_lint._linter("us-east-1", tuple(cfn_lint.settings_files()))  # applies the shortcuts
    assert getattr(validators.create, "_foundation", False)

    class Keyword:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, validator, value, instance, schema):
            yield ValidationError(f"{instance!r} is not {value!r}")

    checking = validators.CfnTemplateValidator({}).extend(validators={"mine": Keyword()})
    errors = list(checking(schema={"mine": "red"}).iter_errors("blue"))
    assert [e.message for e in errors] == ["'blue' is not 'red'"]


def test_an_evolved_context_is_the_one_cfn_lint_makes_and_keeps_nothing_cached() -> None:
    """The shortcut copies a Context field by field instead of calling its __init__: the copy
    equals the one cfn-lint's own evolve makes (`ref_values` merged), recomputes what its parent
    cached (`module_names`, a cached_property of the resources) and refuses an unknown field."""
    import dataclasses

    import pytest
    from cfnlint.context import context

    from foundation.checks import cfn_lint

    cfn_lint._linter("us-east-1", tuple(cfn_lint.settings_files()))  # applies the shortcuts
    parent = context.Context(regions=["us-east-1"], ref_values={"a": 1})
    assert parent.module_names == ()  # cached on the parent
    module = context.Resource({"Type": "Org::Team::Thing::MODULE", "Properties": {}})
    child = parent.evolve(resources={"Mod": module}, ref_values={"b": 2})
    fields = {f.name: getattr(parent, f.name) for f in dataclasses.fields(context.Context)}
    shipped = context.Context(**{**fields, "resources": {"Mod": module}})
    assert child == dataclasses.replace(shipped, ref_values={"a": 1, "b": 2})
    assert child.module_names == ("Mod",)
    with pytest.raises(TypeError, match="unexpected fields: colour"):
        parent.evolve(colour="red")


def test_a_descended_path_is_the_one_cfn_lint_makes() -> None:
    """Path.descend, copied field by field: the given values appended to new deques (the
    parent's unchanged), the others the parent's own, and the shipped method's refusals."""
    from collections import deque

    import pytest
    from cfnlint.context import context

    from foundation.checks import cfn_lint

    cfn_lint._linter("us-east-1", tuple(cfn_lint.settings_files()))  # applies the shortcuts
    parent = context.Path(path=deque(["Resources"]), cfn_path=deque(["Resources"]))
    child = parent.descend(path="Bucket", cfn_path="AWS::S3::Bucket")
    assert child == context.Path(
        path=deque(["Resources", "Bucket"]),
        value_path=deque(),
        cfn_path=deque(["Resources", "AWS::S3::Bucket"]),
    )
    assert parent == context.Path(path=deque(["Resources"]), cfn_path=deque(["Resources"]))
    assert child.value_path is parent.value_path  # as cfn-lint shares an unchanged deque
    assert parent.descend(path=None).path is parent.path
    with pytest.raises(ValueError, match="'Fn::Sub' cannot be in 'cfn_path'"):
        parent.descend(cfn_path="Fn::Sub")
    with pytest.raises(ValueError, match="3 cannot be an integer"):
        parent.descend(cfn_path=3)
    with pytest.raises(TypeError, match="unexpected fields: colour"):
        parent.descend(colour="red")


def test_a_remembered_fragment_is_its_own_documents() -> None:
    """RefResolver.resolve_fragment, remembered per document and fragment: the same subschema
    objects cfn-lint's search finds, by id or by path, each document's own for the same
    fragment, and an unresolvable pointer still refused."""
    import pytest
    from cfnlint.schema.resolver import RefResolutionError, RefResolver

    from foundation.checks import cfn_lint

    cfn_lint._linter("us-east-1", tuple(cfn_lint.settings_files()))  # applies the shortcuts
    first = {"definitions": {"X": {"$id": "#thing", "type": "string"}, "Y": {"type": "integer"}}}
    second = {"definitions": {"Y": {"type": "boolean"}}}
    resolver = RefResolver.from_schema(first)
    for _ in range(2):  # found, then remembered
        assert resolver.resolve_fragment(first, "thing") is first["definitions"]["X"]
        assert resolver.resolve_fragment(first, "/definitions/Y") is first["definitions"]["Y"]
        assert resolver.resolve_fragment(second, "/definitions/Y") is second["definitions"]["Y"]
        assert resolver.resolve_fragment(second, "") is second
        with pytest.raises(RefResolutionError, match="Unresolvable JSON pointer"):
            resolver.resolve_fragment(second, "/definitions/X")


OVERRIDDEN = """
import json
import sys
from pathlib import Path

from foundation.checks import cfn_lint, cfn_lint_speedups

if sys.argv[1] == "shipped":
    cfn_lint_speedups.READ = ()
versioning = {"VersioningConfiguration": {"Status": "Suspended"}}
bucket = {"Type": "AWS::S3::Bucket", "Properties": versioning}
text = json.dumps({"Resources": {"Bucket": bucket}})


def lint():
    return cfn_lint._lint(text, "us-east-1", tuple(cfn_lint.settings_files()))


before = lint()
only_enabled = {
    "type": "object",
    "properties": {"Status": {"type": "string", "enum": ["Enabled"]}},
    "required": ["Status"],
    "additionalProperties": False,
}  # a new object in place of the definition: a fragment remembered before resolves elsewhere
path = "/definitions/VersioningConfiguration"
patch = {"op": "replace", "path": path, "value": only_enabled}
Path("spec.json").write_text(json.dumps({"Patches": {"AWS::S3::Bucket": [patch]}}))
Path(".cfnlintrc").write_text("override_spec: spec.json\\n")
print(json.dumps([before, lint()]))
"""


def test_a_warm_process_lints_with_the_schemas_a_new_settings_file_patches(
    tmp_path: Path,
) -> None:
    """A settings file's `override_spec` patches cfn-lint's schemas in place when its rules are
    loaded again (a warm worker of `synth --watch`): the fragments remembered before are
    forgotten, and the process finds what cfn-lint as shipped finds."""
    found = {}
    for arm in ("shipped", "shortcuts"):
        folder = tmp_path / arm
        folder.mkdir()
        env = os.environ | {"PYTHONPATH": str(ROOT), "HOME": str(folder)}
        done = subprocess.run(
            [sys.executable, "-c", OVERRIDDEN, arm],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        found[arm] = json.loads(done.stdout)
    suspended = ["E3030", "error", "Resources/Bucket", "'Suspended' is not one of ['Enabled']"]
    assert found["shortcuts"] == found["shipped"] == [[], [suspended]]


def test_a_fragment_is_never_another_documents_that_took_its_place() -> None:
    """Documents made and dropped one after another get the same identity (CPython reuses a
    freed dict's memory): the memo holds each document it keys, so none is dropped while its
    entry is kept, and a later one never gets an earlier one's subschema."""
    from cfnlint.schema.resolver import RefResolver

    from foundation.checks import cfn_lint

    cfn_lint._linter("us-east-1", tuple(cfn_lint.settings_files()))  # applies the shortcuts
    resolver = RefResolver.from_schema({})
    found, identities = [], set()
    document: dict | None = None
    for value in range(50):
        definitions = {"Y": {"const": value}}
        document = None  # dropped: the next dict made may take its memory, so its identity
        document = {"definitions": definitions}
        identities.add(id(document))
        found.append(resolver.resolve_fragment(document, "/definitions/Y")["const"])
    assert (found, len(identities)) == (list(range(50)), 50)
