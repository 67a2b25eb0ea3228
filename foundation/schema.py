"""`foundation schema`: JSON Schemas of the config, its overlays and the manifests, generated
from the models (foundation/config.py, foundation/manifest.py) so they never drift; shipped as
files in the package (foundation/schemas/) for the YAML language server in an editor.

Draft 7, the newest the YAML language server supports. What a schema cannot say (rules across
fields, the IAM database, the names a deployment reserves) `foundation validate` still checks.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from foundation.config import Deployment
from foundation.manifest import DagManifest

Kind = Literal["config", "overlay", "manifest"]
KINDS: tuple[Kind, ...] = ("config", "overlay", "manifest")
DRAFT = "http://json-schema.org/draft-07/schema#"

_MODELS: dict[Kind, type[BaseModel]] = {
    "config": Deployment,
    "overlay": Deployment,
    "manifest": DagManifest,
}
_TITLES: dict[Kind, str] = {
    "config": "airflow-foundation deployment config (config/foundation.yaml)",
    "overlay": "airflow-foundation config overlay (config/<env>.yaml, merged over "
    "config/foundation.yaml)",
    "manifest": "airflow-foundation DAG manifest (dag_permissions/<dag_id>.yaml)",
}


class _Generator(GenerateJsonSchema):
    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        """A mapping whose keys have a pattern (tags, users) takes no other key: pydantic
        writes the pattern as patternProperties, which alone lets any other key through."""
        out = super().dict_schema(schema)
        if "patternProperties" in out:
            out["additionalProperties"] = False
        return out


def file_name(kind: Kind) -> str:
    return f"{kind}.schema.json"


def generate(kind: Kind) -> dict[str, Any]:
    """The schema of one kind of file, as the models define it."""
    body = _MODELS[kind].model_json_schema(schema_generator=_Generator)
    if kind == "overlay":
        body = _partial(body)
    return {"$schema": DRAFT, **body, "title": _TITLES[kind]}


def _partial(schema: dict[str, Any]) -> dict[str, Any]:
    """An overlay is deep-merged over the base config: any mapping may be partial, so no field
    is required and no rule may read an absent field as its default (the Fargate pairs). Lists
    replace the base's whole, but no list of the config holds a model with required fields, so
    this is exact."""
    out = copy.deepcopy(schema)
    for node in [out, *out.get("$defs", {}).values()]:
        node.pop("required", None)
        if "allOf" in node:
            node["allOf"] = [rule for rule in node["allOf"] if "if" not in rule]
            if not node["allOf"]:
                del node["allOf"]
    return out


def text(kind: Kind) -> str:
    return json.dumps(generate(kind), indent=2, ensure_ascii=False) + "\n"


def shipped(kind: Kind) -> str:
    """The schema file in the package: what `foundation init` copies into a project."""
    return resources.files("foundation").joinpath("schemas", file_name(kind)).read_text()
