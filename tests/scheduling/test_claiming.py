"""The claim loop on SQLite and PostgreSQL: one fire row per nominal time, reasons, catch-up."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import engine as sa_engine

from drills import tables_schedules  # noqa: F401  (its tables on journal.metadata)
from drills.scheduling import claiming, model, storing
from drills.service import killswitches
from orchestrator import journal, records, states
from tests.scheduling import factories

T0 = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(store_url) as opened:
        yield opened


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_a_due_fire_starts_one_pending_run_with_trigger_schedule(store: journal.Journal) -> None:
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
    written = claiming.fire_due(store, at(0.5))
    assert [(f.outcome, f.nominal) for f in written] == [(model.Outcome.STARTED, T0)]
    run = store.get_run(states.RunId(written[0].run_id or ""))
    assert run.state is states.RunState.PENDING
    assert run.owner == journal.UNCLAIMED
    assert run.record.trigger == records.Trigger(
        kind=records.TriggerKind.SCHEDULE,
        principal="schedule:nightly",
        reason=f"fire at {T0.isoformat()} (owner user:default/alice)",
    )
    assert claiming.fire_due(store, at(1)) == []  # nothing due twice
    assert len(factories.fires(store, sid)) == 1


def test_two_replicas_claiming_at_once_record_one_fire_and_one_run(store_url: str) -> None:
    with journal.open_store(store_url) as first, journal.open_store(store_url) as second:
        sid = factories.add(first, factories.every(2, anchor=T0), now=T0)
        barrier = threading.Barrier(2)
        results: list[list[model.Fire]] = []

        def claim(replica: journal.Journal) -> None:
            barrier.wait()
            results.append(claiming.fire_due(replica, at(0.5)))

        threads = [threading.Thread(target=claim, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        fires = factories.fires(first, sid)
        assert [(f.nominal, f.outcome) for f in fires] == [(T0, model.Outcome.STARTED)]
        assert sorted(len(r) for r in results) == [0, 1]
        assert len(first.list_runs(limit=None)) == 1


def test_a_paused_schedule_records_each_fire_as_skipped_paused(store: journal.Journal) -> None:
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0, paused=True)
    for second in (0.1, 2.1, 4.1):
        claiming.fire_due(store, at(second))
    fires = factories.fires(store, sid)
    assert [f.reason for f in fires] == ["paused: the schedule is paused"] * 3
    assert store.list_runs(limit=None) == []


def test_an_engaged_kill_switch_skips_the_fire_with_its_reason(store: journal.Journal) -> None:
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
    killswitches.set_environment(store, environment="test", engaged=True, by="bob", reason="")
    claiming.fire_due(store, at(0.1))
    store.set_killswitch(engaged=True, by="carol", reason="freeze")
    claiming.fire_due(store, at(2.1))
    reasons = [f.reason for f in factories.fires(store, sid)]
    assert reasons == [
        "killswitch: the kill switch of test is engaged by bob",
        "killswitch: the global kill switch is engaged by carol",
    ]


def test_a_fire_while_the_last_run_is_active_is_skipped_as_overlap(store: journal.Journal) -> None:
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
    started = claiming.fire_due(store, at(0.1))
    claiming.fire_due(store, at(2.1))
    fires = factories.fires(store, sid)
    assert fires[1].outcome is model.Outcome.SKIPPED
    assert fires[1].reason == f"overlap: run {started[0].run_id} of the same drill is still active"


def test_a_fire_inside_a_blackout_is_skipped_and_names_it(store: journal.Journal) -> None:
    from drills.service import schedules

    blackout = schedules.add_blackout(
        store,
        scope=model.BlackoutScope.ENVIRONMENT,
        value="test",
        windows=[model.DatedWindow(start=at(-60), end=at(60))],
        timezone="UTC",
        reason="release freeze",
        by="alice",
    )
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
    claiming.fire_due(store, at(0.1))
    assert [f.reason for f in factories.fires(store, sid)] == [
        f"blackout: blackout {blackout.id} (environment test: release freeze)"
    ]


@pytest.mark.parametrize(
    ("catch_up", "started"),
    [(model.CatchUp.NONE, 0), (model.CatchUp.LATEST, 1)],
)
def test_after_a_long_outage_only_the_latest_fire_may_run_never_a_backlog(
    store: journal.Journal, catch_up: model.CatchUp, started: int
) -> None:
    spec = factories.every(2, anchor=T0, misfire_grace_s=1.0, catch_up=catch_up)
    sid = factories.add(store, spec, now=T0)
    claiming.fire_due(store, at(201.5))  # fires at 0, 2, …, 200 were due: 101 of them
    fires = factories.fires(store, sid)
    assert len(fires) == 101
    assert [f.nominal for f in fires] == [at(2 * i) for i in range(101)]
    assert sum(f.outcome is model.Outcome.STARTED for f in fires) == started
    assert all(f.reason.startswith("missed: ") for f in fires[:-1])
    assert (fires[-1].outcome is model.Outcome.STARTED) == (started == 1)
    assert len(store.list_runs(limit=None)) == started


def test_max_runs_ends_the_schedule(store: journal.Journal) -> None:
    spec = factories.every(2, anchor=T0, max_runs=1)
    sid = factories.add(store, spec, now=T0)
    claiming.fire_due(store, at(0.1))
    claiming.fire_due(store, at(10))
    with store.transaction() as conn:
        schedule = storing.get_schedule(conn, sid)
    assert schedule is not None and schedule.ended
    assert len(factories.fires(store, sid)) == 1


def test_four_replicas_over_many_fires_record_each_nominal_fire_exactly_once(
    store_url: str,
) -> None:
    """3 schedules firing every 2 s for 40 nominal fires each, claimed by 4 replicas whose
    passes interleave: one row per nominal fire, one run per started fire, none twice."""
    replicas = [journal.open_store(store_url) for _ in range(4)]
    try:
        ids = [
            factories.add(replicas[0], factories.every(2, anchor=T0), name=f"s{i}", now=T0)
            for i in range(3)
        ]
        barrier = threading.Barrier(len(replicas))

        def replica(opened: journal.Journal) -> None:
            for tick in range(80):  # a pass every 1 s of the fast clock
                barrier.wait()
                claiming.fire_due(opened, at(tick + 0.5))

        threads = [threading.Thread(target=replica, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        all_runs = replicas[0].list_runs(limit=None)
        started_ids: list[str] = []
        for sid in ids:
            fires = factories.fires(replicas[0], sid)
            assert [f.nominal for f in fires] == [at(2 * i) for i in range(40)]
            for fire in fires:
                assert (fire.outcome is model.Outcome.STARTED) == (fire.run_id is not None)
                assert fire.outcome is model.Outcome.STARTED or fire.reason
            started_ids += [f.run_id for f in fires if f.run_id is not None]
        assert len(started_ids) == len(set(started_ids)) == len(all_runs) == 3  # then overlap
    finally:
        for opened in replicas:
            opened.close()


@pytest.mark.postgres
def test_a_fire_another_replica_recorded_first_rolls_back_the_run_with_it(
    postgres_url: str,
) -> None:
    """The other replica's fire row lands between our claim and our insert: ours fails on
    the unique key, and the PENDING run written in the same transaction is gone with it."""
    with journal.open_store(postgres_url) as mine, journal.open_store(postgres_url) as other:
        sid = factories.add(mine, factories.every(2, anchor=T0), now=T0)
        default = claiming.template_submitter(mine)
        submitted: list[str] = []

        def submit_after_a_rival(
            conn: sa_engine.Connection,
            schedule: model.Schedule,
            nominal: dt.datetime,
            now: dt.datetime,
        ) -> states.Run:
            run = default(conn, schedule, nominal, now)
            submitted.append(run.id)
            with other.transaction(write=True) as rival:
                storing.insert_fires(
                    rival,
                    [model.Fire(sid, nominal, nominal, model.Outcome.SKIPPED, None, "rival")],
                    now=now,
                )
            return run

        assert claiming.fire_due(mine, at(0.5), submit=submit_after_a_rival) == []
        assert [f.reason for f in factories.fires(mine, sid)] == ["rival"]
        assert submitted and mine.find_run(submitted[0]) is None
        assert mine.list_runs(limit=None) == []


def test_an_interval_applied_now_first_fires_one_span_later() -> None:
    from drills.scheduling import triggers

    spec = factories.every(30, anchor=T0)
    assert triggers.first_nominal(spec, at=T0) == at(30)


def test_two_replica_processes_record_each_nominal_fire_once(store_url: str) -> None:
    import subprocess
    import sys

    with journal.open_store(store_url) as opened:
        ids = [
            factories.add(opened, factories.every(2, anchor=T0), name=f"p{i}", now=T0)
            for i in range(3)
        ]
    import time

    go = f"{time.time() + 3.0:.3f}"  # both replicas walk the same fast clock from here
    command = [
        sys.executable,
        "-m",
        "tests.scheduling.replica",
        store_url,
        T0.isoformat(),
        "200",
        go,
    ]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    written = [int(process.communicate(timeout=120)[0]) for process in processes]
    assert all(process.returncode == 0 for process in processes)
    with journal.open_store(store_url) as opened:
        per_schedule = [factories.fires(opened, sid) for sid in ids]
        runs = opened.list_runs(limit=None)
    for fires in per_schedule:
        assert [f.nominal for f in fires] == [at(2 * i) for i in range(100)]
    assert sum(written) == 300  # every row written by exactly one of the two
    started = [f.run_id for fires in per_schedule for f in fires if f.run_id]
    assert sorted(started) == sorted(run.id for run in runs)
