"""A game day starts from an hour before its window opens until the window ends; at any
other time only a forced start (`--force`, `"force": true`), which the audit trail records
as forced, with what it overrode. Service, CLI and API, on real SQLite stores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import testclient
from typer import testing

from drills import cli
from drills.api import app as app_mod
from drills.api import deps
from drills.service import audit, gamedays
from orchestrator import journal
from tests.api import conftest as api_conftest
from tests.engine_runs import support as run_support
from tests.gamedays import support

OPENS = dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.UTC)
"""The default document's window opens at 10:00 in Berlin (09:00 UTC), ends at 13:00."""
ENDS = OPENS + dt.timedelta(hours=3)
_PLANNED = gamedays.State.PLANNED


@pytest.fixture
def store(tmp_path: Path) -> Iterator[journal.Journal]:
    with journal.open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture
def day(store: journal.Journal, tmp_path: Path) -> gamedays.GameDay:
    return gamedays.create(store, support.write(tmp_path, support.document()), by="lead")


def test_a_start_days_before_the_window_is_refused_naming_the_window_in_its_zone(
    store: journal.Journal, day: gamedays.GameDay
) -> None:
    early = dt.datetime(2026, 12, 5, 16, 30, tzinfo=dt.UTC)

    with pytest.raises(gamedays.GameDayError) as refused:
        gamedays.start(store, day.name, now=early)

    assert str(refused.value) == (
        "checkout-gameday: its window is 2026-12-08 10:00 to 13:00 Europe/Berlin; a game day"
        " starts at most an hour before its window opens (from 2026-12-08 09:00), and it is"
        " 2026-12-05 17:30 Europe/Berlin now; start it then, or start it anyway with --force"
        ' (API: "force": true)'
    )
    after = gamedays.get(store, day.name)
    assert after.state is _PLANNED and after.slot(1).decision is None  # no gate opened


def test_a_start_an_hour_before_the_window_opens_is_allowed_a_minute_earlier_is_not(
    store: journal.Journal, day: gamedays.GameDay
) -> None:
    with pytest.raises(gamedays.GameDayError, match="at most an hour before"):
        gamedays.start(store, day.name, now=OPENS - dt.timedelta(minutes=61))

    started = gamedays.start(store, day.name, now=OPENS - gamedays.EARLY_START)

    assert started.state is gamedays.State.RUNNING
    assert started.slot(1).decision is gamedays.Decision.GO  # drill 1's auto gate opened


def test_a_start_once_the_window_has_ended_is_refused(
    store: journal.Journal, day: gamedays.GameDay
) -> None:
    assert gamedays.start_refusal(day, ENDS - dt.timedelta(seconds=1)) is None

    with pytest.raises(gamedays.GameDayError) as refused:
        gamedays.start(store, day.name, now=ENDS)

    assert str(refused.value).startswith(
        "checkout-gameday: its window was 2026-12-08 10:00 to 13:00 Europe/Berlin and has"
        " ended (it is 2026-12-08 13:00 Europe/Berlin now); create the game day again"
    )
    assert "--force" in str(refused.value)
    assert gamedays.get(store, day.name).state is _PLANNED


def test_a_forced_start_outside_the_window_starts_and_says_what_it_overrode(
    store: journal.Journal, day: gamedays.GameDay
) -> None:
    late = ENDS + dt.timedelta(days=1)

    started = gamedays.start(store, day.name, force=True, now=late)

    assert started.state is gamedays.State.RUNNING
    assert gamedays.forced_start(day, late, force=True) == (
        "forced: at 2026-12-09 13:00 Europe/Berlin, outside its window 2026-12-08 10:00 to"
        " 13:00 Europe/Berlin"
    )
    assert gamedays.forced_start(day, OPENS, force=True).startswith("forced (inside")
    assert gamedays.forced_start(day, late, force=False) == ""


def test_a_window_over_midnight_names_the_date_it_ends(
    store: journal.Journal, tmp_path: Path
) -> None:
    window = 'start: "2026-12-08T22:00:00"\n    end: "2026-12-09T02:00:00"'
    path = support.write(tmp_path, support.document(window=window))
    night = gamedays.create(store, path, by="lead")

    assert gamedays.window_text(night) == "2026-12-08 22:00 to 2026-12-09 02:00 Europe/Berlin"


# ---- the CLI --------------------------------------------------------------------------------

RUNNER = testing.CliRunner()


def _cli(db_url: str, *args: str) -> testing.Result:
    return RUNNER.invoke(cli.app, ["gamedays", *args], env=run_support.cli_env(db_url))


def test_the_cli_refuses_a_start_outside_the_window_and_force_starts_it_audited(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    past = 'start: "2020-03-02T10:00:00"\n    end: "2020-03-02T13:00:00"'
    path = support.write(tmp_path, support.document(window=past))
    assert _cli(db_url, "create", str(path)).exit_code == 0

    refused = _cli(db_url, "start", "checkout-gameday")
    forced = _cli(db_url, "start", "checkout-gameday", "--force")

    assert refused.exit_code == 3
    assert "its window was 2020-03-02 10:00 to 13:00 Europe/Berlin and has ended" in (
        refused.stderr
    )
    assert "--force" in refused.stderr
    assert forced.exit_code == 0, forced.output
    assert "started game day checkout-gameday" in forced.stdout
    assert "warning: forced: at " in forced.stderr
    with journal.open_store(db_url) as store:
        [entry] = audit.entries(store, where=audit.EntryFilter(action="gameday.start"))
        assert gamedays.get(store, "checkout-gameday").state is gamedays.State.RUNNING
    assert entry.detail.startswith("forced: at ")
    assert entry.detail.endswith("outside its window 2020-03-02 10:00 to 13:00 Europe/Berlin")
    assert entry.principal_kind == "local" and entry.method == "CLI"


def test_the_cli_starts_inside_the_window_without_force_and_audits_no_force(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    path = support.write(tmp_path, support.document(window=support.window_around_now()))
    assert _cli(db_url, "create", str(path)).exit_code == 0

    started = _cli(db_url, "start", "checkout-gameday")

    assert started.exit_code == 0, started.output
    assert "forced" not in started.output
    with journal.open_store(db_url) as store:
        [entry] = audit.entries(store, where=audit.EntryFilter(action="gameday.start"))
    assert entry.detail == ""


# ---- the API --------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[testclient.TestClient]:
    root = tmp_path / "world"
    root.mkdir()
    world = api_conftest.build_world(root)
    app = app_mod.create_app(world.settings, world.api_settings(drive_runs=False))
    app.dependency_overrides[deps.get_principal] = lambda: api_conftest.ADMIN
    with testclient.TestClient(app) as test_client:
        yield test_client


def _api_day(client: testclient.TestClient, window: str) -> str:
    text = support.document(window=window)
    text = text.replace(f"    - drill: {support.AZ_DRILL}\n", "    - drill: weekly-absence\n")
    created = client.post(
        "/api/v1/gamedays",
        content=text.replace("environment: staging", "environment: test").encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert created.status_code == 201, created.text
    day_id: str = created.json()["id"]
    return day_id


def test_the_api_refuses_a_start_before_the_window_with_409_and_force_starts_it_audited(
    client: testclient.TestClient,
) -> None:
    future = 'start: "2099-06-01T10:00:00"\n    end: "2099-06-01T13:00:00"'
    day_id = _api_day(client, future)
    start = f"/api/v1/gamedays/{day_id}/start"

    refused = client.post(start)
    not_forced = client.post(start, json={"force": False})
    forced = client.post(start, json={"force": True})

    problem = api_conftest.problem_of(refused)
    assert refused.status_code == 409
    assert "its window is 2099-06-01 10:00 to 13:00 Europe/Berlin" in problem["detail"]
    assert '"force": true' in problem["detail"]
    assert not_forced.status_code == 409
    assert forced.status_code == 200, forced.text
    assert forced.json()["state"] == "running"
    store = api_conftest.store_of(client)
    entries = audit.entries(
        store, where=audit.EntryFilter(action="gameday.start"), oldest_first=True
    )
    assert [(e.status, e.principal) for e in entries] == [
        (409, "route-admin"),
        (409, "route-admin"),
        (200, "route-admin"),
    ]
    assert entries[2].detail.startswith("forced: at ")
    assert entries[2].detail.endswith("outside its window 2099-06-01 10:00 to 13:00 Europe/Berlin")


def test_the_api_starts_inside_the_window_without_a_body(client: testclient.TestClient) -> None:
    day_id = _api_day(client, support.window_around_now())

    started = client.post(f"/api/v1/gamedays/{day_id}/start")

    assert started.status_code == 200, started.text
    store = api_conftest.store_of(client)
    [entry] = audit.entries(store, where=audit.EntryFilter(action="gameday.start"))
    assert entry.status == 200 and entry.detail == ""
