"""The principal cache: a token the store vouched for is not looked up again for 2 s.

What it must never do: accept a token after its expiry, keep a refused token, or outlive a
revocation by more than its TTL (or at all, for a revocation through the API that holds it).
The clock is the cache's own (passed in), so no test waits.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import testclient

from drills.service import auth, tokens
from orchestrator import journal
from tests.api import auth_fixtures

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(sqlite_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(sqlite_url) as opened:
        yield opened


@pytest.fixture
def client(tmp_path: Path) -> Iterator[testclient.TestClient]:
    with auth_fixtures.client_for(auth_fixtures.settings_for(tmp_path)) as test_client:
        yield test_client


@pytest.fixture
def admin(client: testclient.TestClient) -> dict[str, str]:
    store = auth_fixtures.store_of(client)
    return auth_fixtures.bearer(auth_fixtures.issue(store, auth.Role.ADMIN, name="root"))


def test_a_token_revoked_by_another_process_is_refused_once_the_ttl_has_passed(
    store: journal.Journal,
) -> None:
    clock = _Clock()
    cache = tokens.PrincipalCache(clock=clock)
    issued = tokens.create(store, role=auth.Role.VIEWER, created_by="root", name="ci")
    first = tokens.authenticate(store, issued.secret, cache=cache)

    tokens.revoke(store, issued.token.id, by="alice")  # as the CLI would: the cache is not told
    clock.now += tokens.PRINCIPAL_CACHE_TTL.total_seconds() - 0.1
    within = tokens.authenticate(store, issued.secret, cache=cache)
    clock.now += 0.1

    assert within == first
    with pytest.raises(auth.Unauthenticated, match=r"was revoked at .* by alice"):
        tokens.authenticate(store, issued.secret, cache=cache)
    assert len(cache) == 1  # the entry of the earlier check, never renewed by a refusal


def test_a_forgotten_token_is_checked_against_the_store_at_once(store: journal.Journal) -> None:
    cache = tokens.PrincipalCache(clock=_Clock())
    issued = tokens.create(store, role=auth.Role.ADMIN, created_by="root", name="leaked")
    tokens.authenticate(store, issued.secret, cache=cache)

    revoked = tokens.revoke(store, issued.token.prefix, by="alice")
    cache.forget(revoked.id)

    assert len(cache) == 0
    with pytest.raises(auth.Unauthenticated, match="was revoked"):
        tokens.authenticate(store, issued.secret, cache=cache)


def test_a_cached_token_is_refused_from_its_expiry_on(store: journal.Journal) -> None:
    cache = tokens.PrincipalCache(clock=_Clock())
    issued = tokens.create(
        store, role=auth.Role.VIEWER, created_by="root", expires_in=timedelta(hours=1), now=T0
    )
    tokens.authenticate(store, issued.secret, cache=cache, now=T0)

    assert cache.principal(issued.secret, now=T0 + timedelta(minutes=59)) is not None
    assert cache.principal(issued.secret, now=T0 + timedelta(hours=1)) is None
    with pytest.raises(auth.Unauthenticated, match="expired at 2026-01-05 10:00 UTC"):
        tokens.authenticate(store, issued.secret, cache=cache, now=T0 + timedelta(hours=1))


def test_refused_tokens_are_never_kept(store: journal.Journal) -> None:
    cache = tokens.PrincipalCache(clock=_Clock())
    issued = tokens.create(store, role=auth.Role.ADMIN, created_by="root")
    forged = issued.secret[:12] + "A" * (len(issued.secret) - 12)

    for _ in range(2):
        with pytest.raises(auth.Unauthenticated, match="is not one this server issued"):
            tokens.authenticate(store, forged, cache=cache)

    assert len(cache) == 0
    assert cache.principal(forged) is None


def test_the_cache_keeps_at_most_its_size_dropping_the_oldest_check(
    store: journal.Journal,
) -> None:
    cache = tokens.PrincipalCache(clock=_Clock(), max_entries=2)
    secrets = [
        tokens.create(store, role=auth.Role.VIEWER, created_by="root", name=f"t{n}").secret
        for n in range(3)
    ]
    for secret in secrets:
        tokens.authenticate(store, secret, cache=cache)

    assert len(cache) == 2
    assert cache.principal(secrets[0]) is None
    assert cache.principal(secrets[2]) is not None


def test_a_zero_ttl_keeps_nothing(store: journal.Journal) -> None:
    cache = tokens.PrincipalCache(ttl=timedelta(0))
    issued = tokens.create(store, role=auth.Role.VIEWER, created_by="root")

    tokens.authenticate(store, issued.secret, cache=cache)

    assert len(cache) == 0


def test_the_api_answers_a_cached_token_and_refuses_it_once_revoked_through_the_api(
    client: testclient.TestClient, admin: dict[str, str]
) -> None:
    body = client.post("/api/v1/tokens", json={"role": "viewer"}, headers=admin).json()
    holder = auth_fixtures.bearer(body["token"])
    answers = [client.get("/api/v1/runs", headers=holder).status_code for _ in range(3)]
    cache: tokens.PrincipalCache = client.app.state.principals  # type: ignore[attr-defined]
    assert cache.principal(body["token"]) is not None

    client.delete(f"/api/v1/tokens/{body['id']}", headers=admin)
    after = client.get("/api/v1/runs", headers=holder)

    assert answers == [200, 200, 200]
    assert after.status_code == 401
    assert "was revoked" in after.json()["detail"]
