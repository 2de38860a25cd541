"""Logging in to the pages: a token pasted into `/login` becomes a session cookie.

Real tokens (`drills.service.tokens`), a real store, the app `serve` runs. The cookie's
flags, the CSRF check on forms, logout, a revoked token ending its sessions, the redirect
of a page without a session, open-redirect refusal, and the security headers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import starlette.routing

from drills.service import audit, auth, sessions, tokens
from drills.web import app as web_app
from drills.web import deps, security
from tests.web.conftest import Web


def test_the_login_form_has_a_token_field_and_no_session_yet(web: Web) -> None:
    page = web.client.get("/login")
    assert page.status_code == 200
    assert 'name="token"' in page.text and 'for="token"' in page.text
    assert deps.COOKIE not in page.headers.get("set-cookie", "")
    assert 'action="/logout"' not in page.text  # no navigation before login


def test_a_good_token_answers_303_with_an_httponly_strict_cookie(web: Web) -> None:
    secret = web.issue(auth.Role.OPERATOR, name="ops")
    answer = web.client.post("/login", data={"token": secret, "next": "/runs?state=aborted"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/runs?state=aborted"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{deps.COOKIE}=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= flags
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in flags  # plain HTTP on loopback; Secure when the request was TLS
    value = cookie.split(";")[0].split("=", 1)[1]
    assert secret not in cookie and value != secret  # the cookie is a session, not the token
    session = sessions.resolve(web.store, value)
    assert session.principal.name == "ops" and auth.Role.OPERATOR in session.principal.roles


def test_the_cookie_is_secure_when_the_request_came_over_tls(web: Web) -> None:
    secret = web.issue(auth.Role.VIEWER)
    answer = web.client.post("https://testserver/login", data={"token": secret, "next": "/"})
    assert answer.status_code == 303
    assert "secure" in {p.strip().lower() for p in answer.headers["set-cookie"].split(";")}


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("", "paste a token"),
        ("sdt_" + "x" * 43, "is not one this server issued"),
        ("not-a-token", "OIDC is not configured"),
    ],
)
def test_a_bad_token_answers_the_form_again_with_why_and_no_cookie(
    web: Web, pasted: str, says: str
) -> None:
    answer = web.client.post("/login", data={"token": pasted, "next": "/"})
    assert answer.status_code == 401
    assert says in answer.text
    assert "set-cookie" not in answer.headers
    if pasted:
        assert pasted not in answer.text  # never echoed back
    refused = audit.entries(web.store, where=audit.EntryFilter(action="session.login"))
    assert [e.status for e in refused] == [401]


def test_next_must_be_a_path_on_this_server(web: Web) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil", "javascript:x"):
        secret = web.issue(auth.Role.VIEWER)
        answer = web.client.post("/login", data={"token": secret, "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_logout_needs_the_csrf_token_then_ends_the_session(web: Web) -> None:
    csrf = web.login(auth.Role.VIEWER, name="reader")
    cookie = web.client.cookies[deps.COOKIE]
    missing = web.client.post("/logout", data={})
    assert missing.status_code == 403 and "CSRF" in missing.text
    wrong = web.client.post("/logout", data={"csrf_token": csrf[:-2] + "xx"})
    assert wrong.status_code == 403
    sessions.resolve(web.store, cookie)  # still logged in after the refusals
    done = web.client.post("/logout", data={"csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/login"
    with pytest.raises(auth.Unauthenticated, match="logged out"):
        sessions.resolve(web.store, cookie)
    actions = [
        e.action for e in audit.entries(web.store, where=audit.EntryFilter(action="session."))
    ]
    assert sorted(actions) == ["session.login", "session.logout"]


def test_a_form_without_a_session_is_sent_to_the_login_page(web: Web) -> None:
    answer = web.client.post("/logout", data={"csrf_token": "x"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2F")


def test_revoking_the_token_ends_its_sessions(web: Web) -> None:
    secret = web.issue(auth.Role.OPERATOR, name="soon-revoked")
    web.client.post("/login", data={"token": secret, "next": "/"})
    cookie = web.client.cookies[deps.COOKIE]
    assert sessions.resolve(web.store, cookie).principal.name == "soon-revoked"
    (made,) = [t for t in tokens.list_tokens(web.store) if t.name == "soon-revoked"]
    tokens.revoke(web.store, str(made.id), by="test-admin")
    with pytest.raises(auth.Unauthenticated, match="revoked"):
        sessions.resolve(web.store, cookie)


def test_a_session_expires_and_old_rows_are_swept_at_the_next_login(web: Web) -> None:
    secret = web.issue(auth.Role.VIEWER)
    now = datetime.now(UTC)
    config = web.client.app.state.api_settings  # type: ignore[attr-defined]
    old = sessions.login(web.store, config, secret, ttl=timedelta(minutes=1), now=now)
    with pytest.raises(auth.Unauthenticated, match="session ended"):
        sessions.resolve(web.store, old.secret, now=now + timedelta(minutes=2))
    sessions.login(web.store, config, secret, now=now + timedelta(minutes=3))
    with pytest.raises(auth.Unauthenticated, match="logged out"):
        sessions.resolve(web.store, old.secret, now=now + timedelta(minutes=3))


def test_pages_and_static_files_carry_the_security_headers_and_the_api_does_not(
    web: Web,
) -> None:
    for path in ("/login", "/static/style.css", "/static/stormdrill.js"):
        answer = web.client.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert web.client.get("/login").headers["content-security-policy"] == security.CSP
    api = web.client.get("/api/v1/scenarios")
    assert "content-security-policy" not in api.headers


def test_no_page_has_an_inline_script(web: Web) -> None:
    web.login()
    page = web.client.get("/login").text
    assert "<script>" not in page and "onclick=" not in page.lower()
    assert '<script src="/static/stormdrill.js" defer></script>' in page


PUBLIC_PAGES = ("/login", "/login/oidc", "/login/oidc/callback")
"""Pages anyone may open (the login itself); every other page and form needs a session."""


def _page_routes() -> list[tuple[str, str]]:
    found = []
    for module in web_app.PAGES:
        for route in module.router.routes:
            assert isinstance(route, starlette.routing.Route)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                found.append((method, route.path))
    return found


def test_every_page_and_form_but_the_login_sends_a_browser_without_a_session_to_login(
    web: Web,
) -> None:
    routes = _page_routes()
    assert ("GET", "/") in routes and ("POST", "/killswitch") in routes
    for method, template in routes:
        if template in PUBLIC_PAGES:
            continue
        path = template.replace("{run_id}", "nope").replace("{step}", "nope")
        path = re.sub(r"\{[^}]+\}", "nope", path)
        answer = web.client.request(
            method, path, data={"csrf_token": "x"} if method == "POST" else None
        )
        assert answer.status_code == 303, (method, path, answer.status_code)
        assert answer.headers["location"].startswith("/login?next="), (method, path)
