"""Loop: the APScheduler `BackgroundScheduler` in each replica that runs the claim loop.

APScheduler here only ticks: one in-memory job (no shared job store: APScheduler 3 must
never share one between schedulers) calls `claiming.fire_due(store, now)` every
`interval_s`; the database decides who fires what. `start(store)` returns a `Handle`
whose `stop()` shuts the scheduler down (waiting for a pass in progress).
`register(state, store)` / `unregister(state)` keep the handle on an app's state
(`app.state.schedule_loop`) for the API lifespan. Settings: `LoopSettings`
(`STORMDRILL_SCHEDULE_LOOP`, `STORMDRILL_SCHEDULE_INTERVAL_S`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pydantic_settings
from apscheduler.schedulers import background
from apscheduler.triggers import interval as aps_interval

from drills.scheduling import claiming
from orchestrator import journal

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


class LoopSettings(pydantic_settings.BaseSettings):
    """`STORMDRILL_SCHEDULE_LOOP` (default true): run the claim loop in this process;
    `STORMDRILL_SCHEDULE_INTERVAL_S` (default 1.0): seconds between passes."""

    model_config = pydantic_settings.SettingsConfigDict(env_prefix="STORMDRILL_SCHEDULE_")

    loop: bool = True
    interval_s: float = 1.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class Handle:
    """A running claim loop."""

    scheduler: background.BackgroundScheduler

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)


def start(
    store: journal.Journal,
    *,
    interval_s: float = 1.0,
    clock: Clock = _utcnow,
    submit: claiming.Submit | None = None,
) -> Handle:
    """Run `fire_due` every `interval_s` seconds in a background thread until `stop()`.

    `clock` is the `now` each pass judges by (tests give a fast clock); the ticking itself
    follows the wall clock.
    """

    def tick() -> None:
        try:
            claiming.fire_due(store, clock(), submit=submit)
        except Exception:  # a pass that fails is logged; the next one tries again
            log.exception("the schedule claim pass failed; retrying in %.1fs", interval_s)

    scheduler = background.BackgroundScheduler(timezone=dt.UTC)
    scheduler.add_job(
        tick,
        aps_interval.IntervalTrigger(seconds=interval_s, timezone=dt.UTC),
        id="stormdrill-schedule-claims",
        max_instances=1,
        coalesce=True,
        next_run_time=_utcnow(),  # real time: APScheduler ticks by the wall clock
    )
    scheduler.start()
    return Handle(scheduler=scheduler)


def register(state: Any, store: journal.Journal, settings: LoopSettings | None = None) -> None:
    """Start the loop (unless `STORMDRILL_SCHEDULE_LOOP=false`) and keep it on `state`."""
    config = settings or LoopSettings()
    state.schedule_loop = start(store, interval_s=config.interval_s) if config.loop else None


def unregister(state: Any) -> None:
    """Stop the loop `register` kept on `state` (if any)."""
    handle: Handle | None = getattr(state, "schedule_loop", None)
    if handle is not None:
        handle.stop()
    state.schedule_loop = None
