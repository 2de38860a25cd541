"""Coverage rendering: the matrix as a terminal table (rich), Markdown, HTML, JSON and CSV.

The terminal table fits 100 columns: one short code per cell (PASS, EXPD, FAIL, INCL,
----, n/a; a `?` marks a cell with inconclusive runs newer than the one it is judged by,
a `*` cells the policy requires) and abbreviated mode headers, with a legend and the
roll-ups below. The other formats carry every field of every cell, including
`inconclusive_runs`.
"""

from __future__ import annotations

import csv
import enum
import functools
import io
import json
from collections.abc import Mapping, Sequence

import jinja2
import markupsafe
import rich.console
import rich.table
import rich.text

from reports import coverage, pictures, rendering


class Format(enum.StrEnum):
    TABLE = "table"
    MARKDOWN = "md"
    HTML = "html"
    JSON = "json"
    CSV = "csv"


SHORT: Mapping[coverage.CellState, str] = {
    coverage.CellState.PASSED: "PASS",
    coverage.CellState.EXPIRED: "EXPD",
    coverage.CellState.FAILED: "FAIL",
    coverage.CellState.INCONCLUSIVE: "INCL",
    coverage.CellState.NOT_RUN: "----",
    coverage.CellState.NOT_APPLICABLE: "n/a",
}
STYLE: Mapping[coverage.CellState, str] = {
    coverage.CellState.PASSED: "green",
    coverage.CellState.EXPIRED: "yellow",
    coverage.CellState.FAILED: "bold red",
    coverage.CellState.INCONCLUSIVE: "magenta",
    coverage.CellState.NOT_RUN: "red",
    coverage.CellState.NOT_APPLICABLE: "dim",
}
_ABBREVIATIONS: Mapping[str, str] = {
    "availability-zone": "AZ",
    "region": "region",
    "dependency": "dep",
    "key-person": "person",
    "data-loss": "data",
}


def header(mode: str) -> str:
    base, _, vendor = mode.partition(":")
    if base == coverage.THIRD_PARTY:
        return f"3p:{vendor[:8]}"
    return _ABBREVIATIONS.get(mode, mode[:8])


def cell_code(cell: coverage.Cell) -> str:
    later = cell.inconclusive_runs and cell.state is not coverage.CellState.INCONCLUSIVE
    return SHORT[cell.state] + ("?" if later else "") + ("*" if cell.required else "")


def _percent(rollup: coverage.Rollup) -> str:
    if rollup.percent is None:
        return "-"
    return f"{rollup.percent:.0f}% ({rollup.fresh}/{rollup.required}), score {rollup.score:.0f}"


def table(matrix: coverage.Matrix) -> list[rich.console.RenderableType]:
    """Renderables for a terminal of 100 columns."""
    grid = rich.table.Table(
        title=f"Drill coverage (policy {matrix.policy})", show_lines=False, pad_edge=False
    )
    # Names are never cut: a long one folds onto the next line (people copy them).
    grid.add_column("system", max_width=14, overflow="fold")
    grid.add_column("service", overflow="fold", min_width=8)
    grid.add_column("T", justify="right")
    for mode in matrix.modes:
        grid.add_column(header(mode), justify="center", no_wrap=True)
    grid.add_column("acts", justify="right")
    previous = None
    for row in matrix.rows:
        system = row.system or "-"
        cells = [rich.text.Text(cell_code(c), style=STYLE[c.state]) for c in row.cells]
        actions = sum(c.open_actions for c in row.cells)
        grid.add_row(
            system if system != previous else "",
            row.name,
            str(row.tier),
            *cells,
            str(actions) if actions else "",
        )
        previous = system
    legend = rich.text.Text(
        "PASS fresh pass · EXPD stale (time or CMDB change) · FAIL latest run failed · "
        "INCL only inconclusive runs (refused, crashed, failed on an error) · ? later runs "
        "inconclusive · ---- not run · n/a not applicable · * required by policy · "
        "acts: open action items",
        style="dim",
    )
    rollups = rich.table.Table(title="Roll-ups (required cells with a fresh pass; score)")
    rollups.add_column("by")
    rollups.add_column("group", overflow="fold")
    rollups.add_column("fresh passes and score")
    rollups.add_row("all", "", _percent(matrix.overall))
    for label, items in (
        ("tier", matrix.by_tier),
        ("system", matrix.by_system),
        ("mode", matrix.by_mode),
    ):
        for rollup in items:
            rollups.add_row(label, rollup.label, _percent(rollup))
    return [grid, legend, rollups]


def to_json(matrix: coverage.Matrix) -> str:
    def cell(c: coverage.Cell) -> dict[str, object]:
        return {
            "mode": c.mode,
            "state": c.state.value,
            "required": c.required,
            "rules": list(c.rules),
            "window_days": c.window_days,
            "scenarios": list(c.scenarios),
            "last_run": c.last_run,
            "last_run_at": c.last_run_at.isoformat() if c.last_run_at else None,
            "last_result": c.last_result,
            "achieved_rto_s": c.achieved_rto_s,
            "target_rto_s": c.target_rto_s,
            "why": c.why,
            "open_actions": c.open_actions,
            "inconclusive_runs": c.inconclusive_runs,
        }

    def rollup(r: coverage.Rollup) -> dict[str, object]:
        return {
            "group": r.label,
            "required": r.required,
            "fresh": r.fresh,
            "percent": r.percent,
            "score": r.score,
        }

    body = {
        "generated_at": matrix.generated_at.isoformat(),
        "policy": matrix.policy,
        "weights": {state.value: weight for state, weight in coverage.WEIGHTS.items()},
        "modes": list(matrix.modes),
        "services": [
            {
                "ref": row.ref,
                "system": row.system,
                "tier": row.tier,
                "owner": row.owner,
                "cells": [cell(c) for c in row.cells],
            }
            for row in matrix.rows
        ],
        "rollups": {
            "overall": rollup(matrix.overall),
            "by_tier": [rollup(r) for r in matrix.by_tier],
            "by_system": [rollup(r) for r in matrix.by_system],
            "by_mode": [rollup(r) for r in matrix.by_mode],
        },
    }
    return json.dumps(body, indent=2) + "\n"


def to_csv(matrix: coverage.Matrix) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "system",
            "service",
            "tier",
            "owner",
            "mode",
            "state",
            "required",
            "window_days",
            "scenarios",
            "last_run",
            "last_run_at",
            "last_result",
            "achieved_rto_s",
            "target_rto_s",
            "open_actions",
            "inconclusive_runs",
            "why",
        ]
    )
    for row in matrix.rows:
        for c in row.cells:
            writer.writerow(
                [
                    row.system or "",
                    row.ref,
                    row.tier,
                    row.owner,
                    c.mode,
                    c.state.value,
                    "yes" if c.required else "no",
                    f"{c.window_days:g}",
                    " ".join(c.scenarios),
                    c.last_run or "",
                    c.last_run_at.isoformat() if c.last_run_at else "",
                    c.last_result or "",
                    "" if c.achieved_rto_s is None else f"{c.achieved_rto_s:.3f}",
                    "" if c.target_rto_s is None else f"{c.target_rto_s:g}",
                    c.open_actions,
                    c.inconclusive_runs,
                    c.why,
                ]
            )
    return out.getvalue()


def to_markdown(matrix: coverage.Matrix) -> str:
    lines = [
        f"# Drill coverage (policy {matrix.policy})",
        "",
        f"Generated {rendering.utc(matrix.generated_at)}. Cells: PASS fresh pass, EXPD stale,"
        " FAIL latest run failed, INCL only inconclusive runs (refused, crashed, failed on an"
        " error), ---- not run, n/a not applicable; `?` later runs inconclusive, `*` required"
        " by policy.",
        "",
        "| System | Service | Tier | " + " | ".join(matrix.modes) + " | Open actions |",
        "|" + "---|" * (len(matrix.modes) + 4),
    ]
    for row in matrix.rows:
        codes = " | ".join(cell_code(c) for c in row.cells)
        actions = sum(c.open_actions for c in row.cells)
        lines.append(f"| {row.system or '-'} | {row.name} | {row.tier} | {codes} | {actions} |")
    lines += [
        "",
        "## Roll-ups",
        "",
        "| By | Group | Required | Fresh | % | Score |",
        "|---|---|---|---|---|---|",
    ]
    for label, items in (
        ("all", (matrix.overall,)),
        ("tier", matrix.by_tier),
        ("system", matrix.by_system),
        ("mode", matrix.by_mode),
    ):
        for r in items:
            percent = "-" if r.percent is None else f"{r.percent:g}"
            score = "-" if r.score is None else f"{r.score:g}"
            lines.append(
                f"| {label} | {r.label} | {r.required} | {r.fresh} | {percent} | {score} |"
            )
    lines += [
        "",
        "Score: the mean over required cells of "
        + ", ".join(f"{state.value} {weight}" for state, weight in coverage.WEIGHTS.items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = rendering.utc
    env.filters["code"] = cell_code
    return env


def to_html(matrix: coverage.Matrix, *, trend: Sequence[pictures.WeekCount] | None = None) -> str:
    """The matrix as one HTML page; `trend` (`pictures.weekly_fresh`) adds its SVG above
    the roll-ups (only that SVG, escaped where it is built, is marked safe)."""
    svg = None if trend is None else markupsafe.Markup(pictures.coverage_trend_svg(trend))
    return (
        _environment()
        .get_template("coverage.html.j2")
        .render(m=matrix, weights=coverage.WEIGHTS, trend=svg)
    )


def render(
    matrix: coverage.Matrix,
    fmt: Format,
    *,
    trend: Sequence[pictures.WeekCount] | None = None,
) -> str:
    """`matrix` as text (every format but TABLE, which `table` gives as renderables);
    HTML shows `trend` when given."""
    if fmt is Format.MARKDOWN:
        return to_markdown(matrix)
    if fmt is Format.HTML:
        return to_html(matrix, trend=trend)
    if fmt is Format.CSV:
        return to_csv(matrix)
    if fmt is Format.JSON:
        return to_json(matrix)
    console = rich.console.Console(width=100, record=True, file=io.StringIO(), color_system=None)
    for item in table(matrix):
        console.print(item)
    return console.export_text()
