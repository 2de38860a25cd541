"""`Idempotency-Key`: a repeated POST gets the first answer and does nothing again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fastapi
from fastapi import testclient

from drills import tables_idempotency
from drills.api import app as app_mod
from drills.api import deps, idempotency
from drills.service import auth
from drills.service import idempotency as idempotency_store
from tests.api import conftest

API = "/api/v1"
BODY = {"scenario": "absence-cover", "environment": "test"}


def _by_header(request: fastapi.Request) -> auth.Principal:
    """Who calls: the `X-Test-User` header's name, an operator (for the principal scoping)."""
    return auth.Principal(
        name=request.headers.get("x-test-user", "alice"), roles=frozenset({auth.Role.OPERATOR})
    )


def _client(api_world: conftest.ApiWorld) -> testclient.TestClient:
    app = app_mod.create_app(api_world.settings, api_world.api_settings(drive_runs=False))
    app.dependency_overrides[deps.get_principal] = _by_header
    return testclient.TestClient(app)


def test_a_double_post_with_one_key_starts_one_run_and_answers_the_same_twice(
    api_world: conftest.ApiWorld,
) -> None:
    with _client(api_world) as client:
        key = {"Idempotency-Key": "3b1d6c7e-double-click"}
        first = client.post(f"{API}/runs", json=BODY, headers=key)
        second = client.post(f"{API}/runs", json=BODY, headers=key)
        runs = conftest.store_of(client).list_runs()

    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert second.headers[idempotency.REPLAYED] == "true"
    assert idempotency.REPLAYED not in first.headers
    assert [r.id for r in runs] == [first.json()["id"]]


def test_without_a_key_each_post_starts_a_run(api_world: conftest.ApiWorld) -> None:
    with _client(api_world) as client:
        client.post(f"{API}/runs", json=BODY)
        client.post(f"{API}/runs", json=BODY)
        runs = conftest.store_of(client).list_runs()

    assert len(runs) == 2


def test_the_same_key_from_two_principals_or_on_two_routes_is_two_keys(
    api_world: conftest.ApiWorld,
) -> None:
    with _client(api_world) as client:
        key = "shared-key"
        alice = client.post(
            f"{API}/runs", json=BODY, headers={"Idempotency-Key": key, "X-Test-User": "alice"}
        )
        bob = client.post(
            f"{API}/runs", json=BODY, headers={"Idempotency-Key": key, "X-Test-User": "bob"}
        )
        abort = client.post(
            f"{API}/runs/{alice.json()['id']}/abort",
            headers={"Idempotency-Key": key, "X-Test-User": "alice"},
        )
        runs = conftest.store_of(client).list_runs()

    assert alice.json()["id"] != bob.json()["id"]
    assert len(runs) == 2
    assert abort.status_code == 202 and abort.json()["state"] == "aborted"


def test_a_repeated_abort_gets_the_first_answer_not_a_409(api_world: conftest.ApiWorld) -> None:
    with _client(api_world) as client:
        run_id = client.post(f"{API}/runs", json=BODY).json()["id"]
        key = {"Idempotency-Key": "abort-once"}
        first = client.post(f"{API}/runs/{run_id}/abort", headers=key)
        again = client.post(f"{API}/runs/{run_id}/abort", headers=key)
        fresh = client.post(f"{API}/runs/{run_id}/abort")

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert fresh.status_code == 409


def test_reusing_a_key_for_another_request_is_422(api_world: conftest.ApiWorld) -> None:
    with _client(api_world) as client:
        key = {"Idempotency-Key": "one-request-only"}
        client.post(f"{API}/runs", json=BODY, headers=key)
        other = client.post(
            f"{API}/runs",
            json={**BODY, "parameters": {"person": "user:default/bob"}},
            headers=key,
        )
        runs = conftest.store_of(client).list_runs()

    assert other.status_code == 422
    assert "different POST /api/v1/runs request" in conftest.problem_of(other)["detail"]
    assert len(runs) == 1


def test_a_request_that_failed_is_forgotten_so_its_key_can_be_retried(
    api_world: conftest.ApiWorld,
) -> None:
    with _client(api_world) as client:
        key = {"Idempotency-Key": "retry-me"}
        bad = {"scenario": "absence-cover", "environment": "nowhere"}
        first = client.post(f"{API}/runs", json=bad, headers=key)
        second = client.post(f"{API}/runs", json=bad, headers=key)

    assert first.status_code == second.status_code == 404
    assert idempotency.REPLAYED not in second.headers


def test_a_key_still_being_answered_is_409_and_an_expired_one_is_free_again(
    api_world: conftest.ApiWorld,
) -> None:
    with _client(api_world) as client:
        store = conftest.store_of(client)
        idempotency_store.claim(
            store,
            principal="token:alice",
            route="POST /api/v1/runs",
            key="in-flight",
            fingerprint="whatever",
            ttl_s=3600.0,
        )
        busy = client.post(f"{API}/runs", json=BODY, headers={"Idempotency-Key": "in-flight"})
        table = tables_idempotency.idempotency_table
        with store.transaction(write=True) as conn:
            conn.execute(table.update().values(created_at=datetime.now(UTC) - timedelta(days=2)))
        later = client.post(f"{API}/runs", json=BODY, headers={"Idempotency-Key": "in-flight"})

    assert busy.status_code == 409
    assert "still being answered" in conftest.problem_of(busy)["detail"]
    assert later.status_code == 202


def test_a_key_must_be_visible_ascii(api_world: conftest.ApiWorld) -> None:
    with _client(api_world) as client:
        response = client.post(f"{API}/runs", json=BODY, headers={"Idempotency-Key": "x" * 300})
        runs = conftest.store_of(client).list_runs()

    assert response.status_code == 422
    assert runs == []
