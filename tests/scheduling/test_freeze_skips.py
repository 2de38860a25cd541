"""Fires the guardrails refuse without a cluster are skipped, and every fire is audited.

A small drill world written per test (a scenario that only waits, an Environment `frosty`
with a two-hour change freeze, an hourly Drill), applied through
`drills.service.schedules.apply` on real stores (SQLite, then PostgreSQL); fires are made by
`claiming.fire_due` at a chosen `now`. The audit tests use the store-only schedules of
`tests.scheduling.factories`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import engine as sa_engine

from drills import settings as settings_mod
from drills import tables_schedules  # noqa: F401  (its tables on journal.metadata)
from drills.scheduling import claiming, model, storing
from drills.service import audit, calendar, schedules
from orchestrator import engine, journal, states
from tests.scheduling import factories

APPLIED = dt.datetime(2026, 12, 17, 22, 30, tzinfo=dt.UTC)
FREEZE_START = dt.datetime(2026, 12, 18, 0, 0, tzinfo=dt.UTC)
FREEZE_END = dt.datetime(2026, 12, 18, 2, 0, tzinfo=dt.UTC)
FREEZE_REASON = (
    "freeze: Year-end freeze (2026-12-18T00:00:00+00:00 \u2013 2026-12-18T02:00:00+00:00)"
)
HOURS = [APPLIED + dt.timedelta(minutes=30 + 60 * k) for k in range(4)]  # 23:00 … 02:00

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: frost-tick
spec:
  description: Waits a moment and touches nothing.
  failureMode: custom
  hypothesis: Nothing breaks while it waits.
  guardrails:
    environments: [frosty]
    maxDuration: 1m
{windows}  steps:
    - name: hold
      wait: 1s
"""

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: {name}
spec:
  protected: false
{freezes}"""

FREEZES = """\
  freezes:
    - start: "2026-12-18T00:00:00Z"
      end: "2026-12-18T02:00:00Z"
      reason: Year-end freeze
"""

DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: frost
spec:
  scenario: ./frost-tick.scenario.yaml
  environment: ./{environment}.environment.yaml
  schedule:
    cron: "0 * * * *"
    timezone: UTC
"""


def write_world(
    root: Path,
    *,
    environment: str = "frosty",
    freezes: str = FREEZES,
    windows: str = "",
) -> Path:
    """The scenario, the Environment and the hourly Drill in `root`; the Drill's path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "frost-tick.scenario.yaml").write_text(
        SCENARIO.format(windows=windows), encoding="utf-8"
    )
    (root / f"{environment}.environment.yaml").write_text(
        ENVIRONMENT.format(name=environment, freezes=freezes), encoding="utf-8"
    )
    path = root / "frost.drill.yaml"
    path.write_text(DRILL.format(environment=environment), encoding="utf-8")
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


def fire_at(store: journal.Journal, at: dt.datetime) -> model.Fire:
    """Claim at `at`: the one fire row written; its run (if any) is then ended, so the next
    fire is not skipped as an overlap."""
    [fire] = claiming.fire_due(store, at)
    if fire.run_id is not None:
        run = store.get_run(states.RunId(fire.run_id))
        engine.move_run(store, run, states.RunState.ABORTED, reason="test: make room")
    return fire


def fire_entries(store: journal.Journal) -> list[audit.Entry]:
    return audit.entries(
        store, where=audit.EntryFilter(action=claiming.FIRE_ACTION), limit=None, oldest_first=True
    )


# ---- freezes ----------------------------------------------------------------------------------


def test_fires_inside_the_environments_freeze_are_skipped_naming_it_and_start_again_after(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_world(tmp_path / "drills")
    schedule = schedules.apply(config, store, path, owner="alice", now=APPLIED)
    assert schedule.next_nominal == HOURS[0]

    fires = [fire_at(store, hour + dt.timedelta(seconds=1)) for hour in HOURS]

    assert [(f.nominal, f.outcome) for f in fires] == [
        (HOURS[0], model.Outcome.STARTED),
        (HOURS[1], model.Outcome.SKIPPED),  # one second after the freeze began
        (HOURS[2], model.Outcome.SKIPPED),
        (HOURS[3], model.Outcome.STARTED),  # the freeze's end is not inside it
    ]
    assert [f.reason for f in fires] == ["", FREEZE_REASON, FREEZE_REASON, ""]
    assert len(store.list_runs(limit=None)) == 2


def test_a_fire_claimed_just_after_the_freeze_starts_is_skipped(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_world(tmp_path / "drills")
    schedules.apply(config, store, path, owner="alice", now=APPLIED)
    before = fire_at(store, HOURS[0] + dt.timedelta(seconds=1))
    just_after = fire_at(store, FREEZE_START + dt.timedelta(microseconds=1))

    assert before.outcome is model.Outcome.STARTED
    assert (just_after.nominal, just_after.outcome, just_after.reason) == (
        FREEZE_START,
        model.Outcome.SKIPPED,
        FREEZE_REASON,
    )


def test_a_freeze_added_to_the_environment_after_apply_counts_at_the_next_fire(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    root = tmp_path / "drills"
    path = write_world(root, freezes="")
    schedules.apply(config, store, path, owner="alice", now=APPLIED)
    assert fire_at(store, HOURS[0] + dt.timedelta(seconds=1)).outcome is model.Outcome.STARTED

    write_world(root)  # the same Environment, now with its freeze

    assert fire_at(store, HOURS[1] + dt.timedelta(seconds=1)).reason == FREEZE_REASON


def test_the_preview_marks_the_fires_the_freeze_skips(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_world(tmp_path / "drills")
    schedule = schedules.apply(config, store, path, owner="alice", now=APPLIED)

    view = schedules.preview_schedule(store, schedule, n=4, now=APPLIED)

    assert [item.utc for item in view.fires] == HOURS
    assert [item.skipped_by for item in view.fires] == [None, FREEZE_REASON, FREEZE_REASON, None]
    drafted = schedules.preview(config, store, str(path), n=4, now=APPLIED)  # not applied yet
    assert [item.skipped_by for item in drafted.fires] == [
        None,
        FREEZE_REASON,
        FREEZE_REASON,
        None,
    ]


def test_the_calendar_feed_marks_the_fires_the_freeze_skips(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_world(tmp_path / "drills")
    schedules.apply(config, store, path, owner="alice", now=APPLIED)

    found = calendar.schedule_events(store, now=APPLIED, horizon=dt.timedelta(hours=4))

    assert [e.start for e in found] == HOURS
    frozen = [e for e in found if calendar.SKIPPED in e.categories]
    assert [e.start for e in frozen] == HOURS[1:3]
    for event in frozen:
        assert event.categories == ("stormdrill", "drill", calendar.SKIPPED, "freeze")
        assert event.summary.startswith("[skipped] Drill frost")
        assert f"Skipped: {FREEZE_REASON}" in event.description
    assert [e.categories for e in found if e not in frozen] == [("stormdrill", "drill")] * 2


# ---- guardrails decided without a cluster -----------------------------------------------------


def test_a_fire_outside_the_scenarios_windows_is_skipped_with_the_guardrails_message(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    windows = "    windows:\n      - {start: '01:30', end: '03:00', timezone: UTC}\n"
    path = write_world(tmp_path / "drills", freezes="", windows=windows)
    schedule = schedules.apply(config, store, path, owner="alice", now=APPLIED)

    outside = fire_at(store, HOURS[0] + dt.timedelta(seconds=1))
    inside = [fire_at(store, hour + dt.timedelta(seconds=1)) for hour in HOURS[1:]]

    assert outside.outcome is model.Outcome.SKIPPED
    assert outside.reason.startswith("guardrail: 2026-12-17T23:00:01+00:00 is outside every")
    assert "01:30-03:00 UTC" in outside.reason and outside.reason.endswith("run it inside one")
    assert [f.outcome for f in inside] == [
        model.Outcome.SKIPPED,  # 00:00
        model.Outcome.SKIPPED,  # 01:00
        model.Outcome.STARTED,  # 02:00, inside 01:30-03:00
    ]
    later = schedules.preview_schedule(store, schedules.get(store, schedule.id), n=2, now=HOURS[3])
    assert [item.utc for item in later.fires] == [HOURS[3] + dt.timedelta(hours=k) for k in (1, 2)]
    assert all((item.skipped_by or "").startswith("guardrail: ") for item in later.fires)


def test_a_fire_in_an_environment_the_scenario_does_not_allow_is_skipped_as_guardrail(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = write_world(tmp_path / "drills", environment="elsewhere", freezes="")
    schedules.apply(config, store, path, owner="alice", now=APPLIED)

    fire = fire_at(store, HOURS[0] + dt.timedelta(seconds=1))

    assert fire.outcome is model.Outcome.SKIPPED and fire.run_id is None
    assert fire.reason == (
        "guardrail: scenario frost-tick may run only in frosty, not in elsewhere (add it to"
        " spec.guardrails.environments if it is meant to)"
    )
    assert store.list_runs(limit=None) == []


def test_a_fire_whose_documents_cannot_be_read_starts_and_is_left_to_the_engine(
    config: settings_mod.Settings,
    store: journal.Journal,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = tmp_path / "drills"
    path = write_world(root)
    schedules.apply(config, store, path, owner="alice", now=APPLIED)
    (root / "frosty.environment.yaml").unlink()

    with caplog.at_level(logging.WARNING, logger="drills.scheduling.guarding"):
        fire = fire_at(store, HOURS[0] + dt.timedelta(seconds=1))

    assert fire.outcome is model.Outcome.STARTED  # the engine refuses it, naming the file
    assert "frosty.environment.yaml" in caplog.text
    assert "the engine judges them when it plans the run" in caplog.text


# ---- the audit trail of fires -----------------------------------------------------------------

T0 = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_every_fire_started_or_skipped_has_one_audit_entry_by_the_schedule(
    store: journal.Journal,
) -> None:
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
    claiming.fire_due(store, at(0.5))  # started
    claiming.fire_due(store, at(2.5))  # overlap: the first run is still pending
    claiming.fire_due(store, at(11))  # 4, 6, 8 missed; 10 overlap

    fires = factories.fires(store, sid)
    entries = fire_entries(store)

    assert len(entries) == len(fires) == 6
    assert {(e.principal, e.principal_kind, e.target, e.method) for e in entries} == {
        ("schedule:nightly", "system", f"schedules/{sid}", claiming.FIRE_METHOD)
    }
    assert [e.detail for e in entries] == [
        f"fire at {f.nominal.isoformat()}: "
        + (f"started run {f.run_id}" if f.run_id else f"skipped: {f.reason}")
        for f in fires
    ]
    assert [(e.status, e.outcome) for e in entries] == [(201, audit.Outcome.OK)] + [
        (200, audit.Outcome.OK)
    ] * 5
    assert entries[1].detail.endswith("still active") and "missed: " in entries[2].detail


def test_a_rolled_back_claim_leaves_neither_fire_rows_nor_audit_entries(
    store: journal.Journal,
) -> None:
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
    default = claiming.template_submitter(store)

    def submit_then_clash(
        conn: sa_engine.Connection, schedule: model.Schedule, nominal: dt.datetime, now: dt.datetime
    ) -> states.Run:
        run = default(conn, schedule, nominal, now)
        # A row for the same nominal time inside our transaction: our insert then fails.
        storing.insert_fires(
            conn, [model.Fire(sid, nominal, nominal, model.Outcome.SKIPPED, None, "x")], now=now
        )
        return run

    assert claiming.fire_due(store, at(0.5), submit=submit_then_clash) == []

    assert factories.fires(store, sid) == []
    assert fire_entries(store) == []
    assert store.list_runs(limit=None) == []
    assert len(claiming.fire_due(store, at(0.5))) == len(fire_entries(store)) == 1
