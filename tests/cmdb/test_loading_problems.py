"""Loading problems: every one placed at file:line:column and a field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cmdb import backstage, errors, models
from scenarios import errors as scenario_errors
from tests.cmdb import factories as f


def _invalid(*paths: Path) -> list[scenario_errors.Problem]:
    with pytest.raises(errors.CatalogInvalid) as caught:
        backstage.load_catalog(list(paths), strict=True)
    assert isinstance(caught.value, scenario_errors.StormdrillError)
    return [p for p in caught.value.problems if p.severity == "error"]


def test_dangling_dependency_is_a_warning_at_its_line_with_a_suggestion(tmp_path: Path) -> None:
    path = f.write(
        tmp_path,
        "catalog-info.yaml",
        f.group(),
        f.component("web", depends_on=["component:checkout"]),
        f.entity("Resource", "checkout", {"type": "database", "owner": "team-a"}),
    )
    catalog = backstage.load_catalog([path])
    [problem] = catalog.problems
    assert problem.severity == "warning"
    assert (problem.file, problem.line) == (str(path), f.line_of(path, "- component:checkout"))
    assert problem.field == "spec.dependsOn[0]"
    assert "component:default/checkout" in problem.message
    assert "resource:default/checkout" in problem.hint
    web = catalog.services[models.EntityRef.parse("component:web")]
    assert web.depends_on == (models.EntityRef.parse("component:checkout"),)


def test_dangling_owner_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = f.write(tmp_path, "c.yaml", f.component("web", owner="team-nobody"))
    [problem] = backstage.load_catalog([path]).problems
    assert str(problem).startswith(f"{path}:{f.line_of(path, 'owner: team-nobody')}:")
    assert problem.field == "spec.owner"


def test_unknown_kinds_and_foreign_documents_are_skipped_with_a_note(tmp_path: Path) -> None:
    path = f.write(
        tmp_path,
        "c.yaml",
        f.group(),
        f.entity("Template", "new-service", {"type": "service"}),
        "apiVersion: stormdrill.dev/v1\nkind: Scenario\nmetadata: {name: x}\nspec: {}\n",
        f.component("web"),
    )
    catalog = backstage.load_catalog([path])
    assert list(catalog.services) == [models.EntityRef.parse("component:web")]
    notes = [(p.severity, p.line, p.message) for p in catalog.problems]
    assert notes == [
        (
            "warning",
            f.line_of(path, "kind: Template"),
            "kind 'Template' is not used by Stormdrill; skipped",
        ),
        (
            "warning",
            f.line_of(path, "apiVersion: stormdrill.dev/v1"),
            "not a Backstage entity (apiVersion 'stormdrill.dev/v1'); skipped",
        ),
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("stormdrill.dev/tier", "7", "tier must be a whole number from 1 to 4, not '7'"),
        ("stormdrill.dev/rto", "soon", "'soon' is not a duration"),
        ("stormdrill.dev/rpo.availability-zone", "5 minutes", "'5 minutes' is not a duration"),
        ("stormdrill.dev/vendor-cidrs", "203.0.113.0/33", "'203.0.113.0/33' is not a CIDR block"),
        ("stormdrill.dev/aws-resources", "rds", "must be 'type:id'"),
        ("stormdrill.dev/aws-tags", "app", "'app' must be 'key=value'"),
        ("backstage.io/kubernetes-label-selector", "app in (a", "is not a label"),
        ("stormdrill.dev/break-glass", "group:team-a", "this field takes a user"),
    ],
)
def test_bad_annotation_values_are_errors_with_line_and_field_path(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    path = f.write(tmp_path, "c.yaml", f.group(), f.component("web", annotations={key: value}))
    [problem] = _invalid(path)
    assert problem.line == f.line_of(path, key)
    assert problem.field == f'metadata.annotations["{key}"]'
    assert message in problem.message


def test_unquoted_tier_is_read_as_written_and_a_missing_tier_defaults_to_3(
    tmp_path: Path,
) -> None:
    text = f.component("web").replace(
        "metadata:\n", "metadata:\n  annotations:\n    stormdrill.dev/tier: 2\n"
    )
    path = f.write(tmp_path, "c.yaml", f.group(), text, f.component("api"))
    catalog = backstage.load_catalog([path])
    web = catalog.services[models.EntityRef.parse("component:web")]
    api = catalog.services[models.EntityRef.parse("component:api")]
    assert (web.tier, web.tier_defaulted) == (2, False)
    assert (api.tier, api.tier_defaulted) == (models.DEFAULT_TIER, True)


def test_misspelt_stormdrill_annotation_is_a_warning_suggesting_the_right_one(
    tmp_path: Path,
) -> None:
    path = f.write(
        tmp_path, "c.yaml", f.group(), f.component("web", annotations={"stormdrill.dev/teir": "1"})
    )
    [problem] = backstage.load_catalog([path]).problems
    assert problem.severity == "warning"
    assert problem.hint == "did you mean 'stormdrill.dev/tier'?"


def test_duplicate_keys_are_errors_naming_both_lines(tmp_path: Path) -> None:
    text = f.component("web").replace("spec:\n", "spec:\n  owner: group:team-a\n", 1)
    path = f.write(tmp_path, "c.yaml", f.group(), text)
    [problem] = _invalid(path)
    first = f.line_of(path, "owner: group:team-a")
    second = f.line_of(path, "owner: group:team-a", occurrence=2)
    assert problem.line == second
    assert problem.field == "spec.owner"
    assert (
        problem.message == f"duplicate key 'owner' (first on line {first}, again on line {second})"
    )


def test_an_entity_defined_twice_is_an_error_at_the_second(tmp_path: Path) -> None:
    path = f.write(tmp_path, "c.yaml", f.group(), f.component("web"), f.component("web"))
    [problem] = _invalid(path)
    assert problem.line == f.line_of(path, "name: web", occurrence=2)
    assert "defined twice" in problem.message
    assert f"{path}:" in problem.hint


def test_a_missing_required_field_is_an_error_at_its_parent(tmp_path: Path) -> None:
    text = f.entity("Component", "web", {"type": "service", "owner": "team-a"})
    path = f.write(tmp_path, "c.yaml", f.group(), text)
    [problem] = _invalid(path)
    assert problem.field == "spec.lifecycle"
    assert problem.message == "this field is required"
    assert problem.line == f.line_of(path, "type: service")


def test_an_owner_of_the_wrong_kind_is_a_warning_and_kept_as_written(tmp_path: Path) -> None:
    path = f.write(
        tmp_path, "c.yaml", f.group(), f.component("web", owner="component:api"), f.component("api")
    )
    catalog = backstage.load_catalog([path], strict=True)
    [problem] = catalog.problems
    assert (problem.severity, problem.field) == ("warning", "spec.owner")
    assert problem.line == f.line_of(path, "owner: component:api")
    assert "normally names a group or user" in problem.message
    web = catalog.services[models.EntityRef.parse("component:web")]
    assert web.owner == models.EntityRef.parse("component:api")


def test_invalid_yaml_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: backstage.io/v1alpha1\nkind: [Component\n", encoding="utf-8")
    [problem] = _invalid(path)
    assert problem.file == str(path)
    assert problem.line >= 2
    assert problem.message.startswith("YAML syntax error")


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    [problem] = _invalid(tmp_path / "nope.yaml")
    assert problem.message == "no such file or folder"


def test_errors_come_first_and_warnings_are_kept(tmp_path: Path) -> None:
    path = f.write(
        tmp_path,
        "c.yaml",
        f.component("web", owner="team-nobody"),
        f.component("api", annotations={"stormdrill.dev/tier": "0"}),
    )
    with pytest.raises(errors.CatalogInvalid) as caught:
        backstage.load_catalog([path], strict=True)
    # the refused entity's own references are not followed, so not reported as dangling
    assert [p.severity for p in caught.value.problems] == ["error", "warning"]
