"""`GET /api/v1/gamedays.ics?token=…`: a viewer token in the URL, for calendar subscriptions.

Real tokens in a tmp SQLite store (`tests.api.auth_fixtures`); the access log is checked
on a real `stormdrill serve` process (`python -m drills.cli serve --port 0`), its stdout
(uvicorn's access log) read after it stopped.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import testclient

from drills import store as store_mod
from drills.api import masking
from drills.service import audit, auth, tokens
from tests.api import auth_fixtures

FEED = "/api/v1/gamedays.ics"
HINT = "stormdrill tokens create --role viewer --name calendar"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[testclient.TestClient]:
    with auth_fixtures.client_for(auth_fixtures.settings_for(tmp_path)) as running:
        yield running


def _issue(client: testclient.TestClient, role: auth.Role) -> str:
    return auth_fixtures.issue(auth_fixtures.store_of(client), role)


def _problem(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    detail: str = answer.json()["detail"]
    return detail


def test_a_viewer_token_in_the_query_reads_the_feed(client: testclient.TestClient) -> None:
    viewer = _issue(client, auth.Role.VIEWER)

    answer = client.get(FEED, params={"token": viewer, "days": 7})

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/calendar; charset=utf-8"
    assert answer.text.startswith("BEGIN:VCALENDAR")
    [token] = tokens.list_tokens(auth_fixtures.store_of(client))
    assert token.last_used_at is not None  # checked against the store, as a header is


@pytest.mark.parametrize("role", [auth.Role.OPERATOR, auth.Role.APPROVER, auth.Role.ADMIN])
def test_a_stronger_token_in_the_query_is_refused_with_how_to_make_a_viewer_one(
    client: testclient.TestClient, role: auth.Role
) -> None:
    secret = _issue(client, role)

    detail = _problem(client.get(FEED, params={"token": secret}), 403)

    assert HINT in detail
    assert f"test-{role.value} ({role.value}) may not be sent in a URL" in detail
    assert secret not in detail


def test_every_role_still_reads_the_feed_with_the_bearer_header(
    client: testclient.TestClient,
) -> None:
    statuses = {
        role: client.get(FEED, headers=auth_fixtures.bearer(_issue(client, role))).status_code
        for role in auth.Role
    }

    assert statuses == dict.fromkeys(auth.Role, 200)


def test_an_unknown_revoked_or_non_stormdrill_token_in_the_query_is_401(
    client: testclient.TestClient,
) -> None:
    store = auth_fixtures.store_of(client)
    revoked = _issue(client, auth.Role.VIEWER)
    tokens.revoke(store, revoked[: tokens.PREFIX_LENGTH], by="test")
    garbled = _issue(client, auth.Role.VIEWER)[:-2] + "zz"
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

    details = {
        name: _problem(client.get(FEED, params={"token": value}), 401)
        for name, value in {
            "revoked": revoked,
            "garbled": garbled,
            "jwt": jwt_like,
            "empty": "",
        }.items()
    }

    assert "was revoked" in details["revoked"]
    assert "is not one this server issued" in details["garbled"]
    assert "not an OIDC token" in details["jwt"] and HINT in details["jwt"]
    assert "not an OIDC token" in details["empty"]


def test_no_token_at_all_is_401_with_the_bearer_challenge(client: testclient.TestClient) -> None:
    answer = client.get(FEED)

    assert "no credentials" in _problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_token_in_the_query_and_a_header_at_once_is_401(client: testclient.TestClient) -> None:
    viewer = _issue(client, auth.Role.VIEWER)

    answer = client.get(FEED, params={"token": viewer}, headers=auth_fixtures.bearer(viewer))

    assert "send one" in _problem(answer, 401)


def test_a_viewer_token_in_the_query_of_another_route_is_not_accepted(
    client: testclient.TestClient,
) -> None:
    viewer = _issue(client, auth.Role.VIEWER)

    runs = client.get("/api/v1/runs", params={"token": viewer})
    gamedays = client.get("/api/v1/gamedays", params={"access_token": viewer})

    assert "no credentials" in _problem(runs, 401)
    assert "no credentials" in _problem(gamedays, 401)
    assert client.get("/api/v1/runs", headers=auth_fixtures.bearer(viewer)).status_code == 200


def test_the_audit_trail_keeps_the_query_of_a_request_with_its_token_masked(
    client: testclient.TestClient,
) -> None:
    viewer = _issue(client, auth.Role.VIEWER)
    admin = auth_fixtures.bearer(_issue(client, auth.Role.ADMIN))

    refused = client.post(f"{FEED}?days=3&token={viewer}&access_token={viewer}")
    engaged = client.put(
        "/api/v1/killswitch",
        params={"environment": "staging", "token": viewer},
        json={"reason": "audit masking test"},
        headers=admin,
    )

    assert refused.status_code == 405, refused.text
    assert engaged.status_code < 300, engaged.text
    entries = audit.entries(auth_fixtures.store_of(client))
    targets = sorted(e.target for e in entries)
    assert targets == [
        "gamedays.ics?days=3&token=***&access_token=***",
        "killswitch?environment=staging&token=***",
    ]
    for entry in entries:
        assert viewer not in repr(entry)


@pytest.mark.parametrize(
    ("target", "masked"),
    [
        ("/a?token=sdt_x", "/a?token=***"),
        ("/a?days=3&token=sdt_x&b=2", "/a?days=3&token=***&b=2"),
        ("/a?access_token=eyJ.a.b;token=", "/a?access_token=***;token=***"),
        ("/a?%74oken=sdt_x&TOKEN=y", "/a?%74oken=***&TOKEN=***"),
        ("/a?tokens=keep&mytoken=keep&token", "/a?tokens=keep&mytoken=keep&token"),
        ("/a/token=path-not-query", "/a/token=path-not-query"),
        ("/a?", "/a?"),
    ],
)
def test_mask_target_masks_only_credential_values_of_the_query(target: str, masked: str) -> None:
    assert masking.mask_target(target) == masked


def test_the_access_log_filter_masks_a_record_as_uvicorn_builds_it() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/gamedays.ics?token=sdt_secret", "1.1", 200),
        None,
    )

    assert masking.AccessLogFilter().filter(record) is True
    assert record.getMessage() == (
        '127.0.0.1:5000 - "GET /api/v1/gamedays.ics?token=*** HTTP/1.1" 200'
    )


def test_serve_writes_the_access_log_with_query_tokens_masked(tmp_path: Path) -> None:
    config = auth_fixtures.settings_for(tmp_path)
    with store_mod.open_store(config) as store:
        viewer = auth_fixtures.issue(store, auth.Role.VIEWER)
        admin = auth_fixtures.issue(store, auth.Role.ADMIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORMDRILL_")}
    env["STORMDRILL_DATABASE_URL"] = config.database_url
    env["STORMDRILL_REPORTS_DIR"] = str(config.reports_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "drills.cli", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        base = None
        startup: list[str] = []
        for line in proc.stderr:  # uvicorn names the port it bound on stderr
            startup.append(line)
            if found := re.search(r"Uvicorn running on (http://\S+)", line):
                base = found[1]
                break
        assert base is not None, "".join(startup)
        served = httpx.get(f"{base}{FEED}", params={"token": viewer}, timeout=30.0)
        refused = httpx.get(f"{base}{FEED}", params={"days": 2, "token": admin}, timeout=30.0)
        other = httpx.get(f"{base}/api/v1/runs", params={"access_token": viewer}, timeout=30.0)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)

    assert (served.status_code, refused.status_code, other.status_code) == (200, 403, 401)
    assert proc.returncode == 0, err
    assert f'"GET {FEED}?token=*** HTTP/1.1" 200' in out, out
    assert f'"GET {FEED}?days=2&token=*** HTTP/1.1" 403' in out, out
    assert '"GET /api/v1/runs?access_token=*** HTTP/1.1" 401' in out, out
    for secret in (viewer, admin):
        assert secret not in out and secret not in err
