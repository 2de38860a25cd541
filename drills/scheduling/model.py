"""Schedule model: frozen dataclasses for triggers, schedules, fires and blackouts, and their JSON.

Nothing here computes a fire time (`drills.scheduling.triggers` does, with APScheduler) or
touches the store (`drills.scheduling.storing`). Invariants: every time is timezone-aware;
a trigger is exactly one of cron / every / at; the JSON written by `to_json` is read back
unchanged by `from_json` (it is what the `schedules.trigger` and `blackouts.windows` columns
hold, so changing a key is a migration).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import NewType, cast

from orchestrator import mutations
from scenarios import errors, models

ScheduleId = NewType("ScheduleId", str)
BlackoutId = NewType("BlackoutId", str)
Json = mutations.JsonValue
CatchUp = models.CatchUp


class ScheduleError(errors.StormdrillError):
    """A schedule or blackout that cannot work as written (names the field and the fix)."""


class TriggerKind(enum.StrEnum):
    CRON = "cron"
    EVERY = "every"
    AT = "at"


class Outcome(enum.StrEnum):
    """What became of one nominal fire."""

    STARTED = "started"
    SKIPPED = "skipped"


class SkipReason(enum.StrEnum):
    """Why a fire was skipped: the first word of the fire's `reason`."""

    PAUSED = "paused"
    BLACKOUT = "blackout"
    KILLSWITCH = "killswitch"
    OVERLAP = "overlap"
    MISSED = "missed"
    FREEZE = "freeze"
    """Inside a change freeze of the schedule's Environment (`spec.freezes`)."""
    GUARDRAIL = "guardrail"
    """Refused by a guardrail decided without a cluster (environments, windows, approvals)."""


def skip_text(reason: SkipReason, detail: str) -> str:
    """The stored reason of a skipped fire: `code: detail` (`missed: 3h late, ...`)."""
    return f"{reason.value}: {detail}" if detail else reason.value


@dataclasses.dataclass(frozen=True)
class TriggerSpec:
    """When a schedule fires (exactly one of cron, every_s, at) and how it treats lateness."""

    kind: TriggerKind
    timezone: str
    cron: str | None = None
    every_s: float | None = None
    anchor: dt.datetime | None = None
    """Where an interval counts from (the schedule's creation): every replica agrees."""
    at: dt.datetime | None = None
    jitter_s: float = 0.0
    misfire_grace_s: float = 300.0
    catch_up: models.CatchUp = models.CatchUp.NONE
    end_at: dt.datetime | None = None
    max_runs: int | None = None

    @classmethod
    def from_schedule(cls, schedule: models.Schedule, *, anchor: dt.datetime) -> TriggerSpec:
        """The trigger a Drill's `schedule:` describes (an interval counts from `anchor`)."""
        kind = (
            TriggerKind.CRON
            if schedule.cron is not None
            else TriggerKind.EVERY
            if schedule.every is not None
            else TriggerKind.AT
        )
        return cls(
            kind=kind,
            timezone=schedule.timezone,
            cron=schedule.cron,
            every_s=schedule.every.seconds if schedule.every is not None else None,
            anchor=anchor if kind is TriggerKind.EVERY else None,
            at=schedule.at,
            jitter_s=schedule.jitter.seconds if schedule.jitter is not None else 0.0,
            misfire_grace_s=schedule.misfire_grace.seconds,
            catch_up=schedule.catch_up,
            end_at=schedule.end_at,
            max_runs=schedule.max_runs,
        )

    def describe(self) -> str:
        """One line for people: `cron 0 10 * * tue (Europe/Berlin)`, `every 30s`, `at …`."""
        if self.kind is TriggerKind.CRON:
            what = f"cron {self.cron}"
        elif self.kind is TriggerKind.EVERY:
            what = f"every {self.every_s:g}s"
        else:
            what = f"at {_iso(self.at)}"
        return f"{what} ({self.timezone})"

    def to_json(self) -> dict[str, Json]:
        return {
            "kind": self.kind.value,
            "timezone": self.timezone,
            "cron": self.cron,
            "everyS": self.every_s,
            "anchor": _iso(self.anchor),
            "at": _iso(self.at),
            "jitterS": self.jitter_s,
            "misfireGraceS": self.misfire_grace_s,
            "catchUp": self.catch_up.value,
            "endAt": _iso(self.end_at),
            "maxRuns": self.max_runs,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Json]) -> TriggerSpec:
        every = raw.get("everyS")
        max_runs = raw.get("maxRuns")
        return cls(
            kind=TriggerKind(str(raw["kind"])),
            timezone=str(raw["timezone"]),
            cron=_text(raw.get("cron")),
            every_s=float(every) if isinstance(every, int | float) else None,
            anchor=_time(raw.get("anchor")),
            at=_time(raw.get("at")),
            jitter_s=float(cast(float, raw.get("jitterS") or 0.0)),
            misfire_grace_s=float(cast(float, raw.get("misfireGraceS") or 300.0)),
            catch_up=models.CatchUp(str(raw.get("catchUp", "none"))),
            end_at=_time(raw.get("endAt")),
            max_runs=int(max_runs) if isinstance(max_runs, int) else None,
        )


@dataclasses.dataclass(frozen=True)
class RunTemplate:
    """The PENDING run a fire submits: what `Engine.submit` would write (secrets masked)."""

    drill_source: str
    """The Drill document's file."""
    scenario: str
    environment: str
    environment_source: str
    record: Mapping[str, Json]
    """The run record's JSON without its trigger (`records.RunRecord.to_json`)."""
    services: tuple[str, ...] = ()
    """CMDB services the drill targets (blackouts per service match these)."""
    teams: tuple[str, ...] = ()
    """Teams owning those services (blackouts per team match these)."""

    def to_json(self) -> dict[str, Json]:
        return {
            "drillSource": self.drill_source,
            "scenario": self.scenario,
            "environment": self.environment,
            "environmentSource": self.environment_source,
            "record": dict(self.record),
            "services": list(self.services),
            "teams": list(self.teams),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Json]) -> RunTemplate:
        record = raw.get("record")
        return cls(
            drill_source=str(raw["drillSource"]),
            scenario=str(raw["scenario"]),
            environment=str(raw["environment"]),
            environment_source=str(raw["environmentSource"]),
            record=cast(Mapping[str, Json], record if isinstance(record, Mapping) else {}),
            services=_texts(raw.get("services")),
            teams=_texts(raw.get("teams")),
        )


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A stored schedule."""

    id: ScheduleId
    name: str
    template: RunTemplate
    trigger: TriggerSpec
    owner: str
    paused: bool
    next_nominal: dt.datetime | None
    next_due: dt.datetime | None
    runs_started: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def ended(self) -> bool:
        return self.next_nominal is None


@dataclasses.dataclass(frozen=True)
class Fire:
    """What became of one nominal fire of a schedule."""

    schedule_id: ScheduleId
    nominal: dt.datetime
    actual: dt.datetime
    outcome: Outcome
    run_id: str | None
    reason: str


# ---- blackouts ------------------------------------------------------------------------------


class BlackoutScope(enum.StrEnum):
    GLOBAL = "global"
    ENVIRONMENT = "environment"
    SERVICE = "service"
    TEAM = "team"


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclasses.dataclass(frozen=True)
class DatedWindow:
    """From `start` to `end` (aware times), once."""

    start: dt.datetime
    end: dt.datetime


@dataclasses.dataclass(frozen=True)
class WeeklyWindow:
    """Every week on `days` (0 = Monday) from `start` to `end` local time (end <= start: past
    midnight into the next day)."""

    days: frozenset[int]
    start: dt.time
    end: dt.time


Window = DatedWindow | WeeklyWindow


@dataclasses.dataclass(frozen=True)
class Blackout:
    """A calendar in which no scheduled fire starts, for everything or one scope."""

    id: BlackoutId
    scope: BlackoutScope
    value: str
    """The environment name, service ref or team ref (empty for global)."""
    windows: tuple[Window, ...]
    timezone: str
    reason: str
    created_by: str = ""

    def describe(self) -> str:
        where = "everything" if self.scope is BlackoutScope.GLOBAL else f"{self.scope} {self.value}"
        return f"blackout {self.id} ({where}{f': {self.reason}' if self.reason else ''})"


def windows_to_json(windows: Sequence[Window]) -> list[Json]:
    out: list[Json] = []
    for window in windows:
        if isinstance(window, DatedWindow):
            out.append({"start": _iso(window.start), "end": _iso(window.end)})
        else:
            out.append(
                {
                    "days": [_DAYS[day] for day in sorted(window.days)],
                    "start": window.start.isoformat(timespec="minutes"),
                    "end": window.end.isoformat(timespec="minutes"),
                }
            )
    return out


def windows_from_json(raw: Json, *, timezone: str) -> tuple[Window, ...]:
    """Windows from JSON: `{start, end}` aware times (or local ones, in `timezone`), or
    `{days: [mon, …], start: "HH:MM", end: "HH:MM"}`. `ScheduleError` names what is wrong."""
    import zoneinfo

    if not isinstance(raw, list) or not raw:
        raise ScheduleError("windows: give a list of {start, end} or {days, start, end}")
    zone = zoneinfo.ZoneInfo(timezone)
    found: list[Window] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ScheduleError(f"windows[{index}]: give an object {{start, end}}")
        try:
            if "days" in item:
                days = item["days"]
                if not isinstance(days, list) or not days:
                    raise ValueError("days: give a list such as [mon, tue]")
                found.append(
                    WeeklyWindow(
                        days=frozenset(_DAYS.index(str(day).lower()[:3]) for day in days),
                        start=dt.time.fromisoformat(str(item["start"])),
                        end=dt.time.fromisoformat(str(item["end"])),
                    )
                )
            else:
                start = dt.datetime.fromisoformat(str(item["start"]))
                end = dt.datetime.fromisoformat(str(item["end"]))
                start = start if start.tzinfo else start.replace(tzinfo=zone)
                end = end if end.tzinfo else end.replace(tzinfo=zone)
                if end <= start:
                    raise ValueError("end must be after start")
                found.append(DatedWindow(start=start, end=end))
        except (KeyError, ValueError) as exc:
            raise ScheduleError(
                f"windows[{index}]: {exc}; e.g. {{start: '2026-12-20T00:00', end:"
                " '2027-01-04T00:00'} or {days: [fri], start: '16:00', end: '23:59'}"
            ) from exc
    return tuple(found)


# ---- helpers ------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Json) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def _text(value: Json) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: Json) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()
