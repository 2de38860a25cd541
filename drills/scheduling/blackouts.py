"""Blackouts: whether a scheduled fire at some time falls inside a blackout calendar.

A blackout applies to everything (global), one Environment (by name), one CMDB service or
one team (by entity ref: the services a schedule's drill targets, the teams owning them).
Its windows are dated spans or weekly windows in the blackout's time zone (a weekly window
whose end is not after its start runs past midnight). Pure functions: no clock, no store.
A running drill is matched the same way (`covers`, with the environment, services and
teams of its run) when a blackout with `abortRunning` begins.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable

from drills.scheduling import model


def applies(blackout: model.Blackout, template: model.RunTemplate) -> bool:
    """Whether `blackout`'s scope covers the drill `template` submits."""
    return covers(
        blackout,
        environment=template.environment,
        services=template.services,
        teams=template.teams,
    )


def covers(
    blackout: model.Blackout,
    *,
    environment: str,
    services: Iterable[str],
    teams: Iterable[str],
) -> bool:
    """Whether `blackout`'s scope covers a drill in `environment` on `services` (CMDB refs)
    owned by `teams`."""
    scope = blackout.scope
    if scope is model.BlackoutScope.GLOBAL:
        return True
    if scope is model.BlackoutScope.ENVIRONMENT:
        return blackout.value == environment
    if scope is model.BlackoutScope.SERVICE:
        return blackout.value in set(services)
    return blackout.value in set(teams)


def inside(blackout: model.Blackout, at: dt.datetime) -> bool:
    """Whether `at` (aware) falls in one of `blackout`'s windows."""
    zone = zoneinfo.ZoneInfo(blackout.timezone)
    local = at.astimezone(zone)
    for window in blackout.windows:
        if isinstance(window, model.DatedWindow):
            if window.start <= at < window.end:
                return True
            continue
        now, day = local.time().replace(tzinfo=None), local.weekday()
        if window.start < window.end:
            if day in window.days and window.start <= now < window.end:
                return True
        elif (day in window.days and now >= window.start) or (
            (day - 1) % 7 in window.days and now < window.end
        ):
            return True
    return False


def blocking(
    found: Iterable[model.Blackout], template: model.RunTemplate, *, at: dt.datetime
) -> model.Blackout | None:
    """The first blackout that skips a fire of `template` at `at`, if any."""
    for blackout in found:
        if applies(blackout, template) and inside(blackout, at):
            return blackout
    return None
