"""Nothing vanishes: a deleted schedule's fires are kept (`schedule_fire_history`) and listed.

On SQLite and PostgreSQL: the service (`schedules.delete` copies the fire rows into the
history before deleting them; `schedules.fires` falls back to it), the CLI (`stormdrill
schedules fires NAME --format json`, `CliRunner` on `drills.cli.app`), the API
(`GET /api/v1/schedules/{id}/fires` on `create_app`, through `fastapi.testclient`), and the
migration 0005 -> 0006 on a store with schedules and fires in it. Store-only schedules
(`tests.scheduling.factories`) fire every two seconds; the CLI applies the bundled weekly
game-day Drill, the API the route tests' `weekly-absence` Drill.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
import sqlalchemy as sa
from alembic import autogenerate, command, migration
from fastapi import testclient
from typer import testing

from drills import cli, tables_schedules
from drills.api import app as app_mod
from drills.api import deps
from drills.scheduling import claiming, model, storing, triggers
from drills.service import schedules, schema
from orchestrator import engine, journal, states
from tests.api import conftest as api_fixtures
from tests.scheduling import factories

T0 = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=dt.UTC)
DELETED_AT = dt.datetime(2026, 12, 2, 11, 0, 0, tzinfo=dt.UTC)
EXAMPLES = Path(__file__).resolve().parents[2] / "drills" / "examples"
WEEKLY = EXAMPLES / "weekly-gameday.drill.yaml"
FIELDS = {"nominalFireTime", "outcome", "runId", "reason"}
R0005 = "0005_schedule_approvals_aborts"
H = tables_schedules.fire_history_table


@pytest.fixture
def store(store_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(store_url) as opened:
        yield opened


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def add_schedule(
    store: journal.Journal, *, schedule_id: str, name: str, now: dt.datetime
) -> model.ScheduleId:
    """A store-only schedule firing every 2 s from `now` (`factories.add`, with its own id)."""
    spec = factories.every(2, anchor=now)
    with store.transaction(write=True) as conn:
        conn.execute(
            storing.S.insert().values(
                id=schedule_id,
                name=name,
                drill=factories.template(name).to_json(),
                trigger=spec.to_json(),
                timezone=spec.timezone,
                owner="user:default/alice",
                paused=False,
                next_nominal=now,
                next_due=triggers.due_time(schedule_id, spec, now),
                runs_started=0,
                created_at=now,
                updated_at=now,
            )
        )
    return model.ScheduleId(schedule_id)


def fire_passes(store: journal.Journal, *seconds: float) -> None:
    """Claim passes at T0 + each of `seconds` (later fires are skipped as overlaps)."""
    for second in seconds:
        claiming.fire_due(store, at(second))


def dumped(found: list[schedules.FireView]) -> list[dict[str, pydantic.JsonValue]]:
    return [view.dump() for view in found]


# ---- service ----------------------------------------------------------------------------------


def test_a_deleted_schedules_fires_are_still_listed_by_name_and_id_newest_first(
    store: journal.Journal,
) -> None:
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
    fire_passes(store, 0.1, 2.1, 4.1)
    before = schedules.fires(store, "nightly")
    assert [view.nominal_fire_time for view in before] == [at(4), at(2), at(0)]
    assert [view.outcome for view in before] == [
        model.Outcome.SKIPPED,
        model.Outcome.SKIPPED,
        model.Outcome.STARTED,
    ]

    deleted = schedules.delete(store, "nightly", now=DELETED_AT)

    assert deleted.id == sid
    with pytest.raises(schedules.UnknownSchedule):
        schedules.get(store, "nightly")
    assert dumped(schedules.fires(store, "nightly")) == dumped(before)
    assert dumped(schedules.fires(store, sid)) == dumped(before)
    assert dumped(schedules.fires(store, "nightly", limit=2)) == dumped(before[:2])
    with store.transaction() as conn:
        assert storing.fires(conn, sid) == []  # moved out of schedule_fires
    assert (
        store.get_run(states.RunId(before[-1].run_id or "")).scenario == "absence-cover"
    )  # runs stay


def test_the_history_rows_keep_every_column_of_the_fire_rows_and_name_the_schedule(
    store: journal.Journal,
) -> None:
    sid = factories.add(store, factories.every(2, anchor=T0), now=T0)
    fire_passes(store, 0.1, 2.1)
    with store.transaction() as conn:
        originals = conn.execute(sa.select(storing.F).order_by(storing.F.c.id)).all()

    schedules.delete(store, sid, now=DELETED_AT)

    with store.transaction() as conn:
        kept = conn.execute(sa.select(H).order_by(H.c.fire_id)).all()
    assert len(kept) == len(originals) == 2
    for fire, row in zip(originals, kept, strict=True):
        assert (row.fire_id, row.schedule_id, row.schedule_name) == (fire.id, sid, "nightly")
        assert (row.nominal_fire_time, row.actual_time, row.recorded_at) == (
            fire.nominal_fire_time,
            fire.actual_time,
            fire.recorded_at,
        )
        assert (row.outcome, row.run_id, row.reason) == (fire.outcome, fire.run_id, fire.reason)
        assert row.deleted_at == DELETED_AT


def test_a_name_deleted_and_applied_again_shows_the_live_schedules_fires_and_the_old_by_id(
    store: journal.Journal,
) -> None:
    first = add_schedule(store, schedule_id="sch-first", name="nightly", now=T0)
    fire_passes(store, 0.1, 2.1)
    old = schedules.fires(store, "nightly")
    schedules.delete(store, "nightly", now=at(3))
    second = add_schedule(store, schedule_id="sch-second", name="nightly", now=at(10))
    assert schedules.fires(store, "nightly") == []  # the live one has not fired yet

    fire_passes(store, 10.1)

    live = schedules.fires(store, "nightly")
    assert [view.nominal_fire_time for view in live] == [at(10)]
    assert dumped(schedules.fires(store, first)) == dumped(old)
    assert dumped(schedules.fires(store, second)) == dumped(live)
    schedules.delete(store, "nightly", now=at(11))
    # Deleted twice: the name shows the schedule deleted last; the first stays by its id.
    assert dumped(schedules.fires(store, "nightly")) == dumped(live)
    assert dumped(schedules.fires(store, first)) == dumped(old)


def test_an_unknown_name_and_a_deleted_schedule_that_never_fired_error_naming_the_fix(
    store: journal.Journal,
) -> None:
    with pytest.raises(schedules.UnknownSchedule, match=r"'nope'.*stormdrill schedules list"):
        schedules.fires(store, "nope")
    factories.add(store, factories.every(3600, anchor=at(60)), name="never", now=T0)
    schedules.delete(store, "never")
    with pytest.raises(schedules.UnknownSchedule, match="no fires of a deleted one are kept"):
        schedules.fires(store, "never")
    with pytest.raises(schedules.UnknownSchedule, match="stormdrill schedules list"):
        schedules.delete(store, "never")  # deleting again: nothing to delete


def test_deleting_one_schedule_keeps_only_its_own_fires_and_leaves_the_others_live(
    store: journal.Journal,
) -> None:
    factories.add(store, factories.every(2, anchor=T0), name="nightly", now=T0)
    other = factories.add(store, factories.every(2, anchor=T0), name="hourly", now=T0)
    fire_passes(store, 0.1)
    live_before = schedules.fires(store, "hourly")

    schedules.delete(store, "nightly")

    with store.transaction() as conn:
        assert {row.schedule_name for row in conn.execute(sa.select(H))} == {"nightly"}
        assert len(storing.fires(conn, other)) == 1
    assert dumped(schedules.fires(store, "hourly")) == dumped(live_before)


def test_a_fire_after_deleting_the_schedule_with_the_newest_fires_gets_a_new_id(
    store: journal.Journal,
) -> None:
    """The notification cursor reads fires by id: an id handed out again would be a fire
    it never reads (SQLite reuses the largest rowid unless the table has AUTOINCREMENT)."""
    factories.add(store, factories.every(2, anchor=T0), name="hourly", now=T0)
    fire_passes(store, 0.1)
    factories.add(store, factories.every(2, anchor=at(1)), name="nightly", now=at(1))
    fire_passes(store, 1.1)
    with store.transaction() as conn:
        newest = conn.execute(sa.select(sa.func.max(storing.F.c.id))).scalar_one()
        nightly = conn.execute(
            sa.select(sa.func.max(H.c.fire_id))  # nothing archived yet
        ).scalar()
    assert nightly is None

    schedules.delete(store, "nightly")
    fire_passes(store, 4.1)  # hourly's next fire

    with store.transaction() as conn:
        [(archived,)] = conn.execute(sa.select(H.c.fire_id)).all()
        after = conn.execute(sa.select(sa.func.max(storing.F.c.id))).scalar_one()
    assert archived == newest
    assert after > newest


# ---- CLI --------------------------------------------------------------------------------------


def _cli(store_url: str, tmp_path: Path, *args: str) -> testing.Result:
    env = {
        "STORMDRILL_DATABASE_URL": store_url,
        "STORMDRILL_DATA_DIR": str(tmp_path / "data"),
        "USER": "rita",
        "COLUMNS": "200",
    }
    return testing.CliRunner().invoke(cli.app, ["schedules", *args], env=env)


def test_cli_fires_of_a_deleted_schedule_keep_the_json_contract(
    store: journal.Journal, store_url: str, tmp_path: Path
) -> None:
    applied = _cli(store_url, tmp_path, "apply", str(WEEKLY))
    assert applied.exit_code == 0, applied.output
    schedule = schedules.get(store, "weekly-gameday")
    assert schedule.next_due is not None and schedule.next_nominal is not None
    [fire] = claiming.fire_due(store, schedule.next_due + dt.timedelta(seconds=1))
    listed = _cli(store_url, tmp_path, "fires", "weekly-gameday", "--format", "json")
    assert listed.exit_code == 0, listed.output
    before = json.loads(listed.stdout)

    deleted = _cli(store_url, tmp_path, "delete", "weekly-gameday")

    assert deleted.exit_code == 0, deleted.output
    assert "its fires are kept" in deleted.output
    after = _cli(store_url, tmp_path, "fires", "weekly-gameday", "--format", "json")
    assert after.exit_code == 0, after.output
    assert (
        json.loads(after.stdout)
        == before
        == [
            {
                "nominalFireTime": schedule.next_nominal.isoformat(),
                "outcome": fire.outcome.value,
                "runId": fire.run_id,
                "reason": fire.reason,
            }
        ]
    )
    assert set(before[0]) == FIELDS
    by_id = _cli(store_url, tmp_path, "fires", schedule.id, "--format", "json")
    assert json.loads(by_id.stdout) == before
    table = _cli(store_url, tmp_path, "fires", "weekly-gameday")
    assert table.exit_code == 0 and fire.outcome.value in table.output
    unknown = _cli(store_url, tmp_path, "fires", "no-such-schedule", "--format", "json")
    assert unknown.exit_code == engine.ExitCode.INVALID
    assert "no schedule has the id or name 'no-such-schedule'" in unknown.output
    assert "Traceback" not in unknown.output


# ---- API --------------------------------------------------------------------------------------


def test_api_fires_of_a_deleted_schedule_are_listed_by_id_and_name_and_unknown_is_404(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORMDRILL_SCHEDULE_LOOP", "false")  # fires come from fire_due here
    world = api_fixtures.build_world(tmp_path)
    settings = dataclasses.replace(world.settings, database_url=store_url)
    app = app_mod.create_app(settings, world.api_settings(drive_runs=False, recover_on_start=False))
    app.dependency_overrides[deps.get_principal] = lambda: api_fixtures.ADMIN
    with testclient.TestClient(app) as client:
        created = client.post("/api/v1/schedules", json={"drill": "weekly-absence"})
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]
        store = api_fixtures.store_of(client)
        due = schedules.get(store, schedule_id).next_due
        assert due is not None
        [fire] = claiming.fire_due(store, due + dt.timedelta(seconds=1))
        assert fire.outcome is model.Outcome.STARTED
        before = client.get(f"/api/v1/schedules/{schedule_id}/fires")
        assert before.status_code == 200 and len(before.json()) == 1
        assert set(before.json()[0]) == FIELDS

        gone = client.delete(f"/api/v1/schedules/{schedule_id}")
        assert gone.status_code == 200, gone.text

        assert (
            api_fixtures.problem_of(client.get(f"/api/v1/schedules/{schedule_id}"))["status"] == 404
        )
        by_id = client.get(f"/api/v1/schedules/{schedule_id}/fires")
        by_name = client.get("/api/v1/schedules/weekly-absence/fires", params={"limit": 5})
        assert by_id.status_code == by_name.status_code == 200
        assert by_id.json() == by_name.json() == before.json()
        assert by_id.json()[0]["runId"] == fire.run_id
        missing = client.get("/api/v1/schedules/sch-000000000000/fires")
        problem = api_fixtures.problem_of(missing)
        assert problem["status"] == 404 and "sch-000000000000" in problem["detail"]


# ---- migration --------------------------------------------------------------------------------


def _differences(store: journal.Journal) -> list[object]:
    with store.engine.connect() as conn:
        context = migration.MigrationContext.configure(conn, opts={"compare_type": True})
        return list(autogenerate.compare_metadata(context, schema.load_tables()))


def _has_history(store: journal.Journal) -> bool:
    with store.engine.connect() as conn:
        return sa.inspect(conn).has_table(H.name)


def test_upgrading_a_populated_store_from_0005_to_0006_keeps_its_fires_and_deletes_keep_them(
    store_url: str,
) -> None:
    with journal.open_store(store_url, create_tables=False) as bare:
        schema.upgrade(bare)
        with bare.engine.begin() as conn:
            command.downgrade(schema.alembic_config_for(conn), R0005)
        assert schema.status(bare).current == R0005 and not _has_history(bare)
        sid = factories.add(bare, factories.every(2, anchor=T0), now=T0)
        fire_passes(bare, 0.1, 2.1)
        before = schedules.fires(bare, "nightly")
        assert len(before) == 2

        old, new = schema.upgrade(bare)

        assert old.state is schema.SchemaState.BEHIND
        assert old.pending == schema.REVISIONS[schema.REVISIONS.index(R0005) + 1 :]
        assert old.pending[0] == "0006_schedule_fire_history"
        assert new.ok and new.current == schema.HEAD
        assert _has_history(bare) and _differences(bare) == []
        assert dumped(schedules.fires(bare, "nightly")) == dumped(before)
        schedules.delete(bare, "nightly")
        assert dumped(schedules.fires(bare, sid)) == dumped(before)
        with bare.engine.begin() as conn:  # and down again: the history table goes
            command.downgrade(schema.alembic_config_for(conn), R0005)
        assert not _has_history(bare)
