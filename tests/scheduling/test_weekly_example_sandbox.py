"""The bundled weekly game-day Drill fires on its schedule and runs in the sandbox.

`drills/examples/weekly-gameday.drill.yaml` says "every Tuesday 10:00 Europe/Berlin". Here
the same document (copied, with its `environment:` pointed at the sandbox's Environment file
instead of staging's cluster) is applied as a schedule; the claim loop of a replica
(`drills.scheduling.loop`, APScheduler ticking every 10 ms of real time) judges by a fast
clock that steps two minutes per pass from Monday 10:00 to Tuesday 11:00 Berlin; the run
the fire queues is claimed and driven by the `serve` runner (`drills.service.driver`) through
the engine against the real sandbox (loopback Kubernetes API server, moto, health
endpoints). One fire row, at Tuesday 10:00 Berlin, started; its run ends as the scenario
ends on the sandbox (third-party-outage deviates by design, see
tests/engine_runs/test_every_scenario.py) and leaves the sandbox as it was.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills import settings as settings_mod
from drills import tables_schedules  # noqa: F401  (its tables on journal.metadata)
from drills.api import config as api_config
from drills.scheduling import loop
from drills.service import driver, schedules
from orchestrator import journal, states
from orchestrator.providers import builtin
from sandbox import stack
from tests.engine_runs import support

EXAMPLE = Path(__file__).resolve().parents[2] / "drills" / "examples" / "weekly-gameday.drill.yaml"
BERLIN = dt.timezone(dt.timedelta(hours=1))  # CET: December has no summer time
MONDAY_10 = dt.datetime(2026, 12, 7, 10, tzinfo=BERLIN)
TUESDAY_10 = dt.datetime(2026, 12, 8, 10, tzinfo=BERLIN)
TUESDAY_11 = dt.datetime(2026, 12, 8, 11, tzinfo=BERLIN)
STEP = dt.timedelta(minutes=2)
DRIVE_TIMEOUT_S = 240.0


class SteppingClock:
    """A clock that moves `STEP` on every reading, from `start` to `end` (then stays)."""

    def __init__(self, start: dt.datetime, end: dt.datetime) -> None:
        self._now, self._end = start, end
        self._lock = threading.Lock()
        self.finished = threading.Event()

    def __call__(self) -> dt.datetime:
        with self._lock:
            now = self._now
            self._now = min(self._now + STEP, self._end)
            if now >= self._end:
                self.finished.set()
            return now


@pytest.fixture
def world(tmp_path: Path) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path / "sandbox") as sandbox:
        support.settle(sandbox)
        yield sandbox


def _drill_in_the_sandbox(world: stack.Sandbox, folder: Path) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "environment: ./staging.environment.yaml" in text
    copy = folder / EXAMPLE.name
    copy.write_text(
        text.replace(
            "environment: ./staging.environment.yaml",
            f"environment: {world.info.environment}",
        ),
        encoding="utf-8",
    )
    return copy


def test_the_weekly_gameday_example_fires_once_on_tuesday_at_ten_and_runs_in_the_sandbox(
    world: stack.Sandbox, tmp_path: Path
) -> None:
    config = settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        reports_dir=tmp_path / "reports",
    )
    drill = _drill_in_the_sandbox(world, tmp_path)
    before = support.snapshot(world)

    with journal.open_store(config.database_url) as store:
        applied = schedules.apply(config, store, drill, owner="alice", now=MONDAY_10)
        runner = driver.Driver(
            config,
            store,
            builtin.registry_with_builtins(),
            approval_settings=api_config.ApiSettings(),
            poll_s=0.1,
        )
        runner.start()
        clock = SteppingClock(MONDAY_10, TUESDAY_11)
        claims = loop.start(store, interval_s=0.01, clock=clock)
        try:
            assert clock.finished.wait(60), "the fast clock did not reach Tuesday 11:00"
            claims.stop()
            fires = schedules.fires(store, applied.id)
            assert len(fires) == 1, fires
            run_id = states.RunId(fires[0].run_id or "")
            deadline = time.monotonic() + DRIVE_TIMEOUT_S
            run = store.get_run(run_id)
            while run.state not in states.TERMINAL:
                assert time.monotonic() < deadline, f"the run is still {run.state.value}"
                time.sleep(0.2)
                run = store.get_run(run_id)
        finally:
            claims.stop()
            runner.stop()

    [fire] = fires
    assert applied.name == "weekly-gameday"
    assert fire.nominal_fire_time == TUESDAY_10.astimezone(dt.UTC)
    assert (fire.outcome, fire.reason) == (schedules.Outcome.STARTED, "")
    assert run.record.trigger is not None and run.record.trigger.principal == (
        "schedule:weekly-gameday"
    )
    assert (run.scenario, run.state, run.verdict) == (
        "third-party-outage",
        states.RunState.COMPLETED,
        states.Verdict.DEVIATED,
    ), run.reason
    assert support.kube_markers(world) == []
    support.settle(world)
    support.assert_same_world(before, support.snapshot(world))
