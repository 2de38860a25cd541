"""JSON Schema export: one schema per kind and a combined one keyed on kind."""

from __future__ import annotations

import json
from collections.abc import Iterator

from scenarios import schema


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _dig(node: object, *keys: str | int) -> object:
    for key in keys:
        if isinstance(node, dict) and isinstance(key, str):
            node = node[key]
            continue
        if isinstance(node, list) and isinstance(key, int):
            node = node[key]
            continue
        raise AssertionError(f"cannot follow {key!r}")
    return node


def test_each_kind_has_a_self_contained_schema_with_camel_case_properties() -> None:
    schemas = schema.json_schemas()
    assert set(schemas) == {"Scenario", "Drill", "Environment"}
    for kind, document in schemas.items():
        assert isinstance(document, dict)
        json.dumps(document)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        properties = document["properties"]
        assert isinstance(properties, dict)
        assert {"apiVersion", "kind", "metadata", "spec"} <= set(properties)
        assert properties["kind"] == {"const": kind, "title": "Kind", "type": "string"}
        definitions = document["$defs"]
        assert isinstance(definitions, dict)
        for ref in _refs(document):
            assert ref.startswith("#/$defs/")
            assert ref.removeprefix("#/$defs/") in definitions
    spec_properties = _dig(schemas["Scenario"], "$defs", "ScenarioSpec", "properties")
    assert isinstance(spec_properties, dict)
    assert "steadyState" in spec_properties
    step_properties = _dig(schemas["Scenario"], "$defs", "Step", "properties")
    assert isinstance(step_properties, dict)
    assert "with" in step_properties


def test_combined_schema_dispatches_on_kind_and_resolves_every_ref() -> None:
    combined = schema.combined_schema()
    assert isinstance(combined, dict)
    definitions = combined["$defs"]
    assert isinstance(definitions, dict)
    assert {"Scenario", "Drill", "Environment"} <= set(definitions)
    branches = combined["allOf"]
    assert isinstance(branches, list)
    assert len(branches) == 3
    for ref in _refs(combined):
        assert ref.removeprefix("#/$defs/") in definitions


def test_durations_accept_templates_and_show_defaults_as_written() -> None:
    scenario = schema.json_schemas()["Scenario"]
    pattern = _dig(scenario, "$defs", "Step", "properties", "wait", "anyOf", 0, "pattern")
    assert isinstance(pattern, str)
    assert "{{" in pattern.replace("\\", "")
    assert _dig(scenario, "$defs", "Probe", "properties", "interval", "default") == "5s"
