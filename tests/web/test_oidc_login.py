"""The OIDC authorization-code login (PKCE) against a loopback fake issuer.

The fake issuer (`http.server` on 127.0.0.1, port 0) serves its discovery document, its key
set, an authorization endpoint that answers 302 back to the redirect URI with a code (as an
issuer does once its user has logged in) and a token endpoint that checks the code (once),
the PKCE verifier against the S256 challenge, the redirect URI and the client's
authentication, and answers an ID token signed with its RSA key carrying the login's nonce.
The browser is the TestClient: it follows the 303 to the issuer by reading its Location,
then calls the callback with what the issuer answered. Knobs on the fake make it refuse, or
sign a token that must not count (another nonce, expired).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http import server
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from drills.service import audit, auth, oidc_login, sessions
from drills.web import deps
from drills.web.pages import oidc as oidc_page
from tests.api import test_oidc
from tests.web import html_tree
from tests.web.conftest import Web, WebFor

CLIENT_ID = "stormdrill-web"
CLIENT_SECRET = "s3cret: with/odd chars"
AUDIENCE = "stormdrill-api"


@dataclasses.dataclass
class Grant:
    challenge: str
    method: str
    redirect_uri: str
    client_id: str
    nonce: str


@dataclasses.dataclass
class FakeIdp:
    """The issuer's state and knobs (the handler reads them on every request)."""

    url: str = ""
    key: rsa.RSAPrivateKey = dataclasses.field(default_factory=test_oidc._rsa_key)
    client_secret: str | None = None
    groups: list[str] = dataclasses.field(default_factory=lambda: ["payments-oncall"])
    refuse: str | None = None
    """Answer the authorization request with `error=<this>`."""
    signer: rsa.RSAPrivateKey | None = None
    """Sign with this key (not the published one) under the published key id."""
    nonce: str | None = None
    """Sign this nonce instead of the login's."""
    lifetime_s: int = 600
    codes: dict[str, Grant] = dataclasses.field(default_factory=dict)
    exchanges: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": grant.client_id,
            "sub": "u-42",
            "preferred_username": "alice",
            "groups": self.groups,
            "nonce": self.nonce or grant.nonce,
            "iat": now - 5,
            "exp": now + self.lifetime_s,
        }
        return jwt.encode(claims, self.signer or self.key, "RS256", headers={"kid": "k1"})

    def authorize(self, query: dict[str, str]) -> str:
        """Where the issuer sends the browser back (its Location)."""
        back = query["redirect_uri"]
        if self.refuse is not None:
            answer = {
                "error": self.refuse,
                "error_description": "the user said no",
                "state": query["state"],
            }
            return f"{back}?{urllib.parse.urlencode(answer)}"
        code = secrets.token_urlsafe(16)
        self.codes[code] = Grant(
            challenge=query["code_challenge"],
            method=query["code_challenge_method"],
            redirect_uri=back,
            client_id=query["client_id"],
            nonce=query["nonce"],
        )
        return f"{back}?{urllib.parse.urlencode({'code': code, 'state': query['state']})}"

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.exchanges.append(dict(form, authorization=authorization or ""))
        if self.client_secret is not None:
            expected = base64.b64encode(
                (
                    urllib.parse.quote(CLIENT_ID, safe="")
                    + ":"
                    + urllib.parse.quote(self.client_secret, safe="")
                ).encode()
            ).decode()
            if authorization != f"Basic {expected}":
                return 401, {"error": "invalid_client"}
        elif authorization is not None or form.get("client_id") != CLIENT_ID:
            return 401, {"error": "invalid_client"}
        grant = self.codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if (
            grant.method != "S256"
            or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge
        ):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, {
            "access_token": "opaque",
            "token_type": "Bearer",
            "id_token": self.id_token(grant),
        }


@pytest.fixture
def idp() -> Iterator[FakeIdp]:
    state = FakeIdp()

    class Handler(server.BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any], location: str | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if parts.path == "/.well-known/openid-configuration":
                self._send(
                    200,
                    {
                        "issuer": state.url,
                        "authorization_endpoint": f"{state.url}/authorize",
                        "token_endpoint": f"{state.url}/token",
                        "jwks_uri": f"{state.url}/jwks",
                    },
                )
            elif parts.path == "/jwks":
                self._send(200, {"keys": [test_oidc._jwk(state.key, "k1")]})
            elif parts.path == "/authorize":
                query = dict(urllib.parse.parse_qsl(parts.query))
                self._send(302, {}, location=state.authorize(query))
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            status, body = state.token(form, self.headers.get("Authorization"))
            self._send(status, body)

        def log_message(self, *_args: object) -> None:
            pass

    httpd = server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _settings(idp: FakeIdp, **overrides: Any) -> dict[str, Any]:
    return {
        "oidc_issuer": idp.url,
        "oidc_audience": AUDIENCE,
        "oidc_jwks_url": f"{idp.url}/jwks",
        "oidc_group_roles": test_oidc.GROUP_ROLES,
        "oidc_client_id": CLIENT_ID,
        **overrides,
    }


@pytest.fixture
def sso(web_for: WebFor, idp: FakeIdp) -> Web:
    return web_for(**_settings(idp))


def _to_idp(web: Web, next_: str = "/runs") -> str:
    """Start the login; the issuer's authorization URL the page sent the browser to."""
    answer = web.client.get("/login/oidc", params={"next": next_})
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"].lower()
    assert oidc_page.STATE_COOKIE in cookie
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/login/oidc" in cookie
    location: str = answer.headers["location"]
    return location


def _continued_to(answer: httpx.Response) -> str:
    """Where the page after the callback sends the browser (its meta refresh and link): a
    200 page, not a 303, so the SameSite=Strict cookie goes with the next request."""
    assert answer.status_code == 200, answer.text
    found = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', answer.text)
    link = re.search(r'<a id="continue" href="([^"]+)">', answer.text)
    assert found and link and found.group(1) == link.group(1), answer.text
    return html.unescape(found.group(1))


def _at_idp(location: str) -> str:
    """The browser at the issuer: the callback path (and query) the issuer sends it back to."""
    answer = httpx.get(location, follow_redirects=False)
    assert answer.status_code == 302
    back = urllib.parse.urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "http://testserver/login/oidc/callback"
    return f"{back.path}?{back.query}"


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def _logins(web: Web) -> list[audit.Entry]:
    found = audit.entries(web.store, where=audit.EntryFilter(action="session.login"))
    return sorted(found, key=lambda e: (e.at, e.id))


def _error(answer: httpx.Response) -> str:
    return html_tree.parse(answer.text).one("p", id="login-error").text()


def test_the_full_login_ends_logged_in_with_the_mapped_role(sso: Web, idp: FakeIdp) -> None:
    location = _to_idp(sso, "/runs?state=running")
    sent = _query(location)
    assert location.startswith(f"{idp.url}/authorize?")
    assert sent["response_type"] == "code" and sent["client_id"] == CLIENT_ID
    assert sent["redirect_uri"] == "http://testserver/login/oidc/callback"
    assert sent["scope"].split() == ["openid", "profile", "email"]
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43

    answer = sso.client.get(_at_idp(location))

    assert _continued_to(answer) == "/runs?state=running"
    exchange = idp.exchanges[0]
    assert exchange["client_id"] == CLIENT_ID and exchange["authorization"] == ""  # PKCE only
    assert sso.client.cookies.get(oidc_page.STATE_COOKIE) is None  # the state cookie is gone
    session = sessions.resolve(sso.store, sso.client.cookies[deps.COOKIE])
    assert session.principal.name == "u-42" and session.principal.kind == "oidc"
    assert session.principal.display_name == "alice"
    [grant] = session.principal.effective_grants()
    assert grant.role is auth.Role.OPERATOR and grant.teams == frozenset(
        {"group:default/team-payments"}
    )
    page = sso.client.get("/runs")
    assert page.status_code == 200
    [entry] = _logins(sso)
    assert entry.status == 200 and entry.principal == "u-42" and entry.principal_kind == "oidc"


def test_a_confidential_client_authenticates_with_client_secret_basic(
    web_for: WebFor, idp: FakeIdp
) -> None:
    idp.client_secret = CLIENT_SECRET
    web = web_for(**_settings(idp, oidc_client_secret=CLIENT_SECRET))

    answer = web.client.get(_at_idp(_to_idp(web)))

    assert _continued_to(answer) == "/runs"
    assert idp.exchanges[0]["authorization"].startswith("Basic ")
    assert "client_id" not in idp.exchanges[0]


def test_a_wrong_state_is_refused_and_leaves_the_pending_login_alone(sso: Web) -> None:
    callback = _at_idp(_to_idp(sso))
    params = _query(callback)

    forged = sso.client.get(
        "/login/oidc/callback", params={"code": params["code"], "state": "forged-state"}
    )

    assert forged.status_code == 401
    assert "was not started in this browser" in _error(forged)
    assert deps.COOKIE not in sso.client.cookies
    kept = sessions.take_pending(sso.store, _query(callback)["state"])  # not consumed
    assert kept.next == "/runs"
    # the state cookie was cleared with the refusal: the browser starts again and succeeds
    again = sso.client.get(_at_idp(_to_idp(sso)))
    assert _continued_to(again) == "/runs"
    assert [e.status for e in _logins(sso)] == [401, 200]


def test_a_callback_from_another_browser_is_refused(sso: Web) -> None:
    callback = _at_idp(_to_idp(sso))
    sso.client.cookies.clear()  # the victim's browser: no state cookie of this login

    answer = sso.client.get(callback)

    assert answer.status_code == 401
    assert "was not started in this browser" in _error(answer)


def test_a_replayed_state_is_refused(sso: Web) -> None:
    callback = _at_idp(_to_idp(sso))
    state = _query(callback)["state"]
    assert _continued_to(sso.client.get(callback)) == "/runs"
    sso.client.cookies.clear()
    sso.client.cookies.set(oidc_page.STATE_COOKIE, state)

    replayed = sso.client.get(callback)

    assert replayed.status_code == 401
    assert "unknown or was used already" in _error(replayed)
    assert deps.COOKIE not in sso.client.cookies
    assert [e.status for e in _logins(sso)] == [200, 401]


def test_an_issuer_error_shows_the_login_page_with_the_reason(sso: Web, idp: FakeIdp) -> None:
    idp.refuse = "access_denied"

    answer = sso.client.get(_at_idp(_to_idp(sso, "/audit")))

    assert answer.status_code == 401
    reason = _error(answer)
    assert "access_denied" in reason and "the user said no" in reason
    form = html_tree.parse(answer.text).one("form", cls="login")
    assert form.fields()["next"] == "/audit"  # the form keeps where the user was going
    [entry] = _logins(sso)
    assert entry.status == 401 and "access_denied" in entry.detail
    assert idp.exchanges == []


@pytest.mark.parametrize(
    ("knob", "says"),
    [
        ({"nonce": "someone-else-s"}, "nonce is not this login's"),
        ({"lifetime_s": -3600}, "has expired"),
        ({"challenge": "x" * 43}, "PKCE verification failed"),
        ({"signer": test_oidc._rsa_key()}, "signature does not verify"),
    ],
)
def test_an_id_token_or_exchange_that_does_not_check_out_is_refused(
    sso: Web, idp: FakeIdp, knob: dict[str, Any], says: str
) -> None:
    location = _to_idp(sso)
    callback = _at_idp(location)
    for name, value in knob.items():  # the issuer misbehaves from the token exchange on
        if name == "challenge":  # the code was granted for another PKCE challenge
            idp.codes[_query(callback)["code"]].challenge = value
        else:
            setattr(idp, name, value)

    answer = sso.client.get(callback)

    assert answer.status_code == 401
    assert says in _error(answer)
    assert deps.COOKIE not in sso.client.cookies
    assert [e.status for e in _logins(sso)] == [401]


def test_a_second_login_reuses_the_discovery_and_the_cached_keys(sso: Web) -> None:
    assert _continued_to(sso.client.get(_at_idp(_to_idp(sso)))) == "/runs"
    sso.client.cookies.clear()
    assert _continued_to(sso.client.get(_at_idp(_to_idp(sso)))) == "/runs"
    client: oidc_login.Client = sso.client.app.state.oidc_login  # type: ignore[attr-defined]
    assert client.verifier.fetches == 1


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
def test_next_must_stay_on_this_server(sso: Web, target: str) -> None:
    answer = sso.client.get(_at_idp(_to_idp(sso, target)))
    assert _continued_to(answer) == "/"


def test_the_login_form_offers_the_oidc_login_when_configured(sso: Web, web: Web) -> None:
    offered = html_tree.parse(sso.client.get("/login", params={"next": "/runs?x=1"}).text)
    link = offered.one("a", id="oidc-login")
    assert link.text() == "Log in with your organisation (OIDC)"
    assert _query(link.attrs["href"]) == {"next": "/runs?x=1"}
    assert urllib.parse.urlsplit(link.attrs["href"]).path == "/login/oidc"
    plain = html_tree.parse(web.client.get("/login").text)
    assert plain.all("a", id="oidc-login") == []


def test_without_oidc_configured_the_oidc_login_is_a_clear_404(web: Web) -> None:
    answer = web.client.get("/login/oidc", params={"next": "/"})
    assert answer.status_code == 404
    assert "STORMDRILL_OIDC_CLIENT_ID" in answer.text
    assert web.client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_a_client_id_without_the_issuer_settings_says_which_are_missing(web_for: WebFor) -> None:
    web = web_for(oidc_client_id=CLIENT_ID)
    answer = web.client.get("/login/oidc")
    assert answer.status_code == 404
    assert "STORMDRILL_OIDC_ISSUER" in answer.text
    assert html_tree.parse(web.client.get("/login").text).all("a", id="oidc-login") == []


def test_the_redirect_uri_is_under_the_public_url_when_set(web_for: WebFor, idp: FakeIdp) -> None:
    web = web_for(**_settings(idp, public_url="https://drills.example.com/"))
    sent = _query(_to_idp(web))
    assert sent["redirect_uri"] == "https://drills.example.com/login/oidc/callback"


def test_an_unreachable_issuer_answers_the_form_with_a_502(web_for: WebFor, idp: FakeIdp) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    web = web_for(**_settings(idp, oidc_issuer=nowhere))
    answer = web.client.get("/login/oidc")
    assert answer.status_code == 502
    assert "discovery document" in _error(answer)


def test_a_pending_login_never_counts_as_a_session(sso: Web) -> None:
    state = _query(_to_idp(sso))["state"]
    for cookie in (state, sessions.PENDING_PREFIX + state):
        with pytest.raises(auth.Unauthenticated, match="logged out"):
            sessions.resolve(sso.store, cookie)
    sso.client.cookies.set(deps.COOKIE, sessions.PENDING_PREFIX + state)
    answer = sso.client.get("/runs")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
