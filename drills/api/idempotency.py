"""Idempotency keys: a POST repeated with the same `Idempotency-Key` gets the first answer.

Peers' UIs fire duplicate runs on double clicks; a POST that starts or changes something
declares `IdempotencyDep` and lives on a router whose `route_class` is `IdempotentRoute`.
With the header, the first request (per principal, method and path, and key) is answered
as usual and its answer (status, body, `Location`) kept in the store's
`idempotency_keys` table (`drills.tables_idempotency`); a repeat gets that answer again,
with `Idempotent-Replayed: true`, and does nothing. A repeat while the first is still
being answered is 409; the same key on a different request (another body or query) is 422.
A request that fails with an error is forgotten, so it may be retried with its key.
Without the header nothing changes. Keys are kept `ApiSettings.idempotency_ttl_s`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import fastapi
import fastapi.routing
import sqlalchemy as sa
from starlette import concurrency

from drills import tables_idempotency
from drills.api import deps
from orchestrator import journal
from scenarios import errors

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
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

    def response(self) -> fastapi.Response:
        headers = {REPLAYED: "true"}
        if self.location:
            headers["Location"] = self.location
        return fastapi.Response(
            content=self.body,
            status_code=self.status,
            media_type=self.media_type,
            headers=headers,
        )


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

    def complete(self, response: fastapi.Response) -> None:
        body = getattr(response, "body", None)
        if not isinstance(body, bytes):
            self.release()  # a streamed answer cannot be replayed
            return
        if response.status_code >= 500:
            self.release()
            return
        with self.store.transaction(write=True) as conn:
            conn.execute(
                _T.update()
                .where(self._where())
                .values(
                    status=response.status_code,
                    body=body,
                    media_type=response.headers.get("content-type"),
                    location=response.headers.get("location"),
                )
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


def _fingerprint(request: fastapi.Request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


async def idempotency(
    request: fastapi.Request,
    store: deps.StoreDep,
    principal: deps.PrincipalDep,
    config: deps.ApiSettingsDep,
    key: Annotated[
        str | None,
        fastapi.Header(
            alias=HEADER,
            description="Repeat a POST safely: the same key gets the first answer again.",
        ),
    ] = None,
) -> None:
    """The dependency a POST declares: with the header, hold the key or replay its answer."""
    if key is None:
        return
    body = await request.body()
    held = await concurrency.run_in_threadpool(
        claim,
        store,
        principal=f"{principal.kind}:{principal.name}",
        route=f"{request.method} {request.url.path}",
        key=key,
        fingerprint=_fingerprint(request, body),
        ttl_s=config.idempotency_ttl_s,
    )
    request.state.idempotency = held


IdempotencyDep = fastapi.Depends(idempotency)
"""Declare it on a POST route: `dependencies=[idempotency.IdempotencyDep]`."""


class IdempotentRoute(fastapi.routing.APIRoute):
    """A route that keeps (or forgets) the answer of a request holding an idempotency key."""

    def get_route_handler(
        self,
    ) -> Callable[[fastapi.Request], Coroutine[Any, Any, fastapi.Response]]:
        answer = super().get_route_handler()

        async def handler(request: fastapi.Request) -> fastapi.Response:
            try:
                response = await answer(request)
            except Replay:
                raise
            except BaseException:
                held = getattr(request.state, "idempotency", None)
                if isinstance(held, Claim):
                    await concurrency.run_in_threadpool(held.release)
                raise
            held = getattr(request.state, "idempotency", None)
            if isinstance(held, Claim):
                await concurrency.run_in_threadpool(held.complete, response)
            return response

        return handler


def install(app: fastapi.FastAPI) -> None:
    """Answer a replayed request with its stored answer; the key's own errors as problems."""

    async def on_replay(_request: fastapi.Request, exc: Exception) -> fastapi.Response:
        assert isinstance(exc, Replay)
        return exc.stored.response()

    app.add_exception_handler(Replay, on_replay)
