"""Routes: approvals of runs in protected environments (the two-person rule).

`POST /runs/{run_id}/approve` (body: an optional comment and the `planHash` the approver
reviewed) and `POST /runs/{run_id}/reject` (body: the reason) answer the run with its
approval status; `GET /runs/{run_id}/approvals` lists the run's decisions. A run that does
not await approval (unprotected, started, ended, rejected) is 409, an approval of another
plan than the awaited one 409, self-approval 403. The rules are `drills.service.approvals`;
after a decision the driver is woken so an approved run starts without waiting a poll.
"""

from __future__ import annotations

from typing import Annotated

import fastapi
import pydantic

from drills.api import deps, problems
from drills.service import approvals, auth
from orchestrator import states

router = fastapi.APIRouter(tags=["approvals"])

ApproverDep = Annotated[auth.Principal, deps.require(auth.Permission.APPROVE)]
ReaderDep = Annotated[auth.Principal, deps.require(auth.Permission.READ)]


class ApproveBody(pydantic.BaseModel):
    """An approval: why (optional), and the plan reviewed (optional, but then it must match)."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [{"comment": "reviewed with the payments on-call", "planHash": "3f9a…"}]
        },
    )

    comment: str = pydantic.Field(default="", max_length=4000)
    plan_hash: str | None = pydantic.Field(
        default=None,
        alias="planHash",
        pattern=r"^[0-9a-f]{64}$",
        description="The plan hash the approver reviewed (`GET /runs/{id}/approvals`); "
        "refused with 409 when the run now awaits another plan.",
    )


class RejectBody(pydantic.BaseModel):
    """A rejection: the reason goes on the run record (it ends ABORTED)."""

    model_config = pydantic.ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "not during the sale"}]}
    )

    reason: str = pydantic.Field(min_length=1, max_length=4000, pattern=r"\S")


def _check_scope(principal: auth.Principal, run: states.Run) -> None:
    """A scoped approver may decide only on runs whose targeted services it covers."""
    auth.authorize(principal, auth.Permission.APPROVE, services=auth.services_of_run(run.record))


@router.post(
    "/runs/{run_id}/approve",
    summary="Approve a run awaiting approval (not your own)",
    response_model=approvals.ApprovedRunView,
    responses=problems.responses(*problems.COMMON, 404, 409),
)
def approve_run(
    run_id: str,
    body: ApproveBody,
    store: deps.StoreDep,
    principal: ApproverDep,
    driver: deps.DriverDep,
) -> approvals.ApprovedRunView:
    rid = states.RunId(run_id)
    _check_scope(principal, approvals.find_run(store, rid))
    approvals.approve(store, rid, by=principal.name, comment=body.comment, plan_hash=body.plan_hash)
    if driver is not None:
        driver.wake()
    return approvals.run_view(store, rid)


@router.post(
    "/runs/{run_id}/reject",
    summary="Reject a run awaiting approval: it ends aborted with the reason",
    response_model=approvals.ApprovedRunView,
    responses=problems.responses(*problems.COMMON, 404, 409),
)
def reject_run(
    run_id: str,
    body: RejectBody,
    store: deps.StoreDep,
    principal: ApproverDep,
) -> approvals.ApprovedRunView:
    rid = states.RunId(run_id)
    _check_scope(principal, approvals.find_run(store, rid))
    approvals.reject(store, rid, by=principal.name, reason=body.reason)
    return approvals.run_view(store, rid)


@router.get(
    "/runs/{run_id}/approvals",
    summary="A run's approval status and every approval or rejection of it",
    response_model=approvals.RunApprovalsView,
    responses=problems.responses(*problems.COMMON, 404),
)
def list_approvals(
    run_id: str, store: deps.StoreDep, principal: ReaderDep
) -> approvals.RunApprovalsView:
    del principal
    return approvals.approvals_view(store, states.RunId(run_id))
