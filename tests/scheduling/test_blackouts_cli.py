"""`stormdrill blackouts list|add|remove`: the API's blackout body from a file or flags.

The CLI (the root app, so its registration is exercised) and the API router on one SQLite
store: what one entry point adds the other lists, both audited with the same actions.
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

from drills import cli
from drills import settings as settings_mod
from drills.api import config as api_config
from drills.api import deps, problems
from drills.api.routes import schedules as schedule_routes
from drills.scheduling import model
from drills.service import audit, schedules
from orchestrator import engine, journal
from tests.api import conftest as api_fixtures

FREEZE = """\
scope: environment
value: staging
windows:
  - {start: "2026-12-20T00:00", end: "2027-01-04T00:00"}
  - {days: [fri], start: "16:00", end: "08:00"}
timezone: Europe/Berlin
reason: end-of-year freeze
abortRunning: true
"""


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


def _cli(config: settings_mod.Settings, *args: str) -> testing.Result:
    env = {"STORMDRILL_DATABASE_URL": config.database_url, "USER": "rita", "COLUMNS": "200"}
    return testing.CliRunner().invoke(cli.app, ["blackouts", *args], env=env)


def _api(config: settings_mod.Settings, store: journal.Journal) -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    problems.install(app)
    app.include_router(schedule_routes.router, prefix="/api/v1")
    app.state.store = store
    app.state.settings = config
    app.state.api_settings = api_config.ApiSettings()
    app.dependency_overrides[deps.get_principal] = lambda: api_fixtures.ADMIN
    return app


def test_a_file_with_the_api_body_adds_the_blackout_the_api_lists_identically(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    path = tmp_path / "freeze.yaml"
    path.write_text(FREEZE, encoding="utf-8")

    added = _cli(config, "add", "-f", str(path), "--format", "json")

    assert added.exit_code == 0, added.output
    shown = json.loads(added.stdout)
    assert shown["abortRunning"] is True and shown["created_by"] == "rita"
    listed = _cli(config, "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    with testclient.TestClient(_api(config, store)) as client:
        assert client.get("/api/v1/blackouts").json() == json.loads(listed.stdout) == [shown]
    [blackout] = schedules.list_blackouts(store)
    assert blackout.windows[1] == model.WeeklyWindow(
        days=frozenset({4}),
        start=dt.time(16),
        end=dt.time(8),
    )


def test_flags_describe_the_same_body_and_remove_deletes_it_both_audited(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    added = _cli(
        config,
        "add",
        "--scope",
        "team",
        "--value",
        "group:default/team-payments",
        "--dates",
        "2026-12-20T00:00/2027-01-04T00:00",
        "--weekly",
        "sat,sun@00:00-00:00",
        "--timezone",
        "Europe/Berlin",
        "--reason",
        "offsite",
    )
    assert added.exit_code == 0, added.output
    [view] = schedules.blackout_views(store)
    assert (view.scope, view.value, view.timezone, view.abort_running) == (
        model.BlackoutScope.TEAM,
        "group:default/team-payments",
        "Europe/Berlin",
        False,
    )
    assert view.windows == [
        {"start": "2026-12-20T00:00:00+01:00", "end": "2027-01-04T00:00:00+01:00"},
        {"days": ["sat", "sun"], "start": "00:00", "end": "00:00"},
    ]
    table = _cli(config, "list")
    assert view.id in table.output and "offsite" in table.output

    removed = _cli(config, "remove", view.id)
    assert removed.exit_code == 0, removed.output
    assert schedules.list_blackouts(store) == []
    again = _cli(config, "remove", view.id)
    assert again.exit_code == engine.ExitCode.INVALID
    assert f"no blackout has the id '{view.id}'" in again.output

    entries = audit.entries(store, where=audit.EntryFilter(action="blackout."), oldest_first=True)
    assert [(e.action, e.principal, e.target, e.path) for e in entries] == [
        ("blackout.add", "rita", f"blackouts/{view.id}", "stormdrill blackouts add"),
        ("blackout.remove", "rita", f"blackouts/{view.id}", "stormdrill blackouts remove"),
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--dates", "2026-12-20T00:00/2027-01-04T00:00"], "--scope: give global"),
        (["--scope", "global"], "give at least one window"),
        (["--scope", "region", "--weekly", "fri@16:00-18:00"], "scope"),
        (["--scope", "global", "--weekly", "friday 16-18"], "--weekly 'friday 16-18'"),
        (["--scope", "global", "--weekly", "fri@16:00-25:00"], "windows[0]"),
        (["--scope", "global", "--dates", "2026-12-20"], "--dates '2026-12-20'"),
        (
            ["--scope", "environment", "--weekly", "fri@16:00-18:00"],
            "value: a blackout of scope environment",
        ),
        (
            ["--scope", "global", "--weekly", "fri@16:00-18:00", "--timezone", "Mars/Base"],
            "timezone",
        ),
    ],
)
def test_bad_flags_exit_3_naming_the_flag_and_add_nothing(
    config: settings_mod.Settings, store: journal.Journal, args: list[str], says: str
) -> None:
    result = _cli(config, "add", *args)

    assert result.exit_code == engine.ExitCode.INVALID, result.output
    assert says in result.output
    assert schedules.list_blackouts(store) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (FREEZE + "abortRuning: true\n", "abortRuning: Extra inputs are not permitted"),
        ("- scope: global\n", "give a mapping"),
        ("scope: [unclosed\n", "not valid YAML or JSON"),
        (FREEZE.replace("scope: environment", "scope: planet"), "scope"),
    ],
)
def test_a_bad_file_exits_3_naming_the_file_and_field(
    config: settings_mod.Settings,
    store: journal.Journal,
    tmp_path: Path,
    text: str,
    says: str,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")

    result = _cli(config, "add", "-f", str(path))

    assert result.exit_code == engine.ExitCode.INVALID, result.output
    assert str(path) in result.output and says in result.output
    assert schedules.list_blackouts(store) == []


def test_a_file_and_flags_together_or_a_missing_file_are_refused(
    config: settings_mod.Settings, tmp_path: Path
) -> None:
    path = tmp_path / "freeze.json"
    path.write_text(json.dumps({"scope": "global", "windows": []}), encoding="utf-8")

    both = _cli(config, "add", "-f", str(path), "--scope", "global")
    missing = _cli(config, "add", "-f", str(tmp_path / "nope.yaml"))
    empty = _cli(config, "add", "-f", str(path))

    assert both.exit_code == engine.ExitCode.INVALID and "not both" in both.output
    assert missing.exit_code == engine.ExitCode.INVALID and "cannot read it" in missing.output
    assert empty.exit_code == engine.ExitCode.INVALID and "windows" in empty.output


def test_the_api_takes_abort_running_and_refuses_a_scope_without_its_value(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    with testclient.TestClient(_api(config, store)) as client:
        added = client.post(
            "/api/v1/blackouts",
            json={
                "scope": "service",
                "value": "component:default/payments",
                "windows": [{"days": ["tue"], "start": "09:00", "end": "12:00"}],
                "abortRunning": True,
            },
        )
        assert added.status_code == 201, added.text
        assert added.json()["abortRunning"] is True
        blank = client.post(
            "/api/v1/blackouts",
            json={
                "scope": "team",
                "windows": [{"days": ["tue"], "start": "09:00", "end": "12:00"}],
            },
        )
        assert api_fixtures.problem_of(blank)["status"] == 422
        assert (
            "value: a blackout of scope team names its team"
            in api_fixtures.problem_of(blank)["detail"]
        )
    assert [v.abort_running for v in schedules.blackout_views(store)] == [True]
