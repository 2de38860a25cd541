"""Blackouts with `abortRunning`: running drills in their scope are asked to abort, once.

Real stores (SQLite and PostgreSQL) with run records moved to a running state the way the
engine moves them; the request is the abort-request line the engine's watchdog polls.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills.scheduling import model, storing
from drills.service import audit, housekeeping, leases, runs, schedules
from orchestrator import engine, events, journal, mutations, records, states
from orchestrator.providers import builtin
from tests.api import conftest as api_fixtures

T0 = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
_S = states.RunState


@pytest.fixture
def store(store_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(store_url) as opened:
        yield opened


def _run(
    store: journal.Journal,
    *,
    environment: str = "staging",
    state: states.RunState = _S.INJECTING,
    service: str = "component:default/payments",
    owner: str = "group:default/team-payments",
    trigger: records.Trigger | None = None,
    suffix: str = "a",
) -> states.Run:
    record = records.RunRecord(
        scenario_source="/scenarios/outage.yaml",
        impact=(
            records.ImpactRow(ref=service, distance=0, owner=owner),
            records.ImpactRow(ref="component:default/web", distance=1, owner="group:default/web"),
        ),
        trigger=trigger,
    )
    run = store.create_run(
        states.new_run(
            id=states.RunId(f"20261202T095900Z-{suffix * 8}"),
            scenario="third-party-outage",
            environment=environment,
            environment_source=f"/envs/{environment}.yaml",
            owner=states.Owner(host="test-driver", pid=1, token="t"),
            at=T0 - dt.timedelta(minutes=1),
            record=record,
        )
    )
    for step in (_S.PLANNING, _S.PREFLIGHT, _S.INJECTING, _S.OBSERVING, _S.ROLLING_BACK):
        if run.state is state:
            break
        ending = states.Ending.ABORTED if step is _S.ROLLING_BACK else None
        run = engine.move_run(store, run, step, reason=f"test: {step.value}", ending=ending)
    assert run.state is state
    return run


def _blackout(
    store: journal.Journal,
    *,
    scope: model.BlackoutScope = model.BlackoutScope.ENVIRONMENT,
    value: str = "staging",
    start: dt.datetime = T0,
    abort_running: bool = True,
) -> model.Blackout:
    return schedules.add_blackout(
        store,
        scope=scope,
        value=value,
        windows=[model.DatedWindow(start=start, end=start + dt.timedelta(hours=2))],
        timezone="UTC",
        reason="release freeze",
        by="alice",
        abort_running=abort_running,
    )


def _abort_lines(store: journal.Journal, run: states.Run) -> list[str]:
    return [e.message for e in store.events(run.id, kind=events.EventKind.ABORT_REQUEST)]


def test_a_running_drill_is_asked_to_abort_once_naming_the_blackout_and_audited(
    store: journal.Journal,
) -> None:
    run = _run(store)
    blackout = _blackout(store)

    first = schedules.abort_in_blackouts(store, now=T0 + dt.timedelta(seconds=1))
    again = schedules.abort_in_blackouts(store, now=T0 + dt.timedelta(seconds=10))

    assert [(a.run_id, a.blackout_id) for a in first] == [(run.id, blackout.id)]
    assert again == []
    [line] = _abort_lines(store, run)
    assert line == (
        f"abort requested from blackout {blackout.id} (environment staging: release freeze),"
        " which has begun (abortRunning)"
    )
    [entry] = audit.entries(store, where=audit.EntryFilter(action="run.abort"))
    assert (entry.principal, entry.principal_kind, entry.target, entry.status) == (
        f"blackout:{blackout.id}",
        "system",
        f"runs/{run.id}",
        202,
    )
    assert "release freeze" in entry.detail


@pytest.mark.parametrize(
    ("scope", "value"),
    [
        (model.BlackoutScope.GLOBAL, ""),
        (model.BlackoutScope.SERVICE, "component:default/payments"),
        (model.BlackoutScope.TEAM, "group:default/team-payments"),
    ],
)
def test_service_team_and_global_blackouts_match_the_runs_targeted_services(
    store: journal.Journal, scope: model.BlackoutScope, value: str
) -> None:
    run = _run(store)
    _blackout(store, scope=scope, value=value)

    asked = schedules.abort_in_blackouts(store, now=T0)

    assert [a.run_id for a in asked] == [run.id]


def test_runs_outside_its_scope_or_not_running_are_left_alone(store: journal.Journal) -> None:
    other_env = _run(store, environment="production", suffix="b")
    downstream_only = _run(store, service="component:default/checkout", suffix="c")
    queued = _run(store, state=_S.PENDING, suffix="d")
    rolling_back = _run(store, state=_S.ROLLING_BACK, suffix="e")
    _blackout(store, scope=model.BlackoutScope.SERVICE, value="component:default/web")
    _blackout(store, scope=model.BlackoutScope.ENVIRONMENT, value="staging")

    asked = schedules.abort_in_blackouts(store, now=T0)

    # web is only a dependent of what the runs target; the staging blackout takes the
    # running staging drill, not the queued or rolling-back ones, nor production's.
    assert [a.run_id for a in asked] == [downstream_only.id]
    for run in (other_env, queued, rolling_back):
        assert _abort_lines(store, run) == []


def test_a_blackout_not_begun_or_without_abort_running_aborts_nothing(
    store: journal.Journal,
) -> None:
    run = _run(store)
    _blackout(store, start=T0 + dt.timedelta(hours=1))
    _blackout(store, abort_running=False)

    assert schedules.abort_in_blackouts(store, now=T0 + dt.timedelta(minutes=5)) == []
    assert _abort_lines(store, run) == []
    [later] = schedules.abort_in_blackouts(store, now=T0 + dt.timedelta(hours=1, seconds=1))
    assert later.run_id == run.id


def test_a_scheduled_run_matches_its_schedules_services_too(store: journal.Journal) -> None:
    from tests.scheduling import factories

    factories.add(store, factories.every(60, anchor=T0), name="nightly", now=T0)
    with store.transaction(write=True) as conn:  # the schedule's drill targets "ledger"
        template = factories.template("nightly")
        conn.execute(
            storing.S.update().values(
                drill=model.RunTemplate(
                    drill_source=template.drill_source,
                    scenario=template.scenario,
                    environment=template.environment,
                    environment_source=template.environment_source,
                    record=template.record,
                    services=("component:default/ledger",),
                ).to_json()
            )
        )
    trigger = records.Trigger(kind=records.TriggerKind.SCHEDULE, principal="schedule:nightly")
    run = _run(store, service="component:default/other", trigger=trigger)
    _blackout(store, scope=model.BlackoutScope.SERVICE, value="component:default/ledger")

    assert [a.run_id for a in schedules.abort_in_blackouts(store, now=T0)] == [run.id]


def test_a_run_that_ended_meanwhile_is_not_asked(store: journal.Journal) -> None:
    run = _run(store)
    _blackout(store)
    engine.move_run(store, run, _S.ROLLING_BACK, reason="test", ending=states.Ending.ABORTED)

    assert schedules.abort_in_blackouts(store, now=T0) == []


def test_a_former_lease_holder_writes_and_asks_nothing(store: journal.Journal) -> None:
    run = _run(store)
    _blackout(store)
    old = leases.SqlLease(store, holder=leases.HolderId("old"), ttl=dt.timedelta(seconds=1))
    new = leases.SqlLease(store, holder=leases.HolderId("new"), ttl=dt.timedelta(seconds=30))
    held = old.try_acquire(T0)
    assert held is not None
    assert new.try_acquire(T0 + dt.timedelta(seconds=5)) is not None

    with pytest.raises(leases.LeaseLost):
        schedules.abort_in_blackouts(store, now=T0, fence=leases.fencer(held))

    assert _abort_lines(store, run) == []
    assert audit.entries(store, where=audit.EntryFilter(action="run.abort")) == []
    assert [a.run_id for a in schedules.abort_in_blackouts(store, now=T0)] == [run.id]


def test_the_housekeeping_job_asks_the_running_drill_to_abort(store: journal.Journal) -> None:
    run = _run(store)
    _blackout(store, start=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    lease = leases.SqlLease(store, holder=leases.HolderId("keeper"), ttl=dt.timedelta(minutes=1))
    keeper = housekeeping.Housekeeper(lease, renew_s=0.05)
    keeper.add_job(housekeeping.BLACKOUT_ABORTS, 0.05, housekeeping.blackout_abort_job(store))
    keeper.start()
    try:
        done = keeper.wait_for_run(housekeeping.BLACKOUT_ABORTS, timeout_s=60)
    finally:
        keeper.close()

    assert done is not None and done.ok
    assert len(_abort_lines(store, run)) == 1


def test_housekeeping_reads_the_blackout_abort_interval_and_names_a_bad_one() -> None:
    assert housekeeping.HousekeepingSettings().blackout_abort_interval == 5.0
    found = housekeeping.HousekeepingSettings.from_env(
        {"STORMDRILL_BLACKOUT_ABORT_INTERVAL": "2s", "STORMDRILL_RECOVERY_INTERVAL": "1m"}
    )
    assert (found.blackout_abort_interval, found.recovery_interval) == (2.0, 60.0)
    with pytest.raises(ValueError, match="STORMDRILL_BLACKOUT_ABORT_INTERVAL"):
        housekeeping.HousekeepingSettings.from_env({"STORMDRILL_BLACKOUT_ABORT_INTERVAL": "0"})


def test_the_engine_aborts_and_rolls_back_a_drill_a_blackout_stops(tmp_path: Path) -> None:
    """End to end, in process: a key-person drill (no cluster) waits on its manual step;
    the pass asks it to abort and the engine reverts the absence and ends ABORTED."""
    world = api_fixtures.build_world(tmp_path)
    config = world.settings
    (tmp_path / "data").mkdir()
    prepared = runs.prepare(
        config,
        runs.DrillRequest(
            target=str(world.scenarios / "absence-cover.yaml"),
            environment=str(world.environments / "test.environment.yaml"),
        ),
    )
    reg = builtin.registry_with_builtins()
    with journal.open_store(config.database_url) as store:
        run = runs.submit(config, store, reg, prepared, trigger=engine.Trigger())
        driven: list[runs.Driven] = []
        thread = threading.Thread(
            target=lambda: driven.append(
                runs.drive(
                    config, store, reg, run.id, drill=prepared.drill, catalog=prepared.catalog
                )
            )
        )
        thread.start()
        try:
            waiting = _wait_for_manual_step(store, run.id)
            assert waiting.state in schedules.RUNNING
            _blackout(store, value="test", start=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
            [asked] = schedules.abort_in_blackouts(store)
            assert asked.run_id == run.id
        finally:
            thread.join(timeout=120)
        assert not thread.is_alive()
        ended = store.get_run(run.id)
        assert ended.state is _S.ABORTED
        entries = store.entries(run.id)
        assert entries and all(e.state is mutations.EntryState.REVERTED for e in entries)
        assert any("blackout" in line for line in _abort_lines(store, ended))
        assert [d.run.state for d in driven] == [_S.ABORTED]


def _wait_for_manual_step(store: journal.Journal, run_id: states.RunId) -> states.Run:
    """The run once its manual step waits for an acknowledgement (a loop, not a timing)."""
    for _ in range(1200):
        if store.events(run_id, kind=events.EventKind.MANUAL):
            return store.get_run(run_id)
        run = store.get_run(run_id)
        assert not run.terminal, f"the drill ended before its manual step: {run.reason}"
        threading.Event().wait(0.1)
    raise AssertionError("the drill never reached its manual step (see its timeline)")
