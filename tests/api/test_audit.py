"""The audit trail: one entry per mutating request (done or refused), filters, export, no edits.

Requests carry real tokens (`drills.service.tokens`); entries are read back through
`drills.service.audit` and through `GET /api/v1/audit`.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import testclient

from drills.api import audit as api_audit
from drills.service import audit, auth
from tests.api import auth_fixtures
from tests.api import conftest as api_conftest

API = "/api/v1"
PLACEHOLDER = "does-not-exist"


@pytest.fixture
def client(api_world: api_conftest.ApiWorld) -> Iterator[testclient.TestClient]:
    api = api_world.api_settings(drive_runs=False, recover_on_start=False)
    with auth_fixtures.client_for(api_world.settings, api) as test_client:
        yield test_client


@pytest.fixture
def admin(client: testclient.TestClient) -> dict[str, str]:
    store = auth_fixtures.store_of(client)
    return auth_fixtures.bearer(auth_fixtures.issue(store, auth.Role.ADMIN, name="root"))


@pytest.fixture
def viewer(client: testclient.TestClient) -> dict[str, str]:
    store = auth_fixtures.store_of(client)
    return auth_fixtures.bearer(auth_fixtures.issue(store, auth.Role.VIEWER, name="val"))


def _entries(client: testclient.TestClient) -> list[audit.Entry]:
    return audit.entries(auth_fixtures.store_of(client), limit=None, oldest_first=True)


def _mutating(client: testclient.TestClient) -> list[tuple[str, str]]:
    found = [
        (method, route.template)
        for route in api_audit.route_table(client.app)
        for method in sorted(route.methods & api_audit.MUTATING)
        if route.template.startswith(API + "/")
    ]
    assert found, "the app has no mutating route: the table is not read right"
    return found


def _concrete(template: str) -> str:
    return re.sub(r"\{[^{}]+\}", PLACEHOLDER, template)


def test_every_mutating_route_has_an_audit_action_name(client: testclient.TestClient) -> None:
    unnamed = [
        f"{method} {template}"
        for method, template in _mutating(client)
        if (method, api_audit.template_key(template)) not in api_audit.ACTIONS
    ]

    assert unnamed == [], "name these in drills.api.audit.ACTIONS"


def test_the_actions_the_issue_names_are_all_mapped() -> None:
    names = set(api_audit.ACTIONS.values())

    assert {
        "run.start",
        "plan",
        "run.abort",
        "run.ack",
        "run.approve",
        "run.reject",
        "killswitch.engage",
        "killswitch.release",
        "token.create",
        "token.revoke",
    } <= names


@pytest.mark.parametrize("who", ["admin", "viewer", "nobody"])
def test_each_mutating_request_writes_exactly_one_entry_whatever_its_outcome(
    client: testclient.TestClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    who: str,
) -> None:
    headers = {"admin": admin, "viewer": viewer, "nobody": {}}[who]
    for method, template in _mutating(client):
        path = _concrete(template)
        before = len(_entries(client))

        answer = client.request(method, path, json={}, headers={**headers, "User-Agent": "t/1"})

        written = _entries(client)[before:]
        assert len(written) == 1, f"{method} {template} wrote {len(written)} entries"
        entry = written[0]
        assert entry.action == api_audit.action_for(method, template)
        assert entry.status == answer.status_code
        assert entry.outcome is audit.Outcome.of_status(answer.status_code)
        assert (entry.method, entry.path) == (method, path)
        assert entry.user_agent == "t/1"
        assert entry.address == "testclient"
        assert entry.request_id == answer.headers["x-request-id"]
        if who == "nobody":
            assert answer.status_code == 401
            assert (entry.principal, entry.principal_kind) == ("anonymous", "anonymous")
            assert entry.outcome is audit.Outcome.REFUSED
            assert "no credentials" in entry.detail
        elif who == "viewer":  # which routes a viewer may call: tests/api/test_role_matrix.py
            assert (entry.principal, entry.principal_kind) == ("val", "token")
            if answer.status_code == 403:
                assert "val (viewer) may not" in entry.detail
        else:
            assert entry.principal == "root"
            assert answer.status_code not in (401, 403), f"{method} {template}: {answer.text}"


def test_reads_are_not_audited(client: testclient.TestClient, admin: dict[str, str]) -> None:
    for path in ("/api/v1/tokens", "/api/v1/audit", "/api/v1/runs", "/healthz"):
        client.get(path, headers=admin)

    assert _entries(client) == []


def test_a_token_created_and_revoked_through_the_api_is_in_the_trail_with_its_target(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    created = client.post(
        "/api/v1/tokens", json={"role": "viewer", "name": "bot"}, headers=admin
    ).json()
    client.delete(f"/api/v1/tokens/{created['id']}", headers=admin)

    trail = [(e.action, e.target, e.status, e.principal) for e in _entries(client)]
    assert trail == [
        ("token.create", f"tokens/{created['id']}", 201, "root"),
        ("token.revoke", f"tokens/{created['id']}", 200, "root"),
    ]
    assert created["token"] not in json.dumps([e.detail for e in _entries(client)])


def test_a_real_plan_start_and_abort_are_in_the_trail_in_order(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    body = {"scenario": "absence-cover", "environment": "test"}
    planned = client.post("/api/v1/plans", json=body, headers=admin)
    started = client.post("/api/v1/runs", json=body, headers=admin)
    run_id = started.json()["id"]
    aborted = client.post(f"/api/v1/runs/{run_id}/abort", json={}, headers=admin)

    assert (planned.status_code, started.status_code) == (200, 202), started.text
    assert aborted.status_code < 400, aborted.text
    trail = [(e.action, e.target, e.outcome) for e in _entries(client)]
    assert trail == [
        ("plan", "plans", audit.Outcome.OK),
        ("run.start", f"runs/{run_id}", audit.Outcome.OK),
        ("run.abort", f"runs/{run_id}/abort", audit.Outcome.OK),
    ]


def test_a_kill_switch_engaged_for_one_environment_names_it_in_the_target(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    engaged = client.put(
        "/api/v1/killswitch?environment=test", json={"reason": "game day over"}, headers=admin
    )
    released = client.delete("/api/v1/killswitch?environment=test", headers=admin)

    assert engaged.status_code == 200, engaged.text
    assert released.status_code == 200, released.text
    trail = [(e.action, e.target, e.principal) for e in _entries(client)]
    assert trail == [
        ("killswitch.engage", "killswitch?environment=test", "root"),
        ("killswitch.release", "killswitch?environment=test", "root"),
    ]


def test_the_caller_s_request_id_is_kept_and_a_refused_token_is_named_by_its_prefix(
    client: testclient.TestClient,
) -> None:
    forged = "sdt_" + "x" * 43
    answer = client.put(
        "/api/v1/killswitch",
        json={},
        headers={"Authorization": f"Bearer {forged}", "X-Request-ID": "req-42"},
    )

    (entry,) = _entries(client)
    assert answer.headers["x-request-id"] == "req-42"
    assert entry.request_id == "req-42"
    assert entry.status == 401
    assert "a Stormdrill token, prefix sdt_xxxxxxxx…" in entry.detail
    assert forged not in entry.detail


def test_the_trail_filters_by_principal_action_and_time(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    store = auth_fixtures.store_of(client)
    old = datetime.now(UTC) - timedelta(days=3)
    for who, action, at in (
        ("alice", "run.start", old),
        ("alice", "run.abort", None),
        ("bob", "run.approve", None),
        ("bob", "killswitch.engage", None),
    ):
        audit.record(
            store,
            audit.NewEntry(
                principal=who,
                principal_kind="token",
                action=action,
                target="runs/r1",
                status=200,
                at=at,
            ),
        )

    def actions(query: str) -> list[str]:
        answer = client.get(f"/api/v1/audit{query}", headers=admin)
        assert answer.status_code == 200, answer.text
        return [e["action"] for e in answer.json()["entries"]]

    assert actions("?principal=alice") == ["run.abort", "run.start"]
    assert actions("?action=run.") == ["run.approve", "run.abort", "run.start"]
    assert actions("?action=killswitch.engage") == ["killswitch.engage"]
    assert actions("?since=1d") == ["killswitch.engage", "run.approve", "run.abort"]
    assert actions("?limit=2") == ["killswitch.engage", "run.approve"]
    page = client.get("/api/v1/audit?limit=2", headers=admin).json()
    rest = client.get(f"/api/v1/audit?limit=2&before={page['next_before']}", headers=admin)
    assert [e["action"] for e in rest.json()["entries"]] == ["run.abort", "run.start"]
    bad = client.get("/api/v1/audit?since=yesterday", headers=admin)
    assert bad.status_code == 422
    assert "--since 'yesterday'" in bad.json()["detail"]


def test_the_jsonl_export_holds_every_entry_oldest_first(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    store = auth_fixtures.store_of(client)
    for number in range(5):
        audit.record(
            store,
            audit.NewEntry(
                principal="alice",
                principal_kind="token",
                action=f"a{number}",
                target="t",
                status=200,
            ),
        )

    answer = client.get("/api/v1/audit?format=jsonl", headers=admin)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/jsonl")
    lines = answer.text.splitlines()
    assert [json.loads(line)["action"] for line in lines] == [f"a{n}" for n in range(5)]
    assert set(json.loads(lines[0])) >= {
        "id",
        "at",
        "principal",
        "principal_kind",
        "action",
        "target",
        "status",
        "outcome",
        "address",
        "user_agent",
        "request_id",
    }


def test_only_an_admin_reads_the_trail(
    client: testclient.TestClient, viewer: dict[str, str]
) -> None:
    assert client.get("/api/v1/audit").status_code == 401
    assert client.get("/api/v1/audit", headers=viewer).status_code == 403


def test_no_code_path_updates_or_deletes_an_audit_entry(client: testclient.TestClient) -> None:
    for module in (audit, api_audit):
        source = inspect.getsource(module)
        for forbidden in (".update(", ".delete(", "UPDATE ", "DELETE FROM", "truncate"):
            assert forbidden not in source, f"{module.__name__} holds {forbidden!r}"
    public = {name for name in dir(audit) if not name.startswith("_")}
    assert not {n for n in public if re.search(r"update|delete|remove|purge|edit", n, re.I)}
    audit_routes = [
        route for route in api_audit.route_table(client.app) if "/audit" in route.template
    ]
    assert audit_routes
    assert all(route.methods <= {"GET", "HEAD"} for route in audit_routes)


def test_free_text_is_redacted_before_it_is_stored(client: testclient.TestClient) -> None:
    store = auth_fixtures.store_of(client)

    entry = audit.record(
        store,
        audit.NewEntry(
            principal="alice",
            principal_kind="token",
            action="run.start",
            target="runs/r1",
            status=200,
            detail="used password=hunter2-database-pass to log in",
        ),
    )

    assert "hunter2-database-pass" not in entry.detail
    (stored,) = audit.entries(store)
    assert "hunter2-database-pass" not in stored.detail
