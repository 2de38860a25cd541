"""`/coverage`: the service by failure-mode matrix, its filters, roll-ups, trend and CSV.

The matrix is the one `GET /api/v1/coverage` answers (`drills.service.coverage.matrix`
over the settings' CMDB, or `?environment=NAME`'s), judged at the time of the request.
The filters are GET query parameters (`tier`, `system`, `team`, `mode`, `state`) that
narrow what is shown, never what is judged: a filter keeps the services (rows) it matches,
the failure modes (columns) it names, and with `state` only the cells in that state (the
others of a kept row are drawn as filtered out). `?format=csv` is the API's CSV of the
cells the filters keep (without filters, byte for byte the API's), as an attachment.
Every cell says its state in a word and a symbol as well as a colour (`STATE_LOOKS`), the
date of the run it is judged by, why (stale by time or by a CMDB change, failed how, not
applicable why), and links to its runs (`/runs?service=REF`, plus `scenario=` when one
scenario covers it: the names the runs list filters by) and to the latest post-mortem.
Roll-ups count the shown cells per state by tier, system and mode, beside the policy's
own roll-up of each group (all its cells). The weekly trend picture
(`drills.service.coverage.trend`) sits above the matrix. A filter value that cannot be
read answers 422 naming it and what it takes.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Annotated

import fastapi
import markupsafe
from fastapi import responses

from drills import settings as settings_mod
from drills.service import auth, catalogs, documents
from drills.service import coverage as coverage_service
from drills.web import deps, rendering, routing
from orchestrator.cmdb import models as cmdb_models
from reports import coverage as coverage_mod
from reports import coverage_rendering, pictures
from scenarios import errors

router = routing.router()

CSV_FILENAME = "coverage.csv"
FILTERS: tuple[str, ...] = ("tier", "system", "team", "mode", "state")
"""The query parameters that narrow the matrix (form field names too)."""

_C = coverage_mod.CellState


@dataclasses.dataclass(frozen=True)
class StateLook:
    """How a cell state is shown: its word, its symbol, its CSS class, its filter value."""

    word: str
    symbol: str
    css: str
    slug: str


STATE_LOOKS: Mapping[coverage_mod.CellState, StateLook] = {
    _C.PASSED: StateLook("passed", "✓", "state-passed", "passed"),
    _C.EXPIRED: StateLook("stale", "⟳", "state-stale", "stale"),
    _C.FAILED: StateLook("failed", "✗", "state-failed", "failed"),
    _C.INCONCLUSIVE: StateLook("inconclusive", "?", "state-inconclusive", "inconclusive"),
    _C.NOT_RUN: StateLook("not run", "○", "state-not-run", "not-run"),
    _C.NOT_APPLICABLE: StateLook("n/a", "—", "state-not-applicable", "not-applicable"),
}
LEGEND: Mapping[coverage_mod.CellState, str] = {
    _C.PASSED: "a fresh pass within the policy's window",
    _C.EXPIRED: "passed, but too long ago or the CMDB entry changed since",
    _C.FAILED: "the latest conclusive run failed or missed the RTO",
    _C.INCONCLUSIVE: "only runs that proved nothing (refused, crashed, failed on an error)",
    _C.NOT_RUN: "no run covers it yet",
    _C.NOT_APPLICABLE: "the failure mode cannot hit the service",
}


class BadFilter(errors.StormdrillError):
    """A coverage filter value that cannot be read (422)."""


def _parse_state(raw: str) -> coverage_mod.CellState:
    text = raw.strip().lower().replace("_", "-").replace(" ", "-")
    for state, look in STATE_LOOKS.items():
        if text in (look.slug, state.value.lower().replace("_", "-")):
            return state
    if text == "n/a":
        return _C.NOT_APPLICABLE
    known = ", ".join(look.slug for look in STATE_LOOKS.values())
    raise BadFilter(f"coverage filter state={raw!r}: give one of {known}")


def _short(ref: str) -> str:
    return auth.short_ref(ref) if ":" in ref else ref


@dataclasses.dataclass(frozen=True)
class CoverageFilter:
    """What the matrix is narrowed to; a field left None matches everything."""

    tier: int | None = None
    system: str | None = None
    team: str | None = None
    """The owning team, as people write it (`team-payments`) or canonical."""
    mode: str | None = None
    state: coverage_mod.CellState | None = None

    @classmethod
    def parse(
        cls,
        *,
        tier: str | None = None,
        system: str | None = None,
        team: str | None = None,
        mode: str | None = None,
        state: str | None = None,
    ) -> CoverageFilter:
        """The filter of the query's values (blank ones ignored); `BadFilter` for a tier or
        state that cannot be read."""
        tier_value: int | None = None
        if tier and tier.strip():
            text = tier.strip().lower().removeprefix("tier").strip()
            try:
                tier_value = int(text)
            except ValueError:
                raise BadFilter(
                    f"coverage filter tier={tier!r}: give a tier number such as 1"
                ) from None
        return cls(
            tier=tier_value,
            system=(system or "").strip() or None,
            team=(team or "").strip() or None,
            mode=(mode or "").strip() or None,
            state=_parse_state(state) if state and state.strip() else None,
        )

    @property
    def active(self) -> bool:
        return any(value is not None for value in dataclasses.astuple(self))

    def values(self) -> dict[str, str]:
        """The query values of this filter (what the form shows and links carry)."""
        found = {
            "tier": "" if self.tier is None else str(self.tier),
            "system": self.system or "",
            "team": self.team or "",
            "mode": self.mode or "",
            "state": "" if self.state is None else STATE_LOOKS[self.state].slug,
        }
        return found

    def query(self, **extra: str) -> str:
        """`tier=1&state=stale&…` of the values set (and `extra`), for links."""
        pairs = [(k, v) for k, v in self.values().items() if v]
        pairs += list(extra.items())
        return urllib.parse.urlencode(pairs)

    def keeps_row(self, row: coverage_mod.Row) -> bool:
        if self.tier is not None and row.tier != self.tier:
            return False
        if self.system is not None and _short(self.system) != (row.system or ""):
            return False
        return self.team is None or _short(self.team) == row.owner

    def keeps_mode(self, mode: str) -> bool:
        return self.mode is None or mode == self.mode

    def keeps_cell(self, cell: coverage_mod.Cell) -> bool:
        return self.keeps_mode(cell.mode) and (self.state is None or cell.state is self.state)


def narrow(matrix: coverage_mod.Matrix, where: CoverageFilter) -> coverage_mod.Matrix:
    """`matrix` with only the rows, modes and cells `where` keeps (a row without a kept
    cell goes); the roll-ups are the whole matrix's (the policy judges every cell)."""
    rows = []
    for row in matrix.rows:
        if not where.keeps_row(row):
            continue
        cells = tuple(c for c in row.cells if where.keeps_cell(c))
        if cells:
            rows.append(dataclasses.replace(row, cells=cells))
    modes = tuple(m for m in matrix.modes if where.keeps_mode(m))
    return dataclasses.replace(matrix, rows=tuple(rows), modes=modes)


# ---- what the page shows ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellLook:
    """One cell as the page draws it (`shown` False: filtered out by `state`)."""

    cell: coverage_mod.Cell
    look: StateLook
    shown: bool
    runs_href: str
    postmortem_href: str | None


@dataclasses.dataclass(frozen=True)
class RowLook:
    row: coverage_mod.Row
    cells: tuple[CellLook, ...]


@dataclasses.dataclass(frozen=True)
class Counts:
    """A roll-up line: the shown cells of a group per state, and the policy's numbers."""

    group: str
    counts: Mapping[coverage_mod.CellState, int]
    policy: coverage_mod.Rollup | None


def runs_href(cell: coverage_mod.Cell) -> str:
    """The runs of a cell: the service's runs, of its one scenario when only one covers it."""
    query = [("service", cell.service)]
    if len(cell.scenarios) == 1:
        query.append(("scenario", cell.scenarios[0]))
    return "/runs?" + urllib.parse.urlencode(query)


def _cell_look(cell: coverage_mod.Cell, where: CoverageFilter) -> CellLook:
    return CellLook(
        cell=cell,
        look=STATE_LOOKS[cell.state],
        shown=where.keeps_cell(cell),
        runs_href=runs_href(cell),
        postmortem_href=None
        if cell.last_run is None
        else f"/runs/{urllib.parse.quote(cell.last_run, safe='')}#postmortem",
    )


def rows_of(matrix: coverage_mod.Matrix, where: CoverageFilter) -> list[RowLook]:
    """The rows the filter keeps, each with its cells in the kept modes."""
    found = []
    for row in matrix.rows:
        if not where.keeps_row(row):
            continue
        cells = tuple(_cell_look(c, where) for c in row.cells if where.keeps_mode(c.mode))
        if any(c.shown for c in cells):
            found.append(RowLook(row=row, cells=cells))
    return found


def rollups_of(matrix: coverage_mod.Matrix, rows: Sequence[RowLook]) -> dict[str, list[Counts]]:
    """Counts per state of the shown cells, by tier, system and mode (in the matrix's
    order), each beside the policy's roll-up of the same group."""
    groups: dict[str, dict[str, collections.Counter[coverage_mod.CellState]]] = {
        "tier": collections.defaultdict(collections.Counter),
        "system": collections.defaultdict(collections.Counter),
        "mode": collections.defaultdict(collections.Counter),
    }
    for row in rows:
        for item in row.cells:
            if not item.shown:
                continue
            groups["tier"][f"tier {row.row.tier}"][item.cell.state] += 1
            groups["system"][row.row.system or "(no system)"][item.cell.state] += 1
            groups["mode"][item.cell.mode][item.cell.state] += 1
    policy_of = {
        "tier": {r.label: r for r in matrix.by_tier},
        "system": {r.label: r for r in matrix.by_system},
        "mode": {r.label: r for r in matrix.by_mode},
    }
    order = {"mode": list(matrix.modes)}
    found: dict[str, list[Counts]] = {}
    for kind, counted in groups.items():
        labels = [m for m in order.get(kind, sorted(counted)) if m in counted]
        found[kind] = [
            Counts(group=label, counts=dict(counted[label]), policy=policy_of[kind].get(label))
            for label in labels
        ]
    return found


def _catalog(
    config: settings_mod.Settings, folders: documents.Folders, environment: str | None
) -> cmdb_models.Catalog:
    """The CMDB the API's coverage route reads: `environment`'s, else the settings'."""
    env = None if environment is None else documents.find_environment(folders, environment).model
    return catalogs.require_catalog(config, env, (), strict=False)


def _options(matrix: coverage_mod.Matrix) -> dict[str, list[str]]:
    return {
        "tier": sorted({str(r.tier) for r in matrix.rows}, key=int),
        "system": sorted({r.system for r in matrix.rows if r.system}),
        "team": sorted({r.owner for r in matrix.rows}),
        "mode": list(matrix.modes),
        "state": [look.slug for look in STATE_LOOKS.values()],
    }


Text = Annotated[str | None, fastapi.Query()]


@router.get("/coverage", response_class=responses.HTMLResponse)
def coverage_page(
    request: fastapi.Request,
    session: deps.SessionDep,
    store: deps.StoreDep,
    config: deps.SettingsDep,
    folders: deps.FoldersDep,
    tier: Text = None,
    system: Text = None,
    team: Text = None,
    mode: Text = None,
    state: Text = None,
    environment: Text = None,
    output_format: Annotated[str | None, fastapi.Query(alias="format")] = None,
) -> responses.Response:
    """The matrix page, or (`format=csv`) the CSV of the cells the filters keep."""
    auth.authorize(session.principal, auth.Permission.READ)
    where = CoverageFilter.parse(tier=tier, system=system, team=team, mode=mode, state=state)
    if output_format not in (None, "", "html", "csv"):
        raise BadFilter(f"coverage format={output_format!r}: give html or csv")
    env = (environment or "").strip() or None
    catalog = _catalog(config, folders, env)
    now = dt.datetime.now(dt.UTC)
    matrix = coverage_service.matrix(store, catalog=catalog, policy_path=None, now=now)
    if output_format == "csv":
        body = coverage_rendering.render(narrow(matrix, where), coverage_rendering.Format.CSV)
        return responses.Response(
            content=body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{CSV_FILENAME}"'},
        )
    trend = coverage_service.trend(store, catalog=catalog, policy_path=None, now=now)
    rows = rows_of(matrix, where)
    extra = {} if env is None else {"environment": env}
    return rendering.page(
        request,
        "coverage.html",
        title="Coverage",
        matrix=matrix,
        modes=[m for m in matrix.modes if where.keeps_mode(m)],
        rows=rows,
        rollups=rollups_of(matrix, rows),
        where=where,
        values=where.values(),
        options=_options(matrix),
        environment=env,
        csv_href="/coverage?" + where.query(**extra, format="csv"),
        states=list(STATE_LOOKS.items()),
        legend=LEGEND,
        trend=markupsafe.Markup(pictures.coverage_trend_svg(trend)),
    )
