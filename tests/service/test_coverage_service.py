"""`service.coverage`: the coverage matrix of the CMDB from the runs in the store."""

from __future__ import annotations

import datetime as dt

from drills.service import coverage, views
from orchestrator import journal
from orchestrator.cmdb import backstage
from reports import coverage as coverage_mod
from reports import coverage_rendering
from scenarios import library, loading
from tests.cmdb import factories as cmdb_factories

NOW = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)


def test_declared_modes_are_those_of_the_bundled_scenarios() -> None:
    modes = coverage.declared_modes()
    assert len(modes) == len(library.bundled_paths())
    first = loading.load_scenario(library.bundled_paths()[0]).model
    assert modes[0] == first.spec.failure_mode.value


def test_matrix_of_an_empty_store_has_every_service_and_nothing_run(store_url: str) -> None:
    catalog = backstage.load_catalog([cmdb_factories.SAMPLE])
    with journal.open_store(store_url) as store:
        built = coverage.matrix(store, catalog=catalog, policy_path=None, now=NOW)
    assert {row.ref for row in built.rows} == {str(ref) for ref in catalog.services}
    assert set(coverage.declared_modes()) <= {m.partition(":")[0] for m in built.modes}
    states = {c.state for row in built.rows for c in row.cells}
    assert coverage_mod.CellState.PASSED not in states
    assert coverage_mod.CellState.NOT_RUN in states
    assert built.overall.fresh == 0


def test_coverage_is_the_matrix_as_the_json_the_cli_always_printed(store_url: str) -> None:
    catalog = backstage.load_catalog([cmdb_factories.SAMPLE])
    with journal.open_store(store_url) as store:
        shown = coverage.coverage(store, catalog=catalog, policy_path=None, now=NOW)
        built = coverage.matrix(store, catalog=catalog, policy_path=None, now=NOW)
    assert shown.generated_at == NOW
    expected = coverage_rendering.render(built, coverage_rendering.Format.JSON)
    assert shown.to_text() + "\n" == expected
    assert views.CoverageView.model_validate_json(expected) == shown
