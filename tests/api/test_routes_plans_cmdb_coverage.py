"""Plans, the CMDB and coverage over HTTP: the same views the CLI prints as JSON."""

from __future__ import annotations

import csv
import dataclasses
import io

from fastapi import testclient

from drills.api import app as app_mod
from drills.api import deps
from tests.api import conftest

API = "/api/v1"


def test_a_plan_names_targets_steps_and_rollback_and_writes_nothing(
    api_client: testclient.TestClient,
) -> None:
    response = api_client.post(
        f"{API}/plans", json={"scenario": "absence-cover", "environment": "test"}
    )

    assert response.status_code == 200, response.text
    plan = response.json()
    assert (plan["scenario"], plan["environment"], plan["refused"]) == (
        "absence-cover",
        "test",
        False,
    )
    assert plan["targets"]["absent"]["refs"] == ["people person user:default/alice"]
    assert [s["name"] for s in plan["steps"]] == ["mark", "cover"]
    assert [r["action"] for r in plan["rollback"]] == ["people.mark-unavailable"]
    assert conftest.store_of(api_client).list_runs() == []


def test_a_plan_of_an_unknown_scenario_is_422_and_a_viewer_may_not_plan(
    api_client: testclient.TestClient, viewer_client: testclient.TestClient
) -> None:
    unknown = api_client.post(f"{API}/plans", json={"scenario": "nope", "environment": "test"})
    viewer = viewer_client.post(
        f"{API}/plans", json={"scenario": "absence-cover", "environment": "test"}
    )

    assert unknown.status_code == 422
    assert "no Scenario named 'nope'" in conftest.problem_of(unknown)["errors"][0]
    assert viewer.status_code == 403


def test_cmdb_services_one_service_and_its_impact(api_client: testclient.TestClient) -> None:
    listed = api_client.get(f"{API}/cmdb/services")
    one = api_client.get(f"{API}/cmdb/services/checkout")
    full_ref = api_client.get(f"{API}/cmdb/services/component:default/checkout")
    impact = api_client.get(
        f"{API}/cmdb/services/resource:payments-db/impact", params={"failureMode": "region"}
    )
    unknown = api_client.get(f"{API}/cmdb/services/checkuot")

    assert listed.status_code == 200
    tiers = [s["tier"] for s in listed.json()["services"]]
    assert tiers == sorted(tiers)
    assert one.status_code == 200 and one.json()["ref"] == "component:default/checkout"
    assert full_ref.json() == one.json()
    assert impact.status_code == 200, impact.text
    reached = {s["ref"] for s in impact.json()["services"]}
    assert "resource:default/payments-db" in reached and len(reached) > 1
    assert impact.json()["failureMode"] == "region"
    assert unknown.status_code == 404
    assert "checkout" in conftest.problem_of(unknown)["detail"]


def test_an_environments_cmdb_can_be_asked_for_and_an_unknown_environment_is_404(
    api_client: testclient.TestClient,
) -> None:
    by_env = api_client.get(f"{API}/cmdb/services", params={"environment": "test"})
    unknown = api_client.get(f"{API}/cmdb/services", params={"environment": "prod"})

    assert by_env.status_code == 200 and by_env.json()["services"]
    assert unknown.status_code == 404


def test_without_any_catalog_the_cmdb_and_coverage_are_404(
    app_for: conftest.AppFor, api_world: conftest.ApiWorld
) -> None:
    bare = dataclasses.replace(api_world.settings, cmdb_paths=())
    app = app_mod.create_app(bare, api_world.api_settings(drive_runs=False))
    app.dependency_overrides[deps.get_principal] = lambda: conftest.ADMIN
    with testclient.TestClient(app) as client:
        cmdb = client.get(f"{API}/cmdb/services")
        coverage = client.get(f"{API}/coverage")

    assert cmdb.status_code == 404 and coverage.status_code == 404
    assert "no catalog" in conftest.problem_of(cmdb)["detail"]


def test_coverage_as_json_and_as_csv_cover_the_same_services(
    api_client: testclient.TestClient,
) -> None:
    as_json = api_client.get(f"{API}/coverage")
    as_csv = api_client.get(f"{API}/coverage", params={"format": "csv"})
    bad = api_client.get(f"{API}/coverage", params={"format": "xlsx"})

    assert as_json.status_code == 200
    body = as_json.json()
    assert "key-person" in body["modes"]
    services = {row["ref"] for row in body["services"]}
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows and services == {row["service"] for row in rows}
    assert bad.status_code == 422
