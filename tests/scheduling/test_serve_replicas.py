"""Real `stormdrill serve` replicas firing schedules: nothing missed, nothing run twice.

Issue 14's replica test. Three schedules fire every 2 s (33 nominal fires each, about 100
in all: each Drill's `endAt` fixes exactly which nominal times it has) a drill that waits
3 s and touches nothing, so a fire often finds its previous run still active and is
skipped as `overlap`. The `serve` processes run the real lifespan: lease and recovery
(`drills.service.housekeeping`), the runner, the claim loop. Part-way the lease holder is
SIGKILLed while it drives a run and restarted on the same port. Afterwards the store must
hold one fire row per (schedule, nominal time) and none other, each started fire exactly
one run that was started (moved to PLANNING) exactly once and ended, each skipped fire a
reason; the run the dead replica was driving was recovered (CRASHED, rolled back).
On PostgreSQL two replicas (the survivor keeps claiming and takes the lease over); on
SQLite one (the restarted process recovers before it drives anything). The figures
(fires, duplicates, skipped by reason, failover) are printed (`pytest -s`) and recorded
with `record_property`; no assertion is about time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from drills import settings as settings_mod
from drills import store as store_mod
from drills.scheduling import claiming, storing
from drills.service import schedules
from orchestrator import journal, states
from tests.scheduling import factories, servers

SCHEDULES = ("tick-a", "tick-b", "tick-c")
EVERY_S = 2
FIRES_PER_SCHEDULE = 33
HOLD = "3s"
"""How long each run waits: longer than the interval, so overlaps happen."""
SERVE_SETTINGS = {
    "STORMDRILL_LEASE_TTL": "4s",
    "STORMDRILL_LEASE_RENEW": "1s",
    "STORMDRILL_RECOVERY_INTERVAL": "2s",
    "STORMDRILL_SCHEDULE_INTERVAL_S": "0.5",
    "STORMDRILL_DRIVER_POLL_S": "0.2",
}
OWNER = "user:default/replica-test"
STARTUP_TIMEOUT_S = 90.0
"""Deadlines below only stop a hung test; they are not what is tested."""

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], *, timeout_s: float) -> T:
    """Poll `probe` until it answers something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout_s:.0f}s")
        time.sleep(0.05)


@dataclasses.dataclass
class World:
    settings: settings_mod.Settings
    store: journal.Journal
    root: Path
    replicas: list[servers.Replica]


@pytest.fixture
def world_for(tmp_path: Path) -> Iterator[Callable[[str, int], World]]:
    """Builds the drill world over a store URL with `n` replicas (not started yet); kills
    whatever is left running and closes the store afterwards."""
    made: list[World] = []

    def build(url: str, n: int) -> World:
        data = tmp_path / "data"
        config = settings_mod.Settings(
            data_dir=data, database_url=url, reports_dir=data / "reports"
        )
        store = store_mod.open_store(config)  # the schema at head before any replica opens it
        root = tmp_path / "drills"
        servers.write_world(root, hold=HOLD)
        env = servers.serve_env(database_url=url, data_dir=data, extra=SERVE_SETTINGS)
        replicas = [
            servers.Replica(f"r{i}", port=servers.free_port(), env=env, logs=tmp_path / "logs")
            for i in range(n)
        ]
        world = World(settings=config, store=store, root=root, replicas=replicas)
        made.append(world)
        return world

    yield build
    for world in made:
        for replica in world.replicas:
            replica.ensure_stopped()
        world.store.close()


@dataclasses.dataclass(frozen=True)
class Failover:
    killed: str
    taken_over_by: str
    epochs: tuple[int, int]
    lease_s: float
    """From the SIGKILL until a live replica held the lease."""
    next_fire_s: float
    """From the SIGKILL until the next fire row was recorded."""
    killed_run: states.RunId


def apply_schedules(world: World) -> dict[str, list[dt.datetime]]:
    """Apply the three Drills (each `endAt` just after its 33rd fire); their nominal times."""
    expected: dict[str, list[dt.datetime]] = {}
    for name in SCHEDULES:
        end_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=EVERY_S * FIRES_PER_SCHEDULE + 1)
        path = servers.write_drill(world.root, name, every=f"{EVERY_S}s", end_at=end_at)
        applied = schedules.apply(world.settings, world.store, path, owner=OWNER)
        expected[applied.id] = servers.expected_fires(applied)
        assert len(expected[applied.id]) >= FIRES_PER_SCHEDULE - 1, expected[applied.id]
    return expected


def kill_holder_mid_run(world: World, *, after_fires: int) -> Failover:
    """Once `after_fires` fire rows exist, SIGKILL the lease holder while it drives a run;
    wait for the lease to be held again by a live replica, restart the dead one on its
    port; how long the failover took."""
    store = world.store
    wait_for("the first fires", lambda: servers.fire_count(store) >= after_fires, timeout_s=60)

    def holder_driving() -> tuple[servers.Replica, servers.LeaseState, states.Run] | None:
        held = servers.lease(store)
        found = [r for r in world.replicas if held is not None and r.holder == held.holder]
        running = servers.run_in_flight_of(store, found[0].pid) if found else None
        return None if held is None or running is None else (found[0], held, running)

    victim, held, running = wait_for(
        "the lease holder to drive a run", holder_driving, timeout_s=30
    )
    killed_wall, killed_at = dt.datetime.now(dt.UTC), time.monotonic()
    victim.kill()
    assert store.get_run(running.id).state in states.IN_FLIGHT, "the run ended before the kill"
    others = [r for r in world.replicas if r is not victim]
    if others:  # the survivor takes the lease once the dead holder's tenure expires

        def taken_over() -> servers.LeaseState | None:
            now = servers.lease(store)
            alive = now is not None and now.holder not in ("", victim.holder)
            return now if alive else None

        after = wait_for("a surviving replica to take the lease", taken_over, timeout_s=60)
        lease_s = time.monotonic() - killed_at
        victim.start()
        victim.wait_healthy(timeout_s=STARTUP_TIMEOUT_S)
    else:  # the one process again: it takes its lease back and recovers before serving
        victim.start()
        victim.wait_healthy(timeout_s=STARTUP_TIMEOUT_S)
        lease_s = time.monotonic() - killed_at
        again = servers.lease(store)
        assert again is not None and again.holder == victim.holder
        after = again
    fired = wait_for(
        "a fire after the kill",
        lambda: servers.first_fire_recorded_after(store, killed_wall),
        timeout_s=60,
    )
    return Failover(
        killed=victim.holder,
        taken_over_by=after.holder,
        epochs=(held.epoch, after.epoch),
        lease_s=lease_s,
        next_fire_s=(fired - killed_wall).total_seconds(),
        killed_run=running.id,
    )


def stop_all(world: World) -> list[int]:
    """SIGINT every replica (as Ctrl-C does) and their exit codes."""
    for replica in world.replicas:
        replica.interrupt()
    return [replica.wait_stopped(timeout_s=60) for replica in world.replicas]


def report(backend: str, found: servers.Tally, failover: Failover, record_property: Any) -> None:
    figures = {
        "fires": found.fires,
        "expected_fires": found.expected,
        "started": found.started,
        "skipped_by_reason": found.skipped_by_reason,
        "duplicate_fires": found.duplicate_fires,
        "missing_fires": len(found.missing),
        "runs_started_twice": found.runs_started_twice,
        "runs_by_state": found.runs_by_state,
        "recovered_runs": found.recovered_runs,
        "failover_lease_s": round(failover.lease_s, 2),
        "failover_next_fire_s": round(failover.next_fire_s, 2),
        "lease_epochs": failover.epochs,
    }
    for key, value in figures.items():
        record_property(f"{backend}_{key}", value)
    sys.stdout.write(
        f"\nreplica test on {backend}: {found.fires} fire rows for {found.expected} nominal"
        f" fires, {found.started} started, skipped {found.skipped_by_reason},"
        f" {found.duplicate_fires} duplicate fires, {len(found.missing)} missing,"
        f" {found.runs_started_twice} runs started twice; runs {found.runs_by_state},"
        f" {found.recovered_runs} recovered; killed {failover.killed} mid-run, lease held by"
        f" {failover.taken_over_by} after {failover.lease_s:.2f}s (epoch {failover.epochs[0]}"
        f" -> {failover.epochs[1]}), next fire row {failover.next_fire_s:.2f}s after the kill\n"
    )


def check(
    world: World, expected: dict[str, list[dt.datetime]], failover: Failover
) -> servers.Tally:
    """Every assertion of the replica test, on what the store holds."""
    found = servers.tally(world.store, expected)
    assert found.missing == ()  # no nominal fire without its row
    assert found.unexpected == ()
    assert found.duplicate_fires == 0
    assert found.fires == found.expected
    assert found.skipped_without_reason == 0
    assert set(found.skipped_by_reason) <= {"overlap", "missed"}
    assert found.started + sum(found.skipped_by_reason.values()) == found.fires
    assert found.started_without_run == 0
    assert found.runs_shared_by_fires == 0  # no two fires started one run
    assert found.runs_without_fire == 0  # no run started by a fire that has no row
    assert found.runs_not_matching_fire == 0  # each run's record: trigger schedule, its fire
    assert found.runs_started_twice == 0
    assert found.runs_never_started == 0
    terminal = {state.value for state in states.TERMINAL}
    assert set(found.runs_by_state) <= terminal, found.runs_by_state
    killed = world.store.get_run(failover.killed_run)
    assert killed.state in states.TERMINAL
    assert found.recovered_runs >= 1
    assert any(
        event.data.get("state") == states.RunState.CRASHED.value
        for event in world.store.events(failover.killed_run)
    ), "the run the dead replica drove was not recovered"
    return found


def drill_replicas(world: World, record_property: Any, backend: str) -> None:
    for replica in world.replicas:
        replica.start()
    for replica in world.replicas:
        replica.wait_healthy(timeout_s=STARTUP_TIMEOUT_S)
    expected = apply_schedules(world)
    total = sum(len(times) for times in expected.values())
    failover = kill_holder_mid_run(world, after_fires=total // 3)
    ends = max(times[-1] for times in expected.values())
    wait_for(
        "every schedule to end and every run to finish",
        lambda: servers.settled(world.store, list(expected)),
        timeout_s=max(0.0, (ends - dt.datetime.now(dt.UTC)).total_seconds()) + 60,
    )
    assert stop_all(world) == [0] * len(world.replicas)
    found = check(world, expected, failover)
    report(backend, found, failover, record_property)
    if len(world.replicas) > 1:  # the survivor's tenure is a new one: the dead one is fenced
        assert failover.epochs[1] > failover.epochs[0]


@pytest.mark.postgres
def test_two_serve_replicas_on_postgres_fire_every_nominal_time_once_across_a_holder_kill(
    postgres_url: str, world_for: Callable[[str, int], World], record_property: Any
) -> None:
    world = world_for(postgres_url, 2)
    drill_replicas(world, record_property, "postgres")


def test_one_serve_process_on_sqlite_killed_and_restarted_loses_and_doubles_no_fire(
    sqlite_url: str, world_for: Callable[[str, int], World], record_property: Any
) -> None:
    world = world_for(sqlite_url, 1)
    drill_replicas(world, record_property, "sqlite")


T0 = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=dt.UTC)


def test_the_tally_finds_a_gap_a_run_started_twice_and_a_skip_without_reason(
    store_url: str,
) -> None:
    """The checks above can fail: a store with each fault is counted as faulty."""
    with journal.open_store(store_url) as store:
        sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
        for second in (0.5, 2.5, 4.5):  # started, then two overlaps (the run stays PENDING)
            claiming.fire_due(store, T0 + dt.timedelta(seconds=second))
        expected: dict[str, list[dt.datetime]] = {
            sid: [T0 + dt.timedelta(seconds=2 * k) for k in range(4)]
        }
        [first, *_] = factories.fires(store, sid)
        run_id = states.RunId(first.run_id or "")
        for _ in range(2):
            store.append_event(run_id, kind="state", message="planning", data={"state": "planning"})
        with store.transaction(write=True) as conn:
            conn.execute(
                storing.F.update()
                .where(storing.F.c.nominal_fire_time == T0 + dt.timedelta(seconds=4))
                .values(reason="")
            )
        found = servers.tally(store, expected)
    assert found.missing == ((sid, T0 + dt.timedelta(seconds=6)),)
    assert (found.fires, found.expected, found.started) == (3, 4, 1)
    assert found.runs_started_twice == 1
    assert found.skipped_without_reason == 1
    assert found.skipped_by_reason == {"": 1, "overlap": 1}
    assert found.runs_by_state == {"pending": 1}
    assert (found.runs_shared_by_fires, found.runs_without_fire, found.runs_not_matching_fire) == (
        0,
        0,
        0,
    )
