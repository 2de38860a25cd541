"""Pictures: a run's timeline, its probe strips and the coverage trend as inline SVG text.

`pictures_of(evidence, report)` distils what to draw from a run: phase bands (from `state`
events), each change as a bar from applied to reverted (journal entries and their
`mutation` events), manual steps from prompt to acknowledgement, guardrail trips and
aborts as markers, T0 / recovery / RTO target lines, and every probe's samples. Every text
it keeps comes from the redacted post-mortem (`report`: appendix, manual steps, timeline
rows, recovery) or passes through the run's redactor, so a picture never shows more than
the report's tables. `timeline_svg`, `probe_strips_svg` and `coverage_trend_svg` turn
those facts into SVG; `weekly_fresh` computes the trend from coverage's own rules.

Invariants: pure and deterministic (no clock, no randomness, stable order); every text is
XML-escaped and no script, foreignObject, event attribute or `url(...)` is written; each
SVG is standalone (xmlns, viewBox, width 100%), has `role="img"` with a `<title>` and a
`<desc>` summing it up, and a legend; marks and text use colours of at least 4.5:1
against white, light fills only behind dark text, and pass/fail is told by shape too
(filled dot vs cross). Size is bounded: at most `MAX_BARS` change bars (the rest as one
counted band), `MAX_MARKERS` markers, and `MAX_SAMPLES` marks per probe (more are bucketed,
which the `<desc>` says). Time runs in seconds from the run's start.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence

from orchestrator import events as event_kinds
from orchestrator import mutations
from orchestrator.cmdb import models as cmdb_models
from reports import coverage, policy, redaction, sections
from reports import evidence as ev

_K = event_kinds.EventKind

MAX_BARS = 500
MAX_MARKERS = 200
MAX_SAMPLES = 600
MAX_MANUAL = 100

PHASES: tuple[str, ...] = (
    "pending",
    "planning",
    "preflight",
    "injecting",
    "observing",
    "rolling_back",
    "verifying",
)
"""Run states drawn as bands (the terminal ones end the last band)."""

INK = "#1d232a"
MUTED = "#5b6670"
BLUE = "#1f5fa8"
RED = "#b3261e"
GREEN = "#1e6b3a"
PURPLE = "#6b4c9a"
BROWN = "#8a4b00"
PHASE_FILL: Mapping[str, str] = {
    "pending": "#eef1f4",
    "planning": "#e3ecf7",
    "preflight": "#e8e3f3",
    "injecting": "#fbe3d6",
    "observing": "#fff1c2",
    "rolling_back": "#dcefe2",
    "verifying": "#e2f0f3",
}
"""Light band fills: only behind dark text, outlined in `MUTED`."""

_WIDTH = 1000.0
_X0 = 190.0
_X1 = 975.0
_ROW = 16.0
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11"'
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# -- the facts drawn -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Band:
    phase: str
    start_s: float
    end_s: float


@dataclasses.dataclass(frozen=True)
class Bar:
    """A change (`kind` mutation) or a manual step (`kind` manual) in place over time."""

    kind: str
    label: str
    target: str
    start_s: float
    end_s: float
    state: str
    """mutation: reverted, revert_failed, applied, intended, skipped; manual: its outcome."""
    seq: int
    open_ended: bool = False
    """Drawn to the end of the run: never reverted (leftover) or never acknowledged."""


@dataclasses.dataclass(frozen=True)
class Marker:
    kind: str
    """guardrail or abort."""
    at_s: float
    label: str
    seq: int


@dataclasses.dataclass(frozen=True)
class Line:
    kind: str
    """t0, recovery or rto-target."""
    at_s: float
    label: str


@dataclasses.dataclass(frozen=True)
class RunTimeline:
    title: str
    duration_s: float
    bands: tuple[Band, ...] = ()
    bars: tuple[Bar, ...] = ()
    manual: tuple[Bar, ...] = ()
    markers: tuple[Marker, ...] = ()
    lines: tuple[Line, ...] = ()


@dataclasses.dataclass(frozen=True)
class Sample:
    at_s: float
    ok: bool
    phase: str
    latency_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class ProbeStrip:
    probe: str
    samples: tuple[Sample, ...]


@dataclasses.dataclass(frozen=True)
class RunPictures:
    timeline: RunTimeline
    probes: tuple[ProbeStrip, ...]


@dataclasses.dataclass(frozen=True)
class WeekCount:
    """Fresh passes of one failure mode as of the end of one ISO week (Monday start)."""

    mode: str
    week: dt.date
    fresh: int


def _at(origin: dt.datetime, at: dt.datetime) -> float:
    return round(max((at - origin).total_seconds(), 0.0), 3)


def pictures_of(
    run: ev.RunEvidence,
    report: sections.PostMortem,
    *,
    redactor: redaction.Redactor | None = None,
) -> RunPictures:
    """What to draw of `run`, with texts from the redacted `report` (or redacted here)."""
    mask = redactor or redaction.Redactor()
    origin = run.run.started_at
    last = max((e.at for e in run.events), default=origin)
    end_at = max(run.run.finished_at or last, last)
    duration = _at(origin, end_at)
    return RunPictures(
        timeline=RunTimeline(
            title=report.metadata.title,
            duration_s=duration,
            bands=_bands(run, origin, duration),
            bars=_bars(run, report, origin, duration),
            manual=_manual(run, report, origin, duration),
            markers=_markers(run, report, origin),
            lines=_lines(report, origin),
        ),
        probes=_probes(run, origin, mask),
    )


def _bands(run: ev.RunEvidence, origin: dt.datetime, duration: float) -> tuple[Band, ...]:
    changes = [(e.at, str(e.data.get("state", ""))) for e in run.events if e.kind == _K.STATE]
    found: list[Band] = []
    for index, (at, state) in enumerate(changes):
        if state not in PHASES:
            continue
        end = _at(origin, changes[index + 1][0]) if index + 1 < len(changes) else duration
        found.append(Band(phase=state, start_s=_at(origin, at), end_s=end))
    return tuple(found)


def _bars(
    run: ev.RunEvidence, report: sections.PostMortem, origin: dt.datetime, duration: float
) -> tuple[Bar, ...]:
    rows = {row.seq: row for row in report.appendix}
    applied: dict[int, dt.datetime] = {}
    reverted: dict[int, dt.datetime] = {}
    for event in run.events:
        seq = event.data.get("seq")
        if event.kind != _K.MUTATION or not isinstance(seq, int) or isinstance(seq, bool):
            continue
        state = event.data.get("state")
        if state == "intended":
            applied.setdefault(seq, event.at)
        elif state == "applied":
            applied[seq] = event.at
        elif state == "reverted":
            reverted[seq] = event.at
    found: list[Bar] = []
    for entry in run.entries:
        if entry.state is mutations.EntryState.APPLY_FAILED or entry.seq not in rows:
            continue
        row = rows[entry.seq]
        start = _at(origin, applied.get(entry.seq, entry.created_at))
        done = entry.state is mutations.EntryState.REVERTED
        end_at = reverted.get(entry.seq, entry.updated_at) if done else None
        found.append(
            Bar(
                kind="mutation",
                label=f"#{entry.seq} {row.step}: {row.action}",
                target=row.target,
                start_s=start,
                end_s=_at(origin, end_at) if end_at is not None else duration,
                state=entry.state.value,
                seq=entry.seq,
                open_ended=not done,
            )
        )
    return tuple(sorted(found, key=lambda b: (b.start_s, b.seq)))


def _manual(
    run: ev.RunEvidence, report: sections.PostMortem, origin: dt.datetime, duration: float
) -> tuple[Bar, ...]:
    at_of = {e.seq: e.at for e in run.events}
    found: list[Bar] = []
    for step in report.manual_steps:
        start = _at(origin, step.started_at)
        if step.ack_seq is not None and step.ack_seq in at_of:
            end, open_ended = _at(origin, at_of[step.ack_seq]), False
        elif step.waited_s is not None:
            end, open_ended = round(start + step.waited_s, 3), False
        else:
            end, open_ended = duration, True
        found.append(
            Bar(
                kind="manual",
                label=f"manual {step.step}",
                target=step.assignee,
                start_s=start,
                end_s=max(end, start),
                state=step.outcome.value,
                seq=step.manual_seq,
                open_ended=open_ended,
            )
        )
    return tuple(found)


def _markers(
    run: ev.RunEvidence, report: sections.PostMortem, origin: dt.datetime
) -> tuple[Marker, ...]:
    rows = {row.event_seq: row for row in report.timeline if row.event_seq is not None}
    found: list[Marker] = []
    for event in run.events:
        tripped = event.kind == _K.GUARDRAIL and event.data.get("ok") is False
        if not (tripped or event.kind == _K.ABORT) or event.seq not in rows:
            continue
        found.append(
            Marker(
                kind="guardrail" if tripped else "abort",
                at_s=_at(origin, event.at),
                label=rows[event.seq].what,
                seq=event.seq,
            )
        )
    return tuple(found)


def _lines(report: sections.PostMortem, origin: dt.datetime) -> tuple[Line, ...]:
    recovery = report.recovery
    if recovery.t0 is None:
        return ()
    t0 = _at(origin, recovery.t0)
    found = [Line(kind="t0", at_s=t0, label="T0 (first fault)")]
    if recovery.achieved_rto_s is not None:
        found.append(
            Line(
                kind="recovery",
                at_s=round(t0 + recovery.achieved_rto_s, 3),
                label=f"recovered (RTO {_num(recovery.achieved_rto_s)} s)",
            )
        )
    if recovery.scaled_target_rto_s is not None:
        found.append(
            Line(
                kind="rto-target",
                at_s=round(t0 + recovery.scaled_target_rto_s, 3),
                label=f"RTO target ({_num(recovery.scaled_target_rto_s)} s)",
            )
        )
    return tuple(found)


def _latency(data: Mapping[str, mutations.JsonValue]) -> float | None:
    for key in ("latency_ms", "elapsedMs"):
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    value = data.get("value")
    if isinstance(value, Mapping):
        found = value.get("elapsedMs")
        if isinstance(found, int | float) and not isinstance(found, bool):
            return float(found)
    return None


def _probes(
    run: ev.RunEvidence, origin: dt.datetime, mask: redaction.Redactor
) -> tuple[ProbeStrip, ...]:
    grouped: dict[str, list[Sample]] = {}
    for event in run.events:
        name, ok = event.data.get("probe"), event.data.get("ok")
        if event.kind != _K.PROBE or not isinstance(name, str) or not isinstance(ok, bool):
            continue
        grouped.setdefault(name, []).append(
            Sample(
                at_s=_at(origin, event.at),
                ok=ok,
                phase=str(event.data.get("phase", "")),
                latency_ms=_latency(event.data),
            )
        )
    return tuple(
        ProbeStrip(probe=mask.text(name), samples=tuple(taken)) for name, taken in grouped.items()
    )


def weekly_fresh(
    *,
    catalog: cmdb_models.Catalog,
    rules: policy.CoveragePolicy,
    runs: Sequence[coverage.RunSummary],
    now: dt.datetime,
    weeks: int = 8,
) -> list[WeekCount]:
    """Per mode, the required cells with a fresh pass at the end of each of the last
    `weeks` ISO weeks (the current one ends `now`): the matrix rebuilt from the runs
    finished by then, so the last week equals the roll-up's "Fresh passes" by mode.
    Today's catalog judges every week (a later CMDB change marks older passes stale)."""
    monday = (now - dt.timedelta(days=now.weekday())).date()
    found: list[WeekCount] = []
    for back in range(weeks - 1, -1, -1):
        start = monday - dt.timedelta(weeks=back)
        end = dt.datetime.combine(start + dt.timedelta(weeks=1), dt.time(), tzinfo=dt.UTC)
        cutoff = min(end, now)
        matrix = coverage.build_matrix(
            catalog=catalog,
            rules=rules,
            runs=[r for r in runs if r.finished_at <= cutoff],
            now=cutoff,
            extra_modes=[r.failure_mode for r in runs],
        )
        found += [WeekCount(mode=r.label, week=start, fresh=r.fresh) for r in matrix.by_mode]
    return found


# -- SVG --------------------------------------------------------------------------------


def _esc(text: object) -> str:
    return html.escape(_INVALID_XML.sub("", str(text)), quote=True)


def _num(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _open(*, id_prefix: str, height: float, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(_WIDTH)} {_num(height)}"'
        f' width="100%" role="img" aria-labelledby="{_esc(id_prefix)}-title'
        f' {_esc(id_prefix)}-desc" preserveAspectRatio="xMinYMin meet" {_FONT}'
        f' data-picture="{_esc(id_prefix)}">',
        f'<title id="{_esc(id_prefix)}-title">{_esc(title)}</title>',
        f'<desc id="{_esc(id_prefix)}-desc">{_esc(desc)}</desc>',
        f'<rect x="0" y="0" width="{_num(_WIDTH)}" height="{_num(height)}" fill="#ffffff"/>',
    ]


class _Scale:
    """Seconds from the run's start to x, over [0, duration]."""

    def __init__(self, duration_s: float) -> None:
        self.duration = max(duration_s, 0.001)

    def x(self, seconds: float) -> float:
        clamped = min(max(seconds, 0.0), self.duration)
        return round(_X0 + (_X1 - _X0) * clamped / self.duration, 2)


def _step(duration: float) -> float:
    raw = duration / 8
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _axis(scale: _Scale, *, top: float, bottom: float) -> list[str]:
    step = _step(scale.duration)
    out = [
        f'<line x1="{_num(_X0)}" y1="{_num(bottom)}" x2="{_num(_X1)}" y2="{_num(bottom)}"'
        f' stroke="{MUTED}" stroke-width="1"/>'
    ]
    tick = 0.0
    while tick <= scale.duration + 1e-9:
        x = scale.x(tick)
        out.append(
            f'<line x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(bottom + 4)}"'
            f' stroke="#e3e7eb" stroke-width="1" data-kind="tick" data-at-s="{_num(tick)}"/>'
        )
        out.append(
            f'<text x="{_num(x)}" y="{_num(bottom + 16)}" text-anchor="middle" fill="{MUTED}">'
            f"{_esc(_num(tick))} s</text>"
        )
        tick = round(tick + step, 9)
    out.append(
        f'<text x="{_num(_X0 - 8)}" y="{_num(bottom + 16)}" text-anchor="end" fill="{MUTED}">'
        "seconds from start</text>"
    )
    return out


def _legend(items: Sequence[tuple[str, str]], *, y: float) -> list[str]:
    """`items` (svg mark at origin, label), in a row at `y`."""
    out = [f'<g data-kind="legend" transform="translate({_num(_X0)} {_num(y)})">']
    x = 0.0
    for mark, label in items:
        out.append(f'<g transform="translate({_num(x)} 0)">{mark}')
        out.append(f'<text x="16" y="4" fill="{INK}">{_esc(label)}</text></g>')
        x += 26 + 6.2 * len(label)
    out.append("</g>")
    return out


def timeline_svg(timeline: RunTimeline, *, id_prefix: str = "timeline") -> str:
    """The run as a Gantt chart: phase bands, change and manual bars, markers, lines."""
    scale = _Scale(timeline.duration_s)
    shown = timeline.bars[:MAX_BARS]
    rest = timeline.bars[MAX_BARS:]
    manual = timeline.manual[:MAX_MANUAL]
    markers = timeline.markers[:MAX_MARKERS]
    rows = len(shown) + (1 if rest else 0) + len(manual)
    top = 34.0
    plot_top = top + 24
    bottom = plot_top + rows * _ROW + 8
    height = bottom + 60
    leftover = [b for b in timeline.bars if b.open_ended]
    parts = [
        f"{timeline.title}: {len(timeline.bars)} change(s) over {_num(scale.duration)} s"
        f" from the run's start, {len(timeline.bars) - len(leftover)} reverted,"
        f" {len(leftover)} not reverted"
    ]
    if timeline.bands:
        parts.append(
            "phases: "
            + ", ".join(
                f"{b.phase} {_num(b.start_s)}-{_num(b.end_s)} s" for b in timeline.bands[:20]
            )
        )
    if timeline.manual:
        parts.append(f"{len(timeline.manual)} manual step(s)")
    if timeline.markers:
        parts.append(
            "markers: "
            + ", ".join(f"{m.kind} at {_num(m.at_s)} s" for m in timeline.markers[:20])
            + (f" and {len(timeline.markers) - 20} more" if len(timeline.markers) > 20 else "")
        )
    if timeline.lines:
        parts.append(", ".join(f"{ln.label} at {_num(ln.at_s)} s" for ln in timeline.lines))
    if rest:
        parts.append(f"the last {len(rest)} change(s) are drawn as one band")
    out = _open(
        id_prefix=id_prefix,
        height=height,
        title=f"Timeline of {timeline.title}",
        desc="; ".join(parts) + ".",
    )
    out += _axis(scale, top=top, bottom=bottom)
    for band in timeline.bands:
        x0, x1 = scale.x(band.start_s), scale.x(band.end_s)
        width = max(x1 - x0, 0.5)
        out.append(
            f'<rect x="{_num(x0)}" y="{_num(top)}" width="{_num(width)}" height="18"'
            f' fill="{PHASE_FILL.get(band.phase, "#eef1f4")}" stroke="{MUTED}"'
            f' stroke-width="0.5" data-kind="phase" data-phase="{_esc(band.phase)}"'
            f' data-start-s="{_num(band.start_s)}" data-end-s="{_num(band.end_s)}">'
            f"<title>{_esc(band.phase)} {_num(band.start_s)}-{_num(band.end_s)} s</title></rect>"
        )
        if width >= 7 * len(band.phase):
            out.append(
                f'<text x="{_num(x0 + 3)}" y="{_num(top + 13)}" fill="{INK}">'
                f"{_esc(band.phase.replace('_', ' '))}</text>"
            )
    out.append(
        f'<text x="{_num(_X0 - 8)}" y="{_num(top + 13)}" text-anchor="end"'
        f' fill="{INK}">phases</text>'
    )
    y = plot_top
    for bar in shown:
        out += _bar(bar, scale, y)
        y += _ROW
    if rest:
        start = min(b.start_s for b in rest)
        end = max(b.end_s for b in rest)
        x0, x1 = scale.x(start), scale.x(end)
        out.append(
            f'<rect x="{_num(x0)}" y="{_num(y + 2)}" width="{_num(max(x1 - x0, 2))}"'
            f' height="{_num(_ROW - 4)}" fill="#e3ecf7" stroke="{BLUE}" stroke-width="1"'
            f' data-kind="mutation-aggregate" data-count="{len(rest)}"'
            f' data-start-s="{_num(start)}" data-end-s="{_num(end)}"/>'
        )
        out.append(
            f'<text x="{_num(_X0 - 8)}" y="{_num(y + 12)}" text-anchor="end" fill="{INK}">'
            f"+{len(rest)} more change(s)</text>"
        )
        y += _ROW
    for bar in manual:
        out += _bar(bar, scale, y)
        y += _ROW
    for marker in markers:
        out += _marker(marker, scale, top=top, bottom=bottom)
    for line in timeline.lines:
        out += _line(line, scale, top=top, bottom=bottom)
    out += _legend(
        [
            (f'<rect x="0" y="-5" width="12" height="10" fill="{BLUE}"/>', "change, reverted"),
            (
                f'<rect x="0" y="-5" width="12" height="10" fill="#ffffff" stroke="{RED}"'
                ' stroke-width="2" stroke-dasharray="3 2"/>',
                "not reverted",
            ),
            (f'<rect x="0" y="-5" width="12" height="10" fill="{PURPLE}"/>', "manual step"),
            (f'<path d="M0 5 L6 -5 L12 5 Z" fill="{BROWN}"/>', "guardrail trip"),
            (
                f'<path d="M1 -4 L11 6 M11 -4 L1 6" stroke="{RED}" stroke-width="2.5"/>',
                "abort",
            ),
            (
                f'<line x1="6" y1="-6" x2="6" y2="6" stroke="{INK}" stroke-width="2"/>',
                "T0",
            ),
            (
                f'<line x1="6" y1="-6" x2="6" y2="6" stroke="{GREEN}" stroke-width="2"'
                ' stroke-dasharray="3 2"/>',
                "recovered",
            ),
            (
                f'<line x1="6" y1="-6" x2="6" y2="6" stroke="{BROWN}" stroke-width="2"'
                ' stroke-dasharray="1 2"/>',
                "RTO target",
            ),
        ],
        y=bottom + 40,
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _bar(bar: Bar, scale: _Scale, y: float) -> list[str]:
    x0, x1 = scale.x(bar.start_s), scale.x(bar.end_s)
    width = max(x1 - x0, 2.0)
    common = (
        f' data-kind="{_esc(bar.kind)}" data-seq="{bar.seq}" data-target="{_esc(bar.target)}"'
        f' data-state="{_esc(bar.state)}" data-start-s="{_num(bar.start_s)}"'
        f' data-end-s="{_num(bar.end_s)}"'
    )
    if bar.open_ended:
        colour = RED if bar.kind == "mutation" else PURPLE
        style = (
            f'fill="#ffffff" stroke="{colour}" stroke-width="2" stroke-dasharray="4 2"'
            ' data-open="true"'
        )
        note = "not reverted" if bar.kind == "mutation" else "not acknowledged"
    else:
        colour = BLUE if bar.kind == "mutation" else PURPLE
        style = f'fill="{colour}"'
        note = ""
    what = f"{bar.label} on {bar.target}" if bar.target else bar.label
    tip = f"{what}: {_num(bar.start_s)}-{_num(bar.end_s)} s, {bar.state}"
    out = [
        f'<text x="{_num(_X0 - 8)}" y="{_num(y + 12)}" text-anchor="end" fill="{INK}">'
        f"{_esc(_short(bar.label, 30))}</text>",
        f'<rect x="{_num(x0)}" y="{_num(y + 2)}" width="{_num(width)}"'
        f' height="{_num(_ROW - 4)}" {style}{common}><title>{_esc(tip)}</title></rect>',
    ]
    if note:
        anchor, tx = ("end", x1 - 4) if width > 90 else ("start", min(x0 + 4, _X1 - 80))
        out.append(
            f'<text x="{_num(tx)}" y="{_num(y + 12)}" text-anchor="{anchor}" fill="{colour}"'
            f' data-label="{_esc(note)}">{_esc(note)}</text>'
        )
    return out


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _marker(marker: Marker, scale: _Scale, *, top: float, bottom: float) -> list[str]:
    x = scale.x(marker.at_s)
    y = top - 8
    if marker.kind == "guardrail":
        shape = (
            f'<path d="M{_num(x - 6)} {_num(y + 5)} L{_num(x)} {_num(y - 5)}'
            f' L{_num(x + 6)} {_num(y + 5)} Z" fill="{BROWN}"/>'
        )
        colour = BROWN
    else:
        shape = (
            f'<path d="M{_num(x - 5)} {_num(y - 5)} L{_num(x + 5)} {_num(y + 5)}'
            f' M{_num(x + 5)} {_num(y - 5)} L{_num(x - 5)} {_num(y + 5)}"'
            f' stroke="{RED}" stroke-width="2.5"/>'
        )
        colour = RED
    return [
        f'<g data-kind="{_esc(marker.kind)}" data-seq="{marker.seq}"'
        f' data-at-s="{_num(marker.at_s)}" data-x="{_num(x)}">'
        f"<title>{_esc(marker.label)} at {_num(marker.at_s)} s</title>{shape}"
        f'<line x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(bottom)}"'
        f' stroke="{colour}" stroke-width="1"/></g>'
    ]


_LINE_STYLE: Mapping[str, tuple[str, str]] = {
    "t0": (INK, ""),
    "recovery": (GREEN, ' stroke-dasharray="5 3"'),
    "rto-target": (BROWN, ' stroke-dasharray="1.5 2.5"'),
}


def _line(line: Line, scale: _Scale, *, top: float, bottom: float) -> list[str]:
    colour, dash = _LINE_STYLE.get(line.kind, (INK, ""))
    beyond = line.at_s > scale.duration
    x = scale.x(line.at_s)
    label = line.label + (" (after the run's end)" if beyond else "")
    anchor = "end" if x > _X1 - 150 else "start"
    offset = -4 if anchor == "end" else 4
    row = {"t0": 0, "recovery": 1, "rto-target": 2}.get(line.kind, 0)
    return [
        f'<g data-kind="line" data-line="{_esc(line.kind)}" data-at-s="{_num(line.at_s)}"'
        f' data-x="{_num(x)}"' + (' data-beyond="true"' if beyond else "") + ">"
        f'<line x1="{_num(x)}" y1="{_num(top - 2)}" x2="{_num(x)}" y2="{_num(bottom)}"'
        f' stroke="{colour}" stroke-width="2"{dash}/>'
        f'<text x="{_num(x + offset)}" y="{_num(bottom - 4 - 12 * row)}"'
        f' text-anchor="{anchor}" fill="{colour}">{_esc(label)}</text></g>'
    ]


def _buckets(samples: Sequence[Sample], duration: float) -> list[tuple[Sample, int, int]]:
    """(representative sample, samples in it, failed in it); one per sample up to the cap."""
    if len(samples) <= MAX_SAMPLES:
        return [(s, 1, 0 if s.ok else 1) for s in samples]
    width = max(duration, 0.001) / MAX_SAMPLES
    grouped: dict[int, list[Sample]] = {}
    for sample in samples:
        grouped.setdefault(min(int(sample.at_s / width), MAX_SAMPLES - 1), []).append(sample)
    found = []
    for index in sorted(grouped):
        taken = grouped[index]
        failed = sum(1 for s in taken if not s.ok)
        latencies = [s.latency_ms for s in taken if s.latency_ms is not None]
        found.append(
            (
                Sample(
                    at_s=round((index + 0.5) * width, 3),
                    ok=failed == 0,
                    phase=taken[0].phase,
                    latency_ms=max(latencies) if latencies else None,
                ),
                len(taken),
                failed,
            )
        )
    return found


def probe_strips_svg(
    strips: Sequence[ProbeStrip], *, duration_s: float, id_prefix: str = "probes"
) -> str:
    """One strip per probe: a filled dot per passing sample, a cross per failing one, and
    the latency as a line where the probe measured one (on the timeline's time axis)."""
    scale = _Scale(duration_s)
    strip_h = 34.0
    top = 12.0
    bottom = top + max(len(strips), 1) * strip_h + 4
    height = bottom + 56
    parts: list[str] = []
    body: list[str] = []
    for index, strip in enumerate(strips):
        y = top + index * strip_h
        mid = y + strip_h - 9
        marks = _buckets(strip.samples, scale.duration)
        failed = sum(1 for s in strip.samples if not s.ok)
        summary = f"{strip.probe}: {len(strip.samples)} sample(s), {failed} failed"
        if len(marks) < len(strip.samples):
            summary += (
                f", shown in {len(marks)} time bucket(s) of"
                f" {_num(scale.duration / MAX_SAMPLES)} s (a bucket with any failed sample"
                " is drawn failed)"
            )
        parts.append(summary)
        body.append(
            f'<g data-kind="probe-strip" data-probe="{_esc(strip.probe)}"'
            f' data-samples="{len(strip.samples)}" data-marks="{len(marks)}">'
        )
        body.append(
            f'<text x="{_num(_X0 - 8)}" y="{_num(mid + 4)}" text-anchor="end" fill="{INK}">'
            f"{_esc(_short(strip.probe, 30))}</text>"
        )
        body.append(
            f'<line x1="{_num(_X0)}" y1="{_num(mid)}" x2="{_num(_X1)}" y2="{_num(mid)}"'
            ' stroke="#e3e7eb" stroke-width="1"/>'
        )
        latencies = [m.latency_ms for m, _, _ in marks if m.latency_ms is not None]
        if latencies:
            peak = max(max(latencies), 0.001)
            points = " ".join(
                f"{_num(scale.x(m.at_s))},{_num(mid - 6 - 14 * m.latency_ms / peak)}"
                for m, _, _ in marks
                if m.latency_ms is not None
            )
            body.append(
                f'<polyline points="{points}" fill="none" stroke="{MUTED}" stroke-width="1"'
                f' data-kind="latency" data-max-ms="{_num(peak)}"/>'
            )
            body.append(
                f'<text x="{_num(_X1)}" y="{_num(y + 8)}" text-anchor="end" fill="{MUTED}">'
                f"latency, max {_esc(_num(peak))} ms</text>"
            )
        for mark, count, bad in marks:
            x = scale.x(mark.at_s)
            attrs = (
                f' data-kind="sample" data-ok="{"true" if mark.ok else "false"}"'
                f' data-at-s="{_num(mark.at_s)}" data-x="{_num(x)}"'
                f' data-phase="{_esc(mark.phase)}"'
            )
            if count > 1:
                attrs += f' data-count="{count}" data-failed="{bad}"'
            if mark.ok:
                body.append(
                    f'<circle cx="{_num(x)}" cy="{_num(mid)}" r="3" fill="{GREEN}"{attrs}/>'
                )
            else:
                body.append(
                    f'<path d="M{_num(x - 3.5)} {_num(mid - 3.5)} L{_num(x + 3.5)}'
                    f" {_num(mid + 3.5)} M{_num(x + 3.5)} {_num(mid - 3.5)}"
                    f' L{_num(x - 3.5)} {_num(mid + 3.5)}" stroke="{RED}"'
                    f' stroke-width="2"{attrs}/>'
                )
        body.append("</g>")
    if not strips:
        parts.append("no probe samples were recorded")
        body.append(
            f'<text x="{_num(_X0)}" y="{_num(top + 20)}" fill="{MUTED}">'
            "No probe samples were recorded.</text>"
        )
    out = _open(
        id_prefix=id_prefix,
        height=height,
        title="Steady-state probes over time",
        desc=f"Over {_num(scale.duration)} s from the run's start: " + "; ".join(parts) + ".",
    )
    out += _axis(scale, top=top, bottom=bottom)
    out += body
    out += _legend(
        [
            (f'<circle cx="6" cy="0" r="3.5" fill="{GREEN}"/>', "sample passed"),
            (
                f'<path d="M2 -4 L10 4 M10 -4 L2 4" stroke="{RED}" stroke-width="2"/>',
                "sample failed",
            ),
            (
                f'<line x1="0" y1="0" x2="12" y2="0" stroke="{MUTED}" stroke-width="1"/>',
                "latency (where measured)",
            ),
        ],
        y=bottom + 38,
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def coverage_trend_svg(counts: Iterable[WeekCount], *, id_prefix: str = "trend") -> str:
    """Small multiples: a row per failure mode, a bar per week, its count written above."""
    rows = list(counts)
    modes = list(dict.fromkeys(c.mode for c in rows))
    weeks = sorted({c.week for c in rows})
    by = {(c.mode, c.week): c.fresh for c in rows}
    peak = max((c.fresh for c in rows), default=0) or 1
    row_h = 40.0
    top = 10.0
    bottom = top + max(len(modes), 1) * row_h
    height = bottom + 48
    span = (_X1 - _X0) / max(len(weeks), 1)
    out_body: list[str] = []
    for index, mode in enumerate(modes):
        base = top + (index + 1) * row_h - 6
        out_body.append(
            f'<text x="{_num(_X0 - 8)}" y="{_num(base)}" text-anchor="end" fill="{INK}">'
            f"{_esc(_short(mode, 30))}</text>"
        )
        out_body.append(
            f'<line x1="{_num(_X0)}" y1="{_num(base)}" x2="{_num(_X1)}" y2="{_num(base)}"'
            f' stroke="{MUTED}" stroke-width="1"/>'
        )
        for w_index, week in enumerate(weeks):
            fresh = by.get((mode, week), 0)
            bar_h = round(22 * fresh / peak, 2)
            x = _X0 + w_index * span + span * 0.2
            out_body.append(
                f'<rect x="{_num(x)}" y="{_num(base - bar_h)}" width="{_num(span * 0.6)}"'
                f' height="{_num(bar_h)}" fill="{BLUE}" data-kind="trend"'
                f' data-mode="{_esc(mode)}" data-week="{week.isoformat()}"'
                f' data-fresh="{fresh}"><title>{_esc(mode)}, week of {week.isoformat()}:'
                f" {fresh} fresh pass(es)</title></rect>"
            )
            out_body.append(
                f'<text x="{_num(x + span * 0.3)}" y="{_num(base - bar_h - 2)}"'
                f' text-anchor="middle" fill="{INK}" font-size="9">{fresh}</text>'
            )
    for w_index, week in enumerate(weeks):
        out_body.append(
            f'<text x="{_num(_X0 + (w_index + 0.5) * span)}" y="{_num(bottom + 16)}"'
            f' text-anchor="middle" fill="{MUTED}">{_esc(week.strftime("%m-%d"))}</text>'
        )
    if not modes:
        out_body.append(
            f'<text x="{_num(_X0)}" y="{_num(top + 20)}" fill="{MUTED}">No runs yet.</text>'
        )
    latest = weeks[-1] if weeks else None
    summary = ", ".join(f"{m} {by.get((m, latest), 0)}" for m in modes) if latest else "none"
    out = _open(
        id_prefix=id_prefix,
        height=height,
        title="Fresh passes per week per failure mode",
        desc=(
            f"Required cells with a fresh pass at the end of each of {len(weeks)} week(s)"
            f" (labelled by their Monday), per failure mode; the latest week: {summary}."
        ),
    )
    out += out_body
    out.append(
        f'<text x="{_num(_X0 - 8)}" y="{_num(bottom + 16)}" text-anchor="end" fill="{MUTED}">'
        "week of</text>"
    )
    out += _legend(
        [
            (
                f'<rect x="0" y="-5" width="12" height="10" fill="{BLUE}"/>',
                "required cells with a fresh pass (the count is written above each bar)",
            )
        ],
        y=bottom + 34,
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
