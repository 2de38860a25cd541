"""Routes: audit (admin only): the trail, newest first, filtered; `?format=jsonl` exports it.

JSON answers page back through the trail (`limit`, then `before` = the page's `next_before`);
the JSON lines export streams every matching entry oldest first (a SIEM's import order).
There is no route that changes or removes an entry.
"""

from __future__ import annotations

import enum
import itertools
from datetime import UTC, datetime
from typing import Annotated

import fastapi
import fastapi.responses

from drills.api import deps, problems
from drills.service import audit, auth
from drills.service import runs as run_service

router = fastapi.APIRouter(tags=["audit"])

JSONL_MEDIA_TYPE = "application/jsonl"


class AuditFormat(enum.StrEnum):
    JSON = "json"
    JSONL = "jsonl"


@router.get(
    "/audit",
    summary="The audit trail: who did what, when, from where, with which outcome",
    response_model=audit.AuditPageView,
    responses={
        **problems.responses(*problems.COMMON),
        200: {
            "description": "A page of entries (JSON), or every entry as JSON lines.",
            "content": {JSONL_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
    },
)
def list_audit(
    store: deps.StoreDep,
    _principal: Annotated[auth.Principal, deps.require(auth.Permission.AUDIT)],
    principal: Annotated[str | None, fastapi.Query(description="Only this principal.")] = None,
    action: Annotated[
        str | None,
        fastapi.Query(description="Only this action (`run.abort`), or a family (`run.`)."),
    ] = None,
    since: Annotated[
        str | None,
        fastapi.Query(description="A duration back from now (`2h`, `7d`) or an ISO date."),
    ] = None,
    limit: Annotated[
        int | None,
        fastapi.Query(
            ge=1,
            le=audit.MAX_LIMIT,
            description=f"At most this many (default {audit.DEFAULT_LIMIT}; the export: all).",
        ),
    ] = None,
    before: Annotated[
        int | None, fastapi.Query(ge=1, description="Entries older than this id (paging).")
    ] = None,
    output_format: Annotated[AuditFormat, fastapi.Query(alias="format")] = AuditFormat.JSON,
) -> audit.AuditPageView | fastapi.responses.StreamingResponse:
    where = audit.EntryFilter(
        principal=principal,
        action=action,
        since=run_service.parse_since(since, now=datetime.now(UTC)) if since else None,
        before_id=before,
    )
    if output_format is AuditFormat.JSONL:
        exported = audit.export(store, where=where)
        chosen = itertools.islice(exported, limit) if limit is not None else exported
        return fastapi.responses.StreamingResponse(audit.jsonl(chosen), media_type=JSONL_MEDIA_TYPE)
    page = limit or audit.DEFAULT_LIMIT
    return audit.AuditPageView.from_entries(
        audit.entries(store, where=where, limit=page), limit=page
    )
