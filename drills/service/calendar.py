"""Calendars: an RFC 5545 iCalendar writer, and the upcoming fires of schedules as its events.

`render(events, name=, now=)` writes one VCALENDAR (VERSION 2.0, PRODID, CALSCALE GREGORIAN,
X-WR-CALNAME) with a VEVENT per `CalendarEvent` and a VTIMEZONE per IANA zone the events use,
generated from `zoneinfo`: the offset in effect at the start of the years the events span,
then every transition in those years (found by scanning the zone's offsets day by day and
bisecting to the second), each a STANDARD or DAYLIGHT observance. Events in UTC are written
in the `Z` form and need no VTIMEZONE. Any source of events plugs in by building
`CalendarEvent`s: `schedule_events` does it for the schedules (their fire times come from
`drills.service.schedules.preview_schedule`, never computed here); game days can do the same.
Invariants: the output is pure (a function of the events, name and `now`), events are
written in order of start (then UID); lines end in CRLF and are folded at 75 octets without
splitting a UTF-8 character; TEXT values are escaped (backslash, semicolon, comma, newline);
a start time the zone's wall clock shows twice (the repeated hour after a fall-back) is
written in UTC, as a wall time there would be read as its first occurrence.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Sequence

from drills.service import gamedays as gameday_service
from drills.service import schedules as schedule_service
from orchestrator import journal
from scenarios import errors

PRODID = "-//Stormdrill//Stormdrill calendar//EN"
UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/Zulu", "Zulu", "Etc/UCT", "UCT"})
"""Zones written in the `Z` form (no VTIMEZONE)."""
DEFAULT_LENGTH = dt.timedelta(minutes=30)
"""How long a scheduled drill's event lasts (its planned duration is not in the schedule)."""
SKIPPED = "skipped"
"""The category (and summary prefix) of a fire that will be skipped (a blackout, a change
freeze of its Environment, a guardrail decided without a cluster); a second category names
which: `blackout`, `freeze` or `guardrail` (`drills.scheduling.model.SkipReason`)."""
_SKIP_KINDS = frozenset({"blackout", "freeze", "guardrail"})
"""The preview's marks, by first word (`drills.scheduling.model.SkipReason` values; named
here, as entry points reach `drills.scheduling` only through `drills.service.schedules`)."""
_FOLD_AT = 75
_SCAN_STEP = dt.timedelta(days=1)


class CalendarError(errors.StormdrillError):
    """An event that cannot be written as iCalendar (names the event and the fix)."""


@dataclasses.dataclass(frozen=True)
class CalendarEvent:
    """One VEVENT: from `start` to `end` (aware), shown in the IANA zone `timezone`."""

    uid: str
    summary: str
    start: dt.datetime
    end: dt.datetime
    timezone: str
    description: str = ""
    url: str | None = None
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.uid:
            raise CalendarError("a calendar event needs a non-empty uid")
        for field, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise CalendarError(
                    f"event {self.uid}: {field} {value.isoformat()} has no time zone;"
                    " give an aware datetime (e.g. with tzinfo=datetime.UTC)"
                )
        if self.end < self.start:
            raise CalendarError(f"event {self.uid}: end is before start; swap them")
        _zone(self.timezone, uid=self.uid)
        if self.url is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.url):
            raise CalendarError(f"event {self.uid}: url holds a control character; remove it")


# ---- rendering ------------------------------------------------------------------------------


def render(events: Sequence[CalendarEvent], *, name: str, now: dt.datetime) -> str:
    """The VCALENDAR of `events`, named `name`, stamped `now` (aware): CRLF lines, folded."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise CalendarError("render: now has no time zone; give an aware datetime")
    ordered = sorted(events, key=lambda e: (e.start.astimezone(dt.UTC), e.uid))
    seen: set[str] = set()
    for event in ordered:
        if event.uid in seen:
            raise CalendarError(f"two events have the uid {event.uid!r}; give each its own")
        seen.add(event.uid)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"X-WR-CALNAME:{escape_text(name)}",
    ]
    for zone_name, (first, last) in sorted(_zone_years(ordered).items()):
        lines.extend(vtimezone(zone_name, first_year=first, last_year=last))
    stamp = _utc_text(now)
    for event in ordered:
        lines.extend(_vevent(event, stamp=stamp))
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)


def _vevent(event: CalendarEvent, *, stamp: str) -> list[str]:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{escape_text(event.uid)}",
        f"DTSTAMP:{stamp}",
        _time_property("DTSTART", event.start, event.timezone),
        _time_property("DTEND", event.end, event.timezone),
        f"SUMMARY:{escape_text(event.summary)}",
    ]
    if event.description:
        lines.append(f"DESCRIPTION:{escape_text(event.description)}")
    if event.url is not None:
        lines.append(f"URL:{event.url}")
    if event.categories:
        lines.append("CATEGORIES:" + ",".join(escape_text(c) for c in event.categories))
    lines.append("END:VEVENT")
    return lines


def _time_property(prop: str, value: dt.datetime, zone_name: str) -> str:
    """`DTSTART;TZID=Europe/Berlin:20261208T100000`, or `DTSTART:20261208T090000Z` in UTC
    (and for a wall time the zone shows twice, which a TZID would name ambiguously)."""
    if zone_name in UTC_ZONES:
        return f"{prop}:{_utc_text(value)}"
    local = value.astimezone(_zone(zone_name))
    if local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset():
        return f"{prop}:{_utc_text(value)}"
    return f"{prop};TZID={zone_name}:{_local_text(local)}"


def _zone_years(events: Sequence[CalendarEvent]) -> dict[str, tuple[int, int]]:
    """Per zone written with TZID: the first and last (local) year its events touch."""
    years: dict[str, tuple[int, int]] = {}
    for event in events:
        if event.timezone in UTC_ZONES:
            continue
        zone = _zone(event.timezone)
        first = event.start.astimezone(zone).year
        last = event.end.astimezone(zone).year
        if event.timezone in years:
            old_first, old_last = years[event.timezone]
            first, last = min(first, old_first), max(last, old_last)
        years[event.timezone] = (first, last)
    return years


# ---- VTIMEZONE ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Transition:
    """An instant (UTC) from which the zone's offset is `offset_to` (was `offset_from`)."""

    at: dt.datetime
    offset_from: dt.timedelta
    offset_to: dt.timedelta
    dst: bool
    abbreviation: str


def transitions(zone_name: str, *, first_year: int, last_year: int) -> list[Transition]:
    """Every change of the zone's UTC offset from 1 January of `first_year` to the end of
    `last_year` (local time), in order: found by scanning `zoneinfo` offsets day by day and
    bisecting to the second."""
    zone = _zone(zone_name)
    start = _new_year(first_year, zone)
    stop = _new_year(last_year + 1, zone)
    found: list[Transition] = []
    current = start
    before = _offset(current, zone)
    while current < stop:
        later = min(current + _SCAN_STEP, stop)
        after = _offset(later, zone)
        if after != before:
            at = _bisect(current, later, zone, before)
            local = at.astimezone(zone)
            found.append(
                Transition(
                    at=at,
                    offset_from=before,
                    offset_to=_offset(at, zone),
                    dst=bool(local.dst()),
                    abbreviation=local.tzname() or "",
                )
            )
            before = _offset(at, zone)
            if before != after:  # two changes inside one step: look again from this one
                current = at
                continue
        current = later
    return found


def vtimezone(zone_name: str, *, first_year: int, last_year: int) -> list[str]:
    """The VTIMEZONE lines (unfolded) of `zone_name` for the years given: the observance in
    effect on 1 January of `first_year`, then one per transition in those years."""
    zone = _zone(zone_name)
    start = _new_year(first_year, zone)
    local = start.astimezone(zone)
    offset = _offset(start, zone)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{zone_name}"]
    lines.extend(
        _observance(
            dst=bool(local.dst()),
            onset=local.replace(tzinfo=None),
            offset_from=offset,
            offset_to=offset,
            abbreviation=local.tzname() or "",
        )
    )
    for change in transitions(zone_name, first_year=first_year, last_year=last_year):
        lines.extend(
            _observance(
                dst=change.dst,
                # DTSTART of an observance is the wall time just before the change
                onset=(change.at + change.offset_from).replace(tzinfo=None),
                offset_from=change.offset_from,
                offset_to=change.offset_to,
                abbreviation=change.abbreviation,
            )
        )
    lines.append("END:VTIMEZONE")
    return lines


def _observance(
    *,
    dst: bool,
    onset: dt.datetime,
    offset_from: dt.timedelta,
    offset_to: dt.timedelta,
    abbreviation: str,
) -> list[str]:
    kind = "DAYLIGHT" if dst else "STANDARD"
    lines = [
        f"BEGIN:{kind}",
        f"DTSTART:{_local_text(onset)}",
        f"TZOFFSETFROM:{utc_offset_text(offset_from)}",
        f"TZOFFSETTO:{utc_offset_text(offset_to)}",
    ]
    if abbreviation:
        lines.append(f"TZNAME:{escape_text(abbreviation)}")
    lines.append(f"END:{kind}")
    return lines


def _bisect(
    low: dt.datetime, high: dt.datetime, zone: zoneinfo.ZoneInfo, before: dt.timedelta
) -> dt.datetime:
    """The first whole second in (low, high] whose offset is not `before`."""
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(dt.datetime.fromtimestamp(mid, dt.UTC), zone) == before:
            lo = mid
        else:
            hi = mid
    return dt.datetime.fromtimestamp(hi, dt.UTC)


def _new_year(year: int, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """1 January of `year`, 00:00 on the zone's wall clock, in UTC."""
    return dt.datetime(year, 1, 1, tzinfo=zone).astimezone(dt.UTC)


def _offset(at: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.timedelta:
    offset = at.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


# ---- value formats --------------------------------------------------------------------------


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon and comma escaped, newlines `\\n`."""
    escaped = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return escaped.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def utc_offset_text(offset: dt.timedelta) -> str:
    """A UTC-OFFSET value: `+0100`, `-0430`, `+003530` (seconds only when there are any)."""
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")


def fold(line: str) -> str:
    """`line` folded (RFC 5545 3.1): at most 75 octets of UTF-8 per physical line, the next
    ones starting with a space; a character is never split."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    limit = _FOLD_AT
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, _FOLD_AT - 1  # the leading space is one octet
        current.append(char)
        size += width
    parts.append("".join(current))
    return "\r\n ".join(parts)


def _utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _local_text(value: dt.datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S")


def _zone(name: str, *, uid: str | None = None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        where = f"event {uid}: " if uid is not None else ""
        raise CalendarError(
            f"{where}timezone {name!r} is not an IANA zone; e.g. 'Europe/Berlin' or 'UTC'"
        ) from exc


# ---- schedules ------------------------------------------------------------------------------


def schedule_events(
    store: journal.Journal,
    *,
    now: dt.datetime,
    horizon: dt.timedelta,
    limit_per_schedule: int = 20,
) -> list[CalendarEvent]:
    """The upcoming fires (from `now` to `now + horizon`, at most `limit_per_schedule` each)
    of every active schedule (not paused, not ended), as events of `DEFAULT_LENGTH` in the
    schedule's zone. A fire the preview marks as skipped (a blackout, a change freeze of
    the Environment, a guardrail decided without a cluster) is kept, marked: its summary
    starts with `[skipped]`, its categories hold `skipped` and why (`blackout`, `freeze`,
    `guardrail`), its description names the blackout, the freeze or the refusal."""
    if limit_per_schedule < 1:
        raise CalendarError(f"limit_per_schedule is {limit_per_schedule}; give 1 or more")
    until = now + horizon
    found: list[CalendarEvent] = []
    for schedule in schedule_service.list_schedules(store):
        if schedule.paused or schedule.ended:
            continue
        preview = schedule_service.preview_schedule(store, schedule, n=limit_per_schedule, now=now)
        drill = _Scheduled(
            id=schedule.id,
            name=schedule.name,
            scenario=schedule.template.scenario,
            environment=schedule.template.environment,
            owner=schedule.owner,
            trigger=schedule.trigger.describe(),
            timezone=schedule.trigger.timezone,
        )
        for item in preview.fires:
            if item.utc > until:
                break
            found.append(_fire_event(drill, item))
    return found


@dataclasses.dataclass(frozen=True)
class _Scheduled:
    """What an event of a schedule's fire says about the schedule."""

    id: str
    name: str
    scenario: str
    environment: str
    owner: str
    trigger: str
    timezone: str


def _fire_event(drill: _Scheduled, item: schedule_service.PreviewItemView) -> CalendarEvent:
    summary = f"Drill {drill.name}: {drill.scenario} on {drill.environment}"
    details = [
        f"Scheduled drill {drill.name} ({drill.trigger}).",
        f"Scenario: {drill.scenario}",
        f"Environment: {drill.environment}",
        f"Owner: {drill.owner}",
    ]
    categories: tuple[str, ...] = ("stormdrill", "drill")
    if item.skipped_by is not None:
        summary = f"[{SKIPPED}] {summary}"
        details.append(f"Skipped: {item.skipped_by}")
        categories = (*categories, SKIPPED, *_skip_kind(item.skipped_by))
    due = item.utc.astimezone(dt.UTC)
    stamp = _utc_text(due) if due.microsecond == 0 else f"{due:%Y%m%dT%H%M%S%fZ}"
    return CalendarEvent(
        uid=f"{drill.id}-{stamp}@stormdrill",
        summary=summary,
        start=item.utc,
        end=item.utc + DEFAULT_LENGTH,
        timezone=drill.timezone,
        description="\n".join(details),
        categories=categories,
    )


def _skip_kind(mark: str) -> tuple[str, ...]:
    """Why a preview mark skips the fire: its first word (`blackout ID …`,
    `freeze: …`, `guardrail: …`), or nothing for a mark of another form."""
    word = mark.replace(":", " ").split(maxsplit=1)[0] if mark.strip() else ""
    return (word,) if word in _SKIP_KINDS else ()


# ---- game days ------------------------------------------------------------------------------


def gameday_events(
    store: journal.Journal, *, now: dt.datetime, horizon: dt.timedelta
) -> list[CalendarEvent]:
    """Every game day not closed whose window overlaps `now` .. `now + horizon`, as one event
    over its window in its zone: its drills in order (with their gates), who takes part in
    which role, its services and its comms channel (the event's URL)."""
    until = now + horizon
    found: list[CalendarEvent] = []
    for day in gameday_service.list_gamedays(store):
        if day.state is gameday_service.State.CLOSED:
            continue
        if day.window_end < now or day.window_start > until:
            continue
        drills = [
            f"{slot.position}. {slot.ref}"
            + (f" on {slot.environment}" if slot.environment else "")
            + f" (gate: {slot.gate.value})"
            for slot in day.drills
        ]
        people = [
            f"{p.person}: {', '.join(role.value for role in p.roles)}" for p in day.participants
        ]
        description = "\n".join(
            [
                f"Game day {day.name} ({day.state.value}), facilitated by {day.facilitator}.",
                "Drills:",
                *drills,
                "Participants:",
                *people,
                *([f"Services: {', '.join(day.services)}"] if day.services else []),
            ]
        )
        found.append(
            CalendarEvent(
                uid=f"gameday-{day.id}@stormdrill",
                summary=f"Game day: {day.name}",
                start=day.window_start,
                end=day.window_end,
                timezone=day.timezone,
                description=description,
                url=day.channel_url or None,
                categories=("stormdrill", "game-day"),
            )
        )
    return found
