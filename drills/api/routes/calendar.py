"""Routes: `GET /gamedays.ics`: the upcoming drills as an iCalendar feed (RFC 5545).

Viewers read it. A calendar client subscribes by URL and cannot send a header, so this route
alone also takes a viewer token in `?token=` (`deps.get_feed_principal`: only a stored token
whose role is exactly viewer; a stronger one is 403, as URLs leak into logs and to calendar
providers; the audit trail and the access log mask it: `drills.api.masking`); the
`Authorization: Bearer` header works for every role. The feed holds, for the next
`days` days (default 30, 1 to 366):
- the game days not closed whose window falls in them: one event over the window, in the
  game day's zone, naming its drills, gates and people in roles (`calendar.gameday_events`);
- the fires of every active schedule (at most `FIRES_PER_SCHEDULE` each), each
  `calendar.DEFAULT_LENGTH` long, a fire a blackout skips marked `[skipped]`
  (`calendar.schedule_events`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import fastapi

from drills.api import deps, problems
from drills.service import calendar as calendar_service

router = fastapi.APIRouter(tags=["calendar"])

CALENDAR_NAME = "Stormdrill game days"
MEDIA_TYPE = "text/calendar; charset=utf-8"
FIRES_PER_SCHEDULE = 400
"""Enough for a daily schedule over the longest horizon (366 days)."""


@router.get(
    "/gamedays.ics",
    summary="The upcoming game days and scheduled drills as an iCalendar feed",
    response_class=fastapi.Response,
    responses={
        200: {
            "description": "An iCalendar (RFC 5545) document.",
            "content": {"text/calendar": {"schema": {"type": "string"}}},
        },
        **problems.responses(*problems.COMMON),
    },
)
def gamedays_calendar(
    store: deps.StoreDep,
    _: deps.FeedReaderDep,
    days: Annotated[
        int, fastapi.Query(ge=1, le=366, description="How many days ahead the feed shows.")
    ] = 30,
) -> fastapi.Response:
    """The game days and every fire of every active schedule in the next `days` days."""
    now = dt.datetime.now(dt.UTC)
    events = calendar_service.schedule_events(
        store,
        now=now,
        horizon=dt.timedelta(days=days),
        limit_per_schedule=FIRES_PER_SCHEDULE,
    )
    events += calendar_service.gameday_events(store, now=now, horizon=dt.timedelta(days=days))
    text = calendar_service.render(events, name=CALENDAR_NAME, now=now)
    return fastapi.Response(content=text, media_type=MEDIA_TYPE)
