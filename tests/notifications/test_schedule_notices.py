"""Schedule notices: skipped fires and upcoming ones carry the drill's teams and services,
a pause is told once, an upcoming fire that will be skipped says so, and a schedule awaiting
approval is told once per spec.

A small drill world per test (a scenario that only waits and names the CMDB service
`checkout`, an Environment `quiet` on the sandbox catalog, an hourly Drill), applied with
`drills.service.schedules.apply` and fired by `claiming.fire_due` on real stores (SQLite,
then PostgreSQL); notices are collected with `sources.collect` and routed by team.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from drills import settings as settings_mod
from drills import tables_outbox, tables_schedules
from drills.scheduling import claiming, model
from drills.service import schedules
from drills.service.notify import notices, outbox, routing, sources
from orchestrator import engine, journal, states
from tests.notifications import conftest as world

CATALOG = Path(__file__).resolve().parents[2] / "sandbox" / "data" / "catalog-info.yaml"
APPLIED = dt.datetime(2026, 12, 17, 22, 30, tzinfo=dt.UTC)
FIRST = dt.datetime(2026, 12, 17, 23, 0, tzinfo=dt.UTC)
TEAM = "group:default/team-payments"
SERVICE = "component:default/checkout"

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: tick
spec:
  description: Waits a moment and touches nothing.
  failureMode: custom
  hypothesis: Nothing breaks while it waits.
  services: [checkout]
  guardrails:
    environments: [quiet]
    maxDuration: 1m
  steps:
    - name: hold
      wait: 1s
"""

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: quiet
spec:
  protected: {protected}
  approvals:
    required: {required}
  cmdb:
    backstage: [{catalog}]
{freezes}"""

FREEZE = """\
  freezes:
    - start: "2026-12-17T22:45:00Z"
      end: "2026-12-18T01:00:00Z"
      reason: Year-end freeze
"""

DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: tick
spec:
  scenario: ./tick.scenario.yaml
  environment: ./quiet.environment.yaml
  schedule:
    cron: "{cron}"
    timezone: UTC
"""

ROUTES = """\
sinks:
  - {name: payments, type: webhook, url: "http://127.0.0.1:9/payments"}
  - {name: search, type: webhook, url: "http://127.0.0.1:9/search"}
routes:
  - match: {teams: [team-payments]}
    sinks: [payments]
  - match: {teams: [team-search]}
    sinks: [search]
"""


def write_world(
    root: Path, *, required: int = 0, freezes: str = "", cron: str = "0 * * * *"
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tick.scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    (root / "quiet.environment.yaml").write_text(
        ENVIRONMENT.format(
            protected="true" if required else "false",
            required=required,
            catalog=CATALOG,
            freezes=freezes,
        ),
        encoding="utf-8",
    )
    path = root / "tick.drill.yaml"
    path.write_text(DRILL.format(cron=cron), encoding="utf-8")
    return path


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=tmp_path / "data", database_url=store_url, reports_dir=tmp_path / "reports"
    )


@pytest.fixture
def config(tmp_path: Path) -> routing.Config:
    return world.load(tmp_path, ROUTES)


Applier = Callable[..., model.Schedule]
"""`apply(**write_world's keywords)`: write the world and apply its Drill (by alice)."""


@pytest.fixture
def apply(settings: settings_mod.Settings, store: journal.Journal, tmp_path: Path) -> Applier:
    def applying(
        *, required: int = 0, freezes: str = "", cron: str = "0 * * * *"
    ) -> model.Schedule:
        path = write_world(tmp_path / "drills", required=required, freezes=freezes, cron=cron)
        return schedules.apply(settings, store, path, owner="alice", now=APPLIED)

    return applying


def fire(store: journal.Journal, at: dt.datetime) -> list[model.Fire]:
    """Claim at `at`; any run started is ended at once (the next fire is no overlap)."""
    fired = claiming.fire_due(store, at)
    for item in fired:
        if item.run_id is not None:
            run = store.get_run(states.RunId(item.run_id))
            engine.move_run(store, run, states.RunState.ABORTED, reason="test: make room")
    return fired


def hour(k: int) -> dt.datetime:
    return FIRST + dt.timedelta(hours=k, seconds=1)


def delivered(store: journal.Journal, kind: notices.Kind) -> list[outbox.Delivery]:
    return [row for row in outbox.deliveries(store) if row.kind is kind]


# ---- teams and services -----------------------------------------------------------------------


def test_skipped_and_upcoming_fires_reach_the_route_of_the_team_owning_the_drills_service(
    store: journal.Journal, config: routing.Config, apply: Applier
) -> None:
    apply()
    schedules.add_blackout(
        store,
        scope=model.BlackoutScope.SERVICE,
        value="checkout",
        windows=[model.DatedWindow(start=FIRST, end=FIRST + dt.timedelta(minutes=30))],
        timezone="UTC",
        reason="release",
        by="bob",
    )

    sources.collect(store, "test", config, now=APPLIED + dt.timedelta(minutes=20), from_start=True)
    [skipped] = fire(store, hour(0))
    sources.collect(store, "test", config, now=hour(0))

    [upcoming] = delivered(store, notices.Kind.UPCOMING)
    [fire_skipped] = delivered(store, notices.Kind.FIRE_SKIPPED)
    assert skipped.reason.startswith("blackout: ")
    for row in (upcoming, fire_skipped):
        assert row.sink == "payments"  # never the other team's sink
        assert row.payload["teams"] == [TEAM]
        assert row.payload["services"] == [SERVICE]
        assert row.payload["environment"] == "quiet"
    assert fire_skipped.severity is notices.Severity.WARNING  # a skip other than paused


def test_a_schedule_row_that_is_no_run_template_still_gets_its_notices_without_teams(
    store: journal.Journal, config: routing.Config
) -> None:
    broad = routing.Config(
        sinks=config.sinks,
        routes=(*config.routes, routing.Route(sinks=(notices.SinkName("search"),))),
    )
    with store.transaction(write=True) as conn:
        conn.execute(
            tables_schedules.schedules_table.insert().values(
                id="s1",
                name="odd",
                drill={"environment": "staging"},
                trigger={"cron": "0 10 * * 2"},
                timezone="UTC",
                owner="alice",
                paused=False,
                next_nominal=FIRST,
                next_due=FIRST,
                runs_started=0,
                created_at=APPLIED,
                updated_at=APPLIED,
            )
        )

    sources.collect(store, "test", broad, now=APPLIED + dt.timedelta(minutes=20))

    [row] = delivered(store, notices.Kind.UPCOMING)
    assert (row.sink, row.payload["teams"], row.payload["environment"]) == (
        "search",
        [],
        "staging",
    )
    assert world.details(row)["willSkip"] is False


# ---- a pause is told once ---------------------------------------------------------------------


def test_a_paused_schedule_is_told_once_per_pause_at_info_not_once_per_fire(
    store: journal.Journal, config: routing.Config, apply: Applier
) -> None:
    apply()
    sources.collect(store, "test", config, now=APPLIED, from_start=True)
    schedules.set_paused(store, "tick", paused=True)

    paused_fires = []
    for k in range(4):  # four skipped fires, collected pass by pass
        paused_fires.extend(fire(store, hour(k)))
        sources.collect(store, "test", config, now=hour(k))
    schedules.set_paused(store, "tick", paused=False)
    [started] = fire(store, hour(4))
    schedules.set_paused(store, "tick", paused=True)
    paused_again = fire(store, hour(5)) + fire(store, hour(6))
    sources.collect(store, "test", config, now=hour(6))

    assert [f.reason for f in paused_fires + paused_again] == ["paused: the schedule is paused"] * 6
    assert started.outcome is model.Outcome.STARTED
    told = delivered(store, notices.Kind.FIRE_SKIPPED)
    assert len(told) == 2  # 6 paused fires in 2 pauses -> 2 notices
    assert {row.severity for row in told} == {notices.Severity.INFO}
    assert sorted(str(world.details(row)["nominalFireTime"]) for row in told) == [
        FIRST.isoformat(),
        (FIRST + dt.timedelta(hours=5)).isoformat(),
    ]
    assert all("is paused" in str(row.payload["summary"]) for row in told)
    assert all(row.payload["teams"] == [TEAM] for row in told)


def test_paused_fires_read_again_after_a_lost_cursor_tell_the_pause_no_second_time(
    store: journal.Journal, config: routing.Config, apply: Applier
) -> None:
    apply(cron="*/10 * * * *")
    schedules.set_paused(store, "tick", paused=True)
    fire(store, hour(0))  # 22:30 ... 23:00, all skipped paused
    fire(store, hour(0) + dt.timedelta(minutes=30))

    first = sources.collect(store, "test", config, now=hour(1), from_start=True)
    with store.transaction(write=True) as conn:
        conn.execute(tables_outbox.cursors_table.delete())
    again = sources.collect(store, "test", config, now=hour(1), from_start=True)

    assert len(first.deliveries) == 1
    assert again.deliveries == ()
    assert len(delivered(store, notices.Kind.FIRE_SKIPPED)) == 1


# ---- upcoming fires that will be skipped ------------------------------------------------------


def test_an_upcoming_fire_inside_a_freeze_is_announced_as_skipped_with_the_reason(
    store: journal.Journal, config: routing.Config, apply: Applier
) -> None:
    apply(freezes=FREEZE)
    soon = FIRST - dt.timedelta(minutes=10)

    first = sources.collect(store, "test", config, now=soon, from_start=True)
    again = sources.collect(store, "test", config, now=soon + dt.timedelta(minutes=1))
    [skipped] = fire(store, hour(0))

    [row] = delivered(store, notices.Kind.UPCOMING)
    details = world.details(row)
    assert details["willSkip"] is True
    assert details["skippedBy"] == skipped.reason  # what the claim then recorded
    assert str(details["skippedBy"]).startswith("freeze: Year-end freeze")
    assert "will be skipped: freeze: Year-end freeze" in str(row.payload["summary"])
    assert row.severity is notices.Severity.INFO and row.sink == "payments"
    assert len(first.deliveries) == 1 and again.deliveries == ()


def test_an_upcoming_fire_outside_any_blackout_or_freeze_is_announced_unmarked(
    store: journal.Journal, config: routing.Config, apply: Applier
) -> None:
    apply()

    sources.collect(store, "test", config, now=FIRST - dt.timedelta(minutes=10))

    [row] = delivered(store, notices.Kind.UPCOMING)
    assert (world.details(row)["willSkip"], world.details(row)["skippedBy"]) == (False, None)
    assert "will be skipped" not in str(row.payload["summary"])


def test_an_upcoming_fire_of_a_schedule_awaiting_approval_says_it_will_be_skipped(
    store: journal.Journal, config: routing.Config, apply: Applier
) -> None:
    apply(required=2)

    sources.collect(store, "test", config, now=FIRST - dt.timedelta(minutes=10))

    [row] = delivered(store, notices.Kind.UPCOMING)
    assert str(world.details(row)["skippedBy"]).startswith("awaiting-approval: 2 more")


# ---- awaiting approval ------------------------------------------------------------------------


def test_a_schedule_awaiting_approval_is_told_once_per_spec(
    settings: settings_mod.Settings,
    store: journal.Journal,
    config: routing.Config,
    apply: Applier,
    tmp_path: Path,
) -> None:
    applied = apply(required=2)
    first = sources.collect(store, "test", config, now=APPLIED)
    schedules.approve(store, "tick", by="bob", now=APPLIED)
    same_spec = sources.collect(store, "test", config, now=APPLIED + dt.timedelta(minutes=1))

    [told] = delivered(store, notices.Kind.AWAITING_APPROVAL)
    details = world.details(told)
    assert len(first.deliveries) == 1 and same_spec.deliveries == ()
    assert told.source == f"schedule-approval:{applied.id}:{details['specHash']}"
    assert (details["required"], details["approvals"], details["requester"]) == (2, 0, "alice")
    assert details["command"] == "stormdrill schedules approve tick"
    assert "stormdrill schedules approve tick" in str(told.payload["summary"])
    assert (told.sink, told.payload["teams"]) == ("payments", [TEAM])

    path = write_world(tmp_path / "drills", required=2, cron="30 * * * *")
    schedules.apply(settings, store, path, owner="dave", now=APPLIED)
    changed = sources.collect(store, "test", config, now=APPLIED + dt.timedelta(minutes=2))
    schedules.approve(store, "tick", by="bob", now=APPLIED)
    schedules.approve(store, "tick", by="carol", now=APPLIED)
    approved = sources.collect(store, "test", config, now=APPLIED + dt.timedelta(minutes=3))

    rows = delivered(store, notices.Kind.AWAITING_APPROVAL)
    assert len(changed.deliveries) == 1 and approved.deliveries == ()
    assert len(rows) == 2 and len({row.source for row in rows}) == 2
    [new] = [row for row in rows if row.delivery_id in changed.deliveries]
    assert world.details(new)["requester"] == "dave"
    assert world.details(new)["specHash"] != details["specHash"]


def test_a_schedule_needing_no_approval_or_rejected_is_not_told_as_awaiting(
    store: journal.Journal, config: routing.Config, apply: Applier
) -> None:
    apply()
    unprotected = sources.collect(store, "test", config, now=APPLIED)
    apply(required=1)
    schedules.reject(store, "tick", by="bob", reason="not this week", now=APPLIED)
    rejected = sources.collect(store, "test", config, now=APPLIED)

    assert delivered(store, notices.Kind.AWAITING_APPROVAL) == []
    assert unprotected.skipped == {} and rejected.deliveries == ()
