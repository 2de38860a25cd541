"""Routes: schedules (apply, list, show, pause, resume, delete, preview, fires, approve,
reject) and blackouts.

`POST /schedules` applies the `schedule:` of a Drill from the API's drill folders (body
`{"drill": NAME}`): created or updated in place, owned by the caller. Viewers read;
operators (unscoped: a scoped role is refused, a schedule is not bound to its services yet)
apply, pause, resume and delete schedules and add or remove blackouts (body
`schedules.BlackoutBody`, `abortRunning` included). A schedule for a protected Environment
awaits approval (its fires are skipped `awaiting-approval`): approvers (unscoped, as for
applying) `POST /schedules/{id}/approve` (optional `comment`, `specHash`) or `/reject`
(`reason`), never the one who applied it (403); one that needs no approval, ended or was
rejected is 409, and so is an approval of a spec it no longer has. The rules are
`drills.service.schedules`; the fires are made by the claim loop
(`drills.scheduling.loop`), not here. Deleting a schedule keeps its fires:
`GET /schedules/{id}/fires` still lists them by its id or name (404 only when neither a
schedule nor a deleted one's kept fire has it; `drills.service.schedules.fires`).
"""

from __future__ import annotations

from typing import Annotated

import fastapi
import pydantic
from fastapi import responses

from drills.api import deps, problems
from drills.service import auth, documents, views
from drills.service import schedules as schedule_service

router = fastapi.APIRouter(tags=["schedules"])

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]
Operator = Annotated[auth.Principal, deps.require(auth.Permission.START)]
Approver = Annotated[auth.Principal, deps.require(auth.Permission.APPROVE)]
SchedulePath = Annotated[
    str, fastapi.Path(description="A schedule's id or name.", examples=["weekly-gameday"])
]


class ApplyBody(views.View):
    """Which Drill of the API's drill folders to schedule (its `schedule:`)."""

    drill: str = pydantic.Field(examples=["weekly-absence"])


class ApproveBody(views.View):
    """An approval of a schedule: why (optional), and the spec reviewed (optional, but then
    it must be the schedule's current one)."""

    comment: str = pydantic.Field(default="", max_length=4000)
    spec_hash: str | None = pydantic.Field(
        default=None,
        alias="specHash",
        pattern=r"^[0-9a-f]{64}$",
        description="The spec hash the approver reviewed (`GET /schedules/{id}`: "
        "approval.specHash); 409 when the schedule was applied again with changes.",
    )


class RejectBody(views.View):
    """A rejection: the schedule's fires are skipped until a changed spec is applied."""

    reason: str = pydantic.Field(min_length=1, max_length=4000, pattern=r"\S")


def _unscoped(
    principal: auth.Principal, permission: auth.Permission = auth.Permission.START
) -> None:
    auth.authorize(principal, permission, ())


@router.get(
    "/schedules", summary="Every schedule", response_model=list[schedule_service.ScheduleView]
)
def list_schedules(store: deps.StoreDep, _: Reader) -> list[schedule_service.ScheduleView]:
    return schedule_service.views_of(store)


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
    return schedule_service.view(store, schedule)


@router.get(
    "/schedules/{schedule}",
    summary="One schedule",
    response_model=schedule_service.ScheduleView,
    responses=problems.responses(*problems.COMMON, 404),
)
def get_schedule(
    schedule: SchedulePath, store: deps.StoreDep, _: Reader
) -> schedule_service.ScheduleView:
    return schedule_service.view(store, schedule_service.get(store, schedule))


@router.delete(
    "/schedules/{schedule}",
    summary="Delete a schedule (its fires are kept and still listed; its runs stay)",
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
    return schedule_service.view(store, schedule_service.set_paused(store, schedule, paused=True))


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
    return schedule_service.view(store, schedule_service.set_paused(store, schedule, paused=False))


@router.post(
    "/schedules/{schedule}/approve",
    summary="Approve a schedule for a protected environment (not one you applied)",
    response_model=schedule_service.ScheduleView,
    responses=problems.responses(*problems.COMMON, 404, 409),
)
def approve_schedule(
    schedule: SchedulePath, body: ApproveBody, store: deps.StoreDep, principal: Approver
) -> schedule_service.ScheduleView:
    _unscoped(principal, auth.Permission.APPROVE)
    return schedule_service.approve(
        store, schedule, by=principal.name, comment=body.comment, spec_hash=body.spec_hash
    )


@router.post(
    "/schedules/{schedule}/reject",
    summary="Reject a schedule: its fires are skipped until a changed spec is applied",
    response_model=schedule_service.ScheduleView,
    responses=problems.responses(*problems.COMMON, 404, 409),
)
def reject_schedule(
    schedule: SchedulePath, body: RejectBody, store: deps.StoreDep, principal: Approver
) -> schedule_service.ScheduleView:
    _unscoped(principal, auth.Permission.APPROVE)
    return schedule_service.reject(store, schedule, by=principal.name, reason=body.reason)


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
    summary="What became of each nominal fire, newest first (of a deleted schedule too)",
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
    return schedule_service.blackout_views(store)


@router.post(
    "/blackouts",
    summary="Add a blackout: no scheduled fire starts inside it (abortRunning: running drills"
    " in its scope are aborted when it begins)",
    status_code=201,
    response_model=schedule_service.BlackoutView,
    responses=problems.responses(*problems.COMMON),
)
def add_blackout(
    body: schedule_service.BlackoutBody,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    folders: deps.FoldersDep,
    principal: Operator,
) -> schedule_service.BlackoutView:
    """The value is checked against the served Environments and the CMDB catalog."""
    _unscoped(principal)
    return schedule_service.add_blackout_from(
        store, body, by=principal.name, config=settings, folders=folders
    )


@router.delete(
    "/blackouts/{blackout_id}",
    summary="Remove a blackout",
    status_code=204,
    responses=problems.responses(*problems.COMMON, 404),
)
def remove_blackout(blackout_id: str, store: deps.StoreDep, principal: Operator) -> None:
    _unscoped(principal)
    schedule_service.remove_blackout(store, blackout_id)
