"""Game-day reports: a game day's after-action report, for the CLI and the API.

`build(store, key)` reads the game day (by id or name, synced as `gamedays show` syncs
it) and the run each drill slot recorded from the store, and hands them to
`reports.gameday.build_report`; `render(store, key, fmt=…)` returns the report as
Markdown, HTML or JSON text. Post-mortem links follow `links` (default: the REST API's
`/api/v1/runs/{id}/report?format=…`; `LinkStyle.FILES` for a report written into the
reports folder, next to each run's `postmortem.*`).
Invariants: nothing is printed or written to files here (entry points present the text,
e.g. with `reports.redaction.write_private`; the store gets only the sync's catch-up); a
run id a slot recorded that the store lacks is not an error (the report says so); an
unknown game day is `gamedays.UnknownGameDay` (404), an unknown format `BadReportFormat`
(400), each naming the fix.
"""

from __future__ import annotations

import datetime as dt

from drills.service import gamedays
from orchestrator import journal
from reports import gameday, rendering
from scenarios import errors

FORMATS: tuple[str, ...] = tuple(fmt.value for fmt in rendering.Format)

MEDIA_TYPES: dict[rendering.Format, str] = {
    rendering.Format.MARKDOWN: "text/markdown; charset=utf-8",
    rendering.Format.HTML: "text/html; charset=utf-8",
    rendering.Format.JSON: "application/json",
}
"""The media type of each rendering (what an API response carries)."""


class BadReportFormat(errors.StormdrillError):
    """A game-day report was asked for in a format it does not come in."""


def parse_format(text: str | rendering.Format) -> rendering.Format:
    """`md`, `html` or `json` as a `rendering.Format`; `BadReportFormat` names the choices."""
    if isinstance(text, rendering.Format):
        return text
    try:
        return rendering.Format(text.strip().lower())
    except ValueError:
        raise BadReportFormat(
            f"format {text!r}: a game-day report comes as {', '.join(FORMATS)}; give one of those"
        ) from None


def facts_of(store: journal.Journal, day: gamedays.GameDay) -> gameday.GameDayFacts:
    """What the report is built from: `day` and the stored run of each of its drill slots."""
    return gameday.GameDayFacts(
        id=day.id,
        name=day.name,
        state=day.state.value,
        window_start=day.window_start,
        window_end=day.window_end,
        timezone=day.timezone,
        services=day.services,
        channel_url=day.channel_url,
        created_by=day.created_by,
        verdict=day.verdict,
        participants=tuple(
            gameday.PersonFacts(
                person=p.person, roles=tuple(r.value for r in p.roles), absent=p.absent
            )
            for p in day.participants
        ),
        slots=tuple(_slot(store, slot) for slot in day.drills),
        entries=tuple(
            gameday.EntryFacts(
                id=n.id,
                at=n.at,
                author=n.author,
                text=n.text,
                kind=gameday.EntryKind(n.kind.value),
                action_owner=n.action_owner,
                due=n.due,
                ticket_url=n.ticket_url,
            )
            for n in day.notes
        ),
    )


def _slot(store: journal.Journal, slot: gamedays.DrillSlot) -> gameday.SlotFacts:
    drill = slot.ref_kind is gamedays.RefKind.DRILL
    return gameday.SlotFacts(
        position=slot.position,
        drill=slot.ref if drill else None,
        scenario=None if drill else slot.ref,
        environment=slot.environment,
        gate=slot.gate.value,
        decision=slot.decision.value if slot.decision is not None else None,
        decided_by=slot.decided_by,
        decided_at=slot.decided_at,
        run_id=slot.run_id,
        verdict=slot.verdict,
        run=store.find_run(slot.run_id) if slot.run_id else None,
    )


def build(
    store: journal.Journal,
    key: str,
    *,
    links: gameday.Links | None = None,
    now: dt.datetime | None = None,
) -> gameday.GameDayReport:
    """The report of the game day with id or name `key`; `gamedays.UnknownGameDay` if none.

    The game day is synced first, as `gamedays show` is (`gamedays.sync_results`: a slot
    whose run ended takes its run's verdict; absences its runs made are recorded), so the
    report never shows a drill as unfinished whose run has ended.
    """
    day = gamedays.sync_results(store, key, now=now)
    return gameday.build_report(facts_of(store, day), links=links, redactor=store.redactor)


def render(
    store: journal.Journal,
    key: str,
    *,
    fmt: rendering.Format | str,
    links: gameday.Links | None = None,
    now: dt.datetime | None = None,
) -> str:
    """The report of the game day `key` as `fmt` text (md, html or json).

    The format is checked before the store is read: a bad one is `BadReportFormat`.
    """
    chosen = parse_format(fmt)
    return gameday.render(build(store, key, links=links, now=now), chosen)
