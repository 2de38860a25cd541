"""Location entities, folders, and the on-call document."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from orchestrator.cmdb import backstage, errors, models
from tests.cmdb import factories as f

R = models.EntityRef.parse


def _location(*targets: str) -> str:
    return f.entity("Location", "root", {"type": "file", "targets": list(targets)})


def test_locations_are_followed_relative_to_their_file_with_globs(tmp_path: Path) -> None:
    f.write(tmp_path, "teams/catalog-info.yaml", f.group())
    f.write(tmp_path, "services/web/catalog-info.yaml", f.component("web"))
    f.write(tmp_path, "services/api/catalog-info.yaml", f.component("api"))
    root = f.write(
        tmp_path, "all.yaml", _location("./teams/catalog-info.yaml", "services/*/catalog-info.yaml")
    )
    catalog = backstage.load_catalog([root])
    assert set(catalog.services) == {R("component:web"), R("component:api")}
    assert catalog.problems == ()


def test_a_location_cycle_is_read_once(tmp_path: Path) -> None:
    a = f.write(tmp_path, "a.yaml", f.group(), _location("b.yaml"))
    f.write(tmp_path, "b.yaml", f.component("web"), _location("a.yaml"))
    catalog = backstage.load_catalog([a])
    assert list(catalog.services) == [R("component:web")]


def test_a_missing_location_target_is_an_error_at_the_target(tmp_path: Path) -> None:
    root = f.write(tmp_path, "all.yaml", _location("missing/catalog-info.yaml"))
    with pytest.raises(errors.CatalogInvalid) as caught:
        backstage.load_catalog([root])
    [problem] = caught.value.problems
    assert problem.line == f.line_of(root, "missing/catalog-info.yaml")
    assert problem.field == "spec.targets[0]"
    assert "no such file or folder" in problem.message


def test_a_folder_loads_every_yaml_file_below_it(tmp_path: Path) -> None:
    f.write(tmp_path, "x/one.yaml", f.group())
    f.write(tmp_path, "x/y/two.yml", f.component("web"))
    catalog = backstage.load_catalog([tmp_path])
    assert list(catalog.services) == [R("component:web")]


def _oncall(rotations: str) -> str:
    return (
        "apiVersion: stormdrill.dev/v1\nkind: OnCall\nmetadata:\n  name: x\nspec:\n"
        f"  rotations:\n{rotations}"
    )


def test_on_call_overrides_replace_a_member_during_their_time_range(tmp_path: Path) -> None:
    rotations = (
        "    - name: a\n"
        "      service: web\n"
        "      layers:\n"
        "        - name: primary\n"
        "          members: [alice, bob]\n"
        "          overrides:\n"
        "            - user: carol\n"
        "              replaces: alice\n"
        "              start: 2025-01-01T00:00:00Z\n"
        "              end: 2025-01-02T00:00:00Z\n"
    )
    path = f.write(
        tmp_path,
        "c.yaml",
        f.group(members=["alice", "bob", "carol"]),
        *(f.user(n) for n in ("alice", "bob", "carol")),
        f.component("web"),
        _oncall(rotations),
    )
    catalog = backstage.load_catalog([path])
    assert catalog.problems == ()
    [rotation] = catalog.rotations_for(R("component:web"))
    layer = rotation.layers[0]
    during = datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC)
    after = datetime.datetime(2025, 1, 3, tzinfo=datetime.UTC)
    assert layer.on_call_at(during) == (R("user:carol"), R("user:bob"))
    assert layer.on_call_at(after) == (R("user:alice"), R("user:bob"))
    assert catalog.services[R("component:web")].people.on_call == ("a",)


@pytest.mark.parametrize(
    ("rotation", "field", "message"),
    [
        (
            "    - name: a\n      service: web\n      team: team-a\n"
            "      layers: [{name: p, members: [alice]}]\n",
            "spec.rotations[0]",
            "exactly one service or one team",
        ),
        (
            "    - name: a\n      team: team-a\n      escalate: true\n"
            "      layers: [{name: p, members: [alice]}]\n",
            "spec.rotations[0].escalate",
            "unknown field",
        ),
        (
            "    - name: a\n      team: team-a\n      layers:\n        - name: p\n"
            "          members: [alice]\n          overrides:\n            - user: bob\n"
            "              start: 2025-01-01T00:00:00\n              end: 2025-01-02T00:00:00Z\n",
            "spec.rotations[0].layers[0].overrides[0].start",
            "timezone",
        ),
    ],
)
def test_invalid_on_call_documents_are_errors_with_a_field_path(
    tmp_path: Path, rotation: str, field: str, message: str
) -> None:
    path = f.write(tmp_path, "oncall.yaml", _oncall(rotation))
    with pytest.raises(errors.CatalogInvalid) as caught:
        backstage.load_catalog([path])
    problem = next(p for p in caught.value.problems if p.severity == "error")
    assert problem.field == field
    assert message in problem.message
