"""The audit trail of the pages: one entry per form that changed something, as the API's.

A page's POST handler calls `record(request, action=…, target=…, status=…)` once it
acted (or was refused), with the same action names as the API (`run.abort`, `run.ack`,
`run.approve`, `killswitch.engage`, …) and method `POST`, the page's path, the caller's
address and user agent; the principal is the session's (`anonymous` before login).
"""

from __future__ import annotations

import functools
import uuid

import fastapi
from starlette import concurrency

from drills.service import audit, auth, sessions
from orchestrator import journal


async def record(
    request: fastapi.Request,
    store: journal.Journal,
    *,
    action: str,
    target: str,
    status: int = 200,
    detail: str = "",
    principal: auth.Principal | None = None,
) -> audit.Entry:
    """Write the entry (in a worker thread) and return it."""
    session: sessions.Session | None = getattr(request.state, "session", None)
    who = principal or (None if session is None else session.principal)
    entry = audit.NewEntry(
        principal="anonymous" if who is None else who.name,
        principal_kind="anonymous" if who is None else who.kind,
        action=action,
        target=target,
        status=status,
        method=request.method,
        path=request.url.path,
        address=None if request.client is None else request.client.host,
        user_agent=request.headers.get("user-agent"),
        request_id=request.headers.get("x-request-id") or uuid.uuid4().hex,
        detail=detail,
    )
    return await concurrency.run_in_threadpool(functools.partial(audit.record, store, entry))
