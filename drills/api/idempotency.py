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

import hashlib
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import fastapi
import fastapi.routing
from starlette import concurrency

from drills.api import deps
from drills.service.idempotency import (  # the store part is shared with the pages
    HEADER,
    Claim,
    Replay,
    Stored,
    claim,
)

REPLAYED = "Idempotent-Replayed"


def response_of(stored: Stored) -> fastapi.Response:
    """The first request's answer again, marked `Idempotent-Replayed: true`."""
    headers = {REPLAYED: "true"}
    if stored.location:
        headers["Location"] = stored.location
    return fastapi.Response(
        content=stored.body,
        status_code=stored.status,
        media_type=stored.media_type,
        headers=headers,
    )


def complete(held: Claim, response: fastapi.Response) -> None:
    """Keep `response` as the key's answer (a streamed answer cannot be: the key is freed)."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes):
        held.release()
        return
    held.complete(
        status=response.status_code,
        body=body,
        media_type=response.headers.get("content-type"),
        location=response.headers.get("location"),
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
                await concurrency.run_in_threadpool(complete, held, response)
            return response

        return handler


def install(app: fastapi.FastAPI) -> None:
    """Answer a replayed request with its stored answer; the key's own errors as problems."""

    async def on_replay(_request: fastapi.Request, exc: Exception) -> fastapi.Response:
        assert isinstance(exc, Replay)
        return response_of(exc.stored)

    app.add_exception_handler(Replay, on_replay)
