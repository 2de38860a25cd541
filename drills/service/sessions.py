"""Web sessions: a browser logs in with a token once, then carries a session cookie.

`login` checks the pasted token exactly as the API checks a bearer token
(`auth.authenticate`: a Stormdrill token against the store, anything else as an OIDC JWT
when OIDC is configured) and makes a session: a random secret (the cookie's value, 256
bits) and a CSRF token the pages put in every form. The store keeps the secret's SHA-256
digest only (`drills.tables_web`). `resolve` answers the principal of a cookie; it refuses
a session that expired, was ended by `logout`, or whose Stormdrill token was revoked or
expired since (checked on every request, so revoking a token logs its browsers out). A
session lasts `ttl` (12 h by default), and never longer than an OIDC token's `exp`.
`check_csrf` compares a form's token with the session's in constant time.

`start` makes a session for a principal already authenticated some other way (the OIDC
authorization-code login, `drills.service.oidc_login`). That login's pending state (PKCE
verifier, nonce, `next`) waits between the redirect and the callback in this same table, as
a row marked `PENDING` whose digest is of `PENDING_PREFIX + state`: `save_pending` writes it,
`take_pending` deletes and answers it (once: a replayed state finds nothing). `resolve`
never accepts such a row as a session, whatever cookie names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from drills import tables_web
from drills.service import auth
from drills.service import tokens as tokens_mod
from orchestrator import journal

DEFAULT_TTL = timedelta(hours=12)
SECRET_BYTES = 32
_T = tables_web.web_sessions_table
PENDING = "pendingOidcLogin"
"""The key of a pending OIDC login's `principal` JSON (the row's marker)."""
PENDING_PREFIX = "oidc-pending:"


@dataclasses.dataclass(frozen=True)
class Session:
    """A logged-in browser: who, its CSRF token, and until when."""

    principal: auth.Principal
    csrf: str = dataclasses.field(repr=False)
    expires_at: datetime


@dataclasses.dataclass(frozen=True)
class Issued:
    """A session just made, with its secret (the cookie's value, stored nowhere)."""

    session: Session
    secret: str = dataclasses.field(repr=False)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@contextmanager
def _writing(store: journal.Journal) -> Iterator[Connection]:
    with store._writing() as conn:
        yield conn


@contextmanager
def _reading(store: journal.Journal) -> Iterator[Connection]:
    with store._reading() as conn:
        yield conn


def login(
    store: journal.Journal,
    config: auth.AuthSettings,
    token: str,
    *,
    oidc: auth.OidcVerifier | None = None,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
) -> Issued:
    """A new session for whoever `token` names; `auth.Unauthenticated` (with the API's
    reason: unknown, revoked, expired, not a JWT of the issuer) otherwise."""
    moment = now or datetime.now(UTC)
    pasted = token.strip()
    if not pasted:
        raise auth.Unauthenticated(
            "paste a token: an admin creates one with `stormdrill tokens create --role viewer`"
        )
    principal = auth.authenticate(
        store, config, authorization=f"Bearer {pasted}", oidc=oidc, now=moment
    )
    not_after = None if pasted.startswith(tokens_mod.PREFIX) else _jwt_expiry(pasted)
    return start(store, principal, ttl=ttl, not_after=not_after, now=moment)


def start(
    store: journal.Journal,
    principal: auth.Principal,
    *,
    ttl: timedelta = DEFAULT_TTL,
    not_after: datetime | None = None,
    now: datetime | None = None,
) -> Issued:
    """A new session for `principal` (authenticated already), lasting `ttl` but never past
    `not_after` (an OIDC token's `exp`)."""
    moment = now or datetime.now(UTC)
    expires_at = moment + ttl
    if not_after is not None:
        expires_at = min(expires_at, not_after)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    csrf = secrets.token_urlsafe(SECRET_BYTES)
    with _writing(store) as conn:
        conn.execute(
            _T.delete().where(sa.or_(_T.c.expires_at <= moment, _T.c.revoked_at.is_not(None)))
        )
        conn.execute(
            _T.insert().values(
                digest=digest(secret),
                principal=_principal_json(principal),
                token_id=principal.token_id,
                csrf=csrf,
                created_at=moment,
                expires_at=expires_at,
                revoked_at=None,
            )
        )
    return Issued(Session(principal=principal, csrf=csrf, expires_at=expires_at), secret)


def resolve(store: journal.Journal, secret: str, *, now: datetime | None = None) -> Session:
    """The session a cookie names; `auth.Unauthenticated` saying why it no longer counts."""
    moment = now or datetime.now(UTC)
    with _reading(store) as conn:
        row = conn.execute(_T.select().where(_T.c.digest == digest(secret))).first()
    if row is None or row.revoked_at is not None:
        raise auth.Unauthenticated("you are logged out: log in with your token again")
    if row.expires_at <= moment:
        raise auth.Unauthenticated(
            f"your session ended at {row.expires_at:%Y-%m-%d %H:%M} UTC: log in again"
        )
    if PENDING in row.principal:
        raise auth.Unauthenticated("you are logged out: log in with your token again")
    principal = _principal_from(row.principal)
    if row.token_id is not None:
        try:
            token = tokens_mod.get(store, row.token_id)
        except tokens_mod.UnknownToken:
            raise auth.Unauthenticated("the token of this session is gone: log in again") from None
        status = token.status(moment)
        if status is not tokens_mod.TokenStatus.ACTIVE:
            raise auth.Unauthenticated(
                f"the token of this session ({token.prefix}…, {token.name}) is"
                f" {status.value}: log in with another one"
            )
    return Session(principal=principal, csrf=row.csrf, expires_at=row.expires_at)


def logout(store: journal.Journal, secret: str, *, now: datetime | None = None) -> bool:
    """End the session a cookie names; whether there was one still open."""
    moment = now or datetime.now(UTC)
    with _writing(store) as conn:
        ended = conn.execute(
            _T.update()
            .where(_T.c.digest == digest(secret), _T.c.revoked_at.is_(None))
            .values(revoked_at=moment)
        )
    return bool(ended.rowcount)


@dataclasses.dataclass(frozen=True)
class Pending:
    """An OIDC login between the redirect to the issuer and its callback."""

    state: str = dataclasses.field(repr=False)
    code_verifier: str = dataclasses.field(repr=False)
    nonce: str = dataclasses.field(repr=False)
    next: str
    redirect_uri: str
    expires_at: datetime


def save_pending(store: journal.Journal, pending: Pending, *, now: datetime | None = None) -> None:
    """Keep `pending` until its callback (or `expires_at`); expired ones are swept here."""
    moment = now or datetime.now(UTC)
    with _writing(store) as conn:
        conn.execute(_T.delete().where(_T.c.expires_at <= moment))
        conn.execute(
            _T.insert().values(
                digest=digest(PENDING_PREFIX + pending.state),
                principal={
                    PENDING: {
                        "codeVerifier": pending.code_verifier,
                        "nonce": pending.nonce,
                        "next": pending.next,
                        "redirectUri": pending.redirect_uri,
                    }
                },
                token_id=None,
                csrf="-",
                created_at=moment,
                expires_at=pending.expires_at,
                revoked_at=None,
            )
        )


def take_pending(store: journal.Journal, state: str, *, now: datetime | None = None) -> Pending:
    """The pending login of `state`, removed (a state counts once); `auth.Unauthenticated`
    when there is none (unknown, used already) or it expired."""
    moment = now or datetime.now(UTC)
    key = digest(PENDING_PREFIX + state)
    with _writing(store) as conn:
        row = conn.execute(_T.select().where(_T.c.digest == key)).first()
        if row is not None and not conn.execute(_T.delete().where(_T.c.digest == key)).rowcount:
            row = None  # another callback with the same state took it first
    data = None if row is None else row.principal.get(PENDING)
    if row is None or not isinstance(data, dict):
        raise auth.Unauthenticated(
            "this login is unknown or was used already: start the login again"
        )
    if row.expires_at <= moment:
        raise auth.Unauthenticated("this login took too long and expired: start the login again")
    return Pending(
        state=state,
        code_verifier=str(data["codeVerifier"]),
        nonce=str(data["nonce"]),
        next=str(data["next"]),
        redirect_uri=str(data["redirectUri"]),
        expires_at=row.expires_at,
    )


def check_csrf(session: Session, presented: str | None) -> bool:
    """Whether a form's CSRF token is the session's (constant time)."""
    if not presented:
        return False
    return hmac.compare_digest(session.csrf.encode(), presented.encode())


def _jwt_expiry(token: str) -> datetime | None:
    """The `exp` of a JWT that `auth.authenticate` has already verified (else None)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None


def _principal_json(principal: auth.Principal) -> dict[str, Any]:
    return {
        "name": principal.name,
        "kind": principal.kind,
        "tokenId": principal.token_id,
        "displayName": principal.display_name,
        "grants": [
            {"role": g.role.value, "teams": sorted(g.teams), "services": sorted(g.services)}
            for g in principal.effective_grants()
        ],
    }


def _principal_from(data: Mapping[str, Any]) -> auth.Principal:
    grants = [
        auth.Grant(
            role=auth.Role(g["role"]),
            teams=frozenset(g.get("teams", ())),
            services=frozenset(g.get("services", ())),
        )
        for g in data.get("grants", ())
    ]
    return auth.Principal.from_grants(
        str(data["name"]),
        grants,
        kind=str(data.get("kind", "token")),
        token_id=data.get("tokenId"),
        display_name=data.get("displayName"),
    )
