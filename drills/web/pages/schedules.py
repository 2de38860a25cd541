"""`/schedules`: every schedule with its next fires, its recent fires, and the blackouts.

`GET /schedules` (any role: reading needs `read`) shows what `GET /api/v1/schedules` holds
(`drills.service.schedules.views_of`): each schedule's trigger, zone, owner, paused and
approval state, its next `UPCOMING` fires from `schedules.preview_schedule` (each in the
schedule's zone and in UTC; a fire a blackout, a change freeze or a guardrail will skip
carries the preview's reason; a paused schedule's and one awaiting approval's fires are
marked as the claim loop will record them), its last `RECENT` fires (`schedules.fires`:
started with the run's link, or skipped with why) and every blackout. Each time is a
`<time datetime="…Z">` whose text is complete without JS; `static/localtime.js` adds the
viewer's own local time beside each `<time data-local>`.

`POST /schedules/{id}/pause` and `/resume` (forms: CSRF token and idempotency key) need
what the API's routes need (the `start` permission, unscoped) and call the same service
function (`schedules.set_paused`); each is audited as the API's (`schedule.pause`,
`schedule.resume`), refusals included. `moment(at, zone)` is the one way these pages
write a time (the game-day pages use it too).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Annotated

import fastapi
import pydantic
from fastapi import responses
from starlette import concurrency

from drills.service import auth, problems, sessions
from drills.service import schedules as schedule_service
from drills.web import audit, deps, forms, rendering, routing
from orchestrator import journal
from scenarios import errors

router = routing.router()

UPCOMING = 5
"""How many next fires each schedule shows (the preview's `n`)."""
RECENT = 10
"""How many of its latest fires each schedule shows."""
PAUSED = "paused: the schedule is paused (its fires are recorded as skipped until resumed)"
AWAITING = "awaiting-approval: the schedule waits for its approvers"


@dataclasses.dataclass(frozen=True)
class Moment:
    """One instant as the pages write it: `iso` (UTC, for `<time datetime>`), the wall
    time in a zone (`zoned`: `2026-12-08 10:00 Europe/Berlin (UTC+01:00)`) and in UTC."""

    iso: str
    zoned: str
    utc: str
    zone: str


def _clock(value: dt.datetime) -> str:
    text = f"{value:%Y-%m-%d %H:%M}"
    return f"{text}:{value:%S}" if value.second or value.microsecond else text


def _offset(value: dt.datetime) -> str:
    offset = value.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = int(abs(offset).total_seconds() // 60)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def iso_utc(at: dt.datetime) -> str:
    """`2026-12-08T09:00:00Z` (milliseconds when it has a fraction of a second)."""
    value = (at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    spec = "milliseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def moment(at: dt.datetime, zone: str) -> Moment:
    """`at` (aware; naive is read as UTC) as a `Moment` in the IANA zone `zone`."""
    value = (at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    local = value.astimezone(zoneinfo.ZoneInfo(zone))
    return Moment(
        iso=iso_utc(value),
        zoned=f"{_clock(local)} {zone} ({_offset(local)})",
        utc=f"{_clock(value)} UTC",
        zone=zone,
    )


@dataclasses.dataclass(frozen=True)
class UpcomingFire:
    """One fire of the preview: when (its jittered start), and why it will be skipped."""

    at: Moment
    skipped_by: str | None


@dataclasses.dataclass(frozen=True)
class PastFire:
    nominal: Moment
    started: bool
    run_id: str | None
    reason: str


@dataclasses.dataclass(frozen=True)
class ScheduleRow:
    schedule: schedule_service.ScheduleView
    next_fire: Moment | None
    upcoming: tuple[UpcomingFire, ...]
    recent: tuple[PastFire, ...]


@dataclasses.dataclass(frozen=True)
class BlackoutRow:
    blackout: schedule_service.BlackoutView
    windows: tuple[str, ...]


def loop_skip(view: schedule_service.ScheduleView) -> str | None:
    """Why the claim loop skips every fire of the schedule whatever the preview says."""
    if view.paused:
        return PAUSED
    if view.awaiting_approval:
        return AWAITING
    return None


def _row(
    store: journal.Journal, view: schedule_service.ScheduleView, now: dt.datetime
) -> ScheduleRow:
    schedule = schedule_service.get(store, view.id)
    preview = schedule_service.preview_schedule(store, schedule, n=UPCOMING, now=now)
    zone = preview.timezone
    held = loop_skip(view)
    upcoming = tuple(
        UpcomingFire(at=moment(item.utc, zone), skipped_by=held or item.skipped_by)
        for item in preview.fires
    )
    recent = tuple(
        PastFire(
            nominal=moment(fire.nominal_fire_time, zone),
            started=fire.outcome is schedule_service.Outcome.STARTED,
            run_id=fire.run_id,
            reason=fire.reason,
        )
        for fire in schedule_service.fires(store, view.id, limit=RECENT)
    )
    return ScheduleRow(
        schedule=view,
        next_fire=None if view.next_fire_time is None else moment(view.next_fire_time, zone),
        upcoming=upcoming,
        recent=recent,
    )


def window_text(window: pydantic.JsonValue) -> str:
    """A blackout window as written: `every mon, tue 09:00 to 17:00` or `2026-12-14T00:00 to …`."""
    if not isinstance(window, dict):
        return str(window)
    start, end = window.get("start", ""), window.get("end", "")
    days = window.get("days")
    if isinstance(days, list):
        return f"every {', '.join(str(day) for day in days)} {start} to {end}"
    return f"{start} to {end}"


@dataclasses.dataclass(frozen=True)
class Listing:
    rows: tuple[ScheduleRow, ...]
    blackouts: tuple[BlackoutRow, ...]
    now: Moment


def listing(store: journal.Journal, *, now: dt.datetime) -> Listing:
    """Every schedule (by name) with its fires, and every blackout, as the page shows them."""
    rows: list[ScheduleRow] = []
    for view in schedule_service.views_of(store):
        try:
            rows.append(_row(store, view, now))
        except schedule_service.UnknownSchedule:  # deleted since it was listed
            continue
    blackouts = tuple(
        BlackoutRow(blackout=found, windows=tuple(window_text(w) for w in found.windows))
        for found in schedule_service.blackout_views(store)
    )
    return Listing(rows=tuple(rows), blackouts=blackouts, now=moment(now, "UTC"))


def may_change(principal: auth.Principal) -> bool:
    """Whether `principal` may pause and resume schedules (as the API decides it)."""
    try:
        auth.authorize(principal, auth.Permission.START, ())
    except auth.Forbidden:
        return False
    return True


@router.get("/schedules", response_class=responses.HTMLResponse)
async def schedules_page(
    request: fastapi.Request, store: deps.StoreDep, session: deps.SessionDep
) -> responses.Response:
    auth.authorize(session.principal, auth.Permission.READ)
    now = dt.datetime.now(dt.UTC)
    found = await concurrency.run_in_threadpool(lambda: listing(store, now=now))
    return rendering.page(
        request,
        "schedules.html",
        title="Schedules",
        listing=found,
        may_change=may_change(session.principal),
        upcoming_count=UPCOMING,
    )


async def _set_paused(
    request: fastapi.Request,
    store: journal.Journal,
    session: sessions.Session,
    key: str,
    *,
    paused: bool,
) -> responses.Response:
    action = "schedule.pause" if paused else "schedule.resume"

    def act() -> str:
        changed = schedule_service.set_paused(store, key, paused=paused)
        return f"/schedules#schedule-{changed.id}"

    try:
        auth.authorize(session.principal, auth.Permission.START, ())
        answer = await forms.act_once(request, store, session, act)
    except errors.StormdrillError as exc:
        status = problems.kind_of(exc).status
        await audit.record(request, store, action=action, target=key, status=status)
        raise
    await audit.record(request, store, action=action, target=key)
    return answer


SchedulePath = Annotated[str, fastapi.Path(description="A schedule's id or name.")]


@router.post("/schedules/{schedule}/pause")
async def pause(
    request: fastapi.Request,
    schedule: SchedulePath,
    store: deps.StoreDep,
    session: deps.FormSessionDep,
) -> responses.Response:
    return await _set_paused(request, store, session, schedule, paused=True)


@router.post("/schedules/{schedule}/resume")
async def resume(
    request: fastapi.Request,
    schedule: SchedulePath,
    store: deps.StoreDep,
    session: deps.FormSessionDep,
) -> responses.Response:
    return await _set_paused(request, store, session, schedule, paused=False)
