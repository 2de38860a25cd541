"""Coverage: each cell state, change invalidation, roll-ups, the policy file and renderings."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from orchestrator.cmdb import models as cmdb_models
from reports import coverage, coverage_rendering, errors, fingerprints, policy
from tests.reports import factories

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
S = coverage.CellState


def _run(
    *,
    mode: str,
    impacted: Mapping[str, int],
    passed: bool = True,
    days_ago: float = 1,
    rto: float | None = 10.0,
    hashes: Mapping[str, str] | None = None,
    run_id: str = "r1",
) -> coverage.RunSummary:
    return coverage.RunSummary(
        run_id=run_id,
        scenario=f"{mode}-drill",
        failure_mode=mode,
        finished_at=NOW - dt.timedelta(days=days_ago),
        passed=passed,
        result="completed/held" if passed else "aborted/deviated",
        impacted=impacted,
        fingerprints=hashes or {},
        achieved_rto_s=rto,
        open_actions={} if passed else {"web": 2},
    )


def _cell(matrix: coverage.Matrix, service: str, mode: str) -> coverage.Cell:
    row = next(r for r in matrix.rows if r.name == service)
    return next(c for c in row.cells if c.mode == mode)


def _matrix(catalog: cmdb_models.Catalog, *runs: coverage.RunSummary) -> coverage.Matrix:
    return coverage.build_matrix(catalog=catalog, rules=policy.load(), runs=runs, now=NOW)


WEB = "component:default/web"
API = "component:default/api"


@pytest.fixture
def catalog(tmp_path: Path) -> cmdb_models.Catalog:
    return factories.write_catalog(tmp_path / "cmdb")


def test_fresh_pass_is_passed_and_counts_in_the_rollups(catalog: cmdb_models.Catalog) -> None:
    matrix = _matrix(catalog, _run(mode="availability-zone", impacted={WEB: 0}))
    cell = _cell(matrix, "web", "availability-zone")
    assert (
        cell.state is S.PASSED and cell.required and cell.scenarios == ("availability-zone-drill",)
    )
    az = next(r for r in matrix.by_mode if r.label == "availability-zone")
    assert az.fresh == 1 and az.required == 3  # web, api, db; the vendor has no zones


def test_no_run_is_not_run(catalog: cmdb_models.Catalog) -> None:
    assert _cell(_matrix(catalog), "web", "key-person").state is S.NOT_RUN


def test_old_pass_is_expired_by_time(catalog: cmdb_models.Catalog) -> None:
    matrix = _matrix(catalog, _run(mode="availability-zone", impacted={WEB: 0}, days_ago=91))
    cell = _cell(matrix, "web", "availability-zone")
    assert cell.state is S.EXPIRED and "by time" in cell.why


def test_pass_is_expired_when_the_cmdb_entry_changed_since(tmp_path: Path) -> None:
    before = factories.write_catalog(tmp_path / "before")
    recorded = {WEB: fingerprints.of_service(before.services[before.lookup("web")])}
    run = _run(mode="availability-zone", impacted={WEB: 0}, hashes=recorded)
    assert _cell(_matrix(before, run), "web", "availability-zone").state is S.PASSED
    changed = factories.CATALOG.replace(
        "stormdrill.dev/rto.availability-zone: 5m", "stormdrill.dev/rto.availability-zone: 2m"
    )
    after = factories.write_catalog(tmp_path / "after", changed)
    cell = _cell(_matrix(after, run), "web", "availability-zone")
    assert cell.state is S.EXPIRED and "by change" in cell.why


def test_fingerprint_ignores_where_the_entity_is_written(tmp_path: Path) -> None:
    one = factories.write_catalog(tmp_path / "one")
    two = factories.write_catalog(tmp_path / "two", "# a comment\n" + factories.CATALOG)
    ref = one.lookup("web")
    assert fingerprints.of_service(one.services[ref]) == fingerprints.of_service(two.services[ref])


def test_latest_run_failing_makes_the_cell_failed_with_open_actions(
    catalog: cmdb_models.Catalog,
) -> None:
    older = _run(mode="availability-zone", impacted={WEB: 0}, days_ago=5, run_id="old")
    newer = _run(
        mode="availability-zone", impacted={WEB: 0}, passed=False, days_ago=1, run_id="new"
    )
    cell = _cell(_matrix(catalog, older, newer), "web", "availability-zone")
    assert cell.state is S.FAILED and cell.last_run == "new" and cell.open_actions == 2


def test_pass_missing_the_cmdb_rto_is_failed(catalog: cmdb_models.Catalog) -> None:
    cell = _cell(
        _matrix(catalog, _run(mode="availability-zone", impacted={WEB: 0}, rto=301.0)),
        "web",
        "availability-zone",
    )
    assert cell.state is S.FAILED and "RTO" in cell.why and cell.target_rto_s == 300.0


def test_inapplicable_cells_are_not_applicable(catalog: cmdb_models.Catalog) -> None:
    matrix = _matrix(catalog)
    assert _cell(matrix, "cardco", "availability-zone").state is S.NOT_APPLICABLE
    assert _cell(matrix, "db", "dependency").state is S.NOT_APPLICABLE
    assert _cell(matrix, "reports", "third-party:cardco").state is S.NOT_APPLICABLE
    assert _cell(matrix, "web", "third-party:cardco").state is S.NOT_RUN


def test_dependency_drills_cover_the_services_downstream_only(catalog: cmdb_models.Catalog) -> None:
    run = _run(mode="dependency", impacted={API: 0, WEB: 1})
    matrix = _matrix(catalog, run)
    assert _cell(matrix, "web", "dependency").state is S.PASSED
    assert _cell(matrix, "api", "dependency").state is S.NOT_RUN


def test_third_party_columns_are_per_vendor_and_need_the_vendor_in_the_impact(
    catalog: cmdb_models.Catalog,
) -> None:
    assert "third-party:cardco" in _matrix(catalog).modes
    hit = _run(mode="third-party", impacted={"resource:default/cardco": 0, API: 1, WEB: 2})
    assert _cell(_matrix(catalog, hit), "web", "third-party:cardco").state is S.PASSED


def test_declared_modes_become_columns(catalog: cmdb_models.Catalog) -> None:
    matrix = coverage.build_matrix(
        catalog=catalog, rules=policy.load(), runs=[], now=NOW, extra_modes=["data-loss"]
    )
    assert matrix.modes[-1] == "data-loss"


def test_score_uses_the_documented_weights(catalog: cmdb_models.Catalog) -> None:
    runs = [
        _run(mode="availability-zone", impacted={WEB: 0}, run_id="a"),
        _run(mode="key-person", impacted={WEB: 0}, days_ago=100, run_id="b"),
        _run(mode="dependency", impacted={API: 0, WEB: 1}, passed=False, run_id="c"),
    ]
    matrix = _matrix(catalog, *runs)
    web = [c for c in next(r for r in matrix.rows if r.name == "web").cells if c.required]
    states = sorted(c.state.value for c in web)
    expected = sum(coverage.WEIGHTS[c.state] for c in web) / len(web)
    assert "PASSED" in states and "EXPIRED" in states and "FAILED" in states
    assert coverage.WEIGHTS == {
        S.PASSED: 100,
        S.EXPIRED: 75,
        S.FAILED: 50,
        S.INCONCLUSIVE: 0,
        S.NOT_RUN: 0,
    }
    tier1 = next(r for r in matrix.by_tier if r.label == "tier 1")
    assert tier1.score is not None and 0 < tier1.score < 100 and expected > 0


def test_rows_are_grouped_by_system_and_sorted_by_tier(catalog: cmdb_models.Catalog) -> None:
    rows = _matrix(catalog).rows
    assert [(r.system, r.tier) for r in rows] == sorted(
        [(r.system, r.tier) for r in rows], key=lambda x: (x[0] is None, x[0] or "", x[1])
    )
    assert rows[-1].name == "reports" and rows[-1].system is None


def test_policy_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "apiVersion: stormdrill.dev/v1\nkind: CoveragePolicy\nmetadata: {name: p}\n"
        "spec:\n  rules:\n    - name: r\n      tiers: [1]\n      require: [region]\n"
        "      every: soon\n"
    )
    with pytest.raises(errors.PolicyInvalid, match=r"policy.yaml: spec.rules.0.every"):
        policy.load(path)


def test_the_default_policy_requires_az_dependency_and_key_person_for_tier_1() -> None:
    rules = policy.load()
    for mode in ("availability-zone", "dependency", "key-person"):
        need = rules.requirement(tier=1, mode=mode)
        assert need.required and need.window == dt.timedelta(days=90)
    assert not rules.requirement(tier=3, mode="availability-zone").required


def test_every_format_renders_and_the_table_fits_100_columns(catalog: cmdb_models.Catalog) -> None:
    matrix = _matrix(catalog, _run(mode="availability-zone", impacted={WEB: 0}))
    text = coverage_rendering.render(matrix, coverage_rendering.Format.TABLE)
    assert max(len(line) for line in text.splitlines()) <= 100
    body = json.loads(coverage_rendering.render(matrix, coverage_rendering.Format.JSON))
    assert body["rollups"]["overall"]["required"] > 0
    csv_text = coverage_rendering.render(matrix, coverage_rendering.Format.CSV)
    assert csv_text.splitlines()[0].startswith("system,service,tier")
    assert "| web |" in coverage_rendering.render(matrix, coverage_rendering.Format.MARKDOWN)
    assert "<table>" in coverage_rendering.render(matrix, coverage_rendering.Format.HTML)


def test_summaries_from_the_store_read_the_recorded_failure_mode(
    tmp_path: Path, catalog: cmdb_models.Catalog
) -> None:
    store = factories.open_store(tmp_path)
    factories.record_run(store, run_id="held", deviate=False, failure_mode="availability-zone")
    summaries = coverage.load_summaries(store, catalog=catalog)
    assert [(s.run_id, s.failure_mode, s.passed) for s in summaries] == [
        ("held", "availability-zone", True)
    ]
    assert summaries[0].achieved_rto_s == pytest.approx(15.0)
