"""Catalogs in the shapes Backstage's own examples use, loaded the way Backstage loads them.

Multi-document files, Locations with targets, relations with and without kinds and
namespaces. As in Backstage, one bad entity (or one missing Location target, or a second
definition) is marked with its error and the rest is ingested; a strict load refuses.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.cmdb import backstage, errors, impact, models
from tests.cmdb import factories as f

R = models.EntityRef.parse

ENTITIES = """\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-a
spec:
  type: team
  children: []
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: spotify
  description: The Spotify web API
spec:
  type: openapi
  lifecycle: production
  owner: team-a
  definition: "openapi: 3.0.0"
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: artist-lookup
  description: Artist Lookup
spec:
  type: service
  lifecycle: experimental
  owner: team-a
  providesApis:
    - spotify
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: playback-order
spec:
  type: service
  lifecycle: production
  owner: team-a
  consumesApis: ['component:artist-lookup']
  dependsOn: ['api:spotify']
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_relation_naming_an_unexpected_kind_is_a_warning_and_kept_as_written(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "entities.yaml", ENTITIES)
    catalog = backstage.load_catalog([path], strict=True)
    playback = catalog.services[R("component:playback-order")]
    assert R("component:artist-lookup") in playback.depends_on
    assert R("api:spotify") in playback.depends_on
    notes = {(p.severity, p.line, p.field) for p in catalog.problems}
    assert notes == {
        ("warning", f.line_of(path, "consumesApis:"), "spec.consumesApis[0]"),
        ("warning", f.line_of(path, "dependsOn:"), "spec.dependsOn[0]"),
    }
    assert catalog.refused == ()


def test_consuming_a_component_as_an_api_carries_impact_to_the_consumer(tmp_path: Path) -> None:
    path = _write(tmp_path, "entities.yaml", ENTITIES)
    catalog = backstage.load_catalog([path])
    reached = impact.impact(catalog, [R("component:artist-lookup")])
    assert R("component:playback-order") in reached.refs


def test_one_invalid_entity_is_refused_and_the_rest_of_the_file_loads(tmp_path: Path) -> None:
    broken = """\
    ---
    apiVersion: backstage.io/v1alpha1
    kind: Component
    metadata:
      name: wayback-search
    spec:
      type: service
      owner: team-a
    """
    path = _write(tmp_path, "entities.yaml", ENTITIES + textwrap.dedent(broken))
    catalog = backstage.load_catalog([path])
    assert set(catalog.services) == {R("component:artist-lookup"), R("component:playback-order")}
    [error] = catalog.errors
    assert (error.file, error.field) == (str(path), "spec.lifecycle")
    assert error.line == f.line_of(path, "type: service", occurrence=3)
    [refused] = catalog.refused
    assert refused.what == "component:default/wayback-search"
    assert refused.source.line == f.line_of(path, "name: wayback-search") - 3
    with pytest.raises(errors.CatalogInvalid) as caught:
        backstage.load_catalog([path], strict=True)
    assert [p.field for p in caught.value.problems if p.severity == "error"] == ["spec.lifecycle"]


def test_a_missing_location_target_refuses_only_that_target(tmp_path: Path) -> None:
    _write(tmp_path, "components/artist-lookup.yaml", ENTITIES)
    root = _write(
        tmp_path,
        "all.yaml",
        """\
        apiVersion: backstage.io/v1alpha1
        kind: Location
        metadata:
          name: example-groups
          description: A collection of all Backstage example entities
        spec:
          targets:
            - ./components/artist-lookup.yaml
            - ./components/podcast-api.yaml
        """,
    )
    catalog = backstage.load_catalog([root])
    assert R("component:artist-lookup") in catalog.services
    [error] = catalog.errors
    assert (error.line, error.field) == (f.line_of(root, "podcast-api"), "spec.targets[1]")
    assert "no such file or folder" in error.message
    assert [r.what for r in catalog.refused] == ["Location target './components/podcast-api.yaml'"]
    with pytest.raises(errors.CatalogInvalid):
        backstage.load_catalog([root], strict=True)


def test_an_entity_defined_twice_keeps_the_first_and_names_both_places(tmp_path: Path) -> None:
    first = _write(tmp_path, "a/entities.yaml", ENTITIES)
    second = _write(
        tmp_path,
        "b/catalog-info.yaml",
        """\
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata:
          name: artist-lookup
          description: A copy
        spec:
          type: website
          lifecycle: production
          owner: team-a
        """,
    )
    catalog = backstage.load_catalog([tmp_path])
    kept = catalog.services[R("component:artist-lookup")]
    assert (kept.description, kept.source.file) == ("Artist Lookup", str(first))
    [error] = catalog.errors
    assert (error.file, error.line) == (str(second), f.line_of(second, "name: artist-lookup"))
    assert f"{first}:{f.line_of(first, 'name: artist-lookup') - 3}" in error.message
    assert f"{second}:1" in error.message
    assert [r.what for r in catalog.refused] == [
        "component:default/artist-lookup (second definition)"
    ]


def test_namespaced_entities_resolve_relations_without_kind_or_namespace(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "shop.yaml",
        """\
        apiVersion: backstage.io/v1alpha1
        kind: Group
        metadata: {name: payments, namespace: shop}
        spec: {type: team, children: []}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Resource
        metadata: {name: payments-db, namespace: shop}
        spec: {type: database, owner: payments}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {name: payments, namespace: shop}
        spec:
          type: service
          lifecycle: production
          owner: payments
          dependsOn: [resource:payments-db, component:default/ledger]
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Component
        metadata: {name: ledger}
        spec: {type: service, lifecycle: production, owner: group:shop/payments}
        """,
    )
    catalog = backstage.load_catalog([path], strict=True)
    payments = catalog.services[R("component:shop/payments")]
    assert payments.owner == R("group:shop/payments")
    assert payments.depends_on == (R("resource:shop/payments-db"), R("component:default/ledger"))
    assert catalog.problems == ()


def test_an_owner_suggestion_names_a_group_or_user_never_a_component(tmp_path: Path) -> None:
    path = f.write(
        tmp_path,
        "c.yaml",
        f.group("payments-team"),
        f.component("payments", owner="group:payments-team"),
        f.component("checkout", owner="payments"),
    )
    catalog = backstage.load_catalog([path])
    [problem] = catalog.problems
    assert problem.field == "spec.owner"
    assert problem.hint == "did you mean 'group:default/payments-team'?"


def test_a_dependency_suggestion_names_a_component_or_resource_never_a_group(
    tmp_path: Path,
) -> None:
    path = f.write(
        tmp_path,
        "c.yaml",
        f.group("ledger"),
        f.entity("Resource", "ledger-db", {"type": "database", "owner": "ledger"}),
        f.component("payments", owner="ledger", depends_on=["ledger"]),
    )
    [problem] = backstage.load_catalog([path]).problems
    assert problem.field == "spec.dependsOn[0]"
    assert problem.hint == "did you mean 'resource:default/ledger-db'?"


def test_a_reference_to_a_refused_entity_says_it_was_refused(tmp_path: Path) -> None:
    path = f.write(
        tmp_path,
        "c.yaml",
        f.group(),
        f.component("web", depends_on=["checkout"]),
        f.component("checkout", annotations={"stormdrill.dev/tier": "9"}),
    )
    catalog = backstage.load_catalog([path])
    [warning] = [p for p in catalog.problems if p.severity == "warning"]
    assert warning.field == "spec.dependsOn[0]"
    assert "'component:default/checkout' was refused" in warning.message
    assert f"{path}:" in warning.message


def test_one_bad_rotation_is_refused_and_the_others_are_kept(tmp_path: Path) -> None:
    oncall = """\
    apiVersion: stormdrill.dev/v1
    kind: OnCall
    metadata: {name: rotations}
    spec:
      rotations:
        - name: web
          service: web
          layers: [{name: primary, members: [alice]}]
        - name: broken
          team: team-a
          layers: [{name: primary, members: ['group:team-a']}]
        - name: web
          team: team-a
          layers: [{name: primary, members: [alice]}]
    """
    path = f.write(
        tmp_path, "c.yaml", f.group(members=["alice"]), f.user("alice"), f.component("web")
    )
    rotations = _write(tmp_path, "oncall.yaml", oncall)
    catalog = backstage.load_catalog([path, rotations])
    assert list(catalog.rotations) == ["web"]
    assert catalog.rotations[models.RotationName("web")].service == R("component:web")
    assert [r.what for r in catalog.refused] == [
        "rotation 'broken'",
        "rotation 'web' (second definition)",
    ]
    assert [p.line for p in catalog.errors] == [
        f.line_of(rotations, "'group:team-a'"),
        f.line_of(rotations, "- name: web", occurrence=2),
    ]


def test_a_catalog_where_nothing_loads_is_still_an_error(tmp_path: Path) -> None:
    path = f.write(tmp_path, "c.yaml", f.component("web", annotations={"stormdrill.dev/tier": "9"}))
    with pytest.raises(errors.CatalogInvalid):
        backstage.load_catalog([path])


def test_refusal_lines_list_the_errors_then_a_count(tmp_path: Path) -> None:
    path = f.write(
        tmp_path, "c.yaml", f.group(), f.component("web"), f.component("web"), f.component("x")
    )
    catalog = backstage.load_catalog([path])
    lines = backstage.refusal_lines(catalog)
    assert lines[0].startswith(f"{path}:{f.line_of(path, 'name: web', occurrence=2)}:")
    assert lines[-1].startswith("CMDB: 1 catalog entry refused (component:default/web")
    with pytest.raises(errors.CatalogInvalid):
        backstage.refusal_lines(catalog, strict=True)
    assert backstage.refusal_lines(None, strict=True) == []
