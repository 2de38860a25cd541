"""Routes: runs: submit, list, show, abort, acknowledge a manual step, the report, JUnit.

`POST /runs` submits (PENDING, trigger `api`, the caller as its principal) and answers
202 with `Location: /api/v1/runs/{id}`: the runner inside `serve` (`drills.service.driver`)
drives it once it may start (a run in a protected Environment awaits its approvers first:
`awaitingApproval`). A run started here and one started with `stormdrill run` land in the
same store and look the same. Run ids are what the CLI takes: a full id, a unique prefix
(of the id or its random part), or `latest`. POSTs that start or change something accept
an `Idempotency-Key`. Scoped roles are checked against the services the drill targets.
The two hot reads (list, show) are `async` and read the store in one worker-thread hop
(`drills.api.threads`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import fastapi
from fastapi import responses
from starlette import concurrency

from drills import settings as settings_mod
from drills.api import config as api_config
from drills.api import deps, idempotency, problems, threads
from drills.service import (
    approvals,
    auth,
    catalogs,
    documents,
    driver,
    submitting,
    views,
)
from drills.service import runs as run_service
from orchestrator import engine, journal, registry, states
from reports import rendering

router = fastapi.APIRouter(tags=["runs"], route_class=idempotency.IdempotentRoute)

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]
Starter = Annotated[auth.Principal, deps.require(auth.Permission.START)]
Aborter = Annotated[auth.Principal, deps.require(auth.Permission.ABORT)]
Acker = Annotated[auth.Principal, deps.require(auth.Permission.ACK)]
RunIdPath = Annotated[
    str,
    fastapi.Path(
        description="A run id, a unique prefix of one (or of its random part), or `latest`.",
        examples=["latest", "3f9a1c2b", "20250101T120000Z-3f9a1c2b"],
    ),
]


def _scoped(principal: auth.Principal) -> bool:
    return any(grant.scoped for grant in principal.effective_grants())


def location(run_id: str) -> str:
    return f"/api/v1/runs/{run_id}"


# ---- submit -----------------------------------------------------------------------------


def _submit(
    body: views.RunRequestBody,
    *,
    principal: auth.Principal,
    settings: settings_mod.Settings,
    api_settings: api_config.ApiSettings,
    store: journal.Journal,
    reg: registry.Registry,
    folders: documents.Folders,
    runner: driver.Driver | None,
) -> views.RunSubmittedView:
    run = submitting.submit_request(
        settings,
        store,
        reg,
        folders,
        scenario=body.scenario,
        environment=body.environment,
        parameters=body.parameters,
        principal=principal,
        approval_settings=api_settings,
        runner=runner,
        reason="POST /api/v1/runs",
    )
    return views.RunSubmittedView(
        id=run.id,
        state=run.state,
        awaiting_approval=approvals.awaiting_approval(store, run),
        scenario=run.scenario,
        environment=run.environment,
    )


@router.post(
    "/runs",
    summary="Submit a run (it starts once it may: approvals, kill switch)",
    status_code=202,
    response_model=views.RunSubmittedView,
    responses={
        202: {"headers": {"Location": {"description": "The run: /api/v1/runs/{id}"}}},
        **problems.responses(*problems.COMMON, 404, 409, 502),
    },
    dependencies=[idempotency.IdempotencyDep],
)
async def submit_run(
    body: views.RunRequestBody,
    principal: Starter,
    settings: deps.SettingsDep,
    api_settings: deps.ApiSettingsDep,
    store: deps.StoreDep,
    reg: deps.RegistryDep,
    folders: deps.FoldersDep,
    runner: deps.DriverDep,
) -> fastapi.Response:
    """Queue a drill: `scenario` (a Scenario or Drill name, or a file of the configured
    folders), `environment` (a name or file), `parameters`. 202 and the run's `Location`."""
    submitted = await concurrency.run_in_threadpool(
        _submit,
        body,
        principal=principal,
        settings=settings,
        api_settings=api_settings,
        store=store,
        reg=reg,
        folders=folders,
        runner=runner,
    )
    return responses.JSONResponse(
        submitted.dump(), status_code=202, headers={"Location": location(submitted.id)}
    )


# ---- list and show ----------------------------------------------------------------------


def _parse_until(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise run_service.BadSince(
            f"until {text!r}: write an ISO date or time (e.g. 2025-01-31, 2025-01-31T12:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@router.get(
    "/runs",
    summary="List runs, newest first (filters, cursor pagination)",
    response_model=views.RunPageView,
    responses=problems.responses(*problems.COMMON),
)
async def list_runs(
    request: fastapi.Request,
    store: deps.StoreDep,
    _: Reader,
    state: Annotated[list[states.RunState] | None, fastapi.Query()] = None,
    verdict: Annotated[list[states.Verdict] | None, fastapi.Query()] = None,
    scenario: str | None = None,
    environment: str | None = None,
    service: Annotated[
        str | None, fastapi.Query(description="A CMDB service ref the run's plan reached.")
    ] = None,
    trigger: engine.TriggerKind | None = None,
    since: Annotated[
        str | None, fastapi.Query(description="A duration back from now (2h, 7d) or ISO time.")
    ] = None,
    until: Annotated[str | None, fastapi.Query(description="ISO date or time.")] = None,
    limit: Annotated[int, fastapi.Query(ge=1, le=500)] = 20,
    cursor: Annotated[str | None, fastapi.Query(description="`nextCursor` of a page.")] = None,
) -> views.RunPageView:
    """A page of runs matching the filters (`state` and `verdict` repeatable)."""
    where = run_service.RunFilter(
        state=frozenset(state) if state else None,
        verdict=frozenset(verdict) if verdict else None,
        scenario=scenario,
        environment=environment,
        service=service,
        trigger=trigger,
        since=run_service.parse_since(since, now=datetime.now(UTC)) if since else None,
        until=_parse_until(until) if until else None,
    )
    return await threads.read(request, _page, store, where=where, limit=limit, cursor=cursor)


def _page(
    store: journal.Journal, *, where: run_service.RunFilter, limit: int, cursor: str | None
) -> views.RunPageView:
    page = run_service.list_runs(store, where=where, limit=limit, cursor=cursor)
    return views.RunPageView(
        runs=[views.RunView.from_run(r) for r in page.runs], next_cursor=page.next_cursor
    )


@router.get(
    "/runs/{run_id}",
    summary="One run: its state, record, timeline and journal",
    response_model=views.RunDetailView,
    responses=problems.responses(*problems.COMMON, 404, 409),
)
async def get_run(
    run_id: RunIdPath, request: fastapi.Request, store: deps.StoreDep, _: Reader
) -> views.RunDetailView:
    """The run, as `stormdrill runs show RUN --format json` shows it."""
    return await threads.read(request, _detail, store, run_id)


def _detail(store: journal.Journal, run_id: str) -> views.RunDetailView:
    return run_service.show_named(store, run_id).view()


# ---- abort and acknowledge --------------------------------------------------------------


def _authorize_run(
    principal: auth.Principal,
    permission: auth.Permission,
    *,
    run: states.Run,
    settings: settings_mod.Settings,
) -> None:
    """A scoped principal may act on the run only for the services its plan targeted."""
    if not _scoped(principal):
        return
    catalog = catalogs.catalog_for(settings, catalogs.recorded_environment(run), ())
    auth.authorize(principal, permission, auth.services_of_run(run.record, catalog=catalog))


@router.post(
    "/runs/{run_id}/abort",
    summary="Abort a run (it stops injecting, rolls back and verifies)",
    status_code=202,
    response_model=views.RunView,
    responses=problems.responses(*problems.COMMON, 404, 409),
    dependencies=[idempotency.IdempotencyDep],
)
def abort_run(
    run_id: RunIdPath,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    principal: Aborter,
) -> views.RunView:
    """Ask the run to abort (a queued run is cancelled at once); 409 if it already ended."""
    run = store.get_run(run_service.resolve_id(store, run_id))
    _authorize_run(principal, auth.Permission.ABORT, run=run, settings=settings)
    stopped = run_service.cancel(
        store,
        run.id,
        reason=f"aborted by {principal.name} over the API",
        source=f"the API ({principal.name})",
    )
    return views.RunView.from_run(stopped)


@router.post(
    "/runs/{run_id}/steps/{step}/ack",
    summary="Acknowledge a manual step with evidence (the drill continues)",
    response_model=views.AckView,
    responses=problems.responses(*problems.COMMON, 404, 409),
    dependencies=[idempotency.IdempotencyDep],
)
def ack_step(
    run_id: RunIdPath,
    step: str,
    body: views.AckRequestBody,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    principal: Acker,
) -> views.AckView:
    """Acknowledge `step` as `by` (default: the caller); 403 if `by` may not act on it."""
    run = store.get_run(run_service.resolve_id(store, run_id))
    _authorize_run(principal, auth.Permission.ACK, run=run, settings=settings)
    done = run_service.ack(
        store, run.id, step, by=body.by or principal.name, evidence=body.evidence
    )
    return views.AckView(run=run.id, step=done.step, by=done.by, evidence=done.evidence)


# ---- reports ----------------------------------------------------------------------------

_MEDIA: dict[rendering.Format, str] = {
    rendering.Format.MARKDOWN: "text/markdown; charset=utf-8",
    rendering.Format.HTML: "text/html; charset=utf-8",
    rendering.Format.JSON: "application/json",
}


@router.get(
    "/runs/{run_id}/report",
    summary="The run's blameless post-mortem (Markdown, HTML or JSON)",
    response_class=fastapi.Response,
    responses={
        200: {
            "description": "The post-mortem in the format asked for.",
            "content": {
                "text/markdown": {"schema": {"type": "string"}, "example": "# Post-mortem…"},
                "text/html": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        **problems.responses(*problems.COMMON, 404, 409),
    },
)
def report(
    run_id: RunIdPath,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    _: Reader,
    output_format: Annotated[
        rendering.Format, fastapi.Query(alias="format")
    ] = rendering.Format.MARKDOWN,
) -> fastapi.Response:
    """The post-mortem, with the CMDB of the Environment the run recorded."""
    text = run_service.postmortem_text(
        settings, store, run_service.resolve_id(store, run_id), output_format
    )
    return fastapi.Response(content=text, media_type=_MEDIA[output_format])


@router.get(
    "/runs/{run_id}/junit",
    summary="The run as JUnit XML (a case per step, probe check, guardrail, objective)",
    response_class=fastapi.Response,
    responses={
        200: {
            "description": "JUnit XML.",
            "content": {
                "application/xml": {"schema": {"type": "string"}, "example": "<testsuites/>"}
            },
        },
        **problems.responses(*problems.COMMON, 404, 409),
    },
)
def junit(run_id: RunIdPath, store: deps.StoreDep, _: Reader) -> fastapi.Response:
    """JUnit XML of the run, for CI dashboards."""
    text = run_service.junit_xml(store, run_service.resolve_id(store, run_id))
    return fastapi.Response(content=text, media_type="application/xml")
