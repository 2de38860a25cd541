"""The web pages' OIDC login: the authorization-code flow with PKCE (S256).

`Client.begin` makes a pending login — a random `state`, a `nonce` and a PKCE
`code_verifier` (its S256 challenge goes to the issuer) — keeps it in the store
(`sessions.save_pending`: a marked row of `web_sessions`, so a callback on another replica
or worker finds it) and answers the issuer's authorization URL. `Client.finish` takes the
pending login back (once: a replayed state is refused), checks that the browser presenting
the callback is the one that started it (its state cookie), exchanges the code at the token
endpoint with httpx (`client_secret_basic` when a secret is set, else PKCE alone), verifies
the ID token with `auth.OidcVerifier` — the configured issuer and key set, with the client
id as audience, since an ID token is addressed to the client and not to the API's
`oidc_audience` — checks its nonce and makes the session (`sessions.start`, never past the
ID token's `exp`). Every refusal is `auth.Unauthenticated` naming what did not check out.

The endpoints come from the settings or, unset, from the issuer's discovery document
(`<issuer>/.well-known/openid-configuration`, fetched once per `Client`, its `issuer` must
be the configured one). Nothing here knows about HTTP requests of the pages.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
import jwt
import pydantic

from drills.service import auth, documents, sessions
from orchestrator import journal

PENDING_TTL = timedelta(minutes=10)
"""How long a login may stay at the issuer before its callback."""
TIMEOUT_S = 5.0
DISCOVERY_PATH = "/.well-known/openid-configuration"


class NotConfigured(documents.NotFound):
    """The OIDC login is not configured on this server (a 404 for `/login/oidc`)."""


class IssuerUnreachable(auth.Unauthenticated):
    """The issuer's discovery document or token endpoint did not answer usefully."""


class LoginSettings(Protocol):
    """What the login reads of the server's settings (`drills.api.config.ApiSettings`)."""

    @property
    def oidc_client_id(self) -> str | None: ...

    @property
    def oidc_client_secret(self) -> pydantic.SecretStr | None: ...

    @property
    def oidc_authorization_url(self) -> str | None: ...

    @property
    def oidc_token_url(self) -> str | None: ...

    @property
    def oidc_scopes(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class LoginConfig:
    """The OIDC client of the pages."""

    client_id: str
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    authorization_url: str | None = None
    token_url: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    timeout_s: float = TIMEOUT_S
    pending_ttl: timedelta = PENDING_TTL

    @classmethod
    def from_settings(cls, config: LoginSettings) -> LoginConfig | None:
        """The client `config` describes; None without `oidc_client_id`."""
        if not config.oidc_client_id:
            return None
        scopes = tuple(dict.fromkeys(("openid", *config.oidc_scopes.replace(",", " ").split())))
        secret = config.oidc_client_secret
        return cls(
            client_id=config.oidc_client_id,
            client_secret=secret.get_secret_value() if secret is not None else None,
            authorization_url=config.oidc_authorization_url,
            token_url=config.oidc_token_url,
            scopes=scopes,
        )


@dataclasses.dataclass(frozen=True)
class Endpoints:
    authorization_url: str
    token_url: str


@dataclasses.dataclass(frozen=True)
class Started:
    """A login sent to the issuer: where to send the browser, and its state (the cookie)."""

    url: str
    state: str = dataclasses.field(repr=False)
    expires_at: datetime


def code_challenge(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier` (RFC 7636: base64url of SHA-256, no padding)."""
    raw = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class Client:
    """One per app: the login's settings, the issuer's endpoints (cached) and the verifier of
    its ID tokens (keys cached). Thread-safe."""

    def __init__(
        self,
        config: LoginConfig,
        oidc: auth.OidcConfig,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.issuer = oidc.issuer
        self.verifier = auth.OidcVerifier(dataclasses.replace(oidc, audience=config.client_id))
        self._transport = transport
        self._lock = threading.Lock()
        self._endpoints: Endpoints | None = None

    @classmethod
    def from_settings(cls, config: LoginSettings, oidc: auth.OidcConfig | None) -> Client:
        """The client of `config`; `NotConfigured` naming the settings that are missing."""
        login = LoginConfig.from_settings(config)
        if login is None:
            raise NotConfigured(
                "the OIDC login is not configured on this server: set STORMDRILL_OIDC_CLIENT_ID"
                " (and the issuer settings), or log in with a token at /login"
            )
        if oidc is None:
            raise NotConfigured(
                "the OIDC login needs the issuer: set STORMDRILL_OIDC_ISSUER,"
                " STORMDRILL_OIDC_AUDIENCE and STORMDRILL_OIDC_JWKS_URL too"
            )
        return cls(login, oidc)

    def endpoints(self) -> Endpoints:
        """The authorization and token endpoints: the settings', else the discovery's."""
        with self._lock:
            if self._endpoints is None:
                self._endpoints = self._discover()
            return self._endpoints

    def begin(
        self,
        store: journal.Journal,
        *,
        redirect_uri: str,
        next_: str,
        now: datetime | None = None,
    ) -> Started:
        """A pending login, kept in the store; the issuer's URL to send the browser to."""
        moment = now or datetime.now(UTC)
        endpoints = self.endpoints()
        pending = sessions.Pending(
            state=secrets.token_urlsafe(sessions.SECRET_BYTES),
            code_verifier=secrets.token_urlsafe(48),
            nonce=secrets.token_urlsafe(sessions.SECRET_BYTES),
            next=next_,
            redirect_uri=redirect_uri,
            expires_at=moment + self.config.pending_ttl,
        )
        sessions.save_pending(store, pending, now=moment)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": code_challenge(pending.code_verifier),
                "code_challenge_method": "S256",
            }
        )
        base = endpoints.authorization_url
        url = f"{base}{'&' if '?' in base else '?'}{query}"
        return Started(url=url, state=pending.state, expires_at=pending.expires_at)

    def finish(
        self,
        store: journal.Journal,
        *,
        state: str,
        code: str,
        browser_state: str | None,
        ttl: timedelta = sessions.DEFAULT_TTL,
        now: datetime | None = None,
    ) -> tuple[sessions.Issued, sessions.Pending]:
        """The session of a callback, and the pending login it finished (for its `next`).

        `browser_state` is the state cookie of the browser presenting the callback: a
        callback whose state is not the one this browser started is refused and leaves the
        pending login alone (it may be someone else's)."""
        moment = now or datetime.now(UTC)
        if not state:
            raise auth.Unauthenticated(
                "the issuer's answer carries no state: start the login again"
            )
        if not browser_state or not hmac.compare_digest(browser_state.encode(), state.encode()):
            raise auth.Unauthenticated(
                "this login was not started in this browser (its state does not match):"
                " start the login again"
            )
        pending = sessions.take_pending(store, state, now=moment)
        if not code:
            raise auth.Unauthenticated("the issuer's answer carries no code: start the login again")
        id_token = self._exchange(code, pending)
        principal = self.verifier.verify(id_token)
        claims = jwt.decode(id_token, options={"verify_signature": False})
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), pending.nonce.encode()
        ):
            raise auth.Unauthenticated(
                "the ID token's nonce is not this login's (a replayed token?): start the login"
                " again"
            )
        exp = claims.get("exp")
        not_after = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
        issued = sessions.start(store, principal, ttl=ttl, not_after=not_after, now=moment)
        return issued, pending

    def _http(self, basic: httpx.BasicAuth | None = None) -> httpx.Client:
        return httpx.Client(timeout=self.config.timeout_s, transport=self._transport, auth=basic)

    def _discover(self) -> Endpoints:
        authorization_url = self.config.authorization_url
        token_url = self.config.token_url
        if authorization_url and token_url:
            return Endpoints(authorization_url=authorization_url, token_url=token_url)
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        try:
            with self._http() as http:
                answer = http.get(url, headers={"Accept": "application/json"})
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IssuerUnreachable(
                f"cannot read the issuer's discovery document {url}: {exc}; set"
                " STORMDRILL_OIDC_AUTHORIZATION_URL and STORMDRILL_OIDC_TOKEN_URL instead"
            ) from None
        if not isinstance(document, dict):
            raise IssuerUnreachable(f"{url}: the discovery document is not a JSON object")
        if document.get("issuer") != self.issuer:
            raise IssuerUnreachable(
                f"{url} names issuer {document.get('issuer')!r}, not the configured"
                f" STORMDRILL_OIDC_ISSUER {self.issuer!r}"
            )
        authorization_url = authorization_url or document.get("authorization_endpoint")
        token_url = token_url or document.get("token_endpoint")
        if not isinstance(authorization_url, str) or not isinstance(token_url, str):
            raise IssuerUnreachable(
                f"{url} names no authorization_endpoint or token_endpoint: set"
                " STORMDRILL_OIDC_AUTHORIZATION_URL and STORMDRILL_OIDC_TOKEN_URL"
            )
        return Endpoints(authorization_url=authorization_url, token_url=token_url)

    def _exchange(self, code: str, pending: sessions.Pending) -> str:
        """The ID token the token endpoint gives for `code`."""
        token_url = self.endpoints().token_url
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
        }
        basic: httpx.BasicAuth | None = None
        if self.config.client_secret is not None:
            basic = httpx.BasicAuth(
                urllib.parse.quote(self.config.client_id, safe=""),
                urllib.parse.quote(self.config.client_secret, safe=""),
            )
        else:
            form["client_id"] = self.config.client_id
        try:
            with self._http(basic) as http:
                answer = http.post(token_url, data=form, headers={"Accept": "application/json"})
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IssuerUnreachable(
                f"the issuer's token endpoint {token_url} did not answer: {exc}"
            ) from None
        if not isinstance(body, dict):
            raise IssuerUnreachable(f"{token_url}: the token answer is not a JSON object")
        if answer.status_code != 200 or "error" in body:
            reason = body.get("error", f"HTTP {answer.status_code}")
            detail = body.get("error_description")
            raise auth.Unauthenticated(
                f"the issuer refused the code: {reason}"
                + (f" ({detail})" if isinstance(detail, str) and detail else "")
                + ": start the login again"
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise auth.Unauthenticated(
                f"{token_url} answered no id_token: the client needs the `openid` scope"
            )
        return id_token
