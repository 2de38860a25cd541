"""Errors on pages: a route class that answers Stormdrill's errors with an HTML page.

Every page router uses `WebRoute`. An error of the tree a handler lets escape becomes the
error page with the status `drills.service.problems.kind_of` gives it (the same as the
API's problem): 404 for an unknown run, 409 for a run that already ended, 403 for a role
that may not, and so on; the message is redacted as the CLI prints it. `LoginRequired`
answers 303 to `/login?next=<this page>` instead, and `CsrfRejected` 403. A bug is a 500
page that says only that (the traceback goes to the server log).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import Any

import fastapi
import fastapi.routing
from fastapi import responses

from drills.service import problems
from drills.web import deps, rendering
from orchestrator.cmdb import errors as cmdb_errors
from scenarios import errors, secrets

log = logging.getLogger(__name__)

LOGIN = "/login"


def login_redirect(request: fastapi.Request, reason: str | None = None) -> responses.Response:
    """303 to the login form, which sends the browser back here once logged in."""
    target = request.url.path if request.method == "GET" else "/"
    if request.method == "GET" and request.url.query:
        target = f"{target}?{request.url.query}"
    query = {"next": target}
    if reason:
        query["reason"] = reason
    return responses.RedirectResponse(f"{LOGIN}?{urllib.parse.urlencode(query)}", status_code=303)


def error_page(request: fastapi.Request, exc: BaseException) -> responses.Response:
    """The page for an error a handler let escape (see the module doc)."""
    if isinstance(exc, deps.LoginRequired):
        return login_redirect(request, str(exc))
    if isinstance(exc, deps.CsrfRejected):
        status, title = 403, "Forbidden"
    else:
        kind = problems.kind_of(exc)
        status, title = kind.status, kind.title
        if kind is problems.INTERNAL:
            log.error("unexpected error answering %s", request.url.path, exc_info=exc)
            return rendering.page(
                request,
                "error.html",
                status_code=500,
                title="Internal error",
                detail="An unexpected error; the server log has the details.",
                problems=[],
            )
    found = getattr(exc, "problems", ()) if isinstance(exc, errors.ScenarioInvalid) else ()
    return rendering.page(
        request,
        "error.html",
        status_code=status,
        title=title,
        detail=secrets.redact(str(exc)),
        problems=[secrets.redact(str(p)) for p in found],
    )


class WebRoute(fastapi.routing.APIRoute):
    """A page route: Stormdrill's errors become an error page (see the module doc)."""

    def get_route_handler(self) -> Callable[[fastapi.Request], Coroutine[Any, Any, Any]]:
        handler = super().get_route_handler()

        async def answer(request: fastapi.Request) -> Any:
            try:
                return await handler(request)
            except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
                return error_page(request, exc)

        return answer


def router() -> fastapi.APIRouter:
    """A router for pages (no OpenAPI entries: pages are not the API's contract)."""
    return fastapi.APIRouter(route_class=WebRoute, include_in_schema=False)
