"""`/audit`: the audit trail, newest first, filtered and paged; `?format=jsonl` exports it.

Only the roles that read the trail through the API (`GET /api/v1/audit` needs the `audit`
permission: admins) see it; others get the 403 page. The filters are a GET form:
`principal` (exactly), `action` (exactly, or a family with a trailing dot: `run.`),
`since` and `until` (a duration back from now, `2h`, `7d`, or an ISO date or time, UTC
unless it names its offset; `until` is exclusive), and `limit` (a page, default
`PAGE`). Pages go back with `before` (an entry id: the "Older" link carries the page's
last id). `?format=jsonl` is the API's export of the same filters: every matching entry
oldest first, one JSON line each (`drills.service.audit.jsonl`), as a download.
Entries are shown as stored: free text was masked when it was recorded, nothing here
unmasks it. A `since` or `until` that cannot be read answers the form again (422) with why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import urllib.parse
from typing import Annotated

import fastapi
from fastapi import responses
from starlette import concurrency

from drills.service import audit, auth
from drills.service import runs as run_service
from drills.web import deps, rendering, routing
from drills.web.pages import schedules as schedule_pages
from orchestrator import journal

router = routing.router()

PAGE = 50
"""Entries a page shows unless `limit` says otherwise."""
MAX_PAGE = 1000
JSONL_MEDIA_TYPE = "application/jsonl"


class AuditFormat(enum.StrEnum):
    HTML = "html"
    JSONL = "jsonl"


@dataclasses.dataclass(frozen=True)
class Filters:
    """The form's fields as sent (empty: not filtered)."""

    principal: str = ""
    action: str = ""
    since: str = ""
    until: str = ""

    def query(self, **more: str | int) -> str:
        """The query string of these filters (and `more`), empty fields left out."""
        fields: dict[str, str | int] = {
            name: value for name, value in dataclasses.asdict(self).items() if value
        }
        fields.update(more)
        return urllib.parse.urlencode(fields)


@dataclasses.dataclass(frozen=True)
class Row:
    entry: audit.Entry
    at: schedule_pages.Moment


def where_of(filters: Filters, *, now: dt.datetime, before: int | None = None) -> audit.EntryFilter:
    """The service's filter; `run_service.BadSince` for a time it cannot read."""
    return audit.EntryFilter(
        principal=filters.principal or None,
        action=filters.action or None,
        since=run_service.parse_since(filters.since, now=now) if filters.since else None,
        until=run_service.parse_since(filters.until, now=now) if filters.until else None,
        before_id=before,
    )


def _field_problem(filters: Filters, *, now: dt.datetime) -> str | None:
    for name, text in (("since", filters.since), ("until", filters.until)):
        if not text:
            continue
        try:
            run_service.parse_since(text, now=now)
        except run_service.BadSince:
            return (
                f"{name} {text!r}: write a duration back from now (e.g. 2h, 7d) or an ISO"
                " date or time (e.g. 2026-12-01, 2026-12-01T12:00Z)"
            )
    return None


def _page(
    store: journal.Journal, where: audit.EntryFilter, *, limit: int
) -> tuple[tuple[Row, ...], int | None]:
    found = audit.entries(store, where=where, limit=limit)
    view = audit.AuditPageView.from_entries(found, limit=limit)
    return tuple(
        Row(entry=e, at=schedule_pages.moment(e.at, "UTC")) for e in found
    ), view.next_before


def _text(value: str | None) -> str:
    return (value or "").strip()


@router.get("/audit", response_class=responses.HTMLResponse)
async def audit_page(
    request: fastapi.Request,
    store: deps.StoreDep,
    session: deps.SessionDep,
    principal: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: Annotated[int | None, fastapi.Query(ge=1)] = None,
    limit: Annotated[int, fastapi.Query(ge=1, le=MAX_PAGE)] = PAGE,
    output_format: Annotated[AuditFormat, fastapi.Query(alias="format")] = AuditFormat.HTML,
) -> responses.Response:
    auth.authorize(session.principal, auth.Permission.AUDIT)
    filters = Filters(
        principal=_text(principal), action=_text(action), since=_text(since), until=_text(until)
    )
    now = dt.datetime.now(dt.UTC)
    problem = _field_problem(filters, now=now)
    if problem is None and output_format is AuditFormat.JSONL:
        exported = audit.export(store, where=where_of(filters, now=now))
        return responses.StreamingResponse(
            audit.jsonl(exported),
            media_type=JSONL_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="stormdrill-audit.jsonl"'},
        )
    rows: tuple[Row, ...] = ()
    older: int | None = None
    if problem is None:
        where = where_of(filters, now=now, before=before)
        rows, older = await concurrency.run_in_threadpool(lambda: _page(store, where, limit=limit))
    paging: dict[str, int] = {} if limit == PAGE else {"limit": limit}
    return rendering.page(
        request,
        "audit.html",
        status_code=422 if problem else 200,
        title="Audit trail",
        filters=filters,
        problem=problem,
        rows=rows,
        older=None if older is None else "/audit?" + filters.query(before=older, **paging),
        newest="/audit?" + filters.query(**paging) if before is not None else None,
        download="/audit?" + filters.query(format=AuditFormat.JSONL.value),
        limit=limit,
        page_size=PAGE,
    )
