"""The per-process claim loop (APScheduler `BackgroundScheduler`) and fires across DST days."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from collections.abc import Iterator

import pytest

from drills import tables_schedules  # noqa: F401  (its tables on journal.metadata)
from drills.scheduling import claiming, loop, model
from orchestrator import journal
from tests.scheduling import factories

T0 = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=dt.UTC)
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


@pytest.fixture
def store(store_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(store_url) as opened:
        yield opened


def test_the_loop_fires_a_due_schedule_once_and_stops(store: journal.Journal) -> None:
    sid = factories.add(store, factories.every(3600, anchor=T0), now=T0)
    passes = threading.Semaphore(0)

    def clock() -> dt.datetime:
        passes.release()
        return T0 + dt.timedelta(seconds=1)

    handle = loop.start(store, interval_s=0.02, clock=clock)
    try:
        for _ in range(5):  # several passes at the same instant
            assert passes.acquire(timeout=30)
    finally:
        handle.stop()
    fires = factories.fires(store, sid)
    assert [(f.nominal, f.outcome) for f in fires] == [(T0, model.Outcome.STARTED)]


def test_register_keeps_the_handle_on_the_state_and_unregister_stops_it(
    store: journal.Journal,
) -> None:
    class State:
        schedule_loop: loop.Handle | None = None

    state = State()
    loop.register(state, store, loop.LoopSettings(interval_s=0.05))
    assert state.schedule_loop is not None and state.schedule_loop.scheduler.running
    running = state.schedule_loop
    loop.unregister(state)
    assert state.schedule_loop is None and not running.scheduler.running
    loop.register(state, store, loop.LoopSettings(loop=False))
    assert state.schedule_loop is None


@pytest.mark.parametrize(
    ("start", "dst_day"),
    [
        (dt.datetime(2026, 3, 27, 12, tzinfo=dt.UTC), "2026-03-29"),
        (dt.datetime(2026, 10, 23, 12, tzinfo=dt.UTC), "2026-10-25"),
    ],
)
def test_a_0230_berlin_schedule_claimed_every_ten_minutes_fires_once_a_day_across_dst(
    store: journal.Journal, start: dt.datetime, dst_day: str
) -> None:
    spec = model.TriggerSpec(
        kind=model.TriggerKind.CRON, timezone="Europe/Berlin", cron="30 2 * * *"
    )
    sid = factories.add(store, spec, now=start)
    now = start
    while now < start + dt.timedelta(days=4):
        claiming.fire_due(store, now)
        claiming.fire_due(store, now)  # a second replica's pass at the same time
        now += dt.timedelta(minutes=10)
    fires = factories.fires(store, sid)
    days = [f.nominal.astimezone(BERLIN).date().isoformat() for f in fires]
    assert len(days) == len(set(days)) == 4
    assert dst_day in days
    started = [f for f in fires if f.outcome is model.Outcome.STARTED]
    assert len(started) == 1  # the later ones overlap the first run: still PENDING
    assert {f.reason.split(":")[0] for f in fires if f not in started} == {"overlap"}
