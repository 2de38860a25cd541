"""Routes: `POST /plans`: the dry run. Same body as `POST /runs`; touches nothing.

The plan says what the drill would select out of what (against the blast-radius limits),
the guardrail verdicts, the services it reaches, the steps with their mutations, the
rollback plan, the coverage cells it would count for and which cluster and AWS account it
would touch (read, never changed). Nothing is written to the store.
"""

from __future__ import annotations

from typing import Annotated

import fastapi
from starlette import concurrency

from drills import settings as settings_mod
from drills.api import deps, problems
from drills.service import auth, documents, views
from drills.service import runs as run_service
from orchestrator import journal, registry

router = fastapi.APIRouter(tags=["plans"])

Planner = Annotated[auth.Principal, deps.require(auth.Permission.PLAN)]


def _plan(
    body: views.RunRequestBody,
    *,
    principal: auth.Principal,
    settings: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    folders: documents.Folders,
) -> views.PlanView:
    request = documents.drill_request(
        folders, scenario=body.scenario, environment=body.environment, parameters=body.parameters
    )
    prepared = run_service.prepare(settings, request)
    planned = run_service.plan(settings, store, reg, prepared)
    services = auth.services_of_plan(planned.plan.impact, catalog=prepared.catalog)
    auth.authorize(principal, auth.Permission.PLAN, services)
    return planned.view()


@router.post(
    "/plans",
    summary="Plan a drill (dry run: resolve, plan and judge; nothing is touched)",
    response_model=views.PlanView,
    responses=problems.responses(*problems.COMMON, 404, 502),
)
async def plan(
    body: views.RunRequestBody,
    principal: Planner,
    settings: deps.SettingsDep,
    store: deps.StoreDep,
    reg: deps.RegistryDep,
    folders: deps.FoldersDep,
) -> views.PlanView:
    """The plan of the drill the body names, as `stormdrill plan --format json` prints it."""
    return await concurrency.run_in_threadpool(
        _plan, body, principal=principal, settings=settings, store=store, reg=reg, folders=folders
    )
