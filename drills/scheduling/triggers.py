"""Triggers: a schedule's nominal fire times (APScheduler 3 triggers) and their jittered times.

APScheduler 3.11 computes the times with `zoneinfo` zones: `CronTrigger` (five crontab fields
or an `@daily`-style alias, in the schedule's IANA zone, DST handled by APScheduler: a wall
time that does not exist that day fires once at the shifted time, one that occurs twice
fires once), `IntervalTrigger` (counted in UTC from the schedule's anchor, so an interval is
an exact span across DST) and `DateTrigger` (`at:`). An interval's times are one grid,
`anchor + k * every` (whole k; applying never fires at once: the first fire is the first
point strictly after it), computed here in exact
microseconds (`IntervalTrigger` counts in float timestamps, which may land a microsecond
off a time reached by adding spans, and a fire's key is its exact nominal time): the claim
loop's next fire after one (`next_nominal`), the first after applying (`first_nominal`) and
the preview's times (`nominal_times`) are points of the same grid. Crontab day-of-week
numbers (0 or 7 = Sunday) are turned into names first: APScheduler 3 counts 0 as Monday.
Invariants: pure functions of the trigger and the times given (no clock, no scheduler); the
jitter of a fire is a function of the schedule id and the nominal time only, so every
replica computes the same actual time; no nominal time after `endAt` is returned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
import zoneinfo
from collections.abc import Iterator

from apscheduler.triggers import base as aps_base
from apscheduler.triggers import cron as aps_cron
from apscheduler.triggers import date as aps_date
from apscheduler.triggers import interval as aps_interval

from drills.scheduling import model
from scenarios import models

_RETRIES = 1500  # a repeated hour of an every-minute cron: 60 steps
_STEP = dt.timedelta(minutes=1)
"""Cron times are whole minutes: the next distinct fire is at least a minute after one."""
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC_DOW = re.compile(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?")


def crontab_dow(field: str) -> str:
    """A crontab day-of-week field (0/7 = Sunday) as APScheduler 3 reads it (names)."""
    parts: list[str] = []
    for part in field.lower().split(","):
        match = _NUMERIC_DOW.fullmatch(part)
        if match is None or part in {"*", "?"}:
            parts.append("*" if part == "?" else part)
            continue
        first, last, step = match.groups()
        if first == "*":
            low, high = 0, 6
        else:
            low = int(first)
            high = int(last) if last is not None else (6 if step else low)
        if not (0 <= low <= 7 and 0 <= high <= 7) or low > high:
            raise model.ScheduleError(f"cron day-of-week '{field}': use 0-7 or mon..sun")
        days = range(low, high + 1, int(step) if step else 1)
        parts.extend(_WEEKDAYS[day % 7] for day in days)
    return ",".join(dict.fromkeys(parts))


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise model.ScheduleError(
            f"timezone '{name}' is not an IANA zone; e.g. 'Europe/Berlin'"
        ) from exc


def aps_trigger(spec: model.TriggerSpec) -> aps_base.BaseTrigger:
    """The APScheduler trigger of `spec`; `ScheduleError` when APScheduler refuses it."""
    zone = _zone(spec.timezone)
    try:
        if spec.kind is model.TriggerKind.CRON:
            text = models.CRON_ALIASES.get(spec.cron or "", spec.cron or "")
            fields = text.split()
            if len(fields) != 5:
                raise ValueError("use five fields")
            fields[4] = crontab_dow(fields[4])
            return aps_cron.CronTrigger(
                minute=fields[0],
                hour=fields[1],
                day=fields[2],
                month=fields[3],
                day_of_week=fields[4],
                timezone=zone,
            )
        if spec.kind is model.TriggerKind.EVERY:
            if spec.every_s is None or spec.anchor is None:
                raise ValueError("an interval needs its length and anchor")
            return aps_interval.IntervalTrigger(
                seconds=spec.every_s, start_date=spec.anchor, timezone=dt.UTC
            )
        if spec.at is None:
            raise ValueError("a one-off schedule needs its time")
        return aps_date.DateTrigger(run_date=spec.at, timezone=zone)
    except ValueError as exc:
        raise model.ScheduleError(f"schedule {spec.describe()}: {exc}") from exc


def next_nominal(
    spec: model.TriggerSpec, *, after: dt.datetime, inclusive: bool = False
) -> dt.datetime | None:
    """The first nominal fire time after `after` (or at it, `inclusive`), in UTC; None when
    the trigger has no more (a one-off in the past, past `endAt`)."""
    trigger = aps_trigger(spec)
    return _next(trigger, spec, after=after, inclusive=inclusive)


def first_nominal(spec: model.TriggerSpec, *, at: dt.datetime) -> dt.datetime | None:
    """The first fire of a schedule applied at `at`: a cron or one-off time at or after it,
    an interval's first grid point (`anchor + k * every`) strictly after it (applying never
    fires at once; with the anchor at `at`, one full span after it)."""
    every = spec.kind is model.TriggerKind.EVERY
    return next_nominal(spec, after=at, inclusive=not every)


def _interval_next(
    spec: model.TriggerSpec, *, after: dt.datetime, inclusive: bool
) -> dt.datetime | None:
    """The first point of the interval grid `anchor + k * every` after `after` (or
    at it, `inclusive`), in exact microseconds."""
    if spec.every_s is None or spec.anchor is None or spec.every_s <= 0:
        raise model.ScheduleError(f"schedule {spec.describe()}: an interval needs its length")
    step = dt.timedelta(seconds=spec.every_s)
    if step <= dt.timedelta(0):
        raise model.ScheduleError(f"schedule {spec.describe()}: the interval is under 1µs")
    anchor = spec.anchor.astimezone(dt.UTC)
    spans = (after.astimezone(dt.UTC) - anchor) // step  # floor, also before the anchor
    found = anchor + spans * step
    if found < after or (found == after and not inclusive):
        found += step
    return found


def _next(
    trigger: aps_base.BaseTrigger,
    spec: model.TriggerSpec,
    *,
    after: dt.datetime,
    inclusive: bool,
) -> dt.datetime | None:
    found: dt.datetime | None
    if spec.kind is model.TriggerKind.EVERY:
        found = _interval_next(spec, after=after, inclusive=inclusive)
    else:
        found = trigger.get_next_fire_time(None if inclusive else after, after)
    if spec.kind is model.TriggerKind.CRON:
        found = _past_repeats(trigger, found, after=after, inclusive=inclusive, zone=spec.timezone)
    elif found is not None and not inclusive and found <= after:
        found = None  # a one-off already fired
    if found is None:
        return None
    utc: dt.datetime = found.astimezone(dt.UTC)
    if spec.end_at is not None and utc > spec.end_at:
        return None
    return utc


def _past_repeats(
    trigger: aps_base.BaseTrigger,
    found: dt.datetime | None,
    *,
    after: dt.datetime,
    inclusive: bool,
    zone: str,
) -> dt.datetime | None:
    """`found`, or the next cron time past it that is later than `after` and not the second
    occurrence of a wall time (the hour a fall-back repeats fires once, the first time)."""
    tz = _zone(zone)
    probe = after
    for _ in range(_RETRIES):
        if found is None:
            return None
        later = found >= after if inclusive else found > after
        if later and not _repeated(found, tz):
            return found
        probe = max(probe, found.astimezone(dt.UTC)) + _STEP
        found = trigger.get_next_fire_time(None, probe)
    raise model.ScheduleError(f"no cron time found after {after.isoformat()}")


def _repeated(value: dt.datetime, zone: zoneinfo.ZoneInfo) -> bool:
    """Whether `value` is the second time its wall-clock time occurs (after a fall-back)."""
    local = value.astimezone(zone)
    return local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset()


def nominal_times(
    spec: model.TriggerSpec, *, start: dt.datetime, inclusive: bool = True
) -> Iterator[dt.datetime]:
    """Every nominal fire time from `start` on (endless for cron and intervals); for an
    interval, the points of its grid at or after `start` (see the module docstring)."""
    trigger = aps_trigger(spec)
    current = _next(trigger, spec, after=start, inclusive=inclusive)
    while current is not None:
        yield current
        current = _next(trigger, spec, after=current, inclusive=False)


def jitter_of(schedule_id: str, nominal: dt.datetime, *, jitter_s: float) -> dt.timedelta:
    """The delay of one fire inside the jitter window: the same on every replica."""
    if jitter_s <= 0:
        return dt.timedelta(0)
    seed = hashlib.sha256(f"{schedule_id}|{nominal.astimezone(dt.UTC).isoformat()}".encode())
    rng = random.Random(seed.digest())  # spreading load, not a secret
    return dt.timedelta(microseconds=int(rng.random() * jitter_s * 1_000_000))


def due_time(schedule_id: str, spec: model.TriggerSpec, nominal: dt.datetime) -> dt.datetime:
    """When the fire at `nominal` actually starts (nominal + its jitter)."""
    return nominal + jitter_of(schedule_id, nominal, jitter_s=spec.jitter_s)
