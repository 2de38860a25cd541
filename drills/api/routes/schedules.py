"""Routes: schedules (apply, list, show, pause, resume, delete, preview, fires) and blackouts.

`POST /schedules` applies the `schedule:` of a Drill from the API's drill folders (body
`{"drill": NAME}`): created or updated in place, owned by the caller. Viewers read;
operators (unscoped: a scoped role is refused, a schedule is not bound to its services yet)
apply, pause, resume and delete schedules and add or remove blackouts. The fires are made
by the claim loop (`drills.scheduling.loop`), not here. Not in this round: a schedule for a
protected Environment does not need its own approval (each run it starts still waits for
its approvers in the runner, as any run there does).
"""

from __future__ import annotations

from typing import Annotated

import fastapi
import pydantic
from fastapi import responses

from drills.api import deps, problems
from drills.service import auth, documents, views
from drills.service import schedules as schedule_service
from scenarios import models

router = fastapi.APIRouter(tags=["schedules"])

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]
Operator = Annotated[auth.Principal, deps.require(auth.Permission.START)]
SchedulePath = Annotated[
    str, fastapi.Path(description="A schedule's id or name.", examples=["weekly-gameday"])
]


class ApplyBody(views.View):
    """Which Drill of the API's drill folders to schedule (its `schedule:`)."""

    drill: str = pydantic.Field(examples=["weekly-absence"])


class BlackoutBody(views.View):
    scope: schedule_service.BlackoutScope
    value: str = ""
    windows: list[dict[str, pydantic.JsonValue]]
    timezone: models.TimeZoneName = "UTC"
    reason: str = ""


def _unscoped(principal: auth.Principal) -> None:
    auth.authorize(principal, auth.Permission.START, ())


@router.get(
    "/schedules", summary="Every schedule", response_model=list[schedule_service.ScheduleView]
)
def list_schedules(store: deps.StoreDep, _: Reader) -> list[schedule_service.ScheduleView]:
    return [schedule_service.ScheduleView.of(s) for s in schedule_service.list_schedules(store)]


@router.post(
    "/schedules",
    summary="Create or update the schedule of a Drill (its `schedule:`)",
    status_code=201,
    response_model=schedule_service.ScheduleView,
    responses=problems.responses(*problems.COMMON, 404),
)
def apply_schedule(
    body: ApplyBody,
    response: responses.Response,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    folders: deps.FoldersDep,
    principal: Operator,
) -> schedule_service.ScheduleView:
    _unscoped(principal)
    drill = documents.find_drill(folders, body.drill)
    schedule = schedule_service.apply(
        settings, store, drill.source.path, owner=principal.name, folders=folders
    )
    response.headers["Location"] = f"/api/v1/schedules/{schedule.id}"
    return schedule_service.ScheduleView.of(schedule)


@router.get(
    "/schedules/{schedule}",
    summary="One schedule",
    response_model=schedule_service.ScheduleView,
    responses=problems.responses(*problems.COMMON, 404),
)
def get_schedule(
    schedule: SchedulePath, store: deps.StoreDep, _: Reader
) -> schedule_service.ScheduleView:
    return schedule_service.ScheduleView.of(schedule_service.get(store, schedule))


@router.delete(
    "/schedules/{schedule}",
    summary="Delete a schedule and its fire history (its runs stay)",
    response_model=schedule_service.ScheduleView,
    responses=problems.responses(*problems.COMMON, 404),
)
def delete_schedule(
    schedule: SchedulePath, store: deps.StoreDep, principal: Operator
) -> schedule_service.ScheduleView:
    _unscoped(principal)
    return schedule_service.ScheduleView.of(schedule_service.delete(store, schedule))


@router.post(
    "/schedules/{schedule}/pause",
    summary="Pause a schedule (its fires are recorded as skipped: paused)",
    response_model=schedule_service.ScheduleView,
    responses=problems.responses(*problems.COMMON, 404),
)
def pause_schedule(
    schedule: SchedulePath, store: deps.StoreDep, principal: Operator
) -> schedule_service.ScheduleView:
    _unscoped(principal)
    return schedule_service.ScheduleView.of(
        schedule_service.set_paused(store, schedule, paused=True)
    )


@router.post(
    "/schedules/{schedule}/resume",
    summary="Resume a paused schedule at its next fire time",
    response_model=schedule_service.ScheduleView,
    responses=problems.responses(*problems.COMMON, 404),
)
def resume_schedule(
    schedule: SchedulePath, store: deps.StoreDep, principal: Operator
) -> schedule_service.ScheduleView:
    _unscoped(principal)
    return schedule_service.ScheduleView.of(
        schedule_service.set_paused(store, schedule, paused=False)
    )


@router.get(
    "/schedules/{schedule}/preview",
    summary="The next fire times (schedule's zone and UTC), marking blackout skips",
    response_model=schedule_service.PreviewView,
    responses=problems.responses(*problems.COMMON, 404),
)
def preview_schedule(
    schedule: SchedulePath,
    store: deps.StoreDep,
    _: Reader,
    n: Annotated[int, fastapi.Query(ge=1, le=1000)] = 10,
) -> schedule_service.PreviewView:
    return schedule_service.preview_schedule(store, schedule_service.get(store, schedule), n=n)


@router.get(
    "/schedules/{schedule}/fires",
    summary="What became of each nominal fire, newest first",
    response_model=list[schedule_service.FireView],
    responses=problems.responses(*problems.COMMON, 404),
)
def schedule_fires(
    schedule: SchedulePath,
    store: deps.StoreDep,
    _: Reader,
    limit: Annotated[int, fastapi.Query(ge=1, le=10000)] = 100,
) -> list[schedule_service.FireView]:
    return schedule_service.fires(store, schedule, limit=limit)


# ---- blackouts ----------------------------------------------------------------------------


@router.get(
    "/blackouts",
    summary="Every blackout calendar",
    response_model=list[schedule_service.BlackoutView],
)
def list_blackouts(store: deps.StoreDep, _: Reader) -> list[schedule_service.BlackoutView]:
    return [schedule_service.BlackoutView.of(b) for b in schedule_service.list_blackouts(store)]


@router.post(
    "/blackouts",
    summary="Add a blackout: no scheduled fire starts inside it",
    status_code=201,
    response_model=schedule_service.BlackoutView,
    responses=problems.responses(*problems.COMMON),
)
def add_blackout(
    body: BlackoutBody, store: deps.StoreDep, principal: Operator
) -> schedule_service.BlackoutView:
    _unscoped(principal)
    blackout = schedule_service.add_blackout(
        store,
        scope=body.scope,
        value=body.value,
        windows=schedule_service.parse_windows(list(body.windows), timezone=body.timezone),
        timezone=body.timezone,
        reason=body.reason,
        by=principal.name,
    )
    return schedule_service.BlackoutView.of(blackout)


@router.delete(
    "/blackouts/{blackout_id}",
    summary="Remove a blackout",
    status_code=204,
    responses=problems.responses(*problems.COMMON, 404),
)
def remove_blackout(blackout_id: str, store: deps.StoreDep, principal: Operator) -> None:
    _unscoped(principal)
    schedule_service.remove_blackout(store, blackout_id)
