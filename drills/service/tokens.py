"""Stormdrill API tokens: create, list, revoke, and check one a caller presents.

A token is `sdt_` followed by 43 random URL-safe characters (256 bits). The store keeps its
SHA-256 digest and its first `PREFIX_LENGTH` characters (to find it and to show it), never
the token itself: `create` is the only moment it exists in full, and `Issued.secret` the
only place it is returned. A token holds one role, optionally scoped to teams or CMDB
services (`auth.Grant`), may expire, and is revoked by setting `revoked_at` (rows are
never deleted). Checking a token compares digests in constant time and records its last
use (at most once per `LAST_USED_RESOLUTION`, so reads do not turn into writes).

`PrincipalCache` (one per server, on the app) keeps the principal of a token checked in the
last `PRINCIPAL_CACHE_TTL` (2 s), keyed by the token's digest, so a burst of requests does
not read the store for each one. Its invariants: an entry is only made from a check against
the store that passed; expiry is checked on every request against the cached `expires_at`;
a revocation through the same cache (`forget`, which the API's revoke routes call) holds at
once, and one made elsewhere (the CLI, another replica) within the TTL; at most
`PrincipalCache.max_entries` tokens are kept (refused tokens never are).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NewType

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from drills import tables_auth
from drills.service import auth, views
from orchestrator import journal
from scenarios import errors, quantities

TokenId = NewType("TokenId", str)

PREFIX = "sdt_"
PREFIX_LENGTH = len(PREFIX) + 8
"""How much of a token the store keeps and shows: `sdt_` and 8 random characters."""
SECRET_BYTES = 32
LAST_USED_RESOLUTION = timedelta(minutes=1)
PRINCIPAL_CACHE_TTL = timedelta(seconds=2)
"""How long `PrincipalCache` trusts a check against the store: the longest a token revoked
by another process (the CLI, another replica) may still be accepted by this one."""

_T = tables_auth.tokens_table


class UnknownToken(errors.StormdrillError):
    """No token has that id or prefix (HTTP 404)."""


class TokenInvalid(errors.StormdrillError):
    """A token cannot be created as asked (a bad expiry, team or service; HTTP 422)."""


class TokenStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclasses.dataclass(frozen=True)
class Token:
    """A token as the store knows it (never its secret)."""

    id: TokenId
    name: str
    grant: auth.Grant
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def status(self, now: datetime) -> TokenStatus:
        if self.revoked_at is not None:
            return TokenStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE

    def principal(self) -> auth.Principal:
        return auth.Principal.from_grants(
            self.name, [self.grant], kind="token", token_id=str(self.id)
        )


@dataclasses.dataclass(frozen=True)
class Issued:
    """A token just created, with its secret (shown once, stored nowhere)."""

    token: Token
    secret: str = dataclasses.field(repr=False)


def parse_expires(text: str | None) -> timedelta | None:
    """`90d`, `12h`, `1h30m` → that span; None or `never` → no expiry. `TokenInvalid` else."""
    if text is None or text.strip().lower() in ("", "never"):
        return None
    try:
        return quantities.Duration.parse(text).timedelta
    except ValueError as exc:
        raise TokenInvalid(f"--expires {text!r}: {exc} (e.g. 90d, 12h; or 'never')") from None


def digest(secret: str) -> str:
    """The SHA-256 digest (hex) the store keeps of a token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@contextmanager
def _writing(store: journal.Journal) -> Iterator[Connection]:
    # The journal's own write transaction (BEGIN IMMEDIATE on SQLite); it has no public one.
    with store._writing() as conn:
        yield conn


@contextmanager
def _reading(store: journal.Journal) -> Iterator[Connection]:
    with store._reading() as conn:
        yield conn


def create(
    store: journal.Journal,
    *,
    role: auth.Role,
    created_by: str,
    name: str | None = None,
    expires_in: timedelta | None = None,
    teams: Iterable[str] = (),
    services: Iterable[str] = (),
    now: datetime | None = None,
) -> Issued:
    """A new token for `role` (scoped to `teams`/`services` if given), valid for `expires_in`.

    Raises `TokenInvalid` for an unreadable team or service ref or a non-positive expiry.
    """
    moment = now or datetime.now(UTC)
    try:
        grant = auth.Grant.scoped_to(role, teams=teams, services=services)
    except ValueError as exc:
        raise TokenInvalid(str(exc)) from None
    if expires_in is not None and expires_in <= timedelta(0):
        raise TokenInvalid(f"the expiry must be in the future, got {expires_in}")
    token_id = TokenId(secrets.token_hex(6))
    secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    token = Token(
        id=token_id,
        name=(name or "").strip() or f"token-{token_id}",
        grant=grant,
        prefix=secret[:PREFIX_LENGTH],
        created_at=moment,
        created_by=created_by,
        expires_at=moment + expires_in if expires_in is not None else None,
    )
    with _writing(store) as conn:
        conn.execute(
            _T.insert().values(
                id=token.id,
                name=token.name,
                role=grant.role.value,
                teams=sorted(grant.teams),
                services=sorted(grant.services),
                prefix=token.prefix,
                digest=digest(secret),
                created_at=token.created_at,
                created_by=token.created_by,
                expires_at=token.expires_at,
            )
        )
    return Issued(token=token, secret=secret)


def list_tokens(store: journal.Journal, *, include_inactive: bool = True) -> list[Token]:
    """Every token, newest first (without revoked and expired ones unless asked)."""
    with _reading(store) as conn:
        rows = conn.execute(_T.select().order_by(_T.c.created_at.desc(), _T.c.id)).all()
    found = [_token(row) for row in rows]
    if include_inactive:
        return found
    now = datetime.now(UTC)
    return [t for t in found if t.status(now) is TokenStatus.ACTIVE]


def get(store: journal.Journal, ref: str) -> Token:
    """The token whose id or prefix (`sdt_AbCdEfGh`) is `ref`; `UnknownToken` otherwise."""
    key = ref.strip()
    column = _T.c.prefix if key.startswith(PREFIX) else _T.c.id
    with _reading(store) as conn:
        rows = conn.execute(_T.select().where(column == key[:PREFIX_LENGTH])).all()
    if len(rows) != 1:
        problem = "no token" if not rows else f"{len(rows)} tokens"
        raise UnknownToken(
            f"{problem} with id or prefix {ref!r}"
            " (`stormdrill tokens list` or GET /api/v1/tokens shows ids and prefixes)"
        )
    return _token(rows[0])


def revoke(store: journal.Journal, ref: str, *, by: str, now: datetime | None = None) -> Token:
    """Revoke the token `ref` (an id or a prefix) from now on; revoking twice keeps the first."""
    token = get(store, ref)
    if token.revoked_at is not None:
        return token
    moment = now or datetime.now(UTC)
    with _writing(store) as conn:
        conn.execute(
            _T.update()
            .where(_T.c.id == token.id, _T.c.revoked_at.is_(None))
            .values(revoked_at=moment, revoked_by=by)
        )
    return get(store, token.id)


@dataclasses.dataclass(frozen=True)
class _Checked:
    token: Token
    principal: auth.Principal
    checked_at: float
    """`time.monotonic()` of the check against the store."""


class PrincipalCache:
    """Principals of the tokens the store vouched for in the last `ttl` (see the module).

    Thread-safe. `principal` answers from memory or returns None (then `authenticate`, with
    this cache, checks against the store and keeps the answer if it passed).
    """

    def __init__(
        self,
        *,
        ttl: timedelta = PRINCIPAL_CACHE_TTL,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl.total_seconds()
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Checked] = {}

    def principal(self, secret: str, *, now: datetime | None = None) -> auth.Principal | None:
        """The principal of `secret` if it passed a check within the TTL and has not expired
        since; None otherwise (ask the store: `authenticate(..., cache=self)`)."""
        if self._ttl_s <= 0 or not secret.startswith(PREFIX):
            return None
        key = digest(secret)
        with self._lock:
            found = self._entries.get(key)
        if found is None or self._clock() - found.checked_at >= self._ttl_s:
            return None
        if found.token.status(now or datetime.now(UTC)) is not TokenStatus.ACTIVE:
            return None  # expired meanwhile: the store's check words the refusal
        return found.principal

    def keep(self, presented: str, token: Token, principal: auth.Principal) -> None:
        """Remember what the store said of the token whose digest is `presented`."""
        if self._ttl_s <= 0:
            return
        checked = _Checked(token=token, principal=principal, checked_at=self._clock())
        with self._lock:
            self._entries.pop(presented, None)
            self._entries[presented] = checked
            while len(self._entries) > self._max:
                del self._entries[next(iter(self._entries))]  # the oldest check

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def forget(self, token_id: str) -> None:
        """Drop the token `token_id` (it was revoked): its next request asks the store."""
        with self._lock:
            for key in [k for k, v in self._entries.items() if v.token.id == token_id]:
                del self._entries[key]


def authenticate(
    store: journal.Journal,
    secret: str,
    *,
    now: datetime | None = None,
    cache: PrincipalCache | None = None,
) -> auth.Principal:
    """The principal of an active token; `auth.Unauthenticated` for any other string.

    With `cache`, a token the store vouched for within its TTL is not looked up again, and
    one the store vouches for now is kept there.
    """
    moment = now or datetime.now(UTC)
    if cache is not None and (known := cache.principal(secret, now=moment)) is not None:
        return known
    if not secret.startswith(PREFIX) or len(secret) < PREFIX_LENGTH + 16:
        raise auth.Unauthenticated("the bearer token is not a Stormdrill token (sdt_…)")
    presented = digest(secret)
    with _reading(store) as conn:
        rows = conn.execute(_T.select().where(_T.c.prefix == secret[:PREFIX_LENGTH])).all()
    row = next((r for r in rows if hmac.compare_digest(r.digest, presented)), None)
    if row is None:
        raise auth.Unauthenticated(
            f"token {secret[:PREFIX_LENGTH]}… is not one this server issued"
            " (ask an admin for one: stormdrill tokens create)"
        )
    token = _token(row)
    status = token.status(moment)
    if status is TokenStatus.REVOKED:
        raise auth.Unauthenticated(
            f"token {token.prefix}… ({token.name}) was revoked at"
            f" {token.revoked_at:%Y-%m-%d %H:%M} UTC by {token.revoked_by}: ask an admin for"
            " a new one"
        )
    if status is TokenStatus.EXPIRED:
        raise auth.Unauthenticated(
            f"token {token.prefix}… ({token.name}) expired at"
            f" {token.expires_at:%Y-%m-%d %H:%M} UTC: ask an admin for a new one"
        )
    if token.last_used_at is None or moment - token.last_used_at >= LAST_USED_RESOLUTION:
        _touch(store, token.id, moment)
    principal = token.principal()
    if cache is not None:
        cache.keep(presented, token, principal)
    return principal


def _touch(store: journal.Journal, token_id: TokenId, moment: datetime) -> None:
    with _writing(store) as conn:
        conn.execute(
            _T.update()
            .where(
                _T.c.id == token_id,
                sa.or_(_T.c.last_used_at.is_(None), _T.c.last_used_at < moment),
            )
            .values(last_used_at=moment)
        )


def _token(row: Row[Any]) -> Token:
    return Token(
        id=TokenId(row.id),
        name=row.name,
        grant=auth.Grant(
            role=auth.Role(row.role),
            teams=frozenset(row.teams or ()),
            services=frozenset(row.services or ()),
        ),
        prefix=row.prefix,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


# ---- views (the JSON of `tokens list --format json` and of the API) ---------------------


class TokenView(views.View):
    """A token as listed: never its secret."""

    id: str
    name: str
    role: auth.Role
    teams: list[str]
    services: list[str]
    prefix: str
    """The first characters of the token, to tell which one a person holds."""
    status: TokenStatus
    created_at: views.IsoTime
    created_by: str
    expires_at: views.IsoTime | None = None
    last_used_at: views.IsoTime | None = None
    revoked_at: views.IsoTime | None = None
    revoked_by: str | None = None

    @classmethod
    def from_token(cls, token: Token, *, now: datetime | None = None) -> TokenView:
        return cls(
            id=token.id,
            name=token.name,
            role=token.grant.role,
            teams=sorted(token.grant.teams),
            services=sorted(token.grant.services),
            prefix=token.prefix,
            status=token.status(now or datetime.now(UTC)),
            created_at=token.created_at,
            created_by=token.created_by,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            revoked_by=token.revoked_by,
        )


class TokenListView(views.View):
    tokens: list[TokenView]

    @classmethod
    def from_tokens(cls, found: Iterable[Token], *, now: datetime | None = None) -> TokenListView:
        moment = now or datetime.now(UTC)
        return cls(tokens=[TokenView.from_token(t, now=moment) for t in found])


class IssuedTokenView(TokenView):
    """A token just created: the only view that holds its secret (shown once)."""

    token: str

    @classmethod
    def from_issued(cls, issued: Issued) -> IssuedTokenView:
        listed = TokenView.from_token(issued.token)
        fields = {name: getattr(listed, name) for name in TokenView.model_fields}
        return cls(**fields, token=issued.secret)
