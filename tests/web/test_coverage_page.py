"""The coverage page: the matrix the API judges, drawn cell by cell, filtered, rolled up, as CSV.

Finished runs are recorded into the page's own store the way the report tests record them
(`tests.reports.factories.record_run`, with a clock set back for an old pass): a fresh pass
(web, key-person), a failure (checkout, availability-zone), a pass 200 days old (payments,
availability-zone: stale by time) and a pass whose CMDB entry changed since (inventory,
key-person: stale by change). The page is parsed with `html.parser` and compared with
`GET /api/v1/coverage` for the same store; the CSV with the API's CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html.parser
import io
import urllib.parse
from collections.abc import Mapping
from typing import Any

import pytest

from drills.service import audit, auth
from orchestrator import journal, states
from reports import evidence
from tests.reports import factories
from tests.web.conftest import Web

WEB = "component:default/web"
CHECKOUT = "component:default/checkout"
PAYMENTS = "component:default/payments"
INVENTORY = "component:default/inventory"
SYMBOLS = {
    "PASSED": "✓ passed",
    "EXPIRED": "⟳ stale",
    "FAILED": "✗ failed",
    "INCONCLUSIVE": "? inconclusive",
    "NOT_RUN": "○ not run",
    "NOT_APPLICABLE": "— n/a",
}
CLASSES = {
    "PASSED": "state-passed",
    "EXPIRED": "state-stale",
    "FAILED": "state-failed",
    "INCONCLUSIVE": "state-inconclusive",
    "NOT_RUN": "state-not-run",
    "NOT_APPLICABLE": "state-not-applicable",
}


# ---- parsing the page -------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    attrs: dict[str, str]
    text: str = ""
    links: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    times: list[str] = dataclasses.field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


@dataclasses.dataclass
class Page:
    cells: dict[tuple[str, str], Cell] = dataclasses.field(default_factory=dict)
    columns: list[str] = dataclasses.field(default_factory=list)
    legend: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    """label `for` -> its text."""
    selects: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    """select id -> (name, selected value)."""
    rollups: dict[str, dict[str, dict[str, str]]] = dataclasses.field(default_factory=dict)
    """by -> group -> data-state (or column index) -> text."""
    order: list[str] = dataclasses.field(default_factory=list)
    """Landmarks in document order: `svg`, `matrix`, `form.filters`, h2 texts."""
    h2: list[str] = dataclasses.field(default_factory=list)


class CoverageParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._cell: Cell | None = None
        self._depth = 0
        self._link: str | None = None
        self._link_text = ""
        self._legend: str | None = None
        self._legend_text = ""
        self._label: str | None = None
        self._label_text = ""
        self._select: str | None = None
        self._select_name = ""
        self._rollup: str | None = None
        self._group: str | None = None
        self._td_state: str | None = None
        self._td_index = 0
        self._td_text = ""
        self._in_td = False
        self._th_row = False
        self._th_text = ""
        self._in_head_th = False
        self._head_mode: str | None = None
        self._h2 = False
        self._h2_text = ""

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        classes = set(attrs.get("class", "").split())
        if tag == "svg":
            self.page.order.append("svg")
        if tag == "table" and "matrix" in classes:
            self.page.order.append("matrix")
        if tag == "table" and "rollup" in classes:
            self._rollup = attrs["data-by"]
            self.page.rollups[self._rollup] = {}
        if tag == "form" and "filters" in classes:
            self.page.order.append("form.filters")
        if tag == "h2":
            self._h2, self._h2_text = True, ""
        if tag == "th" and "data-mode" in attrs:
            self.page.columns.append(attrs["data-mode"])
        if tag == "td" and "cell" in classes:
            self._cell = Cell(attrs=attrs)
            self._depth = 0
            return
        if self._cell is not None:
            if tag == "td":
                self._depth += 1
            if tag == "a":
                self._link, self._link_text = attrs.get("href", ""), ""
            if tag == "time":
                self._cell.times.append(attrs.get("datetime", ""))
        if tag == "li" and self._legend is None and attrs.get("class", "").startswith("state-"):
            self._legend, self._legend_text = attrs["class"], ""
        if tag == "label":
            self._label, self._label_text = attrs.get("for", ""), ""
        if tag == "select":
            self._select, self._select_name = attrs.get("id", ""), attrs.get("name", "")
            self.page.selects[self._select] = (self._select_name, "")
        if tag == "option" and self._select is not None and "selected" in attrs:
            self.page.selects[self._select] = (self._select_name, attrs.get("value", ""))
        if self._rollup is not None:
            if tag == "tr" and "data-group" in attrs:
                self._group = attrs["data-group"]
                self.page.rollups[self._rollup][self._group] = {}
                self._td_index = 0
            if tag == "td" and self._group is not None:
                self._in_td, self._td_text = True, ""
                self._td_state = attrs.get("data-state") or f"col{self._td_index}"
                self._td_index += 1

    def handle_endtag(self, tag: str) -> None:
        if self._cell is not None:
            if tag == "a" and self._link is not None:
                self._cell.links.append((self._link, self._link_text.strip()))
                self._link = None
            if tag == "td":
                if self._depth == 0:
                    key = (self._cell.attrs["data-service"], self._cell.attrs["data-mode"])
                    self._cell.text = " ".join(self._cell.text.split())
                    self.page.cells[key] = self._cell
                    self._cell = None
                else:
                    self._depth -= 1
        if tag == "li" and self._legend is not None:
            self.page.legend.append((self._legend, " ".join(self._legend_text.split())))
            self._legend = None
        if tag == "label" and self._label is not None:
            self.page.labels[self._label] = self._label_text.strip()
            self._label = None
        if tag == "select":
            self._select = None
        if tag == "td" and self._in_td and self._rollup and self._group and self._td_state:
            self.page.rollups[self._rollup][self._group][self._td_state] = self._td_text.strip()
            self._in_td = False
        if tag == "table":
            self._rollup, self._group = None, None
        if tag == "h2" and self._h2:
            self.page.h2.append(self._h2_text.strip())
            self.page.order.append(self._h2_text.strip())
            self._h2 = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.text += data
            if self._link is not None:
                self._link_text += data
        if self._legend is not None:
            self._legend_text += data
        if self._label is not None:
            self._label_text += data
        if self._in_td:
            self._td_text += data
        if self._h2:
            self._h2_text += data


def parse(text: str) -> Page:
    parser = CoverageParser()
    parser.feed(text)
    parser.close()
    return parser.page


# ---- the world --------------------------------------------------------------------------


def _record(
    web: Web,
    run_id: str,
    *,
    mode: str,
    ref: str,
    owner: str,
    tier: int = 1,
    deviate: bool = False,
    ago: dt.timedelta = dt.timedelta(hours=1),
) -> None:
    """A finished run of `mode` that reached `ref`, recorded `ago` (its own clock)."""
    start = dt.datetime.now(dt.UTC) - ago
    url = web.world.settings.database_url
    with journal.open_store(url, clock=factories.StepClock(start)) as store:
        factories.record_run(
            store,
            run_id=run_id,
            scenario_name=f"{mode}-drill",
            deviate=deviate,
            started=start,
            failure_mode=mode,
            impact=[{"ref": ref, "tier": tier, "owner": owner, "distance": 0}],
        )


@pytest.fixture
def seeded(web: Web) -> Web:
    payments, storefront = "group:default/team-payments", "group:default/team-storefront"
    _record(web, "run-pass", mode="key-person", ref=WEB, owner=storefront)
    _record(web, "run-fail", mode="availability-zone", ref=CHECKOUT, owner=payments, deviate=True)
    _record(
        web,
        "run-old",
        mode="availability-zone",
        ref=PAYMENTS,
        owner=payments,
        ago=dt.timedelta(days=200),
    )
    _record(web, "run-change", mode="key-person", ref=INVENTORY, owner=storefront, tier=2)
    # The pass recorded another CMDB entry for inventory than today's: stale by change.
    web.store.append_event(
        states.RunId("run-change"),
        kind=evidence.FACTS_KIND,
        message="coverage facts",
        data={"failure_mode": "key-person", "fingerprints": {INVENTORY: "0" * 64}},
    )
    return web


def _bearer(web: Web) -> dict[str, str]:
    return {"Authorization": f"Bearer {web.issue(auth.Role.VIEWER, name='api-reader')}"}


def _api_json(web: Web) -> dict[str, Any]:
    answer = web.client.get("/api/v1/coverage", headers=_bearer(web))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _api_cells(body: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (row["ref"], cell["mode"]): {**cell, "_row": row}
        for row in body["services"]
        for cell in row["cells"]
    }


def _page(web: Web, query: str = "") -> Page:
    answer = web.client.get("/coverage" + (f"?{query}" if query else ""))
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


# ---- tests ------------------------------------------------------------------------------


def test_the_coverage_page_needs_a_login(web: Web) -> None:
    answer = web.client.get("/coverage?team=team-payments")
    assert answer.status_code == 303
    target = urllib.parse.urlsplit(answer.headers["location"])
    assert target.path == "/login"
    assert urllib.parse.parse_qs(target.query)["next"] == ["/coverage?team=team-payments"]


def test_every_cell_of_the_matrix_is_the_one_the_api_judges(seeded: Web) -> None:
    seeded.login(auth.Role.VIEWER)
    page = _page(seeded)
    body = _api_json(seeded)
    expected = _api_cells(body)

    assert page.columns == body["modes"]
    assert set(page.cells) == set(expected)
    for key, cell in page.cells.items():
        want = expected[key]
        state = want["state"]
        assert cell.attrs["data-state"] == state, key
        assert CLASSES[state] in cell.classes, key
        assert cell.text.startswith(SYMBOLS[state]), (key, cell.text)
        assert want["why"] in cell.text, (key, cell.text)
        assert ("*" in cell.text) is want["required"], key
        if want["last_run"] is None:
            assert "data-run" not in cell.attrs and cell.times == []
            continue
        assert cell.attrs["data-run"] == want["last_run"]
        (shown_at,) = cell.times
        assert dt.datetime.fromisoformat(shown_at) == dt.datetime.fromisoformat(want["last_run_at"])
        assert shown_at[:10] in cell.text  # the date is written in the cell
        hrefs = {text: href for href, text in cell.links}
        runs = urllib.parse.urlsplit(hrefs["runs"])
        assert runs.path == "/runs"
        query = urllib.parse.parse_qs(runs.query)
        assert query["service"] == [key[0]]
        assert query.get("scenario") == (want["scenarios"] if len(want["scenarios"]) == 1 else None)
        assert hrefs["post-mortem"] == f"/runs/{want['last_run']}#postmortem"


def test_the_four_seeded_cells_say_passed_failed_and_why_they_are_stale(seeded: Web) -> None:
    seeded.login(auth.Role.VIEWER)
    cells = _page(seeded).cells

    assert cells[(WEB, "key-person")].attrs["data-state"] == "PASSED"
    failed = cells[(CHECKOUT, "availability-zone")]
    assert failed.attrs["data-state"] == "FAILED" and "aborted/deviated" in failed.text
    by_time = cells[(PAYMENTS, "availability-zone")]
    assert by_time.attrs["data-state"] == "EXPIRED" and "stale by time" in by_time.text
    by_change = cells[(INVENTORY, "key-person")]
    assert by_change.attrs["data-state"] == "EXPIRED" and "stale by change" in by_change.text
    untouched = cells[(WEB, "region")]
    assert untouched.attrs["data-state"] == "NOT_RUN" and untouched.links == []
    na = cells[("resource:default/payprovider", "region")]
    assert na.attrs["data-state"] == "NOT_APPLICABLE" and na.text.startswith("— n/a")


def test_the_legend_names_every_state_in_words_and_the_trend_sits_above_the_matrix(
    seeded: Web,
) -> None:
    seeded.login(auth.Role.VIEWER)
    page = _page(seeded)

    legend = dict(page.legend)
    for state, css in CLASSES.items():
        assert legend[css].startswith(SYMBOLS[state]), (css, legend)
    assert page.order.index("svg") < page.order.index("matrix")
    assert page.order.index("form.filters") < page.order.index("matrix")
    assert page.h2 == ["Legend", "Trend", "Matrix", "Roll-ups"]
    text = seeded.client.get("/coverage").text
    assert 'data-kind="trend"' in text and "<script>" not in text


def test_the_filters_are_a_labelled_get_form_showing_what_is_chosen(seeded: Web) -> None:
    seeded.login(auth.Role.VIEWER)
    page = _page(seeded, "team=team-payments&state=failed")

    names = {name for name, _ in page.selects.values()}
    assert names == {"tier", "system", "team", "mode", "state"}
    for select_id in page.selects:
        assert page.labels.get(select_id), f"select {select_id} has no label"
    chosen = dict(page.selects.values())
    assert chosen["team"] == "team-payments" and chosen["state"] == "failed"
    assert chosen["tier"] == "" and chosen["mode"] == ""


@pytest.mark.parametrize(
    ("query", "rows", "modes"),
    [
        ("team=team-storefront", {WEB, INVENTORY}, None),
        ("tier=2", {INVENTORY}, None),
        ("system=shop&mode=key-person", None, ["key-person"]),
        ("mode=availability-zone&team=group:default/team-payments", None, ["availability-zone"]),
    ],
)
def test_a_filter_keeps_the_rows_and_columns_it_names(
    seeded: Web, query: str, rows: set[str] | None, modes: list[str] | None
) -> None:
    seeded.login(auth.Role.VIEWER)
    body = _api_json(seeded)
    page = _page(seeded, query)
    wanted = dict(urllib.parse.parse_qsl(query))

    def kept(row: Mapping[str, Any]) -> bool:
        team = wanted.get("team", "").rpartition("/")[2]
        return (
            ("tier" not in wanted or str(row["tier"]) == wanted["tier"])
            and ("system" not in wanted or row["system"] == wanted["system"])
            and (not team or row["owner"] == team)
        )

    expected_rows = {row["ref"] for row in body["services"] if kept(row)}
    if rows is not None:
        assert expected_rows == rows
    expected_modes = modes or body["modes"]
    assert page.columns == expected_modes
    assert set(page.cells) == {(ref, mode) for ref in expected_rows for mode in expected_modes}
    api = _api_cells(body)
    for key, cell in page.cells.items():
        assert cell.attrs["data-state"] == api[key]["state"]


def test_a_state_filter_keeps_the_rows_with_such_a_cell_and_greys_out_the_others(
    seeded: Web,
) -> None:
    seeded.login(auth.Role.VIEWER)
    page = _page(seeded, "state=stale")

    shown = {key for key, cell in page.cells.items() if cell.attrs["data-state"] != "filtered"}
    assert shown == {(PAYMENTS, "availability-zone"), (INVENTORY, "key-person")}
    assert {ref for ref, _ in page.cells} == {PAYMENTS, INVENTORY}
    greyed = [c for c in page.cells.values() if c.attrs["data-state"] == "filtered"]
    assert greyed and all("filtered out" in c.text for c in greyed)
    assert _page(seeded, "state=EXPIRED").cells.keys() == page.cells.keys()


@pytest.mark.parametrize(
    ("query", "says"),
    [("tier=gold", "tier='gold'"), ("state=pink", "state='pink'"), ("format=xlsx", "format")],
)
def test_a_filter_value_that_cannot_be_read_is_a_422_page_naming_it(
    seeded: Web, query: str, says: str
) -> None:
    seeded.login(auth.Role.VIEWER)
    answer = seeded.client.get(f"/coverage?{query}")
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert says in html.unescape(answer.text)


def test_the_csv_download_is_the_apis_csv_as_an_attachment(seeded: Web) -> None:
    seeded.login(auth.Role.VIEWER)
    page = seeded.client.get("/coverage?format=csv")
    api = seeded.client.get("/api/v1/coverage?format=csv", headers=_bearer(seeded))

    assert page.status_code == 200 and api.status_code == 200
    assert page.headers["content-type"].startswith("text/csv")
    assert page.headers["content-disposition"].startswith("attachment")
    assert 'filename="coverage.csv"' in page.headers["content-disposition"]
    assert page.text == api.text
    assert 'href="/coverage?format=csv"' in seeded.client.get("/coverage").text


def test_the_filtered_csv_is_the_apis_csv_narrowed_by_the_same_filters(seeded: Web) -> None:
    seeded.login(auth.Role.VIEWER)
    page = seeded.client.get("/coverage?format=csv&team=team-payments&state=failed")
    api = seeded.client.get("/api/v1/coverage?format=csv", headers=_bearer(seeded))

    api_rows = list(csv.DictReader(io.StringIO(api.text)))
    narrowed = [r for r in api_rows if r["owner"] == "team-payments" and r["state"] == "FAILED"]
    got = list(csv.DictReader(io.StringIO(page.text)))
    assert got == narrowed and [r["service"] for r in got] == [CHECKOUT]
    assert page.text.splitlines()[0] == api.text.splitlines()[0]  # the same columns
    listed = seeded.client.get("/coverage?team=team-payments&state=failed").text
    assert 'href="/coverage?team=team-payments&amp;state=failed&amp;format=csv"' in listed


def test_the_roll_ups_count_the_cells_per_state_by_tier_system_and_mode(seeded: Web) -> None:
    seeded.login(auth.Role.VIEWER)
    page = _page(seeded)
    body = _api_json(seeded)

    def count(group: str, by: str) -> dict[str, int]:
        found = dict.fromkeys(CLASSES, 0)
        for row in body["services"]:
            for cell in row["cells"]:
                label = {
                    "tier": f"tier {row['tier']}",
                    "system": row["system"] or "(no system)",
                    "mode": cell["mode"],
                }[by]
                if label == group:
                    found[cell["state"]] += 1
        return found

    policy = {
        "tier": body["rollups"]["by_tier"],
        "system": body["rollups"]["by_system"],
        "mode": body["rollups"]["by_mode"],
    }
    assert set(page.rollups) == {"tier", "system", "mode"}
    assert list(page.rollups["mode"]) == body["modes"]
    assert set(page.rollups["tier"]) == {"tier 1", "tier 2"}
    for by, groups in page.rollups.items():
        for group, shown in groups.items():
            assert {s: int(shown[s]) for s in CLASSES} == count(group, by), (by, group)
            (rollup,) = [r for r in policy[by] if r["group"] == group]
            fresh_col = shown[f"col{len(CLASSES)}"]
            if rollup["required"]:
                assert fresh_col.startswith(f"{rollup['fresh']} / {rollup['required']}")
                assert shown[f"col{len(CLASSES) + 1}"] == str(rollup["score"])
            else:
                assert fresh_col == "no required cells"


def test_a_filter_counts_only_the_cells_it_shows_in_the_roll_ups(seeded: Web) -> None:
    seeded.login(auth.Role.VIEWER)
    page = _page(seeded, "mode=key-person")

    assert list(page.rollups["mode"]) == ["key-person"]
    counts = page.rollups["mode"]["key-person"]
    assert int(counts["PASSED"]) == 1 and int(counts["EXPIRED"]) == 1
    assert int(counts["NOT_RUN"]) == 4  # the other services of the matrix
    totals = sum(int(counts[s]) for s in CLASSES)
    assert totals == len(page.cells)


def test_reading_coverage_writes_nothing_to_the_audit_trail(seeded: Web) -> None:
    seeded.login(auth.Role.VIEWER)
    before = len(audit.entries(seeded.store, where=audit.EntryFilter()))
    _page(seeded, "state=failed")
    seeded.client.get("/coverage?format=csv")
    assert len(audit.entries(seeded.store, where=audit.EntryFilter())) == before
