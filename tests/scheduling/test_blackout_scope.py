"""Blackout scope values: service and team refs stored and matched in canonical form.

A blackout's service or team is read by Backstage's rules (kind from the field, namespace
`default`, case-insensitive) when it is added and again when it is matched, so a short
form (`team-payments`, `checkout`) blocks the same drills as the full ref, rows written in
a short form before that still match, and a value nothing knows is refused by the
service, the CLI (exit 3) and the API (422 problem+json). The drill is the bundled
`weekly-gameday` (staging, on `component:default/payments` and
`resource:default/payprovider`, owned by `group:default/team-payments`); the catalog is
the sandbox CMDB sample (docs/sandbox-world.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
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
from drills.scheduling import blackouts, model, storing
from drills.service import documents, schedules
from orchestrator import engine, journal
from tests.api import conftest as api_fixtures

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "drills" / "examples"
DRILL = EXAMPLES / "weekly-gameday.drill.yaml"
CATALOG = ROOT / "sandbox" / "data" / "catalog-info.yaml"
WEDNESDAY = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
"""The drill's first fire is Tuesday 8 December, 10:00 Berlin (inside TUESDAY_MORNING)."""
TUESDAY_MORNING: list[dict[str, object]] = [{"days": ["tue"], "start": "09:00", "end": "12:00"}]


@pytest.fixture
def config(tmp_path: Path) -> settings_mod.Settings:
    """Settings with the sandbox CMDB sample as the catalog (`STORMDRILL_CMDB`)."""
    return settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        reports_dir=tmp_path / "reports",
        cmdb_paths=(CATALOG,),
    )


@pytest.fixture
def store(config: settings_mod.Settings) -> Iterator[journal.Journal]:
    with journal.open_store(config.database_url) as opened:
        yield opened


def _body(scope: str, value: str) -> schedules.BlackoutBody:
    return schedules.BlackoutBody.model_validate(
        {"scope": scope, "value": value, "windows": TUESDAY_MORNING, "timezone": "Europe/Berlin"}
    )


def _add(
    store: journal.Journal,
    scope: str,
    value: str,
    *,
    config: settings_mod.Settings | None = None,
    folders: documents.Folders | None = None,
) -> schedules.BlackoutView:
    return schedules.add_blackout_from(
        store, _body(scope, value), by="alice", config=config, folders=folders
    )


def _template(config: settings_mod.Settings, store: journal.Journal) -> model.RunTemplate:
    return schedules.apply(config, store, DRILL, owner="alice", now=WEDNESDAY).template


def _first_fire_skipped_by(config: settings_mod.Settings, store: journal.Journal) -> str | None:
    view = schedules.preview(config, store, "weekly-gameday", n=1, now=WEDNESDAY)
    [first] = view.fires
    assert first.local == "2026-12-08T10:00:00+01:00"
    return first.skipped_by


def _old_row(store: journal.Journal, scope: model.BlackoutScope, value: str) -> str:
    """A blackout row as written before values were canonicalised (stored as typed)."""
    blackout_id = f"blk-old-{scope.value}"
    with store.transaction(write=True) as conn:
        conn.execute(
            storing.B.insert().values(
                id=blackout_id,
                scope=scope.value,
                scope_value=value,
                windows=TUESDAY_MORNING,
                timezone="Europe/Berlin",
                reason="written in a short form",
                created_by="alice",
                created_at=WEDNESDAY,
                abort_running=False,
            )
        )
    return blackout_id


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


# ---- short forms match as the full refs do ----------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "payments",
        "Payments",
        "default/payments",
        "component:payments",
        "Component:Default/Payments",
    ],
)
def test_a_short_service_ref_is_stored_canonical_and_blocks_the_drill_the_full_ref_blocks(
    config: settings_mod.Settings, store: journal.Journal, value: str
) -> None:
    template = _template(config, store)
    view = _add(store, "service", value, config=config)

    assert view.value == "component:default/payments"
    [stored] = schedules.list_blackouts(store)
    assert stored.value == "component:default/payments"
    assert blackouts.applies(stored, template)
    assert _first_fire_skipped_by(config, store) == stored.describe()


def test_a_bare_service_name_finds_the_resource_of_that_name_in_the_catalog(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    template = _template(config, store)
    view = _add(store, "service", "payprovider", config=config)

    assert view.value == "resource:default/payprovider"
    [stored] = schedules.list_blackouts(store)
    assert blackouts.applies(stored, template)


@pytest.mark.parametrize(
    "value",
    [
        "team-payments",
        "group:team-payments",
        "Group:Default/Team-Payments",
        "default/team-payments",
    ],
)
def test_a_short_team_ref_is_stored_canonical_and_blocks_the_drills_of_that_team(
    config: settings_mod.Settings, store: journal.Journal, value: str
) -> None:
    template = _template(config, store)
    view = _add(store, "team", value, config=config)

    assert view.value == "group:default/team-payments"
    [stored] = schedules.list_blackouts(store)
    assert blackouts.applies(stored, template)


@pytest.mark.parametrize(
    ("scope", "value"),
    [("service", "checkout"), ("service", "resource:payments-db"), ("team", "team-storefront")],
)
def test_another_service_or_team_in_short_form_does_not_block_the_drill(
    config: settings_mod.Settings, store: journal.Journal, scope: str, value: str
) -> None:
    template = _template(config, store)
    _add(store, scope, value, config=config)

    [stored] = schedules.list_blackouts(store)
    assert not blackouts.applies(stored, template)
    assert _first_fire_skipped_by(config, store) is None


def test_the_drill_side_is_compared_canonical_too() -> None:
    """A drill whose scenario names its services in short forms (no catalog resolved them)."""
    service = model.Blackout(
        id=model.BlackoutId("blk-s"),
        scope=model.BlackoutScope.SERVICE,
        value="component:default/checkout",
        windows=(),
        timezone="UTC",
        reason="",
    )
    team = model.Blackout(
        id=model.BlackoutId("blk-t"),
        scope=model.BlackoutScope.TEAM,
        value="group:default/team-payments",
        windows=(),
        timezone="UTC",
        reason="",
    )
    assert blackouts.covers(service, environment="staging", services=["Checkout"], teams=[])
    assert blackouts.covers(team, environment="staging", services=[], teams=["team-payments"])
    assert not blackouts.covers(service, environment="staging", services=["web"], teams=[])
    assert not blackouts.covers(
        team, environment="staging", services=[], teams=["user:default/team-payments"]
    )


# ---- rows written before: still matched --------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "value"),
    [
        (model.BlackoutScope.TEAM, "team-payments"),
        (model.BlackoutScope.TEAM, "group:team-payments"),
        (model.BlackoutScope.SERVICE, "payments"),
        (model.BlackoutScope.SERVICE, "payprovider"),  # no kind written: the Resource too
        (model.BlackoutScope.SERVICE, "Component:Default/Payments"),
        (model.BlackoutScope.ENVIRONMENT, "Staging"),
    ],
)
def test_a_row_stored_in_a_short_form_still_skips_the_fire(
    config: settings_mod.Settings, store: journal.Journal, scope: model.BlackoutScope, value: str
) -> None:
    _template(config, store)
    blackout_id = _old_row(store, scope, value)

    skipped_by = _first_fire_skipped_by(config, store)

    assert skipped_by is not None and skipped_by.startswith(f"blackout {blackout_id} ")


@pytest.mark.parametrize(
    ("scope", "value"),
    [
        (model.BlackoutScope.TEAM, "team-storefront"),
        (model.BlackoutScope.SERVICE, "checkout"),
        (model.BlackoutScope.SERVICE, "component:payprovider"),  # a kind written: only that
    ],
)
def test_a_row_stored_in_a_short_form_of_another_scope_value_does_not_skip_it(
    config: settings_mod.Settings, store: journal.Journal, scope: model.BlackoutScope, value: str
) -> None:
    _template(config, store)
    _old_row(store, scope, value)

    assert _first_fire_skipped_by(config, store) is None


def test_preview_marks_the_fire_in_a_team_blackout_added_as_team_payments_from_the_cli(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    _template(config, store)

    added = _cli(
        config,
        "add",
        "--scope",
        "team",
        "--value",
        "team-payments",
        "--weekly",
        "tue@09:00-12:00",
        "--timezone",
        "Europe/Berlin",
        "--reason",
        "team offsite",
        "--cmdb",
        str(CATALOG),
    )

    assert added.exit_code == 0, added.output
    assert "(team group:default/team-payments)" in added.output
    listed = _cli(config, "list", "--format", "json")
    [shown] = json.loads(listed.stdout)
    assert (shown["scope"], shown["value"]) == ("team", "group:default/team-payments")
    skipped_by = _first_fire_skipped_by(config, store)
    assert skipped_by is not None
    assert f"blackout {shown['id']} (team group:default/team-payments: team offsite)" == skipped_by


# ---- refused: unknown environments, services and teams ----------------------------------


def test_an_unknown_environment_is_refused_naming_the_known_ones_and_nothing_is_stored(
    store: journal.Journal,
) -> None:
    with pytest.raises(blackouts.UnknownScopeValue) as refused:
        _add(store, "environment", "stagin")

    message = str(refused.value)
    assert "no Environment named 'stagin'" in message
    assert "did you mean 'staging'?" in message
    assert "known: production, sandbox, staging" in message
    assert schedules.list_blackouts(store) == []


def test_environments_of_the_folders_and_of_stored_runs_are_known_and_case_is_forgiven(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    folder = tmp_path / "environments"
    folder.mkdir()
    (folder / "qa.yaml").write_text(
        (EXAMPLES / "sandbox.environment.yaml")
        .read_text(encoding="utf-8")
        .replace("name: sandbox", "name: qa")
        .replace("../../sandbox/data/catalog-info.yaml", str(CATALOG)),
        encoding="utf-8",
    )
    with pytest.raises(blackouts.UnknownScopeValue):
        _add(store, "environment", "qa")

    folders = documents.Folders(environments=(folder,))
    from_folder = _add(store, "environment", "qa", folders=folders)
    bundled = _add(store, "environment", "Staging")

    assert (from_folder.value, bundled.value) == ("qa", "staging")
    with pytest.raises(blackouts.UnknownScopeValue, match=r"known: .*qa"):
        _add(store, "environment", "nowhere", folders=folders)


def test_the_cli_refuses_an_unknown_environment_with_exit_3_and_one_line(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    refused = _cli(
        config, "add", "--scope", "environment", "--value", "nowhere", "--weekly", "fri@16:00-18:00"
    )

    assert refused.exit_code == engine.ExitCode.INVALID
    [line] = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert line.startswith("error: value: no Environment named 'nowhere'")
    assert line.endswith("known: production, sandbox, staging")
    assert schedules.list_blackouts(store) == []


def test_the_api_refuses_an_unknown_environment_with_a_422_problem(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    with testclient.TestClient(_api(config, store)) as client:
        refused = client.post(
            "/api/v1/blackouts",
            json={"scope": "environment", "value": "nowhere", "windows": TUESDAY_MORNING},
        )
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = api_fixtures.problem_of(refused)
        assert problem["status"] == 422
        assert "no Environment named 'nowhere'" in problem["detail"]
        assert "known: production, sandbox, staging" in problem["detail"]
        added = client.post(
            "/api/v1/blackouts",
            json={"scope": "team", "value": "team-payments", "windows": TUESDAY_MORNING},
        )
        assert added.status_code == 201, added.text
        assert added.json()["value"] == "group:default/team-payments"
        assert [b["value"] for b in client.get("/api/v1/blackouts").json()] == [
            "group:default/team-payments"
        ]


def test_the_api_knows_the_environments_it_serves_and_checks_services_against_its_catalog(
    config: settings_mod.Settings, store: journal.Journal, tmp_path: Path
) -> None:
    folder = tmp_path / "environments"
    folder.mkdir()
    (folder / "qa.yaml").write_text(
        (EXAMPLES / "sandbox.environment.yaml")
        .read_text(encoding="utf-8")
        .replace("name: sandbox", "name: qa")
        .replace("../../sandbox/data/catalog-info.yaml", str(CATALOG)),
        encoding="utf-8",
    )
    app = _api(config, store)
    app.state.api_settings = api_config.ApiSettings(environment_dirs=(folder,))
    with testclient.TestClient(app) as client:
        served = client.post(
            "/api/v1/blackouts",
            json={"scope": "environment", "value": "qa", "windows": TUESDAY_MORNING},
        )
        assert served.status_code == 201, served.text
        unknown = client.post(
            "/api/v1/blackouts",
            json={"scope": "service", "value": "chekout", "windows": TUESDAY_MORNING},
        )
        problem = api_fixtures.problem_of(unknown)
        assert problem["status"] == 422
        assert "no CMDB service 'chekout'" in problem["detail"]
        assert "component:default/checkout" in problem["detail"]
    assert [b.value for b in schedules.list_blackouts(store)] == ["qa"]


@pytest.mark.parametrize(
    ("scope", "value", "named", "close"),
    [
        ("service", "chekout", "no CMDB service 'chekout'", "component:default/checkout"),
        ("service", "resource:payments", "no CMDB service 'resource:payments'", "payments"),
        ("team", "team-paymnts", "no team 'team-paymnts'", "group:default/team-payments"),
    ],
)
def test_with_a_catalog_an_unknown_service_or_team_is_refused_with_close_matches(
    config: settings_mod.Settings,
    store: journal.Journal,
    scope: str,
    value: str,
    named: str,
    close: str,
) -> None:
    with pytest.raises(blackouts.UnknownScopeValue) as refused:
        _add(store, scope, value, config=config)

    message = str(refused.value)
    assert named in message and close in message and str(CATALOG) in message
    assert schedules.list_blackouts(store) == []


def test_the_cli_refuses_an_unknown_service_of_the_catalog_it_is_given(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    refused = _cli(
        config,
        "add",
        "--scope",
        "service",
        "--value",
        "chekout",
        "--weekly",
        "fri@16:00-18:00",
        "--cmdb",
        str(CATALOG),
    )

    assert refused.exit_code == engine.ExitCode.INVALID
    assert "no CMDB service 'chekout'" in refused.output
    assert "did you mean 'component:default/checkout'?" in refused.output
    assert schedules.list_blackouts(store) == []


def test_without_a_catalog_a_service_is_stored_canonical_and_a_warning_logged(
    store: journal.Journal, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="drills.service.schedules"):
        view = _add(store, "service", "chekout")

    assert view.value == "component:default/chekout"
    assert any("no CMDB catalog is configured" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("scope", "value", "said"),
    [
        ("service", "team group", "is not an entity reference"),
        ("service", "group:team-payments", "is a group, not a service"),
        ("team", "component:checkout", "is a component, not a team"),
        ("team", "planet:earth", "unknown kind 'planet'"),
    ],
)
def test_a_value_that_is_no_ref_of_its_scope_is_refused_naming_the_fix(
    store: journal.Journal, scope: str, value: str, said: str
) -> None:
    with pytest.raises(model.ScheduleError) as refused:
        _add(store, scope, value)

    assert said in str(refused.value) and "value:" in str(refused.value)
    assert schedules.list_blackouts(store) == []
