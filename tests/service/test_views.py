"""`views`: the CLI's `--format json` of plan, runs show and cmdb is exactly these models."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer import testing

from drills import cli
from drills.service import cmdb, views
from orchestrator import journal, states
from orchestrator.cmdb import backstage
from reports import coverage
from sandbox import stack
from tests.cmdb import factories as cmdb_factories
from tests.engine_runs import support


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path_factory.mktemp("views-sandbox")) as sandbox:
        support.settle(sandbox)
        yield sandbox


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'stormdrill.db'}"


def _invoke(*args: str, db_url: str) -> testing.Result:
    return testing.CliRunner().invoke(cli.app, list(args), env=support.cli_env(db_url))


def test_plan_json_of_the_cli_is_a_plan_view(world: stack.Sandbox, db_url: str) -> None:
    scenario = "az-failure-kubernetes"
    env = str(world.info.environment)
    result = _invoke("plan", scenario, "--env", env, "--format", "json", db_url=db_url)
    assert result.exit_code == 0, result.output
    shown = views.PlanView.model_validate_json(result.stdout)
    assert shown.dump() == json.loads(result.stdout)

    drill = support.bind(world, scenario)
    with journal.open_store(db_url) as store:
        eng = support.make_engine(store, drill)
        drill_plan = eng.plan(drill)
    assert eng.catalog is not None
    cells = coverage.plan_cells(drill_plan, eng.catalog)
    expected = views.PlanView.from_plan(drill_plan, cells=cells)
    assert shown.scenario == expected.scenario == scenario
    assert shown.environment == expected.environment
    assert shown.refused is expected.refused is False
    assert set(shown.targets) == set(expected.targets)
    assert [s.ref for s in shown.services] == [s.ref for s in expected.services]
    assert shown.coverage is not None
    assert shown.coverage == expected.coverage


def test_runs_show_json_of_the_cli_is_the_run_detail_view(db_url: str) -> None:
    with journal.open_store(db_url) as store:
        run = store.create_run(
            states.new_run(
                id=states.RunId("20250101T120000Z-0badc0de"),
                scenario="az-outage",
                environment="sandbox",
                environment_source="sandbox",
                owner=states.Owner(host="ci-host", pid=1, token="t"),
                at=dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC),
            )
        )
        store.append_event(run.id, kind="manual", message="call the vendor", data={"step": "s"})
        expected = views.RunDetailView.from_parts(
            store.get_run(run.id), events=store.events(run.id), entries=store.entries(run.id)
        )
    result = _invoke("runs", "show", run.id, "--format", "json", db_url=db_url)
    assert result.exit_code == 0, result.output
    shown = views.RunDetailView.model_validate_json(result.stdout)
    assert shown == expected
    assert json.loads(result.stdout) == expected.dump()
    assert [e.kind for e in shown.timeline][-1] == "manual"
    assert "+00:00" in str(expected.dump()["started_at"])


def test_cmdb_impact_json_of_the_cli_is_the_impact_view() -> None:
    sample = str(cmdb_factories.SAMPLE)
    args = ["cmdb", "impact", "payments-db", "--failure-mode", "availability-zone"]
    result = testing.CliRunner().invoke(cli.app, [*args, "--cmdb", sample, "--format", "json"])
    assert result.exit_code == 0, result.output
    shown = views.ImpactView.model_validate_json(result.stdout)
    catalog = backstage.load_catalog([cmdb_factories.SAMPLE])
    expected = cmdb.impact_view(catalog, ["payments-db"], failure_mode="availability-zone")
    assert shown == expected
    assert json.loads(result.stdout) == expected.dump()


def test_cmdb_show_json_of_the_cli_is_the_service_list_view() -> None:
    result = testing.CliRunner().invoke(
        cli.app, ["cmdb", "show", "--cmdb", str(cmdb_factories.SAMPLE), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    shown = views.ServiceListView.model_validate_json(result.stdout)
    catalog = backstage.load_catalog([cmdb_factories.SAMPLE])
    assert shown == cmdb.services(catalog)


def test_a_view_refuses_fields_it_does_not_know() -> None:
    body: dict[str, object] = {"targets": [], "failureMode": None, "services": [], "extra": 1}
    with pytest.raises(ValueError, match="extra"):
        views.ImpactView.model_validate(body)
