"""Game-day report: one after-action report of a game day and the runs of its drills.

`build_report(facts, links=…, redactor=…)` is a pure function: the same `GameDayFacts`
(the game day as stored plus the run each drill slot recorded, looked up by the caller:
`drills.service.gameday_reports`; this layer does not import the application layer) always
give the same `GameDayReport` (no clock is read). The report lists each drill with its
gate, run, verdict, achieved against target RTO (met, missed, not measured) and links to
its post-mortem; the findings with their action items (owner, due date, ticket), flagging
any without an owner or a due date; the notes as a timeline; the participants with their
roles, who took part (wrote a note or decided a gate) and who was absent; and the game
day's verdict, window and services.

Post-mortem links follow one of two conventions (`LinkStyle`): `api` addresses a run's
report as the REST API serves it, `/api/v1/runs/{id}/report?format={md|html|json}`
(origin-relative, or under `Links.base_url`); `files` addresses it as `stormdrill run`
writes it, `{id}/postmortem.{md|html|json}`, relative to the reports folder (so a game-day
report written into that folder links to its neighbours). A run gets links only once it
has ended (its post-mortem is final then).

The blameless lint (`reports.linting`) applies to the game day's free text (its verdict,
notes and findings), with the participants' and action owners' names as the people who
must not take blame, the way a post-mortem's Markdown is linted; its warnings go into the
report, each naming the note it is about. Only the wording rules apply (the structural
rules are about a post-mortem's sections).

Invariants: every free-text string (notes, verdict, ticket and channel links) passes
through the redactor before it is kept, so no secret reaches a rendering; only http(s)
links become links; Markdown escapes table cells and `<`/`>` of what people wrote, HTML is
autoescaped by jinja2 (the post-mortem's template environment, `reports/templates`), and
JSON is the model with camelCase keys (the field names are the contract).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import zoneinfo
from collections.abc import Sequence
from pathlib import PurePath
from typing import Annotated
from urllib import parse

import pydantic
from pydantic import alias_generators

from orchestrator import states
from reports import linting, markup, redaction, rendering, run_facts

API_PREFIX = "/api/v1"
"""Where the REST API is mounted (`drills.api.app.API_PREFIX`; this layer cannot import it)."""

WORDING_RULES = frozenset(
    {"person-blame", "counterfactual", "blocking-term", "hindsight", "single-root-cause"}
)
"""The lint rules that apply to a game day's free text (the rest check post-mortem structure)."""

NO_OWNER = "no owner"
NO_DUE_DATE = "no due date"

IsoTime = Annotated[
    dt.datetime, pydantic.PlainSerializer(lambda value: value.isoformat(), return_type=str)
]
"""A timestamp written as `datetime.isoformat()` does (as the game day's own view writes it)."""


# ---- what the report is built from ------------------------------------------------------


class EntryKind(enum.StrEnum):
    """A game-day note's kind (the values of `drills.service.gamedays.NoteKind`)."""

    NOTE = "note"
    FINDING = "finding"


@dataclasses.dataclass(frozen=True)
class PersonFacts:
    person: str
    roles: tuple[str, ...]
    absent: bool


@dataclasses.dataclass(frozen=True)
class SlotFacts:
    """One drill slot, and the run it recorded when the store has it (`run`)."""

    position: int
    drill: str | None
    """The Drill file (as stored: a path), when the slot names one."""
    scenario: str | None
    """The scenario name, when the slot names a scenario."""
    environment: str | None
    gate: str
    decision: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    run_id: str | None
    verdict: states.Verdict | None
    """The verdict recorded in the game day for this drill."""
    run: states.Run | None = None


@dataclasses.dataclass(frozen=True)
class EntryFacts:
    """One note or finding (with its action item) as written during the game day."""

    id: int
    at: dt.datetime
    author: str
    text: str
    kind: EntryKind
    action_owner: str | None = None
    due: dt.date | None = None
    ticket_url: str | None = None


@dataclasses.dataclass(frozen=True)
class GameDayFacts:
    id: str
    name: str
    state: str
    window_start: dt.datetime
    window_end: dt.datetime
    timezone: str
    services: tuple[str, ...]
    channel_url: str
    created_by: str
    verdict: str | None
    participants: tuple[PersonFacts, ...]
    slots: tuple[SlotFacts, ...]
    entries: tuple[EntryFacts, ...]


class LinkStyle(enum.StrEnum):
    API = "api"
    FILES = "files"
    PAGES = "pages"
    """The web pages' run page (`/runs/{id}#postmortem`), for a report read in a browser."""


@dataclasses.dataclass(frozen=True)
class Links:
    """How the report addresses each run's post-mortem (see the module docstring)."""

    style: LinkStyle = LinkStyle.API
    base_url: str = ""
    """`api` only: put before `/api/v1/…` (e.g. `https://stormdrill.example.com`)."""

    def postmortem(self, run_id: str, fmt: rendering.Format) -> str:
        quoted = parse.quote(run_id, safe="")
        if self.style is LinkStyle.FILES:
            return f"{quoted}/postmortem{fmt.suffix}"
        if self.style is LinkStyle.PAGES:
            return f"{self.base_url.rstrip('/')}/runs/{quoted}#postmortem"
        return f"{self.base_url.rstrip('/')}{API_PREFIX}/runs/{quoted}/report?format={fmt.value}"


# ---- the report -------------------------------------------------------------------------


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
    )


class RtoResult(enum.StrEnum):
    MET = "met"
    MISSED = "missed"
    NOT_JUDGED = "not-judged"
    """Measured, but the run had no objective to judge it against."""
    NOT_MEASURED = "not-measured"
    NOT_RUN = "not-run"


class Window(_Model):
    start: IsoTime
    end: IsoTime
    timezone: str
    local_start: str
    """`2026-12-08 10:00 Europe/Berlin`."""
    local_end: str


class DrillRow(_Model):
    position: int
    drill: str | None
    """The Drill file's name."""
    scenario: str | None
    """The slot's scenario, else the scenario its run ran."""
    environment: str | None
    gate: str
    decision: str | None
    decided_by: str | None
    decided_at: IsoTime | None
    run_id: str | None
    run_found: bool
    run_state: str | None
    run_verdict: str | None
    verdict: str | None
    """The verdict the game day recorded for this drill."""
    outcome: str
    """One sentence for people: what became of this drill."""
    achieved_rto_s: float | None
    target_rto_s: float | None
    scaled_target_rto_s: float | None
    time_scale: float | None
    rto: RtoResult
    postmortem: dict[rendering.Format, str]
    """The run's post-mortem in each format (empty while there is none)."""


class RtoSummary(_Model):
    met: int
    missed: int
    not_judged: int
    not_measured: int
    not_run: int


class FindingRow(_Model):
    """A finding and its action item; `problems` flags a missing owner or due date."""

    note_id: int
    at: IsoTime
    raised_by: str
    text: str
    owner: str | None
    due: dt.date | None
    ticket_url: str | None
    problems: tuple[str, ...]


class TimelineRow(_Model):
    note_id: int
    at: IsoTime
    author: str
    kind: EntryKind
    text: str


class ParticipantRow(_Model):
    person: str
    roles: tuple[str, ...]
    absent: bool
    took_part: bool
    """Wrote a note or decided a gate."""
    notes: int
    gates_decided: tuple[int, ...]


class LintWarning(_Model):
    """A blameless-lint finding in the game day's own text."""

    source: str
    """`verdict`, `note` or `finding`."""
    note_id: int | None
    author: str | None
    at: IsoTime | None
    rule: str
    message: str
    suggestion: str

    @property
    def where(self) -> str:
        if self.note_id is None:
            return "the verdict"
        return f"{self.source} #{self.note_id} by {self.author} at {rendering.utc(self.at)}"


class GameDayReport(_Model):
    title: str
    id: str
    name: str
    state: str
    verdict: str | None
    window: Window
    services: tuple[str, ...]
    channel: str | None
    created_by: str
    link_style: LinkStyle
    drills: tuple[DrillRow, ...]
    rto: RtoSummary
    findings: tuple[FindingRow, ...]
    timeline: tuple[TimelineRow, ...]
    participants: tuple[ParticipantRow, ...]
    absent: tuple[str, ...]
    lint: tuple[LintWarning, ...]
    warnings: tuple[str, ...]
    """What a reader should know about the report itself (a run the store lacks, …)."""


# ---- building ---------------------------------------------------------------------------


def build_report(
    facts: GameDayFacts,
    *,
    links: Links | None = None,
    redactor: redaction.Redactor | None = None,
) -> GameDayReport:
    """The report of `facts`, free text redacted (with the store's `redactor` when given)."""
    mask = redactor or redaction.Redactor()
    chosen = links or Links()
    entries = tuple(
        dataclasses.replace(
            e, text=mask.text(e.text), ticket_url=_safe_url(e.ticket_url, mask=mask)
        )
        for e in sorted(facts.entries, key=lambda e: (e.at, e.id))
    )
    verdict = mask.text(facts.verdict) if facts.verdict is not None else None
    drills = tuple(_drill_row(slot, links=chosen) for slot in facts.slots)
    return GameDayReport(
        title=f"Game-day report: {facts.name}",
        id=facts.id,
        name=facts.name,
        state=facts.state,
        verdict=verdict,
        window=_window(facts),
        services=facts.services,
        channel=_safe_url(facts.channel_url, mask=mask),
        created_by=facts.created_by,
        link_style=chosen.style,
        drills=drills,
        rto=RtoSummary(
            met=_count(drills, RtoResult.MET),
            missed=_count(drills, RtoResult.MISSED),
            not_judged=_count(drills, RtoResult.NOT_JUDGED),
            not_measured=_count(drills, RtoResult.NOT_MEASURED),
            not_run=_count(drills, RtoResult.NOT_RUN),
        ),
        findings=tuple(_finding_row(e) for e in entries if e.kind is EntryKind.FINDING),
        timeline=tuple(
            TimelineRow(note_id=e.id, at=e.at, author=e.author, kind=e.kind, text=e.text)
            for e in entries
        ),
        participants=tuple(_participant_row(p, facts, entries) for p in facts.participants),
        absent=tuple(p.person for p in facts.participants if p.absent),
        lint=_lint(verdict, entries, people=_people(facts)),
        warnings=tuple(w for slot in facts.slots if (w := _slot_warning(slot)) is not None),
    )


def _count(drills: Sequence[DrillRow], result: RtoResult) -> int:
    return sum(1 for row in drills if row.rto is result)


def _safe_url(url: str | None, *, mask: redaction.Redactor) -> str | None:
    """`url` redacted, or None unless it is an http(s) URL (nothing else becomes a link)."""
    if not url:
        return None
    return mask.text(url) if url.startswith(("https://", "http://")) else None


def _local(moment: dt.datetime, zone: str) -> str:
    try:
        local = moment.astimezone(zoneinfo.ZoneInfo(zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        local, zone = moment.astimezone(dt.UTC), "UTC"
    return f"{local:%Y-%m-%d %H:%M} {zone}"


def _window(facts: GameDayFacts) -> Window:
    return Window(
        start=facts.window_start,
        end=facts.window_end,
        timezone=facts.timezone,
        local_start=_local(facts.window_start, facts.timezone),
        local_end=_local(facts.window_end, facts.timezone),
    )


def _rto(run: states.Run | None) -> RtoResult:
    if run is None:
        return RtoResult.NOT_RUN
    found = run.record.objectives
    if found is None or found.achieved_rto_s is None:
        return RtoResult.NOT_MEASURED
    if found.rto_met is None:
        return RtoResult.NOT_JUDGED
    return RtoResult.MET if found.rto_met else RtoResult.MISSED


def _outcome(slot: SlotFacts) -> str:
    run = slot.run
    if slot.decision is None:
        return "Not run: its gate was not decided."
    if slot.decision == "no-go":
        by = "automatically" if slot.decided_by == "auto" else f"by {slot.decided_by}"
        return f"Not run: its gate said no-go ({by})."
    if run is not None and not run.terminal:
        return f"Its run is {run.state.value}: it has not ended yet."
    if slot.verdict is None:
        return "Its gate said go; no result was recorded."
    if slot.run_id is None:
        return f"Recorded as {slot.verdict.value} without a run."
    if run is None:
        return f"Recorded as {slot.verdict.value}; its run is not in the store."
    return f"Run ended {run.state.value}; recorded as {slot.verdict.value}."


def _slot_warning(slot: SlotFacts) -> str | None:
    if slot.run_id is not None and slot.run is None:
        return (
            f"drill {slot.position}: run {slot.run_id!r} is not in the store, so the report has"
            " no RTO or post-mortem for it; check the run id recorded for this drill"
        )
    if slot.run is not None and not slot.run.terminal:
        return (
            f"drill {slot.position}: run {slot.run.id} is still {slot.run.state.value}; its"
            " post-mortem and RTO come once it ends (render this report again then)"
        )
    return None


def _drill_row(slot: SlotFacts, *, links: Links) -> DrillRow:
    run = slot.run
    objectives = run.record.objectives if run is not None else None
    ended = run is not None and run.terminal
    return DrillRow(
        position=slot.position,
        drill=PurePath(slot.drill).name if slot.drill is not None else None,
        scenario=_ref_name(slot.scenario) if slot.scenario else (run.scenario if run else None),
        environment=slot.environment or (run.environment if run is not None else None),
        gate=slot.gate,
        decision=slot.decision,
        decided_by=slot.decided_by,
        decided_at=slot.decided_at,
        run_id=slot.run_id,
        run_found=run is not None,
        run_state=run.state.value if run is not None else None,
        run_verdict=run.verdict.value if run is not None and run.verdict is not None else None,
        verdict=slot.verdict.value if slot.verdict is not None else None,
        outcome=_outcome(slot),
        achieved_rto_s=objectives.achieved_rto_s if objectives else None,
        target_rto_s=objectives.target_rto_s if objectives else None,
        scaled_target_rto_s=objectives.scaled_target_rto_s if objectives else None,
        time_scale=objectives.time_scale if objectives else None,
        rto=_rto(run) if ended or run is None else RtoResult.NOT_MEASURED,
        postmortem=(
            {fmt: links.postmortem(run.id, fmt) for fmt in rendering.Format}
            if run is not None and ended
            else {}
        ),
    )


def _ref_name(ref: str) -> str:
    """A scenario as people name it: a file's name, or the bundled scenario's name."""
    return PurePath(ref).name if "/" in ref else ref


def _finding_row(entry: EntryFacts) -> FindingRow:
    owner = (entry.action_owner or "").strip() or None
    problems = tuple(
        problem
        for problem, missing in ((NO_OWNER, owner is None), (NO_DUE_DATE, entry.due is None))
        if missing
    )
    return FindingRow(
        note_id=entry.id,
        at=entry.at,
        raised_by=entry.author,
        text=entry.text,
        owner=owner,
        due=entry.due,
        ticket_url=entry.ticket_url,
        problems=problems,
    )


def _participant_row(
    person: PersonFacts, facts: GameDayFacts, entries: Sequence[EntryFacts]
) -> ParticipantRow:
    notes = sum(1 for e in entries if e.author == person.person)
    gates = tuple(s.position for s in facts.slots if s.decided_by == person.person)
    return ParticipantRow(
        person=person.person,
        roles=person.roles,
        absent=person.absent,
        took_part=bool(notes or gates),
        notes=notes,
        gates_decided=gates,
    )


def _people(facts: GameDayFacts) -> list[str]:
    """Names that must not take blame: each participant (ref and short name), each owner."""
    names: set[str] = set()
    for person in facts.participants:
        names |= {person.person, run_facts.short_name(person.person)}
    for entry in facts.entries:
        if entry.action_owner:
            names |= {entry.action_owner, run_facts.short_name(entry.action_owner)}
    return sorted((n for n in names if n.strip()), key=len, reverse=True)


@dataclasses.dataclass(frozen=True)
class _Source:
    kind: str
    entry: EntryFacts | None


def _lint(
    verdict: str | None, entries: Sequence[EntryFacts], *, people: Sequence[str]
) -> tuple[LintWarning, ...]:
    """The lint's wording findings in the verdict (a cause field, like a post-mortem's
    Summary), the notes and the findings (the game day's contributing factors)."""
    lines: list[str] = []
    sources: dict[int, _Source] = {}

    def section(title: str, items: Sequence[tuple[_Source, str]]) -> None:
        lines.extend(["", f"## {title}", ""])
        for source, text in items:
            lines.append("- " + " ".join(text.split()))
            sources[len(lines)] = source

    section("Summary", [(_Source("verdict", None), verdict)] if verdict else [])
    section("Timeline", [(_Source("note", e), e.text) for e in entries if e.kind is EntryKind.NOTE])
    section(
        "Contributing factors",
        [(_Source("finding", e), e.text) for e in entries if e.kind is EntryKind.FINDING],
    )
    found: list[LintWarning] = []
    for finding in linting.lint("\n".join(lines), people=people):
        source = sources.get(finding.line)
        if finding.rule not in WORDING_RULES or source is None:
            continue
        entry = source.entry
        found.append(
            LintWarning(
                source=source.kind,
                note_id=entry.id if entry else None,
                author=entry.author if entry else None,
                at=entry.at if entry else None,
                rule=finding.rule,
                message=finding.message,
                suggestion=finding.suggestion,
            )
        )
    return tuple(found)


# ---- rendering --------------------------------------------------------------------------


def render(report: GameDayReport, fmt: rendering.Format) -> str:
    """`report` in `fmt`."""
    if fmt is rendering.Format.MARKDOWN:
        return to_markdown(report)
    if fmt is rendering.Format.HTML:
        return to_html(report)
    return to_json(report)


def to_json(report: GameDayReport) -> str:
    return report.model_dump_json(indent=2, by_alias=True) + "\n"


def rto_text(result: RtoResult) -> str:
    return {
        RtoResult.MET: "met",
        RtoResult.MISSED: "MISSED",
        RtoResult.NOT_JUDGED: "not judged (no objective)",
        RtoResult.NOT_MEASURED: "not measured",
        RtoResult.NOT_RUN: "not run",
    }[result]


def rto_summary_text(report: GameDayReport) -> str:
    """`1 of 2 drills that ran met its RTO; 1 missed it; 1 did not run.`"""
    r = report.rto
    ran = r.met + r.missed + r.not_judged + r.not_measured
    parts = [f"{r.met} of {ran} drill(s) that ran met the recovery time objective"]
    if r.missed:
        parts.append(f"{r.missed} missed it")
    if r.not_judged:
        parts.append(f"{r.not_judged} had no objective to judge against")
    if r.not_measured:
        parts.append(f"{r.not_measured} had no measured recovery")
    if r.not_run:
        parts.append(f"{r.not_run} did not run")
    return "; ".join(parts) + "."


def verdict_text(report: GameDayReport) -> str:
    if report.verdict is not None:
        return report.verdict
    return f"No verdict yet: the game day is {report.state} (closing it records one)."


def _text(value: object) -> str:
    """What people wrote, safe in a Markdown table cell: one line, pipes escaped, and
    neither HTML (`<`, `>`) nor a link (`[`, `]`) when a viewer renders it."""
    text = markup.cell(value).replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("[", "\\[").replace("]", "\\]")


def _paragraph(value: object) -> str:
    """`_text` as a paragraph of its own: a leading `#`, `>`, `-`, `+`, `*` or `=` would
    make it a heading, quote or list, so it is escaped."""
    text = _text(value)
    return "\\" + text if text[:1] in ("#", ">", "-", "+", "*", "=") else text


def _md_link(label: str, url: str) -> str:
    target = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    target = target.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"[{label}]({target})"


def _seconds(value: float | None) -> str:
    return rendering.seconds(value) if value is not None else "-"


def to_markdown(report: GameDayReport) -> str:
    """The report as GitHub-flavoured Markdown (deterministic)."""
    w = report.window
    lines: list[str] = [f"# {report.title}", ""]
    lines += markup.table(
        ["Field", "Value"],
        [
            ("Game day", markup.code(report.id)),
            ("Name", _text(report.name)),
            ("State", report.state),
            ("Window", f"{w.local_start} to {w.local_end}"),
            ("Window (UTC)", f"{rendering.utc(w.start)} to {rendering.utc(w.end)}"),
            ("Services", _text(", ".join(report.services) or "-")),
            ("Channel", _md_link("chat", report.channel) if report.channel else "-"),
            ("Created by", _text(report.created_by)),
        ],
    )
    lines += ["", "## Verdict", "", _paragraph(verdict_text(report)), ""]
    lines += ["## Drills", ""]
    lines += markup.table(
        ["#", "Drill", "Environment", "Gate", "Run", "State", "Verdict", "Outcome", "Post-mortem"],
        [
            (
                d.position,
                _text(d.drill or d.scenario or "-"),
                _text(d.environment or "-"),
                _text(
                    f"{d.gate}: {d.decision or 'undecided'}"
                    + (f" ({d.decided_by})" if d.decided_by else "")
                ),
                markup.code(d.run_id) if d.run_id else "-",
                d.run_state or "-",
                d.verdict or "-",
                _text(d.outcome),
                " ".join(_md_link(fmt.value, url) for fmt, url in d.postmortem.items()) or "-",
            )
            for d in report.drills
        ],
    )
    lines += ["", "## Recovery time objectives", "", rto_summary_text(report), ""]
    lines += markup.table(
        ["#", "Drill", "Achieved RTO", "Target RTO (real)", "Target (scaled)", "Time scale", "RTO"],
        [
            (
                d.position,
                _text(d.drill or d.scenario or "-"),
                _seconds(d.achieved_rto_s),
                _seconds(d.target_rto_s),
                _seconds(d.scaled_target_rto_s),
                f"{d.time_scale:g}" if d.time_scale is not None else "-",
                rto_text(d.rto),
            )
            for d in report.drills
        ],
    )
    lines += ["", "## Findings and action items", ""]
    if report.findings:
        flagged = sum(1 for f in report.findings if f.problems)
        if flagged:
            lines += [f"{flagged} action item(s) lack an owner or a due date.", ""]
        lines += markup.table(
            ["Note", "Finding", "Raised by", "Owner", "Due", "Ticket", "Needs"],
            [
                (
                    f"#{f.note_id}",
                    _text(f.text),
                    _text(f.raised_by),
                    _text(f.owner or "-"),
                    f.due.isoformat() if f.due else "-",
                    _md_link("ticket", f.ticket_url) if f.ticket_url else "-",
                    _text(", ".join(f.problems) or "-"),
                )
                for f in report.findings
            ],
        )
    else:
        lines.append("No finding was recorded.")
    lines += ["", "## Timeline", ""]
    if report.timeline:
        lines += markup.table(
            ["Time (UTC)", "Author", "Kind", "Note", "Evidence"],
            [
                (
                    rendering.utc(t.at),
                    _text(t.author),
                    t.kind.value,
                    _text(t.text),
                    f"note #{t.note_id}",
                )
                for t in report.timeline
            ],
        )
    else:
        lines.append("No note was taken.")
    lines += ["", "## Participants", ""]
    lines += markup.table(
        ["Who", "Roles", "Present", "Took part"],
        [
            (
                _text(p.person),
                _text(", ".join(p.roles)),
                "absent" if p.absent else "yes",
                _text(_took_part(p)),
            )
            for p in report.participants
        ],
    )
    if report.absent:
        lines += ["", f"Absent: {_text(', '.join(report.absent))}."]
    lines += ["", "## Blameless lint", ""]
    if report.lint:
        lines += [
            f"- {_text(item.where)}: {item.rule}: {markup.code(item.message)}"
            f" (try: {markup.code(item.suggestion)})"
            for item in report.lint
        ]
    else:
        lines.append("The verdict, notes and findings read blameless.")
    if report.warnings:
        lines += ["", "## About this report", ""]
        lines += [f"- {_text(w)}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def _took_part(person: ParticipantRow) -> str:
    if not person.took_part:
        return "no note or gate"
    parts = []
    if person.notes:
        parts.append(f"{person.notes} note(s)")
    if person.gates_decided:
        parts.append("gate(s) " + ", ".join(str(g) for g in person.gates_decided))
    return "; ".join(parts)


def to_html(report: GameDayReport) -> str:
    """One self-contained HTML page: inline CSS, no scripts, no external assets."""
    # The post-mortem's environment (autoescaping, strict, its filters): one place builds
    # the jinja2 environment of `reports/templates`.
    template = rendering.template_environment().get_template("gameday.html.j2")
    return template.render(
        r=report,
        rto_text=rto_text,
        rto_summary=rto_summary_text(report),
        verdict=verdict_text(report),
        took_part=_took_part,
    )
