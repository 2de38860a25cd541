"""`service.cmdb`: the services, one service, impact and the CI check, as views."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.service import cmdb, views
from orchestrator.cmdb import backstage
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from tests.cmdb import factories as cmdb_factories


@pytest.fixture
def catalog() -> cmdb_models.Catalog:
    return backstage.load_catalog([cmdb_factories.SAMPLE])


def test_sorted_services_puts_the_most_critical_tier_first(catalog: cmdb_models.Catalog) -> None:
    found = cmdb.sorted_services(catalog)
    assert len(found) == len(catalog.services)
    assert [(s.tier, s.ref) for s in found] == sorted((s.tier, s.ref) for s in found)


def test_services_lists_every_service_in_that_order(catalog: cmdb_models.Catalog) -> None:
    listed = cmdb.services(catalog)
    assert [s.ref for s in listed.services] == [str(s.ref) for s in cmdb.sorted_services(catalog)]
    dumped = listed.dump()["services"]
    assert isinstance(dumped, list)
    assert isinstance(dumped[0], dict)
    assert "tierDefaulted" in dumped[0]


def test_find_service_takes_a_short_name(catalog: cmdb_models.Catalog) -> None:
    assert str(cmdb.find_service(catalog, "checkout").ref) == "component:default/checkout"


def test_service_shows_what_uses_it(catalog: cmdb_models.Catalog) -> None:
    shown = cmdb.service(catalog, "resource:payments-db")
    assert shown.ref == "resource:default/payments-db"
    assert shown.used_by, "payments-db is used by the payments service"
    assert views.ServiceView.model_validate_json(shown.to_text()) == shown


def test_service_of_an_unknown_ref_raises_with_a_suggestion(catalog: cmdb_models.Catalog) -> None:
    with pytest.raises(cmdb_errors.CmdbError, match="checkout"):
        cmdb.service(catalog, "chekout")


def test_impact_of_reaches_the_dependents_transitively(catalog: cmdb_models.Catalog) -> None:
    result = cmdb.impact_of(catalog, ["payments-db"])
    assert [str(t) for t in result.targets] == ["resource:default/payments-db"]
    assert max(s.distance for s in result.services) >= 2


def test_impact_view_gives_the_rto_of_the_failure_mode(catalog: cmdb_models.Catalog) -> None:
    shown = cmdb.impact_view(catalog, ["payments-db"], failure_mode="availability-zone")
    assert shown.failure_mode == "availability-zone"
    assert shown.dump()["failureMode"] == "availability-zone"
    for item in shown.services:
        by_mode = item.objectives.rto_by_mode
        assert item.rto == by_mode.get("availability-zone", item.objectives.rto)


def test_check_of_a_clean_catalog_is_valid(catalog: cmdb_models.Catalog) -> None:
    checked = cmdb.check([cmdb_factories.SAMPLE])
    assert checked.valid
    assert checked.entities == len(catalog.all_refs())
    assert checked.view().valid is True


def test_check_lists_the_error_and_what_it_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog-info.yaml"
    path.write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: broken}\n"
        "spec: {type: service, lifecycle: production}\n",
        encoding="utf-8",
    )
    checked = cmdb.check([cmdb_factories.SAMPLE, path])
    assert not checked.valid
    assert checked.refused
    view = checked.view()
    assert view.valid is False
    assert any(p.file == str(path) and p.field == "spec.owner" for p in view.problems)


def test_check_of_an_unreadable_catalog_reports_problems_and_no_entities(tmp_path: Path) -> None:
    checked = cmdb.check([tmp_path / "missing.yaml"])
    assert not checked.valid
    assert checked.entities == 0
