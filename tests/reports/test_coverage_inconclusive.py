"""Coverage cells and inconclusive runs; vendors reached by address; cells a plan counts for."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from reports import coverage, coverage_rendering, policy
from tests.reports import factories

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
WEB = "component:default/web"
S = coverage.CellState


def _run(*, run_id: str, days_ago: float, inconclusive: str | None = None) -> coverage.RunSummary:
    return coverage.RunSummary(
        run_id=run_id,
        scenario="az-drill",
        failure_mode="availability-zone",
        finished_at=NOW - dt.timedelta(days=days_ago),
        passed=inconclusive is None,
        result="completed/held" if inconclusive is None else "failed/-",
        impacted={WEB: 0},
        fingerprints={},
        achieved_rto_s=1.0,
        inconclusive=inconclusive,
    )


@pytest.fixture
def catalog(tmp_path: Path) -> cmdb_models.Catalog:
    return factories.write_catalog(tmp_path / "cmdb")


def _web_az(matrix: coverage.Matrix) -> coverage.Cell:
    row = next(r for r in matrix.rows if r.name == "web")
    return next(c for c in row.cells if c.mode == "availability-zone")


def _matrix(catalog: cmdb_models.Catalog, *runs: coverage.RunSummary) -> coverage.Matrix:
    return coverage.build_matrix(catalog=catalog, rules=policy.load(), runs=runs, now=NOW)


def test_an_inconclusive_run_after_a_pass_keeps_the_pass_and_is_counted_beside_it(
    catalog: cmdb_models.Catalog,
) -> None:
    matrix = _matrix(
        catalog,
        _run(run_id="pass", days_ago=3),
        _run(run_id="crash", days_ago=1, inconclusive="the orchestrator crashed"),
    )

    cell = _web_az(matrix)

    assert (cell.state, cell.last_run, cell.inconclusive_runs) == (S.PASSED, "pass", 1)
    assert "1 later run(s) inconclusive" in cell.why
    assert coverage_rendering.cell_code(cell) == "PASS?*"
    assert "PASS?*" in coverage_rendering.render(matrix, coverage_rendering.Format.TABLE)


def test_only_inconclusive_runs_make_an_inconclusive_cell_scored_zero_not_failed(
    catalog: cmdb_models.Catalog,
) -> None:
    matrix = _matrix(catalog, _run(run_id="r", days_ago=1, inconclusive="refused at plan time"))

    cell = _web_az(matrix)

    assert cell.state is S.INCONCLUSIVE and cell.inconclusive_runs == 1
    assert "refused at plan time" in cell.why
    assert coverage_rendering.cell_code(cell) == "INCL*"
    assert coverage.WEIGHTS[S.INCONCLUSIVE] == 0 < coverage.WEIGHTS[S.FAILED]
    body = json.loads(coverage_rendering.render(matrix, coverage_rendering.Format.JSON))
    web = next(s for s in body["services"] if s["ref"] == WEB)
    as_json = next(c for c in web["cells"] if c["mode"] == "availability-zone")
    assert (as_json["state"], as_json["inconclusive_runs"]) == ("INCONCLUSIVE", 1)
    rows = list(
        csv.DictReader(
            io.StringIO(coverage_rendering.render(matrix, coverage_rendering.Format.CSV))
        )
    )
    row = next(r for r in rows if r["service"] == WEB and r["mode"] == "availability-zone")
    assert (row["state"], row["inconclusive_runs"]) == ("INCONCLUSIVE", "1")
    html = coverage_rendering.render(matrix, coverage_rendering.Format.HTML)
    assert 'class="INCONCLUSIVE req"' in html and "inconclusive runs: 1" in html


def test_a_failed_run_stays_failed_when_an_inconclusive_run_follows(
    catalog: cmdb_models.Catalog,
) -> None:
    failed = dataclasses.replace(
        _run(run_id="bad", days_ago=2), passed=False, result="completed/deviated"
    )
    matrix = _matrix(catalog, failed, _run(run_id="later", days_ago=1, inconclusive="crashed"))

    cell = _web_az(matrix)

    assert (cell.state, cell.last_run, cell.inconclusive_runs) == (S.FAILED, "bad", 1)


def test_vendors_are_reached_by_an_overlapping_cidr_on_a_shared_port(
    catalog: cmdb_models.Catalog,
) -> None:
    def names(cidrs: tuple[str, ...], ports: tuple[int, ...] = ()) -> list[str]:
        found = cmdb_impact.services_for_addresses(catalog, cidrs=cidrs, ports=ports)
        return [s.ref.name for s in found]

    assert names(("198.51.100.0/24",)) == ["cardco"]
    assert names(("198.51.100.7/32",), (443,)) == ["cardco"]
    assert names(("0.0.0.0/0",)) == ["cardco"]
    assert names(("198.51.100.0/24",), (5432,)) == []
    assert names(("203.0.113.0/24",)) == []
    assert names(("not-a-cidr", "2001:db8::/32")) == []


def test_addresses_are_read_from_the_network_parameters_only() -> None:
    params = {"cidr": "198.51.100.0/24", "cidrs": ["10.0.0.0/8"], "port": 443, "ports": ["8443"]}

    assert cmdb_impact.addresses_in(params) == (("198.51.100.0/24", "10.0.0.0/8"), (443, 8443))
    assert cmdb_impact.addresses_in({"replicas": 0, "zone": "us-east-1a"}) == ((), ())


def test_counted_cells_name_each_service_and_vendor_a_third_party_run_reaches(
    catalog: cmdb_models.Catalog,
) -> None:
    impacted = {"resource:default/cardco": 0, "component:default/api": 1, WEB: 2}

    cells = coverage.counted_cells(catalog, failure_mode="third-party", impacted=impacted)

    assert {(c.service, c.mode) for c in cells} == {(ref, "third-party:cardco") for ref in impacted}
    assert coverage.counted_cells(catalog, failure_mode="third-party", impacted={WEB: 0}) == []
