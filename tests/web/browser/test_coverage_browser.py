"""In the browser: the coverage matrix shows what `GET /api/v1/coverage` judges, cell by cell.

After one sandbox drill completed, the viewer opens `/coverage`; every service of the
API's JSON (the sample CMDB) has a row and a cell per failure mode, and each cell says
its state in a word (not colour alone) with the state's style, the date of the run it is
judged by, and, for the cells the drill covered, links to the runs and the post-mortem.
Following a cell's runs link lists the drill.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright import sync_api

from tests.web.browser import conftest

pytestmark = pytest.mark.browser

WORDS: dict[str, tuple[str, str]] = {
    "PASSED": ("passed", "state-passed"),
    "EXPIRED": ("stale", "state-stale"),
    "FAILED": ("failed", "state-failed"),
    "INCONCLUSIVE": ("inconclusive", "state-inconclusive"),
    "NOT_RUN": ("not run", "state-not-run"),
    "NOT_APPLICABLE": ("n/a", "state-not-applicable"),
}
"""What a person must read (and the style drawn) for each state of the API's JSON."""

CELLS_JS = """cells => cells.map(cell => ({
  service: cell.dataset.service,
  mode: cell.dataset.mode,
  classes: Array.from(cell.classList),
  text: cell.innerText,
  time: cell.querySelector("time") ? cell.querySelector("time").getAttribute("datetime") : null,
  links: Array.from(cell.querySelectorAll("a")).map(a => a.textContent.trim()),
}))"""


def test_the_coverage_matrix_shows_every_cell_as_the_api_judges_it(
    browse: conftest.Browse, served: conftest.Served, completed_run: str
) -> None:
    with served.api(conftest.VIEWER) as client:
        answer = client.get("/api/v1/coverage")
    assert answer.status_code == 200, answer.text
    expected: dict[tuple[str, str], dict[str, Any]] = {
        (row["ref"], cell["mode"]): cell
        for row in answer.json()["services"]
        for cell in row["cells"]
    }
    covered = [key for key, cell in expected.items() if cell["last_run"] == completed_run]
    assert covered and all(expected[key]["state"] == "PASSED" for key in covered), covered

    tab = browse(conftest.VIEWER)
    tab.visit("/coverage")
    matrix = tab.page.get_by_role("table", name=re.compile("Services"))
    sync_api.expect(matrix).to_be_visible()
    shown = {
        (cell["service"], cell["mode"]): cell
        for cell in matrix.locator("td.cell").evaluate_all(CELLS_JS)
    }

    assert set(shown) == set(expected)
    for key, cell in expected.items():
        word, style = WORDS[cell["state"]]
        seen = shown[key]
        assert word in seen["text"].lower(), (key, cell["state"], seen["text"])
        assert style in seen["classes"], (key, cell["state"], seen["classes"])
        if cell["last_run_at"] is None:
            assert seen["time"] is None, (key, seen)
        else:
            assert seen["time"] is not None and seen["time"][:10] == cell["last_run_at"][:10]
    for key in covered:
        assert {"runs", "post-mortem"} <= set(shown[key]["links"]), (key, shown[key])
    tab.assert_clean()

    service, mode = covered[0]
    runs_link = matrix.locator(
        f'td.cell[data-service="{service}"][data-mode="{mode}"]'
    ).get_by_role("link", name=re.compile("^Runs of"))
    with tab.page.expect_navigation():
        runs_link.click()
    tab.shot(f"runs of {service} for {mode}")
    assert tab.page.locator(f'a[href="/runs/{completed_run}"]').count() >= 1
    tab.assert_clean()
