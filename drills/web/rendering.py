"""Rendering a page: one jinja2 environment over `drills/web/templates` (autoescaped).

`page(request, template, **context)` renders with what every page needs: `session` (None on
the login page), `principal`, `csrf_token` (for forms), `path` (for the navigation), and
`new_key()` (a fresh idempotency key for a form that starts or changes something). The
pictures come from `reports.pictures` (server-side SVG, already escaped: `|safe`).
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

import fastapi
import jinja2
from fastapi import responses

from drills.service import sessions

NAVIGATION: tuple[tuple[str, str], ...] = (
    ("/", "Dashboard"),
    ("/coverage", "Coverage"),
    ("/runs", "Runs"),
    ("/scenarios", "Scenarios"),
    ("/schedules", "Schedules"),
    ("/gamedays", "Game days"),
    ("/approvals", "Approvals"),
    ("/audit", "Audit"),
)


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drills.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.globals["navigation"] = NAVIGATION
    env.globals["new_key"] = lambda: uuid.uuid4().hex
    return env


def _when(moment: datetime | str | None) -> str:
    """`2026-12-06 20:58 UTC` (a datetime or an ISO string); `—` for none."""
    if moment is None or moment == "":
        return "—"
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            return moment
        moment = parsed
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(
    request: fastapi.Request,
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> responses.HTMLResponse:
    """`template` rendered as a page, with the session's principal and CSRF token."""
    session: sessions.Session | None = getattr(request.state, "session", None)
    body = render(
        template,
        session=session,
        principal=None if session is None else session.principal,
        csrf_token="" if session is None else session.csrf,
        path=request.url.path,
        **context,
    )
    return responses.HTMLResponse(body, status_code=status_code, headers=headers)
