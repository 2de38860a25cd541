"""Team-scoped tokens through the API: plan, start and abort only the drills of one's own team.

Two people-only scenarios (no cluster needed) name the CMDB service they drill
(`spec.services`): `cover-payments` (team-payments) and `cover-web` (team-storefront).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi import testclient

from drills.service import auth
from orchestrator import records, states
from tests.api import auth_fixtures
from tests.api import conftest as api_conftest


@pytest.fixture
def client(api_world: api_conftest.ApiWorld) -> Iterator[testclient.TestClient]:
    for name, service in (("cover-payments", "payments"), ("cover-web", "web")):
        text = api_conftest.ABSENCE_SCENARIO.replace(
            "name: absence-cover", f"name: {name}"
        ).replace(
            "  failureMode: key-person\n", f"  failureMode: key-person\n  services: [{service}]\n"
        )
        (api_world.scenarios / f"{name}.yaml").write_text(text, encoding="utf-8")
    api = api_world.api_settings(drive_runs=False, recover_on_start=False)
    with auth_fixtures.client_for(api_world.settings, api) as test_client:
        yield test_client


def _operator(client: testclient.TestClient, team: str | None) -> dict[str, str]:
    store = auth_fixtures.store_of(client)
    teams = (team,) if team else ()
    return auth_fixtures.bearer(
        auth_fixtures.issue(store, auth.Role.OPERATOR, name=f"op-{team}", teams=teams)
    )


def _body(scenario: str) -> dict[str, str]:
    return {"scenario": scenario, "environment": "test"}


def test_an_operator_of_team_payments_plans_and_starts_only_payments_drills(
    client: testclient.TestClient,
) -> None:
    payments = _operator(client, "team-payments")

    own_plan = client.post("/api/v1/plans", json=_body("cover-payments"), headers=payments)
    own_run = client.post("/api/v1/runs", json=_body("cover-payments"), headers=payments)
    web_plan = client.post("/api/v1/plans", json=_body("cover-web"), headers=payments)
    web_run = client.post("/api/v1/runs", json=_body("cover-web"), headers=payments)

    assert own_plan.status_code == 200, own_plan.text
    assert own_run.status_code == 202, own_run.text
    for refused in (web_plan, web_run):
        assert refused.status_code == 403, refused.text
        assert "component:default/web (owner group:default/team-storefront)" in refused.text


def _planned(client: testclient.TestClient, run_id: str) -> None:
    """Record the plan's reach on a queued run, as the engine does once it plans it."""
    store = auth_fixtures.store_of(client)
    run = store.get_run(states.RunId(run_id))
    reach = (records.ImpactRow(ref="component:default/web", owner="group:default/team-storefront"),)
    store.save_run(
        dataclasses.replace(run, record=dataclasses.replace(run.record, impact=reach)),
        expected_state=run.state,
    )


def test_a_scoped_operator_may_not_abort_another_team_s_planned_run(
    client: testclient.TestClient,
) -> None:
    storefront = _operator(client, "team-storefront")
    payments = _operator(client, "team-payments")
    run = client.post("/api/v1/runs", json=_body("cover-web"), headers=storefront).json()
    _planned(client, run["id"])

    refused = client.post(f"/api/v1/runs/{run['id']}/abort", json={}, headers=payments)
    allowed = client.post(f"/api/v1/runs/{run['id']}/abort", json={}, headers=storefront)

    assert refused.status_code == 403, refused.text
    assert "component:default/web" in refused.json()["detail"]
    assert allowed.status_code not in (401, 403), allowed.text


def test_any_operator_may_abort_a_queued_run_whose_reach_is_not_known_yet(
    client: testclient.TestClient,
) -> None:
    run = client.post(
        "/api/v1/runs", json=_body("cover-web"), headers=_operator(client, "team-storefront")
    ).json()

    answer = client.post(
        f"/api/v1/runs/{run['id']}/abort", json={}, headers=_operator(client, "team-payments")
    )

    assert answer.status_code not in (401, 403), answer.text


def test_a_scoped_operator_is_refused_a_drill_that_maps_to_no_service_an_unscoped_one_not(
    client: testclient.TestClient,
) -> None:
    scoped = client.post(
        "/api/v1/plans", json=_body("absence-cover"), headers=_operator(client, "team-payments")
    )
    unscoped = client.post(
        "/api/v1/plans", json=_body("absence-cover"), headers=_operator(client, None)
    )

    assert scoped.status_code == 403
    assert "map to no CMDB service" in scoped.json()["detail"]
    assert unscoped.status_code == 200, unscoped.text
