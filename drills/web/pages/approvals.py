"""`/approvals`: the inbox of runs (and schedules) awaiting approval, and the decisions.

The inbox lists every PENDING run that awaits approval (`drills.service.approvals`: who
asked, when, how many approvers it needs, who approved so far) with the plan the approval
is for: the run's drill rebound from its record and planned again (touches nothing), its
targets, mutations and blast radius, and whether that plan is still the one the request
awaits (its plan hash). Schedules whose protected Environment awaits approval of their spec
(`drills.service.schedules`) are listed after the runs. Each item has Approve and Reject
forms for a principal allowed to decide, and says why a button is absent (the role, a
service scope, the two-person rule: the requester may reject but never approve).

`POST /runs/{id}/approve` (fields `comment`, `plan_hash`: the plan shown) and
`POST /runs/{id}/reject` (field `reason`) call what `drills/api/routes/approvals.py` calls
(`approvals.approve` / `approvals.reject`, the approve permission checked against the
run's services, the runner woken after an approval); `POST /approvals/schedules/{id}/
approve|reject` do the same for a schedule (`schedules.approve` / `schedules.reject`, as
`POST /api/v1/schedules/{id}/approve|reject`). Each checks the CSRF token, acts once per
form (`forms.act_once`), is audited with the API's action name (`run.approve`,
`run.reject`, `schedule.approve`, `schedule.reject`; refusals too) and answers 303 to
`/approvals` (or to the run's page when the form says `next=/runs/{id}`). A refusal the
service makes (self-approval: 403; a run that no longer awaits approval: 409) is the
error page with the API's status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import fastapi
from fastapi import responses
from starlette import concurrency

from drills import settings as settings_mod
from drills.service import approvals, auth, catalogs, problems, sessions, views
from drills.service import runs as run_service
from drills.service import schedules as schedule_service
from drills.web import audit, deps, forms, rendering, routing
from orchestrator import engine, journal, registry, states
from orchestrator.cmdb import errors as cmdb_errors
from scenarios import errors, secrets

router = routing.router()

INBOX = "/approvals"
MAX_TEXT = 4000
INBOX_LIMIT = 500
"""At most this many pending runs are looked at for the inbox (newest first)."""


class FormInvalid(errors.StormdrillError):
    """A decision form that lacks what it needs (422): names the field and the fix."""


# ---- the inbox ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunAwaiting:
    """A run awaiting approval, the plan the approval is for, and what the viewer may do."""

    run: views.RunView
    status: approvals.ApprovalStatusView
    requested_at: datetime
    plan: views.PlanView | None
    plan_hash: str | None
    """The hash of the plan shown (what an approval from this page is bound to)."""
    plan_error: str | None
    approve_refusal: str | None
    """None: the viewer may approve; else why the Approve button is absent."""
    reject_refusal: str | None

    @property
    def plan_current(self) -> bool:
        return self.plan_hash is not None and self.plan_hash == self.status.plan_hash


@dataclasses.dataclass(frozen=True)
class ScheduleAwaiting:
    """A schedule whose spec awaits approval, and what the viewer may do."""

    schedule: schedule_service.ScheduleView
    approval: schedule_service.ScheduleApprovalView
    approve_refusal: str | None
    reject_refusal: str | None


@dataclasses.dataclass(frozen=True)
class Inbox:
    runs: tuple[RunAwaiting, ...]
    schedules: tuple[ScheduleAwaiting, ...]


def _refusal(principal: auth.Principal, services: tuple[auth.ScopedService, ...]) -> str | None:
    try:
        auth.authorize(principal, auth.Permission.APPROVE, services)
    except auth.Forbidden as exc:
        return str(exc)
    return None


def _same_person(a: str, b: str) -> bool:
    return approvals.person(a) == approvals.person(b)


def _replanned(
    settings: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    run: states.Run,
) -> tuple[views.PlanView, str]:
    """The run's drill planned again from its record (touches nothing), secrets masked,
    and the plan's hash, as the runner's gate plans it before the start."""
    drill = run_service.rebind(run)
    catalog = catalogs.catalog_for(settings, drill.environment, ())
    eng = run_service.make_engine(settings, store, reg, catalog=catalog)
    drill_plan = eng.plan(drill)
    values, keys = engine.secret_values(drill)
    masking = secrets.Redactor().with_secrets(values, keys=keys)
    shown = views.PlanView.from_plan(drill_plan, cells=None).model_dump(mode="json")
    return views.PlanView.model_validate(masking.json(shown)), approvals.plan_hash(drill_plan)


def _run_item(
    *,
    principal: auth.Principal,
    settings: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    run: states.Run,
    status: approvals.Status,
    now: datetime,
) -> RunAwaiting:
    shown = status.view(now=now)
    plan: views.PlanView | None = None
    plan_hash: str | None = None
    plan_error: str | None = None
    try:
        plan, plan_hash = _replanned(settings, store, reg, run)
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        plan_error = secrets.redact(str(exc))
    reject_refusal = _refusal(principal, auth.services_of_run(run.record))
    approve_refusal = reject_refusal
    if approve_refusal is None:
        if _same_person(principal.name, status.request.requester):
            approve_refusal = (
                f"you asked for this run ({status.request.requester}), so someone else must"
                " approve it (the two-person rule); you may still reject it"
            )
        elif any(_same_person(principal.name, name) for name in status.approvers):
            approve_refusal = (
                f"you approved this plan already; it awaits {status.missing} more approver(s)"
            )
        elif plan_hash is None:
            approve_refusal = "the plan could not be drawn, so there is nothing to review"
        elif plan_hash != status.request.plan_hash:
            approve_refusal = (
                "the plan changed since approval was asked (the files or the CMDB changed):"
                " the runner asks again for the new plan before the run may start"
            )
    return RunAwaiting(
        run=views.RunView.from_run(run),
        status=shown,
        requested_at=status.request.requested_at,
        plan=plan,
        plan_hash=plan_hash,
        plan_error=plan_error,
        approve_refusal=approve_refusal,
        reject_refusal=reject_refusal,
    )


def _schedule_item(
    principal: auth.Principal, schedule: schedule_service.ScheduleView
) -> ScheduleAwaiting | None:
    approval = schedule.approval
    if not schedule.awaiting_approval or approval is None:
        return None
    if approval.ended or approval.rejected_by is not None:
        return None
    reject_refusal = _refusal(principal, ())
    approve_refusal = reject_refusal
    if approve_refusal is None:
        if _same_person(principal.name, approval.requester):
            approve_refusal = (
                f"you applied this schedule ({approval.requester}), so someone else must"
                " approve it (the two-person rule); you may still reject it"
            )
        elif any(_same_person(principal.name, name) for name in approval.approved_by):
            approve_refusal = (
                f"you approved this spec already; it awaits {approval.missing} more approver(s)"
            )
    return ScheduleAwaiting(
        schedule=schedule,
        approval=approval,
        approve_refusal=approve_refusal,
        reject_refusal=reject_refusal,
    )


def inbox(
    *,
    principal: auth.Principal,
    settings: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
) -> Inbox:
    """What awaits approval now, oldest request first, as `principal` sees it."""
    now = datetime.now(UTC)
    pending = run_service.list_runs(
        store,
        where=run_service.RunFilter(state=frozenset({states.RunState.PENDING})),
        limit=INBOX_LIMIT,
    )
    items = []
    for run in pending.runs:
        found = approvals.status(store, run.id, now=now, run=run)
        if found is None or not found.awaiting:
            continue
        items.append(
            _run_item(
                principal=principal,
                settings=settings,
                store=store,
                reg=reg,
                run=run,
                status=found,
                now=now,
            )
        )
    items.sort(key=lambda item: item.requested_at)
    waiting = (_schedule_item(principal, s) for s in schedule_service.views_of(store))
    return Inbox(runs=tuple(items), schedules=tuple(s for s in waiting if s is not None))


@router.get("/approvals", response_class=responses.HTMLResponse)
async def inbox_page(
    request: fastapi.Request,
    session: deps.SessionDep,
    settings: deps.SettingsDep,
    store: deps.StoreDep,
    reg: deps.RegistryDep,
) -> responses.Response:
    principal = session.principal
    auth.authorize(principal, auth.Permission.READ)
    found = await concurrency.run_in_threadpool(
        lambda: inbox(principal=principal, settings=settings, store=store, reg=reg)
    )
    return rendering.page(
        request,
        "approvals.html",
        title="Approvals",
        inbox=found,
        may_decide=_refusal(principal, ()) is None,
    )


# ---- decisions ---------------------------------------------------------------------------


def _text(value: str, *, field: str, required: bool) -> str:
    text = " ".join(value.split())
    if required and not text:
        raise FormInvalid(f"the form's {field} field is empty: say why (it goes on the record)")
    if len(value) > MAX_TEXT:
        raise FormInvalid(
            f"the form's {field} field is {len(value)} characters; at most {MAX_TEXT}"
        )
    return value.strip()


def _next(raw: str, run_id: str) -> str:
    """Where the browser goes afterwards: the inbox, or this run's page when asked."""
    return f"/runs/{run_id}" if raw == f"/runs/{run_id}" else INBOX


async def _decide(
    request: fastapi.Request,
    store: journal.Journal,
    session: sessions.Session,
    *,
    action: str,
    target: str,
    act: Callable[[], str],
) -> responses.Response:
    """Check the role, act once, and audit the outcome (a refusal too) as the API would."""
    try:
        auth.authorize(session.principal, auth.Permission.APPROVE)
        answer = await forms.act_once(request, store, session, act)
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        await audit.record(
            request,
            store,
            action=action,
            target=target,
            status=problems.kind_of(exc).status,
            detail=secrets.redact(str(exc)),
        )
        raise
    await audit.record(request, store, action=action, target=target, status=answer.status_code)
    return answer


FormText = Annotated[str, fastapi.Form()]


@router.post("/runs/{run_id}/approve")
async def approve_run(
    request: fastapi.Request,
    run_id: str,
    session: deps.FormSessionDep,
    store: deps.StoreDep,
    runner: deps.DriverDep,
    comment: FormText = "",
    plan_hash: FormText = "",
    next_: Annotated[str, fastapi.Form(alias="next")] = INBOX,
) -> responses.Response:
    rid = states.RunId(run_id)
    principal = session.principal

    def act() -> str:
        said = _text(comment, field="comment", required=False)
        run = approvals.find_run(store, rid)
        auth.authorize(principal, auth.Permission.APPROVE, auth.services_of_run(run.record))
        approvals.approve(store, rid, by=principal.name, comment=said, plan_hash=plan_hash or None)
        if runner is not None:
            runner.wake()
        return _next(next_, run_id)

    return await _decide(
        request, store, session, action="run.approve", target=f"runs/{run_id}/approve", act=act
    )


@router.post("/runs/{run_id}/reject")
async def reject_run(
    request: fastapi.Request,
    run_id: str,
    session: deps.FormSessionDep,
    store: deps.StoreDep,
    reason: FormText = "",
    next_: Annotated[str, fastapi.Form(alias="next")] = INBOX,
) -> responses.Response:
    rid = states.RunId(run_id)
    principal = session.principal

    def act() -> str:
        said = _text(reason, field="reason", required=True)
        run = approvals.find_run(store, rid)
        auth.authorize(principal, auth.Permission.APPROVE, auth.services_of_run(run.record))
        approvals.reject(store, rid, by=principal.name, reason=said)
        return _next(next_, run_id)

    return await _decide(
        request, store, session, action="run.reject", target=f"runs/{run_id}/reject", act=act
    )


@router.post("/approvals/schedules/{schedule}/approve")
async def approve_schedule(
    request: fastapi.Request,
    schedule: str,
    session: deps.FormSessionDep,
    store: deps.StoreDep,
    comment: FormText = "",
    spec_hash: FormText = "",
) -> responses.Response:
    principal = session.principal

    def act() -> str:
        said = _text(comment, field="comment", required=False)
        auth.authorize(principal, auth.Permission.APPROVE, ())
        schedule_service.approve(
            store, schedule, by=principal.name, comment=said, spec_hash=spec_hash or None
        )
        return INBOX

    return await _decide(
        request,
        store,
        session,
        action="schedule.approve",
        target=f"schedules/{schedule}/approve",
        act=act,
    )


@router.post("/approvals/schedules/{schedule}/reject")
async def reject_schedule(
    request: fastapi.Request,
    schedule: str,
    session: deps.FormSessionDep,
    store: deps.StoreDep,
    reason: FormText = "",
) -> responses.Response:
    principal = session.principal

    def act() -> str:
        said = _text(reason, field="reason", required=True)
        auth.authorize(principal, auth.Permission.APPROVE, ())
        schedule_service.reject(store, schedule, by=principal.name, reason=said)
        return INBOX

    return await _decide(
        request,
        store,
        session,
        action="schedule.reject",
        target=f"schedules/{schedule}/reject",
        act=act,
    )
