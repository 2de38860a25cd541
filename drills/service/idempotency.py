"""Idempotency keys in the store: the first answer to each key, for every entry point.

A request that starts or changes something may carry a key (the API's `Idempotency-Key`
header, a page form's hidden `idempotency_key`). `claim` holds the key for the first
request (per principal, route and key: a row of `drills.tables_idempotency` without a
status) or raises `Replay` with the first request's answer once it was given; a repeat
while the first is still being answered is `KeyInFlight`, and the key on a different
request (`fingerprint`) is `KeyReused`. `Claim.complete` keeps the answer, `Claim.release`
forgets the key (a failed request may be retried with it). Rows older than `ttl_s` are
deleted when a key is claimed. The API's middleware is `drills.api.idempotency`; the
pages' is `drills.web.forms`.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from drills import tables_idempotency
from orchestrator import journal
from scenarios import errors

HEADER = "Idempotency-Key"
_T = tables_idempotency.idempotency_table
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class KeyInvalid(errors.StormdrillError):
    """An `Idempotency-Key` that is not 1-255 visible ASCII characters."""


class KeyReused(errors.StormdrillError):
    """The key was used before on a different request (another body or query)."""


class KeyInFlight(errors.StormdrillError):
    """The first request with this key is still being answered."""


class Replay(errors.StormdrillError):
    """Not a failure: answer with the stored response of the first request with this key."""

    def __init__(self, stored: Stored) -> None:
        self.stored = stored
        super().__init__("replay")


@dataclasses.dataclass(frozen=True)
class Stored:
    status: int
    body: bytes
    media_type: str | None
    location: str | None


@dataclasses.dataclass(frozen=True)
class Claim:
    """This request holds the key: `complete` keeps its answer, `release` forgets it."""

    store: journal.Journal
    principal: str
    route: str
    key: str

    def _where(self) -> sa.ColumnElement[bool]:
        return sa.and_(
            _T.c.principal == self.principal, _T.c.route == self.route, _T.c.key == self.key
        )

    def complete(
        self, *, status: int, body: bytes, media_type: str | None, location: str | None
    ) -> None:
        """Keep the answer (a 5xx is not kept: the key is released for a retry)."""
        if status >= 500:
            self.release()
            return
        with self.store.transaction(write=True) as conn:
            conn.execute(
                _T.update()
                .where(self._where())
                .values(status=status, body=body, media_type=media_type, location=location)
            )

    def release(self) -> None:
        with self.store.transaction(write=True) as conn:
            conn.execute(_T.delete().where(self._where()))


def claim(
    store: journal.Journal,
    *,
    principal: str,
    route: str,
    key: str,
    fingerprint: str,
    ttl_s: float,
) -> Claim:
    """Hold `key` for this request; raise `Replay` when it was answered before.

    Raises `KeyInFlight` while the first request is being answered and `KeyReused` when the
    key came with a different request.
    """
    if not _KEY.fullmatch(key):
        raise KeyInvalid(f"{HEADER}: use 1 to 255 visible ASCII characters (e.g. a UUID)")
    now = datetime.now(UTC)
    held = Claim(store=store, principal=principal, route=route, key=key)
    with store.transaction(write=True) as conn:
        conn.execute(_T.delete().where(_T.c.created_at < now - timedelta(seconds=ttl_s)))
        row = conn.execute(sa.select(_T).where(held._where())).first()
        if row is None:
            conn.execute(
                _T.insert().values(
                    principal=principal,
                    route=route,
                    key=key,
                    fingerprint=fingerprint,
                    created_at=now,
                )
            )
            return held
    if row.status is None:
        raise KeyInFlight(
            f"{HEADER} {key!r}: the first {route} request with it is still being answered;"
            " retry shortly"
        )
    if row.fingerprint != fingerprint:
        raise KeyReused(
            f"{HEADER} {key!r} was used for a different {route} request; use a new key"
            " for a new request"
        )
    raise Replay(
        Stored(status=row.status, body=row.body, media_type=row.media_type, location=row.location)
    )
