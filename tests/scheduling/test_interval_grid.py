"""Interval schedules keep one grid: what `preview` shows is what the claim loop writes.

A small drill world written per test (a scenario that only waits, an unprotected
Environment `gridland`, a Drill with `every:`), applied through
`drills.service.schedules.apply` on real stores (SQLite, then PostgreSQL). The claim loop is
driven by a stepped clock: `claiming.fire_due(store, now)` at each step (the `now` the
`serve` loop's clock hands it), each started run ended so the next fire is not an overlap.
The grid is `anchor + k * every` in exact microseconds (the anchor is when the interval was
first applied, with its microseconds); a re-apply with the same interval keeps it, a changed
interval re-anchors at the re-apply. With jitter, nominal times stay on the grid and each
fire starts inside its jitter window, at the time the preview showed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills import settings as settings_mod
from drills import tables_schedules  # noqa: F401  (its tables on journal.metadata)
from drills.scheduling import claiming, model, triggers
from drills.service import schedules
from orchestrator import engine, journal, states
from tests.scheduling import factories

APPLIED = dt.datetime(2026, 12, 9, 8, 0, 0, 123457, tzinfo=dt.UTC)
EVERY = dt.timedelta(seconds=90)
STEP = dt.timedelta(seconds=7)
"""The stepped clock's step: not a divisor of the interval, so passes fall anywhere."""

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: grid-tick
spec:
  description: Waits a moment and touches nothing.
  failureMode: custom
  hypothesis: Nothing breaks while it waits.
  guardrails:
    environments: [gridland]
    maxDuration: 1m
  steps:
    - name: hold
      wait: 1s
"""

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: gridland
spec:
  protected: false
"""

DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: grid
spec:
  scenario: ./grid-tick.scenario.yaml
  environment: ./gridland.environment.yaml
  schedule:
    every: {every}
    timezone: Europe/Berlin
{jitter}"""


def write_drill(root: Path, *, every: str = "90s", jitter: str | None = None) -> Path:
    """The scenario, the Environment and the Drill (`every`, optional `jitter`) in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "grid-tick.scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    (root / "gridland.environment.yaml").write_text(ENVIRONMENT, encoding="utf-8")
    path = root / "grid.drill.yaml"
    extra = "" if jitter is None else f"    jitter: {jitter}\n"
    path.write_text(DRILL.format(every=every, jitter=extra), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=tmp_path / "data", database_url=store_url, reports_dir=tmp_path / "reports"
    )


@pytest.fixture
def store(config: settings_mod.Settings) -> Iterator[journal.Journal]:
    with journal.open_store(config.database_url) as opened:
        yield opened


def _end_run(store: journal.Journal, fire: model.Fire) -> None:
    if fire.run_id is not None:
        run = store.get_run(states.RunId(fire.run_id))
        engine.move_run(store, run, states.RunState.ABORTED, reason="test: make room")


def drive(
    store: journal.Journal, *, start: dt.datetime, until: dt.datetime
) -> list[tuple[dt.datetime, model.Fire]]:
    """Claim passes at `start`, `start + STEP`, … up to `until`: (the pass's now, fire) for
    every fire row written, in order; each started run is ended after its pass."""
    written: list[tuple[dt.datetime, model.Fire]] = []
    now = start
    while now <= until:
        for fire in claiming.fire_due(store, now):
            written.append((now, fire))
            _end_run(store, fire)
        now += STEP
    return written


def nominals(view: schedules.PreviewView) -> list[dt.datetime]:
    found = [item.nominal_fire_time for item in view.fires]
    assert all(item is not None for item in found)
    return [item for item in found if item is not None]


def rows(store: journal.Journal) -> list[model.Fire]:
    """Every fire row of the schedule `grid`, oldest first."""
    return factories.fires(store, schedules.get(store, "grid").id)


def grid(anchor: dt.datetime, every: dt.timedelta, ks: range) -> list[dt.datetime]:
    return [anchor + k * every for k in ks]


def test_after_an_apply_the_preview_is_the_fire_rows_the_claim_loop_writes(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_drill(tmp_path / "drills")
    schedule = schedules.apply(config, store, path, owner="alice", now=APPLIED)
    assert schedule.trigger.anchor == APPLIED
    view = schedules.preview(config, store, "grid", n=6, now=APPLIED)
    expected = grid(APPLIED, EVERY, range(1, 7))  # applying never fires at once
    assert nominals(view) == expected
    assert [item.utc for item in view.fires] == expected  # no jitter: starts at nominal

    written = drive(store, start=APPLIED, until=expected[-1] + STEP)

    assert [fire.nominal for _, fire in written] == expected
    assert [fire.nominal for fire in rows(store)] == expected
    assert [fire.outcome for fire in rows(store)] == [model.Outcome.STARTED] * 6
    assert all(now >= fire.actual and now - fire.actual < STEP for now, fire in written)


def test_a_re_apply_with_the_same_interval_keeps_the_grid_and_the_preview_stays_true(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_drill(tmp_path / "drills")
    schedules.apply(config, store, path, owner="alice", now=APPLIED)
    reapplied_at = APPLIED + 3 * EVERY + dt.timedelta(seconds=41, microseconds=5)
    first = drive(store, start=APPLIED, until=reapplied_at)
    assert [fire.nominal for _, fire in first] == grid(APPLIED, EVERY, range(1, 4))
    before = schedules.preview(config, store, "grid", n=5, now=reapplied_at)

    again = schedules.apply(config, store, path, owner="bob", now=reapplied_at)

    assert again.trigger.anchor == APPLIED  # the grid is kept, not moved to the re-apply
    assert again.next_nominal == APPLIED + 4 * EVERY
    after = schedules.preview(config, store, "grid", n=5, now=reapplied_at)
    assert nominals(after) == nominals(before) == grid(APPLIED, EVERY, range(4, 9))
    later = drive(store, start=reapplied_at, until=nominals(after)[-1] + STEP)
    assert [fire.nominal for _, fire in later] == nominals(after)
    assert [fire.nominal for fire in rows(store)] == grid(APPLIED, EVERY, range(1, 9))


def test_a_re_apply_with_a_changed_interval_starts_a_new_grid_at_the_re_apply(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    folder = tmp_path / "drills"
    path = write_drill(folder)
    schedules.apply(config, store, path, owner="alice", now=APPLIED)
    reapplied_at = APPLIED + 2 * EVERY + dt.timedelta(seconds=30, microseconds=999_999)
    drive(store, start=APPLIED, until=reapplied_at)
    write_drill(folder, every="2m")
    two_minutes = dt.timedelta(minutes=2)

    again = schedules.apply(config, store, path, owner="alice", now=reapplied_at)

    assert again.trigger.anchor == reapplied_at
    assert again.trigger.every_s == 120
    view = schedules.preview(config, store, "grid", n=4, now=reapplied_at)
    new_grid = grid(reapplied_at, two_minutes, range(1, 5))
    assert nominals(view) == new_grid
    later = drive(store, start=reapplied_at, until=new_grid[-1] + STEP)
    assert [fire.nominal for _, fire in later] == new_grid
    old_grid = set(grid(APPLIED, EVERY, range(1, 20)))
    assert [fire.nominal for fire in rows(store)] == [*grid(APPLIED, EVERY, range(1, 3)), *new_grid]
    assert not old_grid & set(new_grid)  # no fire of the old grid after the re-apply


def test_with_jitter_nominal_times_stay_on_the_grid_and_each_fire_starts_inside_its_window(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    jitter = dt.timedelta(seconds=30)
    path = write_drill(tmp_path / "drills", jitter="30s")
    schedule = schedules.apply(config, store, path, owner="alice", now=APPLIED)
    view = schedules.preview(config, store, "grid", n=6, now=APPLIED)
    expected = grid(APPLIED, EVERY, range(1, 7))
    assert nominals(view) == expected
    delays = [item.utc - nominal for item, nominal in zip(view.fires, expected, strict=True)]
    assert all(dt.timedelta(0) <= delay < jitter for delay in delays)
    assert len(set(delays)) > 1  # jittered, not one constant offset
    assert schedule.next_due == view.fires[0].utc

    for item, nominal in zip(view.fires, expected, strict=True):
        # The pass one microsecond before its jittered start writes nothing; the pass at it
        # writes exactly that fire, started at the previewed time.
        assert claiming.fire_due(store, item.utc - dt.timedelta(microseconds=1)) == []
        [fire] = claiming.fire_due(store, item.utc)
        assert (fire.nominal, fire.actual, fire.outcome) == (
            nominal,
            item.utc,
            model.Outcome.STARTED,
        )
        assert fire.actual == triggers.due_time(schedule.id, schedule.trigger, nominal)
        _end_run(store, fire)
    assert [fire.nominal for fire in rows(store)] == expected
    assert [fire.actual for fire in rows(store)] == [item.utc for item in view.fires]


def test_a_same_interval_re_apply_inside_a_jitter_window_still_fires_that_grid_point(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_drill(tmp_path / "drills", jitter="30s")
    schedule = schedules.apply(config, store, path, owner="alice", now=APPLIED)
    first = APPLIED + EVERY
    due = triggers.due_time(schedule.id, schedule.trigger, first)
    assert due > first  # this grid point's start is jittered past its nominal time
    between = first + (due - first) / 2  # nominally due, not started yet

    schedules.apply(config, store, path, owner="alice", now=between)
    view = schedules.preview(config, store, "grid", n=3, now=between)

    assert nominals(view) == grid(APPLIED, EVERY, range(1, 4))
    assert view.fires[0].utc == due
    written = drive(store, start=between, until=APPLIED + 3 * EVERY + dt.timedelta(seconds=37))
    assert [fire.nominal for _, fire in written] == nominals(view)
    assert [fire.actual for _, fire in written] == [item.utc for item in view.fires]


def test_a_preview_of_an_unknown_schedule_names_the_fix(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    with pytest.raises(schedules.UnknownSchedule, match="stormdrill schedules list"):
        schedules.preview(config, store, "grid", n=3, now=APPLIED)


def test_a_preview_of_the_drill_file_of_an_applied_interval_shows_the_grid_a_re_apply_keeps(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_drill(tmp_path / "drills")
    schedules.apply(config, store, path, owner="alice", now=APPLIED)
    later = APPLIED + dt.timedelta(seconds=200)
    drive(store, start=APPLIED, until=later)

    by_file = schedules.preview(config, store, str(path), n=3, now=later)
    schedules.apply(config, store, path, owner="alice", now=later)
    by_name = schedules.preview(config, store, "grid", n=3, now=later)

    assert nominals(by_name) == grid(APPLIED, EVERY, range(3, 6))
    assert nominals(by_file) == nominals(by_name)
