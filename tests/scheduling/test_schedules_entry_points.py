"""Schedules from a Drill document: the service, the `schedules` CLI app and the API router.

The CLI is the typer app of `drills.commands.schedules` (the root `stormdrill` app lists it
once registered); the API is a FastAPI app built here with the schedules router, the
problem handlers and the principal override the API tests use.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import fastapi
import pytest
from fastapi import testclient
from typer import testing

from drills import settings as settings_mod
from drills import tables_schedules  # noqa: F401  (its tables on journal.metadata)
from drills.api import config as api_config
from drills.api import deps, problems
from drills.api.routes import schedules as schedule_routes
from drills.commands import schedules as schedule_commands
from drills.scheduling import claiming
from drills.service import auth, runs, schedules
from orchestrator import engine, journal, records, states
from orchestrator.providers import builtin
from tests.api import conftest as api_fixtures

EXAMPLES = Path(__file__).resolve().parents[2] / "drills" / "examples"
DRILL = EXAMPLES / "weekly-gameday.drill.yaml"
WEDNESDAY = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)


@pytest.fixture
def config(tmp_path: Path) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        reports_dir=tmp_path / "reports",
    )


@pytest.fixture
def store(config: settings_mod.Settings) -> Iterator[journal.Journal]:
    with journal.open_store(config.database_url) as opened:
        yield opened


def test_apply_names_the_schedule_after_the_drill_and_fires_on_tuesday_berlin(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    schedule = schedules.apply(config, store, DRILL, owner="alice", now=WEDNESDAY)
    assert schedule.name == "weekly-gameday"
    assert schedule.next_nominal == dt.datetime(2026, 12, 8, 9, tzinfo=dt.UTC)  # 10:00 CET
    again = schedules.apply(config, store, DRILL, owner="bob", now=WEDNESDAY)
    assert (again.id, again.owner) == (schedule.id, "bob")
    assert len(schedules.list_schedules(store)) == 1


def test_a_fire_writes_the_record_engine_submit_writes_with_trigger_schedule(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    schedule = schedules.apply(config, store, DRILL, owner="alice", now=WEDNESDAY)
    assert schedule.next_nominal is not None
    [fire] = claiming.fire_due(store, schedule.next_nominal + dt.timedelta(seconds=1))
    fired = store.get_run(states.RunId(fire.run_id or ""))
    prepared = runs.prepare(
        config,
        runs.DrillRequest(
            target=str(DRILL), environment=str(EXAMPLES / "staging.environment.yaml")
        ),
    )
    submitted = runs.submit(
        config, store, builtin.registry_with_builtins(), prepared, trigger=engine.Trigger()
    )
    assert fired.record.trigger is not None
    assert fired.record.trigger.kind is records.TriggerKind.SCHEDULE
    assert fired.record.trigger.principal == "schedule:weekly-gameday"
    without_trigger = {"trigger"}
    mine = {k: v for k, v in fired.record.to_json().items() if k not in without_trigger}
    theirs = {k: v for k, v in submitted.record.to_json().items() if k not in without_trigger}
    assert mine == theirs
    assert (fired.scenario, fired.environment, fired.environment_source) == (
        submitted.scenario,
        submitted.environment,
        submitted.environment_source,
    )
    assert fired.state is submitted.state is states.RunState.PENDING


def test_preview_marks_the_fire_a_blackout_will_skip(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    schedules.apply(config, store, DRILL, owner="alice", now=WEDNESDAY)
    schedules.add_blackout(
        store,
        scope=schedules.BlackoutScope.SERVICE,
        value="component:default/payments",
        windows=schedules.parse_windows(
            [{"start": "2026-12-14T00:00", "end": "2026-12-16T00:00"}], timezone="Europe/Berlin"
        ),
        timezone="Europe/Berlin",
        reason="release freeze",
        by="alice",
    )
    view = schedules.preview(config, store, "weekly-gameday", n=3, now=WEDNESDAY)
    assert [item.local for item in view.fires] == [
        "2026-12-08T10:00:00+01:00",
        "2026-12-15T10:00:00+01:00",
        "2026-12-22T10:00:00+01:00",
    ]
    marked = [item.skipped_by for item in view.fires]
    assert marked[0] is None
    assert marked[1] is not None and "release freeze" in marked[1]
    # 22 December is inside staging's end-of-year change freeze (its Environment's freezes:)
    assert marked[2] is not None and marked[2].startswith("freeze: End-of-year change freeze")


def test_an_unknown_schedule_names_the_fix(store: journal.Journal) -> None:
    with pytest.raises(schedules.UnknownSchedule, match="stormdrill schedules list"):
        schedules.get(store, "nope")


def test_a_drill_without_schedule_is_refused_naming_the_field(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.drill.yaml"
    text = DRILL.read_text(encoding="utf-8")
    text = text.replace('  schedule:\n    cron: "0 10 * * tue"\n    timezone: Europe/Berlin\n', "")
    text = text.replace("./staging.environment.yaml", str(EXAMPLES / "staging.environment.yaml"))
    plain.write_text(text, encoding="utf-8")
    with pytest.raises(schedules.ScheduleError, match=r"spec\.schedule is missing"):
        schedules.apply(config, store, plain, owner="alice")


# ---- CLI --------------------------------------------------------------------------------------


def _cli(config: settings_mod.Settings, *args: str) -> testing.Result:
    env = {"STORMDRILL_DATABASE_URL": config.database_url, "USER": "rita", "COLUMNS": "200"}
    return testing.CliRunner().invoke(schedule_commands.app, list(args), env=env)


def test_cli_apply_list_preview_and_fires_contract(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    done = _cli(config, "apply", str(DRILL))
    assert done.exit_code == 0, done.output
    assert "applied schedule weekly-gameday" in done.output
    listed = _cli(config, "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    [shown] = json.loads(listed.stdout)
    assert (shown["name"], shown["owner"], shown["paused"]) == ("weekly-gameday", "rita", False)
    preview = _cli(config, "preview", "weekly-gameday", "-n", "2", "--format", "json")
    assert preview.exit_code == 0, preview.output
    assert len(json.loads(preview.stdout)["fires"]) == 2
    assert _cli(config, "preview", str(DRILL), "-n", "1").exit_code == 0
    assert _cli(config, "pause", "weekly-gameday").exit_code == 0
    schedule = schedules.get(store, "weekly-gameday")
    assert schedule.next_due is not None
    claiming.fire_due(store, schedule.next_due + dt.timedelta(seconds=1))
    fires = _cli(config, "fires", "weekly-gameday", "--format", "json")
    assert fires.exit_code == 0, fires.output
    [fire] = json.loads(fires.stdout)
    assert fire == {
        "nominalFireTime": schedule.next_nominal.isoformat() if schedule.next_nominal else None,
        "outcome": "skipped",
        "runId": None,
        "reason": "paused: the schedule is paused",
    }
    assert _cli(config, "delete", "weekly-gameday").exit_code == 0
    kept = _cli(config, "fires", "weekly-gameday", "--format", "json")
    assert kept.exit_code == 0 and json.loads(kept.stdout) == [fire]
    missing = _cli(config, "fires", "nope")
    assert missing.exit_code == engine.ExitCode.INVALID
    assert "no schedule has the id or name 'nope'" in missing.output


# ---- API --------------------------------------------------------------------------------------


def _app(
    config: settings_mod.Settings, store: journal.Journal, principal: object
) -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    problems.install(app)
    app.include_router(schedule_routes.router, prefix="/api/v1")
    app.state.store = store
    app.state.settings = config
    app.state.api_settings = api_config.ApiSettings(drill_dirs=(EXAMPLES,))
    app.dependency_overrides[deps.get_principal] = lambda: principal
    return app


def test_api_operator_applies_viewer_reads_and_may_not_change(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    operator = auth.Principal(name="olga", roles=frozenset({auth.Role.OPERATOR}))
    with testclient.TestClient(_app(config, store, operator)) as client:
        created = client.post("/api/v1/schedules", json={"drill": "weekly-gameday"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert created.headers["location"] == f"/api/v1/schedules/{body['id']}"
        assert body["owner"] == "olga"
        assert client.post("/api/v1/schedules/weekly-gameday/pause").json()["paused"] is True
        assert client.post("/api/v1/schedules/weekly-gameday/resume").json()["paused"] is False
        preview = client.get("/api/v1/schedules/weekly-gameday/preview", params={"n": 4})
        assert preview.status_code == 200
        assert len(preview.json()["fires"]) == 4
        assert client.get("/api/v1/schedules/weekly-gameday/fires").json() == []
        missing = client.get("/api/v1/schedules/nope")
        assert api_fixtures.problem_of(missing)["status"] == 404
    with testclient.TestClient(_app(config, store, api_fixtures.VIEWER)) as client:
        assert [s["name"] for s in client.get("/api/v1/schedules").json()] == ["weekly-gameday"]
        refused = client.delete("/api/v1/schedules/weekly-gameday")
        assert api_fixtures.problem_of(refused)["status"] == 403
        assert client.post("/api/v1/schedules", json={"drill": "weekly-gameday"}).status_code == 403
    assert len(schedules.list_schedules(store)) == 1


def test_api_blackouts_are_added_listed_and_removed(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    with testclient.TestClient(_app(config, store, api_fixtures.ADMIN)) as client:
        added = client.post(
            "/api/v1/blackouts",
            json={
                "scope": "environment",
                "value": "staging",
                "windows": [{"days": ["fri"], "start": "16:00", "end": "08:00"}],
                "timezone": "Europe/Berlin",
                "reason": "no drills on friday nights",
            },
        )
        assert added.status_code == 201, added.text
        blackout_id = added.json()["id"]
        assert [b["id"] for b in client.get("/api/v1/blackouts").json()] == [blackout_id]
        bad = client.post(
            "/api/v1/blackouts",
            json={"scope": "global", "windows": [{"start": "x"}], "timezone": "UTC"},
        )
        assert api_fixtures.problem_of(bad)["status"] == 422
        assert client.delete(f"/api/v1/blackouts/{blackout_id}").status_code == 204
        assert client.delete(f"/api/v1/blackouts/{blackout_id}").status_code == 404


def test_a_team_blackout_skips_the_fire_of_a_drill_on_its_services(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    schedule = schedules.apply(config, store, DRILL, owner="alice", now=WEDNESDAY)
    assert schedule.template.teams == ("group:default/team-payments",)
    schedules.add_blackout(
        store,
        scope=schedules.BlackoutScope.TEAM,
        value="group:default/team-payments",
        windows=schedules.parse_windows(
            [{"days": ["tue"], "start": "09:00", "end": "12:00"}], timezone="Europe/Berlin"
        ),
        timezone="Europe/Berlin",
        reason="team offsite",
        by="alice",
    )
    assert schedule.next_due is not None
    [fire] = claiming.fire_due(store, schedule.next_due + dt.timedelta(seconds=1))
    assert fire.outcome is schedules.Outcome.SKIPPED
    assert fire.reason.startswith("blackout: ") and "team offsite" in fire.reason
    assert store.list_runs(limit=None) == []
