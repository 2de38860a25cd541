"""Routes: the kill switch: `GET`, `PUT` (engage, with a reason), `DELETE` (release).

Global without a query, or one Environment's with `?environment=NAME`. Engaged, a switch
refuses new runs (`POST /runs` answers 409) and aborts the running ones in its scope (each
asked to abort, rolling back; a queued one cancelled): the answer lists them. Engaging and
releasing need the admin role; reading it, any role.
"""

from __future__ import annotations

from typing import Annotated

import fastapi

from drills.api import deps, idempotency, problems
from drills.service import auth, killswitches, views
from drills.service import runs as run_service
from orchestrator import journal

router = fastapi.APIRouter(tags=["killswitch"], route_class=idempotency.IdempotentRoute)

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]
Admin = Annotated[auth.Principal, deps.require(auth.Permission.KILLSWITCH)]
Scope = Annotated[
    str | None,
    fastapi.Query(
        min_length=1,
        max_length=255,
        description="An Environment's name: its own switch (default: the global one).",
    ),
]


def _view(
    switch: journal.Killswitch, environment: str | None, aborted: list[str] | None = None
) -> views.KillswitchView:
    return views.KillswitchView(
        environment=environment,
        engaged=switch.engaged,
        by=switch.by,
        reason=switch.reason,
        at=switch.at,
        aborted=aborted or [],
    )


@router.get(
    "/killswitch",
    summary="The kill switch (global, or an Environment's)",
    response_model=views.KillswitchView,
    responses=problems.responses(*problems.COMMON),
)
def get_killswitch(
    store: deps.StoreDep, _: Reader, environment: Scope = None
) -> views.KillswitchView:
    """Engaged or not, by whom, why and since when."""
    return _view(killswitches.get(store, environment=environment), environment)


@router.put(
    "/killswitch",
    summary="Engage the kill switch: refuse new runs, abort running ones",
    response_model=views.KillswitchView,
    responses=problems.responses(*problems.COMMON),
)
def engage(
    body: views.KillswitchRequestBody,
    store: deps.StoreDep,
    principal: Admin,
    runner: deps.DriverDep,
    environment: Scope = None,
) -> views.KillswitchView:
    """Engage it with a reason; the answer lists the runs asked to abort."""
    switch, stopped = run_service.engage_killswitch(
        store, environment=environment, by=principal.name, reason=body.reason
    )
    if runner is not None:
        runner.wake()
    return _view(switch, environment, [str(run_id) for run_id in stopped])


@router.delete(
    "/killswitch",
    summary="Release the kill switch (runs may start again)",
    response_model=views.KillswitchView,
    responses=problems.responses(*problems.COMMON),
)
def release(
    store: deps.StoreDep, principal: Admin, runner: deps.DriverDep, environment: Scope = None
) -> views.KillswitchView:
    """Release it; aborted runs stay aborted."""
    switch = run_service.release_killswitch(store, environment=environment, by=principal.name)
    if runner is not None:
        runner.wake()
    return _view(switch, environment)
