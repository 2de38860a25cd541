"""Schema: JSON Schemas of the documents, for editors (yaml-language-server) and tooling.

Invariants: schemas are generated from the pydantic models (never hand-kept), use the
camelCase names users write, and accept `{{ name }}` wherever a typed duration,
percentage or limit may be templated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pydantic
from pydantic import json_schema

from scenarios import models, quantities

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(json_schema.GenerateJsonSchema):
    """Writes duration and percentage defaults as users write them (`5s`, `50%`)."""

    def encode_default(self, dft: object) -> pydantic.JsonValue:
        if isinstance(dft, quantities.Duration | quantities.Percent):
            return str(dft)
        encoded: pydantic.JsonValue = super().encode_default(dft)
        return encoded


def json_schemas() -> Mapping[str, pydantic.JsonValue]:
    """One self-contained JSON Schema per kind, keyed by kind (`Scenario`, `Drill`, …)."""
    result: dict[str, pydantic.JsonValue] = {}
    for kind, model in models.MODELS.items():
        schema: dict[str, pydantic.JsonValue] = {"$schema": _DIALECT}
        schema.update(
            model.model_json_schema(by_alias=True, mode="validation", schema_generator=_Generator)
        )
        result[kind.value] = schema
    return result


def combined_schema() -> pydantic.JsonValue:
    """One schema for any Stormdrill document, choosing the kind's schema by `kind`."""
    pairs: list[tuple[type[pydantic.BaseModel], Literal["validation"]]] = [
        (model, "validation") for model in models.MODELS.values()
    ]
    refs, definitions = json_schema.models_json_schema(
        pairs, by_alias=True, ref_template="#/$defs/{model}", schema_generator=_Generator
    )
    branches: list[pydantic.JsonValue] = []
    for kind, model in models.MODELS.items():
        ref = refs[(model, "validation")]
        branches.append(
            {
                "if": {"properties": {"kind": {"const": kind.value}}, "required": ["kind"]},
                "then": dict(ref),
            }
        )
    return {
        "$schema": _DIALECT,
        "title": "Stormdrill document",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": models.API_VERSION},
            "kind": {"enum": [kind.value for kind in models.Kind]},
        },
        "allOf": branches,
        "$defs": definitions.get("$defs", {}),
    }
