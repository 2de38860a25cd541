"""`/healthz` needs nobody; `/readyz` checks the store and its schema."""

from __future__ import annotations

from fastapi import testclient

from drills.service import schema
from tests.api import conftest


def test_healthz_answers_without_credentials(app_for: conftest.AppFor) -> None:
    with testclient.TestClient(app_for(principal=None, drive_runs=False)) as client:
        health = client.get("/healthz")
        runs = client.get("/api/v1/runs")

    assert health.status_code == 200 and health.json() == {"status": "ok", "checks": {}}
    assert runs.status_code == 401
    assert runs.headers["www-authenticate"].startswith("Bearer")
    assert conftest.problem_of(runs)["type"].endswith("/unauthenticated")


def test_readyz_is_ok_when_the_store_answers_and_its_schema_is_current(
    api_client: testclient.TestClient,
) -> None:
    response = api_client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"store": "ok", "schema": "ok"}}


def test_readyz_is_503_with_the_fix_when_the_schema_is_behind(
    api_client: testclient.TestClient,
) -> None:
    store = conftest.store_of(api_client)
    with store.transaction(write=True) as conn:
        conn.exec_driver_sql(f"UPDATE {schema.VERSION_TABLE} SET version_num = '{schema.BASE}'")

    response = api_client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["store"] == "ok"
    assert "stormdrill db upgrade" in body["checks"]["schema"]


def test_readyz_is_503_when_the_store_is_gone(api_client: testclient.TestClient) -> None:
    store = conftest.store_of(api_client)
    with store.transaction(write=True) as conn:
        conn.exec_driver_sql("DROP TABLE killswitch")

    response = api_client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["store"].startswith("unreachable")
