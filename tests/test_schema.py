"""The JSON Schemas (foundation/schema.py) say what the models say: the shipped files are the
generated ones byte for byte, every file the models take the schemas take, and every file the
models refuse the schemas refuse, but for the rules listed in NOT_IN_THE_SCHEMA.

Checked with the `jsonschema` library's Draft 7 validator (Python's `re` for patterns; the
YAML language server in an editor runs them as JavaScript regular expressions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
from jsonschema import Draft7Validator
from pydantic import BaseModel, TypeAdapter, ValidationError

from foundation import config, manifest, schema
from foundation.config import Deployment
from foundation.fields import Model
from foundation.manifest import DagManifest
from foundation.project import overlay_document
from foundation.yamlio import load, load_mapping
from tests.conftest import ROOT, ProjectDir

FIXTURES = ROOT / "tests" / "fixtures"
INVALID = FIXTURES / "invalid"

# Invalid fixtures the models refuse and the schemas take: rules across fields (the models'
# validators; JSON Schema's if/then could say some, but only as a second, hand-written copy of
# each rule) and host bits in a CIDR block.
NOT_IN_THE_SCHEMA = {
    ("manifest", "cidr_host_bits"): "network.egress[0].cidr: host bits set",
    ("manifest", "min_over_max"): "worker: min_count above max_count",
    ("config", "cidr_too_small"): "network: cidr too small for its availability zones",
    ("config", "endpoints_in_existing_vpc"): "network: private_endpoints with vpc_id",
    ("config", "endpoints_without_prefix_list"): "network: private_endpoints needs "
    "s3_prefix_list_id",
    ("config", "git_without_url"): "dags: bundle: git needs url",
    ("config", "http_without_opt_in"): "web: no certificate_arn needs allow_http",
    ("config", "ldap_in_the_clear"): "web.auth.ldap: ldap:// needs use_tls",
    ("config", "public_alb_without_public_subnets"): "web.internal: false with vpc_id needs "
    "public_subnet_ids",
    ("config", "simple_users_without_secret"): "web.auth: several users need passwords_secret",
    ("config", "vpc_and_cidr"): "network: vpc_id with cidr",
}
# Refused when the file is read, before any model or schema sees data.
YAML_REFUSALS = {"alias_bomb", "custom_tag", "duplicate_key", "python_tag", "syntax_error"}
TAG_KEY = r"^(?:(?!aws:)(?!foundation:)[\w .:/=+@-]{1,128})$"
MODELS: dict[str, type[BaseModel]] = {"config": Deployment, "manifest": DagManifest}


def validator(kind: schema.Kind) -> Draft7Validator:
    return Draft7Validator(schema.generate(kind))


def schema_errors(kind: schema.Kind, data: Any) -> list[str]:
    return [e.message for e in validator(kind).iter_errors(data)]


def model_takes(kind: str, data: Any) -> bool:
    try:
        MODELS[kind].model_validate(data)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("kind", schema.KINDS)
def test_the_shipped_schema_is_the_generated_one(kind: schema.Kind) -> None:
    assert schema.shipped(kind) == schema.text(kind)
    shipped = ROOT / "foundation" / "schemas" / schema.file_name(kind)
    assert shipped.read_text() == schema.text(kind)


@pytest.mark.parametrize("kind", schema.KINDS)
def test_each_schema_is_a_draft_7_schema(kind: schema.Kind) -> None:
    generated = schema.generate(kind)
    assert generated["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(generated)


def test_the_verb_prints_and_writes_the_shipped_schema(project: ProjectDir) -> None:
    from typer.testing import CliRunner

    from foundation.cli import app

    printed = CliRunner().invoke(app, ["schema", "manifest"])
    assert (printed.exit_code, printed.stdout) == (0, schema.shipped("manifest"))
    target = project.root / "config.schema.json"
    written = CliRunner().invoke(app, ["schema", "config", "--output", str(target)])
    assert (written.exit_code, written.stdout) == (0, "")
    assert target.read_text() == schema.shipped("config")


def test_the_verb_refuses_an_unknown_kind() -> None:
    from typer.testing import CliRunner

    from foundation.cli import app

    result = CliRunner().invoke(app, ["schema", "dags"])
    assert result.exit_code == 2
    assert result.stderr == "error: schema 'dags': use one of config, overlay, manifest\n"


def test_the_verb_names_a_folder_it_cannot_write(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from foundation.cli import app

    target = tmp_path / "missing" / "x.json"
    result = CliRunner().invoke(app, ["schema", "config", "--output", str(target)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {target}: No such file or directory\n"


def _properties(generated: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    models = {"(file)": generated, **generated["$defs"]}
    return [
        (model, name, prop)
        for model, body in models.items()
        for name, prop in body.get("properties", {}).items()
    ]


@pytest.mark.parametrize("kind", schema.KINDS)
def test_every_field_has_a_description_and_examples_the_schema_takes(kind: schema.Kind) -> None:
    generated = schema.generate(kind)
    fields = _properties(generated)
    assert len(fields) == {"config": 64, "overlay": 64, "manifest": 62}[kind]
    lacking = [(m, f) for m, f, p in fields if not p.get("description") or not p.get("examples")]
    assert lacking == []
    refused = [
        (m, f, example)
        for m, f, prop in fields
        for example in prop["examples"]
        if list(Draft7Validator({"$defs": generated["$defs"], **prop}).iter_errors(example))
    ]
    assert refused == []


def _models() -> list[type[Model]]:
    found = {
        value
        for module in (config, manifest)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Model) and value is not Model
    }
    return sorted(found, key=lambda m: m.__name__)


def test_every_example_is_taken_by_its_model_field() -> None:
    refused = []
    for model in _models():
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if field.metadata:
                annotation = Annotated[annotation, *field.metadata]
            adapter = TypeAdapter(annotation)
            for example in field.examples or []:
                try:
                    adapter.validate_python(example)
                except ValidationError as error:
                    refused.append((model.__name__, name, example, str(error)))
    assert refused == []


def _shipped_files() -> list[tuple[schema.Kind, Path]]:
    files: list[tuple[schema.Kind, Path]] = []
    for project in (ROOT, FIXTURES / "bundles"):
        for path in sorted((project / "config").glob("*.yaml")):
            files.append(("config" if path.name == "foundation.yaml" else "overlay", path))
        files += [("manifest", p) for p in sorted((project / "dag_permissions").glob("*.yaml"))]
    return files


def test_the_shipped_files_are_the_ones_expected() -> None:
    named = [(kind, str(path.relative_to(ROOT))) for kind, path in _shipped_files()]
    assert named[:3] == [
        ("config", "config/foundation.yaml"),
        ("overlay", "config/staging.yaml"),
        ("manifest", "dag_permissions/clickstream_emr.yaml"),
    ]
    assert len(named) == 2 + 7 + 2 + 2


@pytest.mark.parametrize(
    ("kind", "path"),
    _shipped_files(),
    ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v,
)
def test_every_shipped_and_fixture_file_is_valid_under_its_schema(
    kind: schema.Kind, path: Path
) -> None:
    assert schema_errors(kind, load(path).data) == []


@pytest.mark.parametrize(
    ("project", "env"), [(ROOT, "staging"), (FIXTURES / "bundles", "git")], ids=["root", "bundles"]
)
def test_an_overlay_merged_over_its_base_is_a_valid_config(project: Path, env: str) -> None:
    merged = overlay_document(
        load_mapping(project / "config" / "foundation.yaml"),
        load_mapping(project / "config" / f"{env}.yaml"),
    )
    assert model_takes("config", merged.data)
    assert schema_errors("config", merged.data) == []


def _invalid_fixtures() -> list[tuple[str, str]]:
    return [
        (kind, path.stem)
        for kind, folder in (("manifest", "manifests"), ("config", "config"))
        for path in sorted((INVALID / folder).glob("*.yaml"))
        if path.stem not in YAML_REFUSALS
    ]


def _fixture_data(kind: str, case: str) -> Any:
    return load(INVALID / ("manifests" if kind == "manifest" else "config") / f"{case}.yaml").data


@pytest.mark.parametrize(("kind", "case"), _invalid_fixtures())
def test_an_invalid_fixture_is_refused_by_the_schema_when_the_model_refuses_it(
    kind: schema.Kind, case: str
) -> None:
    """Both ways: the schema refuses what the model refuses (but for NOT_IN_THE_SCHEMA), and
    takes what the model takes (those fixtures are refused later: IAM database, reserved
    names, other files)."""
    data = _fixture_data(kind, case)
    by_model = model_takes(kind, data)
    by_schema = schema_errors(kind, data) == []
    if (kind, case) in NOT_IN_THE_SCHEMA:
        assert (by_model, by_schema) == (False, True)
    else:
        assert by_schema == by_model


def test_the_yaml_refusals_never_reach_a_schema() -> None:
    from foundation.errors import InvalidInput

    for case in sorted(YAML_REFUSALS):
        with pytest.raises(InvalidInput):
            load(INVALID / "manifests" / f"{case}.yaml")


def test_the_config_schema_requires_no_field_inside_a_list() -> None:
    """What makes the overlay schema (every `required` dropped) exact: a list replaces the
    base's whole, so a model in a list would still need its required fields."""

    def required_in_items(node: Any, in_items: bool) -> bool:
        if isinstance(node, dict):
            if in_items and node.get("required"):
                return True
            return any(required_in_items(v, in_items or k == "items") for k, v in node.items())
        if isinstance(node, list):
            return any(required_in_items(v, in_items) for v in node)
        return False

    def requires(node: Any) -> bool:
        if isinstance(node, dict):
            return "required" in node or any(requires(v) for v in node.values())
        return isinstance(node, list) and any(requires(v) for v in node)

    generated = schema.generate("config")
    assert required_in_items(generated, False) is False
    assert requires(generated["$defs"]["DagBundle"]) is False
    assert requires(schema.generate("overlay")) is False


@pytest.mark.parametrize(
    ("worker", "errors"),
    [
        ({"cpu": 256, "memory": 2048}, []),
        ({"memory": 4096}, []),
        ({"cpu": 1024}, ["'memory' is a required property"]),
        ({"cpu": 300}, ["300 is not one of [256, 512, 1024, 2048, 4096, 8192, 16384]"]),
        ({"memory": 512}, ["512 is not one of [1024, 2048, 3072, 4096]"]),
    ],
)
def test_the_schema_knows_the_fargate_pairs_as_the_model_does(
    worker: dict[str, int], errors: list[str]
) -> None:
    defs = schema.generate("manifest")["$defs"]
    size = Draft7Validator({"$defs": defs, "$ref": "#/$defs/WorkerSize"})
    assert [e.message for e in size.iter_errors(worker)] == errors
    assert model_takes("manifest", {"dag_id": "x", "owner": "me", "worker": worker}) is (
        errors == []
    )


@pytest.mark.parametrize(
    ("tags", "errors"),
    [
        ({"team": "a"}, []),
        ({"aws:x": "a"}, [f"'aws:x' does not match any of the regexes: {TAG_KEY!r}"]),
        (
            {"foundation:project": "a"},
            [f"'foundation:project' does not match any of the regexes: {TAG_KEY!r}"],
        ),
    ],
)
def test_tag_keys_the_toolkit_owns_are_refused(tags: dict[str, str], errors: list[str]) -> None:
    data = {**load(ROOT / "config" / "foundation.yaml").data, "tags": tags}
    assert schema_errors("config", data) == errors
    assert model_takes("config", data) is (errors == [])


@pytest.mark.parametrize(
    "classpath",
    [
        "airflow.providers.amazon.aws.triggers.s3.S3KeyTrigger",
        "airflow.triggers.callback.CallbackTrigger",
    ],
)
def test_refused_trigger_classes_are_refused_by_the_schema(classpath: str) -> None:
    data = {**load(ROOT / "config" / "foundation.yaml").data, "airflow": {"triggers": [classpath]}}
    assert len(schema_errors("config", data)) == 1
    assert model_takes("config", data) is False


def test_an_overlay_may_set_cpu_alone_since_the_base_gives_memory() -> None:
    overlay = {"worker_defaults": {"cpu": 2048}}
    assert schema_errors("overlay", overlay) == []
    base = load(ROOT / "config" / "foundation.yaml").data
    merged = {**base, "worker_defaults": {**base["worker_defaults"], "cpu": 2048, "memory": 4096}}
    assert schema_errors("config", merged) == []
    assert schema_errors("config", {**base, **overlay}) == ["'memory' is a required property"]


def _patterns(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        found |= set(node.get("patternProperties", {}))
        return found.union(*(_patterns(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_patterns(v) for v in node))
    return set()


def test_every_pattern_is_a_javascript_regular_expression() -> None:
    """Editors run the patterns as JavaScript (ECMA-262) with the unicode flag: each compiles
    in Node.js as it does in Python."""
    import subprocess

    patterns = sorted(set().union(*(_patterns(schema.generate(k)) for k in schema.KINDS)))
    assert len(patterns) == 46
    script = (
        "const bad = [];"
        f"for (const p of {json.dumps(patterns)}) {{"
        "  try { new RegExp(p, 'u'); } catch (e) { bad.push(p); } }"
        "process.stdout.write(JSON.stringify(bad));"
    )
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "[]")
