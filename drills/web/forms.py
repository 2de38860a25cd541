"""A form that starts or changes something is acted on once, however often it is sent.

Each such form carries a hidden `idempotency_key` (`new_key()` in the template: a fresh one
each time the page is drawn). `act_once(request, store, session, act)` holds the key in
the store (`drills.service.idempotency`, the table the API's `Idempotency-Key` uses, under
the route `WEB POST <path>`), calls `act()` in a worker thread (it returns where to send
the browser: a path), keeps that answer, and answers 303 there. A second send of the same
form (a double click, a reload after POST) finds the answer and is sent to the same place
without acting again; one sent while the first is still being acted on answers 409. An
error in `act` releases the key (the form may be sent again) and goes on to the page's
error handling. A form without a key is acted on every time it is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import fastapi
from fastapi import responses
from starlette import concurrency

from drills.service import idempotency, sessions
from drills.web import deps
from orchestrator import journal

ROUTE_PREFIX = "WEB POST"
DEFAULT_TTL_S = 86400.0


async def _fingerprint(request: fastapi.Request) -> str:
    form = await request.form()
    digest = hashlib.sha256(request.url.path.encode())
    for name, value in sorted((k, str(v)) for k, v in form.multi_items()):
        if name in (deps.CSRF_FIELD, deps.IDEMPOTENCY_FIELD):
            continue
        digest.update(b"\0" + name.encode() + b"=" + value.encode())
    return digest.hexdigest()


async def act_once(
    request: fastapi.Request,
    store: journal.Journal,
    session: sessions.Session,
    act: Callable[[], str],
) -> responses.Response:
    """Do `act` once for this form's key and answer 303 to where it says (module doc)."""
    form = await request.form()
    raw = form.get(deps.IDEMPOTENCY_FIELD)
    key = raw if isinstance(raw, str) and raw else None
    held: idempotency.Claim | None = None
    if key is not None:
        ttl = getattr(request.app.state.api_settings, "idempotency_ttl_s", DEFAULT_TTL_S)
        fingerprint = await _fingerprint(request)
        principal = f"{session.principal.kind}:{session.principal.name}"
        try:
            held = await concurrency.run_in_threadpool(
                lambda: idempotency.claim(
                    store,
                    principal=principal,
                    route=f"{ROUTE_PREFIX} {request.url.path}",
                    key=key,
                    fingerprint=fingerprint,
                    ttl_s=float(ttl),
                )
            )
        except idempotency.Replay as replay:
            return responses.RedirectResponse(replay.stored.location or "/", status_code=303)
    try:
        target = await concurrency.run_in_threadpool(act)
    except BaseException:
        if held is not None:
            await concurrency.run_in_threadpool(held.release)
        raise
    if held is not None:
        claimed = held
        await concurrency.run_in_threadpool(
            lambda: claimed.complete(status=303, body=b"", media_type=None, location=target)
        )
    return responses.RedirectResponse(target, status_code=303)
