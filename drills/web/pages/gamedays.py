"""`/gamedays` (a month calendar and the lists) and `/gamedays/{id}` (one game day).

`GET /gamedays?month=2026-12` (any role: `read`) draws the month as a Monday-first table:
each day lists the game days whose window falls on it in the game day's own time zone
(link `/gamedays/{id}`), and the fires of the schedules that day in the schedule's zone:
the fires still to come from `drills.service.schedules.preview_schedule` (at most
`FIRES_PER_MONTH` a schedule; a paused one's are left out, as the calendar feed leaves
them; a skip the preview or the approval state foresees is marked with why) and those
already recorded (`schedules.fires`: started with the run's link, or skipped). Previous
and next months are links; no `month` is this month (UTC). Below it, the game days to come
and the recent ones. Game days are read as the API reads them (`gamedays.sync_all`).

`GET /gamedays/{id}` shows one game day (synced as `GET /api/v1/gamedays/{id}`): window
in its zone and UTC, state, services, channel, participants with roles (absent ones
marked), the drills in order with gates, decisions, verdicts and run links, notes,
findings with their action items, and a link to `GET /gamedays/{id}/report`: the
after-action report as the service renders it (`drills.service.gameday_reports`, HTML).
An unknown id or name is the 404 page; a bad `month` the 422 page.
"""

from __future__ import annotations

import calendar as calendar_mod
import dataclasses
import datetime as dt
import re
import zoneinfo
from typing import Annotated

import fastapi
from fastapi import responses
from starlette import concurrency

from drills.service import auth, gameday_reports, gamedays
from drills.service import schedules as schedule_service
from drills.web import deps, rendering, routing
from drills.web.pages import schedules as schedule_pages
from orchestrator import journal, states
from reports import gameday as gameday_report
from scenarios import errors

router = routing.router()
PAGE_LINKS = gameday_report.Links(style=gameday_report.LinkStyle.PAGES)
"""The report read in a browser links each post-mortem to its run page."""

FIRES_PER_MONTH = 100
"""At most this many upcoming fires of one schedule in a month (an every-minute schedule
would fill the calendar): the cell says when some were left out."""
RECORDED_FIRES = 500
"""How many of a schedule's latest recorded fires are looked at for a month."""
RECENT_GAMEDAYS = 10
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class BadMonth(errors.StormdrillError):
    """A `month` that is not `YYYY-MM` (422)."""


@dataclasses.dataclass(frozen=True)
class Month:
    year: int
    month: int

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        return f"{calendar_mod.month_name[self.month]} {self.year}"

    def shifted(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(year=index // 12, month=index % 12 + 1)

    def holds(self, day: dt.date) -> bool:
        return (day.year, day.month) == (self.year, self.month)

    def first(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    def next_first(self) -> dt.date:
        following = self.shifted(1)
        return dt.date(following.year, following.month, 1)


def parse_month(text: str | None, *, today: dt.date) -> Month:
    """`2026-12` as a `Month`; None or empty is `today`'s; `BadMonth` names the form."""
    if not text:
        return Month(year=today.year, month=today.month)
    found = _MONTH.match(text.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1:
        raise BadMonth(f"month {text!r}: give a year and month as YYYY-MM, e.g. 2026-12")
    return Month(year=int(found.group(1)), month=int(found.group(2)))


@dataclasses.dataclass(frozen=True)
class Item:
    """One entry of a calendar day: a game day, or a schedule's fire."""

    kind: str
    """`gameday` or `fire`."""
    label: str
    href: str | None
    at: schedule_pages.Moment
    sort: dt.datetime
    short: str
    """The time as the day's cell writes it: `10:00 Europe/Berlin`."""
    detail: str = ""
    skipped: str | None = None
    outcome: str = ""
    """A fire: `upcoming`, `started` or `skipped` (recorded)."""


@dataclasses.dataclass(frozen=True)
class Day:
    date: dt.date
    in_month: bool
    today: bool
    items: tuple[Item, ...]


@dataclasses.dataclass(frozen=True)
class GameDayRow:
    day: gamedays.GameDay
    start: schedule_pages.Moment
    end: schedule_pages.Moment
    window: str


@dataclasses.dataclass(frozen=True)
class MonthPage:
    month: Month
    weeks: tuple[tuple[Day, ...], ...]
    upcoming: tuple[GameDayRow, ...]
    recent: tuple[GameDayRow, ...]
    truncated: tuple[str, ...]
    """Schedules whose upcoming fires in the month were cut at `FIRES_PER_MONTH`."""


def _local_date(at: dt.datetime, zone: str) -> dt.date:
    return at.astimezone(zoneinfo.ZoneInfo(zone)).date()


def _clock_in(at: dt.datetime, zone: str) -> str:
    return f"{at.astimezone(zoneinfo.ZoneInfo(zone)):%H:%M} {zone}"


def _span_text(day: gamedays.GameDay) -> str:
    """`10:00 to 13:00 Europe/Berlin` (the window with its dates when it spans days)."""
    zone = zoneinfo.ZoneInfo(day.timezone)
    start, end = (t.astimezone(zone) for t in (day.window_start, day.window_end))
    if start.date() != end.date():
        return gamedays.window_text(day)
    return f"{start:%H:%M} to {end:%H:%M} {day.timezone}"


def row_of(day: gamedays.GameDay) -> GameDayRow:
    return GameDayRow(
        day=day,
        start=schedule_pages.moment(day.window_start, day.timezone),
        end=schedule_pages.moment(day.window_end, day.timezone),
        window=gamedays.window_text(day),
    )


def _gameday_items(found: list[gamedays.GameDay], month: Month) -> dict[dt.date, list[Item]]:
    """Each game day on every date its window touches in its zone (the month's dates)."""
    placed: dict[dt.date, list[Item]] = {}
    for day in found:
        first = _local_date(day.window_start, day.timezone)
        last = _local_date(day.window_end - dt.timedelta(microseconds=1), day.timezone)
        date = first
        while date <= last:
            if month.holds(date):
                placed.setdefault(date, []).append(
                    Item(
                        kind="gameday",
                        label=day.name,
                        href=f"/gamedays/{day.id}",
                        at=schedule_pages.moment(day.window_start, day.timezone),
                        sort=day.window_start,
                        short=_span_text(day),
                        detail=day.state.value,
                    )
                )
            date += dt.timedelta(days=1)
    return placed


def _fire_items(
    store: journal.Journal, month: Month, *, now: dt.datetime
) -> tuple[dict[dt.date, list[Item]], tuple[str, ...]]:
    """The month's fires of every schedule, by date in the schedule's zone."""
    placed: dict[dt.date, list[Item]] = {}
    truncated: list[str] = []
    # every zone's month lies within a day of the UTC month
    earliest = dt.datetime.combine(month.first(), dt.time(), dt.UTC) - dt.timedelta(days=1)
    latest = dt.datetime.combine(month.next_first(), dt.time(), dt.UTC) + dt.timedelta(days=1)
    for view in schedule_service.views_of(store):
        zone = view.timezone

        def put(at: dt.datetime, item: Item, zone: str = zone) -> None:
            date = _local_date(at, zone)
            if month.holds(date):
                placed.setdefault(date, []).append(item)

        for fire in schedule_service.fires(store, view.id, limit=RECORDED_FIRES):
            at = fire.nominal_fire_time
            if not earliest <= at < latest:
                continue
            started = fire.outcome is schedule_service.Outcome.STARTED
            put(
                at,
                Item(
                    kind="fire",
                    label=view.name,
                    href=f"/runs/{fire.run_id}" if fire.run_id else None,
                    at=schedule_pages.moment(at, zone),
                    sort=at,
                    short=_clock_in(at, zone),
                    detail=f"{view.scenario} on {view.environment}",
                    skipped=None if started else fire.reason,
                    outcome="started" if started else "skipped",
                ),
            )
        if view.paused or latest <= now:
            continue
        try:
            schedule = schedule_service.get(store, view.id)
        except schedule_service.UnknownSchedule:  # deleted since it was listed
            continue
        preview = schedule_service.preview_schedule(
            store, schedule, n=FIRES_PER_MONTH, now=max(now, earliest)
        )
        held = schedule_pages.loop_skip(view)
        for item in preview.fires:
            if item.utc >= latest:
                break
            put(
                item.utc,
                Item(
                    kind="fire",
                    label=view.name,
                    href="/schedules#schedule-" + view.id,
                    at=schedule_pages.moment(item.utc, zone),
                    sort=item.utc,
                    short=_clock_in(item.utc, zone),
                    detail=f"{view.scenario} on {view.environment}",
                    skipped=held or item.skipped_by,
                    outcome="upcoming",
                ),
            )
        else:
            if len(preview.fires) == FIRES_PER_MONTH:
                truncated.append(view.name)
    return placed, tuple(truncated)


def month_page(store: journal.Journal, month: Month, *, now: dt.datetime) -> MonthPage:
    """The calendar of `month` and the lists of game days, as the page shows them."""
    found = gamedays.sync_all(store, now=now)
    by_date = _gameday_items(found, month)
    fires, truncated = _fire_items(store, month, now=now)
    for date, items in fires.items():
        by_date.setdefault(date, []).extend(items)
    today = now.date()
    weeks = tuple(
        tuple(
            Day(
                date=date,
                in_month=month.holds(date),
                today=date == today,
                items=tuple(sorted(by_date.get(date, []), key=lambda item: item.sort)),
            )
            for date in week
        )
        for week in calendar_mod.Calendar(firstweekday=0).monthdatescalendar(
            month.year, month.month
        )
    )
    upcoming = [
        day for day in found if day.state is not gamedays.State.CLOSED and day.window_end >= now
    ]
    coming = {day.id for day in upcoming}
    recent = sorted(
        (day for day in found if day.id not in coming),
        key=lambda day: day.window_start,
        reverse=True,
    )[:RECENT_GAMEDAYS]
    return MonthPage(
        month=month,
        weeks=weeks,
        upcoming=tuple(row_of(day) for day in upcoming),
        recent=tuple(row_of(day) for day in recent),
        truncated=truncated,
    )


@router.get("/gamedays", response_class=responses.HTMLResponse)
async def gamedays_page(
    request: fastapi.Request,
    store: deps.StoreDep,
    session: deps.SessionDep,
    month: Annotated[str | None, fastapi.Query(description="YYYY-MM")] = None,
) -> responses.Response:
    auth.authorize(session.principal, auth.Permission.READ)
    now = dt.datetime.now(dt.UTC)
    chosen = parse_month(month, today=now.date())
    found = await concurrency.run_in_threadpool(lambda: month_page(store, chosen, now=now))
    return rendering.page(
        request,
        "gamedays.html",
        title="Game days",
        calendar=found,
        weekdays=WEEKDAYS,
        this_month=Month(year=now.year, month=now.month),
    )


# ---- one game day -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Slot:
    slot: gamedays.DrillSlot
    decided_at: schedule_pages.Moment | None
    verdict_class: str
    verdict_text: str


_VERDICTS = {
    states.Verdict.HELD: ("state-passed", "✓ held"),
    states.Verdict.DEVIATED: ("state-failed", "✗ deviated"),
    states.Verdict.INCONCLUSIVE: ("state-stale", "? inconclusive"),
}


def slot_of(slot: gamedays.DrillSlot, zone: str) -> Slot:
    if slot.verdict is not None:
        css, text = _VERDICTS[slot.verdict]
    elif slot.run_id is not None:
        css, text = "state-running", "▶ running"
    else:
        css, text = "state-not-run", "○ not run"
    return Slot(
        slot=slot,
        decided_at=None
        if slot.decided_at is None
        else schedule_pages.moment(slot.decided_at, zone),
        verdict_class=css,
        verdict_text=text,
    )


@dataclasses.dataclass(frozen=True)
class Entry:
    note: gamedays.Note
    at: schedule_pages.Moment
    ticket_link: bool


@dataclasses.dataclass(frozen=True)
class GameDayPage:
    row: GameDayRow
    slots: tuple[Slot, ...]
    notes: tuple[Entry, ...]
    findings: tuple[Entry, ...]


def gameday_page(store: journal.Journal, key: str) -> GameDayPage:
    """The game day `key` (id or name), synced as the API's `GET` syncs it."""
    day = gamedays.sync_results(store, key)
    entries = [
        Entry(
            note=note,
            at=schedule_pages.moment(note.at, day.timezone),
            ticket_link=bool(note.ticket_url)
            and str(note.ticket_url).startswith(("https://", "http://")),
        )
        for note in day.notes
    ]
    return GameDayPage(
        row=row_of(day),
        slots=tuple(slot_of(slot, day.timezone) for slot in sorted(day.drills, key=_position)),
        notes=tuple(e for e in entries if e.note.kind is gamedays.NoteKind.NOTE),
        findings=tuple(e for e in entries if e.note.kind is gamedays.NoteKind.FINDING),
    )


def _position(slot: gamedays.DrillSlot) -> int:
    return slot.position


GameDayPath = Annotated[str, fastapi.Path(description="A game day's id or name.")]


@router.get("/gamedays/{gameday}", response_class=responses.HTMLResponse)
async def gameday_detail(
    request: fastapi.Request, gameday: GameDayPath, store: deps.StoreDep, session: deps.SessionDep
) -> responses.Response:
    auth.authorize(session.principal, auth.Permission.READ)
    found = await concurrency.run_in_threadpool(lambda: gameday_page(store, gameday))
    return rendering.page(
        request, "gameday.html", title=f"Game day {found.row.day.name}", page=found
    )


@router.get("/gamedays/{gameday}/report", response_class=responses.HTMLResponse)
async def report(
    gameday: GameDayPath, store: deps.StoreDep, session: deps.SessionDep
) -> responses.Response:
    """The after-action report as the service renders it (one self-contained HTML file)."""
    auth.authorize(session.principal, auth.Permission.READ)
    text = await concurrency.run_in_threadpool(
        lambda: gameday_reports.render(
            store,
            gameday,
            fmt="html",
            links=gameday_report.Links(style=gameday_report.LinkStyle.PAGES),
        )
    )
    return responses.HTMLResponse(text)
