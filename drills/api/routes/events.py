"""Routes: `GET /runs/{id}/events`, a run's timeline as Server-Sent Events.

Thin over `drills.service.events`: the route checks the run exists (404 before any byte is
streamed), picks the cursor (`Last-Event-ID` header, else `?lastEventId=`) and frames each
update as `text/event-stream`: `id: <seq>`, `event: <kind>`, `data: <EventView JSON>` per
event, a `: heartbeat` comment when quiet. The stream ends after the run's terminal state
event; a client that goes away stops it (Starlette cancels the response).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

import fastapi
from fastapi import responses

from drills.api import deps, problems
from drills.service import auth
from drills.service import events as event_streams

router = fastapi.APIRouter(tags=["runs"])

EVENT_STREAM = "text/event-stream"

_EXAMPLE = (
    "id: 42\nevent: state\n"
    'data: {"at": "2025-01-01T12:00:00+00:00", "kind": "state", '
    '"message": "completed: every step done", "data": {"state": "completed"}}\n\n'
)


def frame(update: event_streams.Update) -> str:
    """One update in `text/event-stream` framing (a comment for a heartbeat)."""
    if isinstance(update, event_streams.Heartbeat):
        return ": heartbeat\n\n"
    data = json.dumps(update.view().dump(), separators=(",", ":"))
    return f"id: {update.seq}\nevent: {update.kind}\ndata: {data}\n\n"


def follow_options() -> event_streams.Follow:
    """How streams poll and beat (a dependency: tests override it to poll faster)."""
    return event_streams.Follow()


FollowDep = Annotated[event_streams.Follow, fastapi.Depends(follow_options)]


async def _framed(updates: AsyncIterator[event_streams.Update]) -> AsyncIterator[str]:
    async for update in updates:
        yield frame(update)


@router.get(
    "/runs/{run_id}/events",
    response_class=responses.StreamingResponse,
    summary="Follow a run's timeline (Server-Sent Events)",
    responses={
        200: {
            "description": (
                "The run's events past `Last-Event-ID` (or `lastEventId`), then the live ones; "
                "the stream ends after the run's terminal state event."
            ),
            "content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": _EXAMPLE}},
        },
        **problems.responses(*problems.COMMON, 404, 409),
    },
)
def stream_events(
    run_id: Annotated[
        str, fastapi.Path(description="A run id, a unique prefix of one, or `latest`.")
    ],
    store: deps.StoreDep,
    options: FollowDep,
    _principal: Annotated[auth.Principal, deps.require(auth.Permission.READ)],
    last_event_id: Annotated[
        int | None,
        fastapi.Header(
            alias="Last-Event-ID",
            ge=0,
            description="The seq of the last event received; the stream resumes after it.",
        ),
    ] = None,
    last_event_id_query: Annotated[
        int | None,
        fastapi.Query(
            alias="lastEventId",
            ge=0,
            description="As the `Last-Event-ID` header (for clients that cannot set headers).",
        ),
    ] = None,
) -> responses.StreamingResponse:
    """Stream the run's timeline: replay from the cursor, then follow live to the end."""
    run = event_streams.check_run(store, run_id)
    updates = event_streams.follow(
        store,
        run.id,
        after=last_event_id if last_event_id is not None else last_event_id_query,
        options=options,
    )
    return responses.StreamingResponse(
        _framed(updates),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


__all__ = ["EVENT_STREAM", "FollowDep", "follow_options", "frame", "router"]
