"""The approval routes over httpx: approve, reject, list; 403 self-approval, 404, 409, 422."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import fastapi
import pytest
from fastapi import testclient

from drills.api import app as app_mod
from drills.api import config as api_config
from drills.api import deps
from drills.service import approvals, auth
from orchestrator import journal, states
from tests.api import protected_world

_R = auth.Role
PEOPLE: dict[str, frozenset[auth.Role]] = {
    "alice": frozenset({_R.OPERATOR}),
    "bob": frozenset({_R.APPROVER}),
    "carol": frozenset({_R.APPROVER}),
    "victor": frozenset({_R.VIEWER}),
    "otto": frozenset({_R.OPERATOR, _R.APPROVER}),
}
"""Who the test principals are (the `X-Test-As` header names one)."""


def _principal(request: fastapi.Request) -> auth.Principal:
    name = request.headers.get("x-test-as", "")
    if name not in PEOPLE:
        raise auth.Unauthenticated("no such test principal")
    principal = auth.Principal(name=name, roles=PEOPLE[name])
    request.state.principal = principal
    return principal


@pytest.fixture
def world(tmp_path: Path) -> protected_world.World:
    return protected_world.write(tmp_path, required=2)


@pytest.fixture
def client(world: protected_world.World) -> Iterator[testclient.TestClient]:
    api_settings = api_config.ApiSettings(
        drive_runs=False, recover_on_start=False, approval_ttl_s=3600.0
    )
    app = app_mod.create_app(world.config, api_settings)
    app.dependency_overrides[deps.get_principal] = _principal
    with testclient.TestClient(app) as test_client:
        yield test_client


def _store(client: testclient.TestClient) -> journal.Journal:
    store: journal.Journal = client.app.state.store  # type: ignore[attr-defined]
    return store


def _awaiting(world: protected_world.World, client: testclient.TestClient) -> states.Run:
    store = _store(client)
    run, plan = protected_world.submit(world, store, by="alice")
    approvals.protect(store, run, plan=plan, requester="alice")
    return run


def _as(name: str) -> dict[str, str]:
    return {"X-Test-As": name}


def test_a_second_and_third_person_approve_and_the_run_no_longer_awaits_approval(
    world: protected_world.World, client: testclient.TestClient
) -> None:
    run = _awaiting(world, client)

    first = client.post(
        f"/api/v1/runs/{run.id}/approve", json={"comment": "ok by me"}, headers=_as("bob")
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["id"] == run.id and body["state"] == "pending"
    assert body["awaitingApproval"] is True
    assert body["approval"]["approvedBy"] == ["bob"] and body["approval"]["missing"] == 1

    second = client.post(f"/api/v1/runs/{run.id}/approve", json={}, headers=_as("carol"))
    assert second.status_code == 200, second.text
    assert second.json()["awaitingApproval"] is False
    assert second.json()["approval"]["approvedBy"] == ["bob", "carol"]

    listed = client.get(f"/api/v1/runs/{run.id}/approvals", headers=_as("victor"))
    assert listed.status_code == 200
    decisions = listed.json()["approval"]["approvals"]
    assert [(d["by"], d["decision"], d["counts"]) for d in decisions] == [
        ("bob", "approve", True),
        ("carol", "approve", True),
    ]
    assert decisions[0]["comment"] == "ok by me" and decisions[0]["expiresAt"]


def test_self_approval_is_forbidden(
    world: protected_world.World, client: testclient.TestClient
) -> None:
    store = _store(client)
    run, plan = protected_world.submit(world, store, by="otto")  # an operator who also approves
    approvals.protect(store, run, plan=plan, requester="otto")

    answer = client.post(f"/api/v1/runs/{run.id}/approve", json={}, headers=_as("otto"))

    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "two-person rule" in answer.json()["detail"]
    assert approvals.decisions(store, run.id) == ()


def test_only_approvers_may_approve_or_reject_and_only_callers_may_look(
    world: protected_world.World, client: testclient.TestClient
) -> None:
    run = _awaiting(world, client)

    viewer = client.post(f"/api/v1/runs/{run.id}/approve", json={}, headers=_as("victor"))
    operator = client.post(
        f"/api/v1/runs/{run.id}/reject", json={"reason": "no"}, headers=_as("alice")
    )

    assert viewer.status_code == 403 and operator.status_code == 403
    assert client.get(f"/api/v1/runs/{run.id}/approvals").status_code == 401
    assert _store(client).get_run(run.id).state is states.RunState.PENDING


def test_rejection_aborts_the_run_with_the_reason(
    world: protected_world.World, client: testclient.TestClient
) -> None:
    run = _awaiting(world, client)

    answer = client.post(
        f"/api/v1/runs/{run.id}/reject",
        json={"reason": "not during the sale"},
        headers=_as("bob"),
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "aborted" and body["awaitingApproval"] is False
    assert body["abort_reason"] == "rejected by bob: not during the sale"
    assert body["approval"]["rejectedBy"] == "bob"
    again = client.post(f"/api/v1/runs/{run.id}/approve", json={}, headers=_as("carol"))
    assert again.status_code == 409 and "does not await approval" in again.json()["detail"]


def test_a_run_that_needs_no_approval_answers_409_and_an_unknown_run_404(
    tmp_path: Path, world: protected_world.World, client: testclient.TestClient
) -> None:
    store = _store(client)
    run, _ = protected_world.submit(world, store, by="alice")  # submitted, never protected

    not_awaiting = client.post(f"/api/v1/runs/{run.id}/approve", json={}, headers=_as("bob"))
    unknown = client.post("/api/v1/runs/nope/approve", json={}, headers=_as("bob"))
    unknown_list = client.get("/api/v1/runs/nope/approvals", headers=_as("bob"))
    no_request = client.get(f"/api/v1/runs/{run.id}/approvals", headers=_as("bob"))

    assert not_awaiting.status_code == 409 and "not protected" in not_awaiting.json()["detail"]
    assert unknown.status_code == 404 and unknown_list.status_code == 404
    assert no_request.status_code == 200 and no_request.json() == {
        "runId": run.id,
        "approval": None,
    }


def test_an_approval_of_a_plan_the_run_no_longer_awaits_is_409(
    world: protected_world.World, client: testclient.TestClient
) -> None:
    run = _awaiting(world, client)
    awaited = client.get(f"/api/v1/runs/{run.id}/approvals", headers=_as("bob")).json()
    digest = awaited["approval"]["planHash"]

    stale = client.post(
        f"/api/v1/runs/{run.id}/approve", json={"planHash": "0" * 64}, headers=_as("bob")
    )
    fresh = client.post(
        f"/api/v1/runs/{run.id}/approve", json={"planHash": digest}, headers=_as("bob")
    )

    assert stale.status_code == 409 and "now awaits plan" in stale.json()["detail"]
    assert fresh.status_code == 200 and fresh.json()["approval"]["approvedBy"] == ["bob"]


def test_bodies_are_checked(world: protected_world.World, client: testclient.TestClient) -> None:
    run = _awaiting(world, client)

    blank = client.post(f"/api/v1/runs/{run.id}/reject", json={"reason": "  "}, headers=_as("bob"))
    missing = client.post(f"/api/v1/runs/{run.id}/reject", json={}, headers=_as("bob"))
    unknown = client.post(
        f"/api/v1/runs/{run.id}/approve", json={"comment": "x", "extra": 1}, headers=_as("bob")
    )
    bad_hash = client.post(
        f"/api/v1/runs/{run.id}/approve", json={"planHash": "xyz"}, headers=_as("bob")
    )

    assert [r.status_code for r in (blank, missing, unknown, bad_hash)] == [422] * 4
    assert _store(client).get_run(run.id).state is states.RunState.PENDING
    assert approvals.decisions(_store(client), run.id) == ()


def test_an_expired_approval_no_longer_counts_over_the_api(world: protected_world.World) -> None:
    api_settings = api_config.ApiSettings(
        drive_runs=False, recover_on_start=False, approval_ttl_s=0.0
    )
    app = app_mod.create_app(world.config, api_settings)
    app.dependency_overrides[deps.get_principal] = _principal
    with testclient.TestClient(app) as client:
        store = _store(client)
        run, plan = protected_world.submit(world, store, by="alice")
        approvals.protect(store, run, plan=plan, requester="alice", config=api_settings)

        answer = client.post(f"/api/v1/runs/{run.id}/approve", json={}, headers=_as("bob"))

    assert answer.status_code == 200
    body = answer.json()
    assert body["awaitingApproval"] is True and body["approval"]["approvedBy"] == []
    assert body["approval"]["approvals"][0]["counts"] is False


def _wait_for_end(client: testclient.TestClient, run_id: str) -> dict[str, object]:
    """The run once it reached a final state (the driver inside the app drives it)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body: dict[str, object] = client.get(f"/api/v1/runs/{run_id}", headers=_as("victor")).json()
        if body["state"] in ("completed", "aborted", "failed", "rollback_failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end: {body}")


def test_a_run_posted_into_a_protected_environment_waits_for_two_others_then_completes(
    world: protected_world.World,
) -> None:
    api_settings = api_config.ApiSettings(
        recover_on_start=False,
        driver_poll_s=0.1,
        scenario_dirs=(world.scenario.parent,),
        environment_dirs=(world.environment.parent,),
    )
    app = app_mod.create_app(world.config, api_settings)
    app.dependency_overrides[deps.get_principal] = _principal
    with testclient.TestClient(app) as client:
        posted = client.post(
            "/api/v1/runs",
            json={"scenario": "absence", "environment": "prod"},
            headers=_as("alice"),
        )
        assert posted.status_code == 202, posted.text
        run_id = posted.json()["id"]
        assert posted.json()["awaitingApproval"] is True

        self_approval = client.post(f"/api/v1/runs/{run_id}/approve", json={}, headers=_as("alice"))
        first = client.post(f"/api/v1/runs/{run_id}/approve", json={}, headers=_as("bob"))
        pending = _store(client).get_run(states.RunId(run_id)).state
        second = client.post(f"/api/v1/runs/{run_id}/approve", json={}, headers=_as("carol"))
        ended = _wait_for_end(client, run_id)

    assert self_approval.status_code == 403
    assert first.status_code == 200 and first.json()["awaitingApproval"] is True
    assert pending is states.RunState.PENDING  # one approval of two: it does not start
    assert second.status_code == 200
    assert ended["state"] == "completed", ended
