"""Stormdrill tokens: only a digest is stored; expiry, revocation, last use; the admin routes.

The service is exercised on SQLite and on the real PostgreSQL; the routes over httpx.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import testclient

from drills import tables_auth
from drills.service import audit, auth, tokens
from orchestrator import journal
from tests.api import auth_fixtures

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[journal.Journal]:
    url = request.getfixturevalue(f"{request.param}_url")
    with journal.open_store(url) as opened:
        yield opened


def _rows(store: journal.Journal) -> list[dict[str, object]]:
    with store._reading() as conn:
        return [dict(row._mapping) for row in conn.execute(tables_auth.tokens_table.select())]


def test_a_created_token_is_stored_only_as_its_digest_and_prefix(store: journal.Journal) -> None:
    issued = tokens.create(store, role=auth.Role.OPERATOR, created_by="root", name="ci")

    assert issued.secret.startswith("sdt_")
    assert len(issued.secret) == 4 + 43
    (row,) = _rows(store)
    assert issued.secret not in repr(row)
    assert row["digest"] == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert row["prefix"] == issued.secret[:12] == issued.token.prefix
    assert issued.secret not in repr(issued.token)
    assert issued.secret not in repr(issued)


def test_a_token_authenticates_as_its_name_role_and_scope_and_records_its_use(
    store: journal.Journal,
) -> None:
    issued = tokens.create(
        store,
        role=auth.Role.OPERATOR,
        created_by="root",
        name="payments-ci",
        teams=("team-payments",),
        services=("checkout",),
        now=T0,
    )

    principal = tokens.authenticate(store, issued.secret, now=T0 + timedelta(minutes=5))

    assert principal.name == "payments-ci"
    assert principal.kind == "token"
    assert principal.token_id == issued.token.id
    assert principal.grants == (
        auth.Grant(
            role=auth.Role.OPERATOR,
            teams=frozenset({"group:default/team-payments"}),
            services=frozenset({"component:default/checkout"}),
        ),
    )
    assert tokens.get(store, issued.token.id).last_used_at == T0 + timedelta(minutes=5)
    tokens.authenticate(store, issued.secret, now=T0 + timedelta(minutes=5, seconds=30))
    assert tokens.get(store, issued.token.id).last_used_at == T0 + timedelta(minutes=5)


def test_an_expired_token_is_refused_naming_when_it_expired(store: journal.Journal) -> None:
    issued = tokens.create(
        store,
        role=auth.Role.VIEWER,
        created_by="root",
        name="old",
        expires_in=tokens.parse_expires("90d"),
        now=T0,
    )
    tokens.authenticate(store, issued.secret, now=T0 + timedelta(days=89))

    with pytest.raises(auth.Unauthenticated, match="expired at 2026-04-05 09:00 UTC"):
        tokens.authenticate(store, issued.secret, now=T0 + timedelta(days=90))
    listed = tokens.list_tokens(store, include_inactive=False)
    assert issued.token.id not in [t.id for t in listed]


def test_a_revoked_token_is_refused_at_once_and_revoking_twice_is_harmless(
    store: journal.Journal,
) -> None:
    issued = tokens.create(store, role=auth.Role.ADMIN, created_by="root", name="leaked")

    first = tokens.revoke(store, issued.token.prefix, by="alice", now=T0)
    again = tokens.revoke(store, issued.token.id, by="bob", now=T0 + timedelta(hours=1))

    assert (first.revoked_at, first.revoked_by) == (T0, "alice")
    assert (again.revoked_at, again.revoked_by) == (T0, "alice")
    with pytest.raises(auth.Unauthenticated, match=r"was revoked at .* by alice"):
        tokens.authenticate(store, issued.secret)


def test_a_token_with_a_known_prefix_but_another_secret_is_refused(store: journal.Journal) -> None:
    issued = tokens.create(store, role=auth.Role.ADMIN, created_by="root")
    forged = issued.secret[:12] + "A" * (len(issued.secret) - 12)

    with pytest.raises(auth.Unauthenticated, match="is not one this server issued"):
        tokens.authenticate(store, forged)
    with pytest.raises(auth.Unauthenticated, match="not a Stormdrill token"):
        tokens.authenticate(store, "sdt_short")


def test_an_unknown_id_or_prefix_is_named_with_the_fix(store: journal.Journal) -> None:
    with pytest.raises(
        tokens.UnknownToken, match=r"no token with id or prefix 'nope'.*tokens list"
    ):
        tokens.revoke(store, "nope", by="root")


@pytest.mark.parametrize(
    ("expires", "problem"),
    [("soon", "--expires 'soon'"), ("-5d", "must be positive"), ("30", "has no unit")],
)
def test_an_unreadable_expiry_is_refused(expires: str, problem: str) -> None:
    with pytest.raises(tokens.TokenInvalid, match=problem):
        tokens.parse_expires(expires)


def test_never_means_no_expiry() -> None:
    assert tokens.parse_expires("never") is None
    assert tokens.parse_expires(None) is None
    assert tokens.parse_expires("12h") == timedelta(hours=12)


def test_the_audit_trail_works_on_this_store_too(store: journal.Journal) -> None:
    audit.record(
        store,
        audit.NewEntry(
            principal="root",
            principal_kind="local",
            action="token.create",
            target="tokens/x",
            status=200,
            at=T0,
        ),
    )

    (entry,) = audit.entries(store, where=audit.EntryFilter(since=T0 - timedelta(seconds=1)))
    assert (entry.principal, entry.action, entry.at, entry.outcome) == (
        "root",
        "token.create",
        T0,
        audit.Outcome.OK,
    )


# ---- the routes ---------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[testclient.TestClient]:
    with auth_fixtures.client_for(auth_fixtures.settings_for(tmp_path)) as test_client:
        yield test_client


@pytest.fixture
def admin(client: testclient.TestClient) -> dict[str, str]:
    store = auth_fixtures.store_of(client)
    return auth_fixtures.bearer(auth_fixtures.issue(store, auth.Role.ADMIN, name="root"))


def test_an_admin_creates_a_token_that_works_and_is_listed_without_its_secret(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    created = client.post(
        "/api/v1/tokens",
        json={"role": "viewer", "name": "dashboard", "expires": "30d", "teams": ["team-web"]},
        headers=admin,
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/api/v1/tokens/{body['id']}"
    assert body["token"].startswith(body["prefix"])
    assert (body["role"], body["name"], body["status"]) == ("viewer", "dashboard", "active")
    assert body["teams"] == ["group:default/team-web"]
    assert body["expires_at"] is not None
    listed = client.get("/api/v1/tokens", headers=admin)
    assert listed.status_code == 200
    assert body["token"] not in listed.text
    assert "dashboard" in [t["name"] for t in listed.json()["tokens"]]
    assert "token" not in listed.json()["tokens"][0]
    as_viewer = auth_fixtures.bearer(body["token"])
    assert client.get("/api/v1/audit", headers=as_viewer).status_code == 403
    assert client.get("/api/v1/killswitch", headers=as_viewer).status_code == 200
    one = client.get(f"/api/v1/tokens/{body['prefix']}", headers=admin).json()
    assert one["last_used_at"] is not None


def test_a_revoked_token_gets_401_on_its_next_request(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    body = client.post("/api/v1/tokens", json={"role": "operator"}, headers=admin).json()
    holder = auth_fixtures.bearer(body["token"])
    assert client.get("/api/v1/runs", headers=holder).status_code == 200

    revoked = client.delete(f"/api/v1/tokens/{body['id']}", headers=admin)
    after = client.get("/api/v1/runs", headers=holder)

    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_by"] == "root"
    assert after.status_code == 401
    assert "was revoked" in after.json()["detail"]
    assert after.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"role": "superuser"}, "role"),
        ({"role": "viewer", "expires": "forever"}, "--expires 'forever'"),
        ({"role": "viewer", "teams": ["component:web"]}, "name a group"),
        ({"role": "viewer", "secret": "mine"}, "secret"),
    ],
)
def test_a_bad_create_request_is_422_naming_the_problem(
    client: testclient.TestClient, admin: dict[str, str], body: dict[str, object], problem: str
) -> None:
    answer = client.post("/api/v1/tokens", json=body, headers=admin)

    assert answer.status_code == 422, answer.text
    assert problem in answer.text


def test_revoking_an_unknown_token_is_404(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    answer = client.delete("/api/v1/tokens/nope", headers=admin)

    assert answer.status_code == 404, answer.text
    assert "tokens list" in answer.json()["detail"]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-token-nor-a-jwt"],
    ids=["none", "empty", "bearer-alone", "basic", "garbage"],
)
def test_missing_or_unusable_credentials_are_401_with_a_bearer_challenge(
    client: testclient.TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    answer = client.get("/api/v1/runs", headers=headers)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.headers["content-type"].startswith("application/problem+json")
