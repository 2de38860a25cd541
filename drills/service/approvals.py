"""Two-person approvals of runs in protected environments, and the preflight hooks.

A run submitted into a protected Environment (`spec.protected`, `spec.approvals.required`:
at least one distinct approver when protected, `orchestrator.guardrails.required_approvals`)
is PENDING and awaits approval: `open_request` (or `protect`, which decides and hashes for
the caller) records who asked and the hash of the plan (`plan_hash`). Approvers `approve`
or `reject` it; the run may start only when `ready`: approvals by `required` distinct
people, none of them the requester, given for exactly the current plan hash and not
expired. Whoever drives runs calls `gate` just before the start with a fresh plan: a plan
whose hash changed makes the earlier approvals stop counting (the run awaits approval
again, for the new plan), the preflight hooks may veto it (`preflight`), and otherwise
`approvers` are the names to hand the engine's approvals guardrail (they replace the
drill's own `approvals`: on the API path only approvals given here count).

Invariants:
- Self-approval is refused (`auth.Forbidden`); two names of one person
  (`user:default/alice`, `alice`) count once, as the engine's guardrail counts them.
- An approval counts for `ttl_s` after it was given (the TTL in force when the run was
  submitted: `ApprovalSettings.approval_ttl_s`, default one hour) and only for the plan
  hash it was given for; decisions are append-only rows (`drills.tables_approvals`) and a
  line on the run's timeline (`EventKind.APPROVAL`).
- A rejection, or a preflight veto, ends the run ABORTED (from PENDING, through
  `engine.move_run`: nothing was touched) with the reason, its record marked `refused`.
- The plan hash covers what the run would do, not when it is asked: the scenario (name,
  source, a digest of the rendered document), the environment's name, the parameters,
  every target's resolved refs and every planned mutation's action, target and params, with
  secret values masked; never the guardrail verdicts (the approvals themselves are one),
  pre-states or undo tokens (resource versions move without the plan changing).
- Preflight hooks get the plan as JSON (`hook_body`), signed `X-Stormdrill-Signature:
  sha256=<hex HMAC-SHA256 of the body>` with `preflight_secret` (no header without one);
  any answer but 2xx, a timeout or a connection error vetoes, with the hook's answer
  (trimmed) as the reason. Hooks are asked in order; the first veto stops the asking.

This module never imports `drills.api`: the settings it reads are any object with the
`ApprovalSettings` attributes (`ApiSettings` is one).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
import pydantic
import sqlalchemy as sa

from drills import tables_approvals as tables
from drills.service import auth, views
from drills.service import runs as run_service
from orchestrator import engine, events, guardrails, journal, mutations, planning, states
from orchestrator import errors as orchestrator_errors
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from scenarios import errors, loading, models, secrets

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Stormdrill-Signature"
REASON_LIMIT = 500
"""How much of a hook's answer the run's reason keeps (characters, white space folded)."""
DEFAULT_TTL_S = 3600.0

_S = states.RunState
_requests = tables.approval_requests_table
_decisions = tables.approvals_table


class NotAwaitingApproval(orchestrator_errors.OrchestratorError):
    """The run is not waiting for approval: not protected, already started, or ended (409)."""


class PlanMismatch(orchestrator_errors.OrchestratorError):
    """An approval was given for another plan than the one the run now awaits (409)."""


class NotProtected(errors.StormdrillError):
    """`open_request` for a run whose environment needs no approval (a caller's bug)."""


class ApprovalSettings(Protocol):
    """What this module reads of the API settings (`drills.api.config.ApiSettings`)."""

    @property
    def approval_ttl_s(self) -> float: ...

    @property
    def preflight_hooks(self) -> tuple[str, ...]: ...

    @property
    def preflight_secret(self) -> pydantic.SecretStr | None: ...

    @property
    def preflight_timeout_s(self) -> float: ...


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclasses.dataclass(frozen=True)
class Request:
    """A run that awaits approval: who asked, how many approvers, for which plan."""

    run_id: states.RunId
    requester: str
    required: int
    plan_hash: str
    ttl_s: float
    requested_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True)
class Approval:
    """One decision on a run: an approval (with its expiry) or a rejection."""

    id: int
    run_id: states.RunId
    decision: Decision
    by: str
    plan_hash: str
    comment: str
    at: datetime
    expires_at: datetime | None

    def counts(self, *, plan_hash: str, requester: str, now: datetime) -> bool:
        """Whether this is an approval of `plan_hash`, unexpired at `now`, not the requester's."""
        return (
            self.decision is Decision.APPROVE
            and self.plan_hash == plan_hash
            and self.expires_at is not None
            and self.expires_at > now
            and person(self.by) != person(requester)
        )


@dataclasses.dataclass(frozen=True)
class Status:
    """Where a run's approval stands at `now`."""

    request: Request
    decisions: tuple[Approval, ...]
    approvers: tuple[str, ...]
    """The distinct people whose approvals count now (as they signed, first of each)."""
    rejected: Approval | None
    awaiting: bool
    """PENDING, not rejected, and fewer counting approvers than required."""

    @property
    def missing(self) -> int:
        return max(self.request.required - len(self.approvers), 0)

    def view(self, *, now: datetime) -> ApprovalStatusView:
        request = self.request
        return ApprovalStatusView(
            awaiting_approval=self.awaiting,
            required=request.required,
            requester=request.requester,
            plan_hash=request.plan_hash,
            approved_by=list(self.approvers),
            missing=self.missing,
            rejected_by=None if self.rejected is None else self.rejected.by,
            approvals=[
                ApprovalView.from_approval(
                    d,
                    counts=d.counts(
                        plan_hash=request.plan_hash, requester=request.requester, now=now
                    ),
                )
                for d in self.decisions
            ],
        )


def person(name: str) -> str:
    """The one spelling of a person (`alice`, `user:alice`, `user:default/alice` are one)."""
    try:
        return str(cmdb_models.EntityRef.parse(name, default_kind=cmdb_models.EntityKind.USER))
    except cmdb_errors.CmdbError:
        return name.strip().lower()


def _now() -> datetime:
    return datetime.now(UTC)


# ---- the policy and the plan hash ------------------------------------------------------------


def required(environment: models.Environment) -> int:
    """Distinct approvers a run there needs (0: not protected)."""
    return guardrails.required_approvals(environment)


def canonical_plan(plan: planning.Plan) -> dict[str, mutations.JsonValue]:
    """What the plan hash covers, as JSON data, secret values masked (see the module doc)."""
    drill = plan.drill
    values, keys = engine.secret_values(drill)
    masking = secrets.Redactor().with_secrets(values, keys=keys)
    scenario_doc = drill.scenario.model_dump(mode="json", by_alias=True)
    raw: dict[str, object] = {
        "scenario": {
            "name": drill.scenario.metadata.name,
            "source": drill.scenario_source,
            "digest": _digest(masking.json(scenario_doc)),
        },
        "environment": drill.environment.metadata.name,
        "parameters": {name: drill.parameters[name] for name in sorted(drill.parameters)},
        "targets": {
            name: [ref.to_json() for ref in sorted(selection.refs, key=lambda r: r.key)]
            for name, selection in sorted(plan.selections.items())
        },
        "steps": [
            {
                "step": step.step.name,
                "mutations": [
                    {
                        "action": m.action,
                        "target": m.target.to_json(),
                        "params": dict(m.params),
                    }
                    for m in step.mutations
                ],
            }
            for step in plan.steps
        ],
    }
    canonical: dict[str, mutations.JsonValue] = json.loads(_canonical_json(masking.json(raw)))
    return canonical


def plan_hash(plan: planning.Plan) -> str:
    """The SHA-256 (hex) of the plan's canonical JSON: what an approval is bound to."""
    return _digest(canonical_plan(plan))


def _canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _digest(value: object) -> str:
    return hashlib.sha256(_canonical_json(value).encode()).hexdigest()


# ---- requests ---------------------------------------------------------------------------------


def open_request(
    store: journal.Journal,
    run: states.Run,
    *,
    requester: str,
    plan_hash: str,
    config: ApprovalSettings | None = None,
    required: int | None = None,
    now: datetime | None = None,
) -> Request:
    """The submitted (PENDING) run `run` now awaits approval of the plan `plan_hash`.

    `required` distinct approvers (default: what the run's Environment file says);
    approvals count for `config.approval_ttl_s` (default one hour). Raises `NotProtected`
    when the environment needs no approval and `NotAwaitingApproval` unless the run is
    PENDING; opening it again (a retried submit) keeps the first request.
    """
    needed = _required_of(run) if required is None else required
    if needed < 1:
        raise NotProtected(
            f"run {run.id}: environment {run.environment} needs no approval; only runs in a"
            " protected environment await approval"
        )
    if run.state is not _S.PENDING:
        raise NotAwaitingApproval(
            f"run {run.id} is {run.state.value}: only a pending run can await approval"
        )
    at = now or _now()
    ttl = DEFAULT_TTL_S if config is None else float(config.approval_ttl_s)
    with store.transaction(write=True) as conn:
        existing = conn.execute(_requests.select().where(_requests.c.run_id == run.id)).first()
        if existing is None:
            conn.execute(
                _requests.insert().values(
                    run_id=run.id,
                    requester=requester,
                    required=needed,
                    plan_hash=plan_hash,
                    ttl_s=ttl,
                    requested_at=at,
                    updated_at=at,
                )
            )
    if existing is not None:
        return _request_from_row(existing)
    store.append_event(
        run.id,
        kind=events.EventKind.APPROVAL,
        message=(
            f"awaiting approval by {needed} person(s) other than {requester}"
            f" (environment {run.environment} is protected)"
        ),
        data={"decision": "requested", "by": requester, "plan_hash": plan_hash},
    )
    log.info("run %s awaits %d approval(s); requested by %s", run.id, needed, requester)
    return Request(
        run_id=run.id,
        requester=requester,
        required=needed,
        plan_hash=plan_hash,
        ttl_s=ttl,
        requested_at=at,
        updated_at=at,
    )


def protect(
    store: journal.Journal,
    run: states.Run,
    *,
    plan: planning.Plan,
    requester: str,
    config: ApprovalSettings | None = None,
) -> Request | None:
    """Open the request when the plan's environment is protected; None when it is not.

    What a submitting entry point calls after `runs.submit` with the plan it showed.
    """
    needed = required(plan.drill.environment)
    if needed == 0:
        return None
    return open_request(
        store,
        run,
        requester=requester,
        plan_hash=plan_hash(plan),
        config=config,
        required=needed,
    )


def _required_of(run: states.Run) -> int:
    environment = loading.load_environment(Path(run.environment_source)).model
    return required(environment)


def request(store: journal.Journal, run_id: states.RunId) -> Request | None:
    """The run's approval request; None when the run never needed approval."""
    with store.transaction() as conn:
        row = conn.execute(_requests.select().where(_requests.c.run_id == run_id)).first()
    return None if row is None else _request_from_row(row)


def decisions(store: journal.Journal, run_id: states.RunId) -> tuple[Approval, ...]:
    """Every approval and rejection of the run, oldest first."""
    with store.transaction() as conn:
        rows = conn.execute(
            _decisions.select().where(_decisions.c.run_id == run_id).order_by(_decisions.c.id)
        ).all()
    return tuple(_approval_from_row(row) for row in rows)


def _request_from_row(row: sa.Row[tuple[object, ...]]) -> Request:
    return Request(
        run_id=states.RunId(row.run_id),
        requester=row.requester,
        required=row.required,
        plan_hash=row.plan_hash,
        ttl_s=row.ttl_s,
        requested_at=row.requested_at,
        updated_at=row.updated_at,
    )


def _approval_from_row(row: sa.Row[tuple[object, ...]]) -> Approval:
    return Approval(
        id=row.id,
        run_id=states.RunId(row.run_id),
        decision=Decision(row.decision),
        by=row.by,
        plan_hash=row.plan_hash,
        comment=row.comment,
        at=row.at,
        expires_at=row.expires_at,
    )


# ---- where a run stands -------------------------------------------------------------------------


def status(
    store: journal.Journal,
    run_id: states.RunId,
    *,
    now: datetime | None = None,
    run: states.Run | None = None,
) -> Status | None:
    """The run's approval status at `now`; None when it never needed approval."""
    found = request(store, run_id)
    if found is None:
        return None
    at = now or _now()
    current = run if run is not None else store.get_run(run_id)
    made = decisions(store, run_id)
    counted = _counted(made, request=found, plan_hash=found.plan_hash, now=at)
    rejected = next((d for d in made if d.decision is Decision.REJECT), None)
    return Status(
        request=found,
        decisions=made,
        approvers=counted,
        rejected=rejected,
        awaiting=(
            current.state is _S.PENDING and rejected is None and len(counted) < found.required
        ),
    )


def _counted(
    made: Iterable[Approval], *, request: Request, plan_hash: str, now: datetime
) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for decision in made:
        if decision.counts(plan_hash=plan_hash, requester=request.requester, now=now):
            seen.setdefault(person(decision.by), decision.by)
    return tuple(seen.values())


def ready(
    store: journal.Journal,
    run_id: states.RunId,
    *,
    plan_hash: str,
    now: datetime | None = None,
) -> bool:
    """May the run start with the plan `plan_hash`? True when it never needed approval.

    Else: not rejected, and approvals by `required` distinct people other than the
    requester, given for exactly `plan_hash`, none expired at `now`.
    """
    found = request(store, run_id)
    if found is None:
        return True
    made = decisions(store, run_id)
    if any(d.decision is Decision.REJECT for d in made):
        return False
    counted = _counted(made, request=found, plan_hash=plan_hash, now=now or _now())
    return len(counted) >= found.required


def approvers(
    store: journal.Journal,
    run_id: states.RunId,
    *,
    plan_hash: str | None = None,
    now: datetime | None = None,
) -> tuple[str, ...]:
    """The names handed to the engine's approvals guardrail (`DrillInput.approvals`).

    The people whose approvals count now for `plan_hash` (default: the plan the request
    awaits); empty when the run never needed approval.
    """
    found = request(store, run_id)
    if found is None:
        return ()
    made = decisions(store, run_id)
    return _counted(made, request=found, plan_hash=plan_hash or found.plan_hash, now=now or _now())


def awaiting_approval(
    store: journal.Journal, run: states.Run, *, now: datetime | None = None
) -> bool:
    """For the run view: PENDING, needs approval, not rejected, not approved enough yet."""
    if run.state is not _S.PENDING:
        return False
    found = status(store, run.id, now=now, run=run)
    return found is not None and found.awaiting


# ---- decisions ------------------------------------------------------------------------------


def approve(
    store: journal.Journal,
    run_id: states.RunId,
    *,
    by: str,
    comment: str = "",
    plan_hash: str | None = None,
    now: datetime | None = None,
) -> Status:
    """`by` approves the plan the run awaits; the status afterwards.

    `plan_hash`, when given, is the plan the approver reviewed: `PlanMismatch` unless it is
    the one the run awaits. Raises `NotAwaitingApproval` (not protected, started, ended,
    rejected) and `auth.Forbidden` when `by` asked for the run.
    """
    at = now or _now()
    run = find_run(store, run_id)
    found = _open_request(store, run)
    if person(by) == person(found.requester):
        raise auth.Forbidden(
            f"run {run.id}: {by} asked for this run and may not approve it; another approver"
            " must (the two-person rule)"
        )
    if plan_hash is not None and plan_hash != found.plan_hash:
        raise PlanMismatch(
            f"run {run.id}: you approved plan {plan_hash[:12]}, but the run now awaits plan"
            f" {found.plan_hash[:12]} (it was planned again and changed); review"
            f" GET /api/v1/runs/{run.id}/approvals and approve that plan"
        )
    expires = at + timedelta(seconds=found.ttl_s)
    _record(
        store,
        run,
        decision=Decision.APPROVE,
        by=by,
        plan_hash=found.plan_hash,
        comment=comment,
        at=at,
        expires_at=expires,
    )
    after = status(store, run.id, now=at)
    assert after is not None
    store.append_event(
        run.id,
        kind=events.EventKind.APPROVAL,
        message=(
            f"approved by {by} ({len(after.approvers)}/{found.required} approval(s) count,"
            f" until {expires.isoformat()})" + (f": {comment}" if comment else "")
        ),
        data={
            "decision": Decision.APPROVE.value,
            "by": by,
            "plan_hash": found.plan_hash,
            "comment": comment,
            "expires_at": expires.isoformat(),
        },
    )
    log.info("run %s approved by %s (%s)", run.id, by, "ready" if not after.awaiting else "more")
    return after


def reject(
    store: journal.Journal,
    run_id: states.RunId,
    *,
    by: str,
    reason: str,
    now: datetime | None = None,
) -> states.Run:
    """`by` rejects the run: it ends ABORTED with the reason; the ended run.

    Anyone who may approve may reject, the requester included (stopping is always safe).
    Raises `NotAwaitingApproval` when the run is not pending approval any more.
    """
    at = now or _now()
    run = find_run(store, run_id)
    found = _open_request(store, run)
    text = " ".join(reason.split()) or "no reason given"
    ended = _abort_pending(store, run, reason=f"rejected by {by}: {text}")
    _record(
        store,
        ended,
        decision=Decision.REJECT,
        by=by,
        plan_hash=found.plan_hash,
        comment=text,
        at=at,
        expires_at=None,
    )
    store.append_event(
        run.id,
        kind=events.EventKind.APPROVAL,
        message=f"rejected by {by}: {text}",
        data={
            "decision": Decision.REJECT.value,
            "by": by,
            "plan_hash": found.plan_hash,
            "comment": text,
        },
    )
    log.info("run %s rejected by %s: %s; it ends aborted", run.id, by, text)
    return ended


def _open_request(store: journal.Journal, run: states.Run) -> Request:
    found = request(store, run.id)
    if found is None:
        raise NotAwaitingApproval(
            f"run {run.id} does not await approval: environment {run.environment} is not protected"
        )
    if run.state is not _S.PENDING:
        raise NotAwaitingApproval(
            f"run {run.id} does not await approval any more: it is {run.state.value}"
        )
    if any(d.decision is Decision.REJECT for d in decisions(store, run.id)):
        raise NotAwaitingApproval(f"run {run.id} was rejected")
    return found


def _record(
    store: journal.Journal,
    run: states.Run,
    *,
    decision: Decision,
    by: str,
    plan_hash: str,
    comment: str,
    at: datetime,
    expires_at: datetime | None,
) -> None:
    with store.transaction(write=True) as conn:
        conn.execute(
            _decisions.insert().values(
                run_id=run.id,
                decision=decision.value,
                by=by,
                plan_hash=plan_hash,
                comment=store.redactor.text(comment),
                at=at,
                expires_at=expires_at,
            )
        )


def _abort_pending(store: journal.Journal, run: states.Run, *, reason: str) -> states.Run:
    """PENDING -> ABORTED (nothing was touched), record marked refused; 409 if it moved."""
    try:
        return engine.move_run(
            store,
            run,
            _S.ABORTED,
            reason=reason,
            record=dataclasses.replace(run.record, refused=True),
        )
    except (orchestrator_errors.StaleRun, orchestrator_errors.IllegalTransition) as exc:
        now = store.get_run(run.id)
        raise NotAwaitingApproval(
            f"run {run.id} is {now.state.value} now: it started or ended meanwhile ({exc})"
        ) from exc


def replanned(
    store: journal.Journal,
    run_id: states.RunId,
    *,
    plan_hash: str,
    now: datetime | None = None,
) -> bool:
    """A re-plan found `plan_hash`: if it is another plan, the request now awaits it.

    The approvals given so far stop counting (they are kept); True when the plan changed.
    """
    at = now or _now()
    with store.transaction(write=True) as conn:
        changed = conn.execute(
            _requests.update()
            .where(_requests.c.run_id == run_id, _requests.c.plan_hash != plan_hash)
            .values(plan_hash=plan_hash, updated_at=at)
        ).rowcount
    if changed:
        store.append_event(
            run_id,
            kind=events.EventKind.APPROVAL,
            message=(
                "the plan changed since it was approved; the approvals no longer count and the"
                " run awaits approval of the new plan"
            ),
            data={"decision": "replanned", "plan_hash": plan_hash},
        )
        log.warning("run %s: plan changed before the start; approvals no longer count", run_id)
    return bool(changed)


# ---- the start gate (for whoever drives runs) ----------------------------------------------


class GateOutcome(enum.StrEnum):
    GO = "go"
    """Start it, with `Gate.approvers` as the drill's approvals."""
    WAIT = "wait"
    """Not approved (enough, or for this plan) yet: leave it PENDING."""
    VETOED = "vetoed"
    """A preflight hook vetoed it: the run ended ABORTED (`Gate.run`)."""


@dataclasses.dataclass(frozen=True)
class Gate:
    outcome: GateOutcome
    run: states.Run
    approvers: tuple[str, ...] = ()
    reason: str = ""


def gate(
    store: journal.Journal,
    run: states.Run,
    *,
    plan: planning.Plan,
    config: ApprovalSettings,
    now: datetime | None = None,
) -> Gate:
    """Just before the PENDING run starts, with `plan` planned afresh: go, wait or vetoed.

    A changed plan (`replanned`) or too few approvals wait; then the preflight hooks are
    asked (`preflight`) and a veto ends the run ABORTED (`veto`); else go, with the names
    to put in the drill's `approvals` (`dataclasses.replace(drill, approvals=gate.approvers)`).
    A run in a protected environment that nobody opened a request for (its submitter has
    not got there yet) gets one now, for its trigger's principal, and waits: no path starts
    a protected run unapproved. A schedule's fire carries the approvers of the schedule's
    approval in its record (`drills.service.schedules`: the approval covers the schedule,
    not each fire); with enough distinct ones it needs no request of its own.
    """
    at = now or _now()
    digest = plan_hash(plan)
    found = request(store, run.id)
    names: tuple[str, ...] = ()
    carried = _schedule_approvers(run)
    if found is None and 0 < required(plan.drill.environment) <= len(carried):
        names = carried  # the schedule's approval covers its fires (not one request each)
    elif found is None and required(plan.drill.environment) > 0:
        trigger = run.record.trigger
        open_request(
            store,
            run,
            requester=(trigger.principal if trigger is not None else "") or "unknown",
            plan_hash=digest,
            config=config,
            required=required(plan.drill.environment),
            now=at,
        )
        return Gate(GateOutcome.WAIT, run, reason="awaiting approval")
    if found is not None:
        if replanned(store, run.id, plan_hash=digest, now=at):
            return Gate(GateOutcome.WAIT, run, reason="the plan changed since it was approved")
        if not ready(store, run.id, plan_hash=digest, now=at):
            return Gate(GateOutcome.WAIT, run, reason="awaiting approval")
        names = approvers(store, run.id, plan_hash=digest, now=at)
    verdict = preflight(config, hook_body(run, plan, digest=digest))
    if not verdict.ok:
        return Gate(GateOutcome.VETOED, veto(store, run, verdict), reason=verdict.reason)
    return Gate(GateOutcome.GO, run, approvers=names)


def _schedule_approvers(run: states.Run) -> tuple[str, ...]:
    """The distinct approvers a schedule's fire carries in its record (else none)."""
    trigger = run.record.trigger
    if trigger is None or trigger.kind is not engine.TriggerKind.SCHEDULE:
        return ()
    return tuple(dict.fromkeys(run.record.approvals))


# ---- preflight hooks -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the preflight hooks said: ok, or the first veto (which hook, its answer)."""

    ok: bool
    reason: str = ""
    hook: str | None = None
    """The vetoing hook's URL, credentials masked."""
    status: int | None = None
    """Its HTTP status; None when it did not answer (timeout, connection refused)."""


def sign(secret: str, body: bytes) -> str:
    """The `X-Stormdrill-Signature` value: `sha256=<hex HMAC-SHA256 of body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hook_body(run: states.Run, plan: planning.Plan, *, digest: str | None = None) -> bytes:
    """The JSON the hooks get: the run (id, scenario, environment, trigger), the plan hash
    and the plan as `POST /plans` shows it, secret values masked."""
    values, keys = engine.secret_values(plan.drill)
    masking = secrets.Redactor().with_secrets(values, keys=keys)
    trigger = run.record.trigger
    document = {
        "run": {
            "id": run.id,
            "scenario": run.scenario,
            "environment": run.environment,
            "trigger": None if trigger is None else trigger.to_json(),
        },
        "planHash": digest or plan_hash(plan),
        "plan": views.PlanView.from_plan(plan, cells=None).dump(),
    }
    return _canonical_json(masking.json(document)).encode()


def preflight(config: ApprovalSettings, plan_json: bytes | str) -> Verdict:
    """POST `plan_json` to every preflight hook in turn; ok unless one vetoes."""
    body = plan_json.encode() if isinstance(plan_json, str) else plan_json
    hooks = tuple(config.preflight_hooks)
    if not hooks:
        return Verdict(ok=True)
    headers = {"Content-Type": "application/json", "User-Agent": "stormdrill-preflight"}
    secret = config.preflight_secret
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret.get_secret_value(), body)
    else:
        log.warning("preflight hooks are set but preflight_secret is not: the body is unsigned")
    timeout = float(config.preflight_timeout_s)
    for url in hooks:
        verdict = _ask(url, body=body, headers=headers, timeout=timeout)
        if not verdict.ok:
            log.warning("preflight hook %s vetoed the run: %s", verdict.hook, verdict.reason)
            return verdict
    return Verdict(ok=True)


def _ask(url: str, *, body: bytes, headers: Mapping[str, str], timeout: float) -> Verdict:
    shown = secrets.redact(url)
    try:
        answer = httpx.post(
            url, content=body, headers=dict(headers), timeout=timeout, follow_redirects=False
        )
    except httpx.TimeoutException:
        return Verdict(
            ok=False, hook=shown, reason=f"preflight hook {shown} did not answer in {timeout:g}s"
        )
    except httpx.HTTPError as exc:
        return Verdict(
            ok=False,
            hook=shown,
            reason=f"preflight hook {shown} could not be reached: {secrets.redact(str(exc))}",
        )
    if 200 <= answer.status_code < 300:
        return Verdict(ok=True, hook=shown, status=answer.status_code)
    said = _trimmed(answer.text)
    return Verdict(
        ok=False,
        hook=shown,
        status=answer.status_code,
        reason=f"preflight hook {shown} vetoed (HTTP {answer.status_code})"
        + (f": {said}" if said else ""),
    )


def _trimmed(text: str) -> str:
    folded = secrets.redact(" ".join(text.split()))
    return folded if len(folded) <= REASON_LIMIT else folded[: REASON_LIMIT - 1] + "…"


def veto(store: journal.Journal, run: states.Run, verdict: Verdict) -> states.Run:
    """End the PENDING run ABORTED with the hook's reason (on its timeline: a guardrail)."""
    store.append_event(
        run.id,
        kind=events.EventKind.GUARDRAIL,
        message=f"preflight-hook: REFUSED {verdict.reason}",
        data={
            "rule": "preflight-hook",
            "ok": False,
            "subject": verdict.hook or "",
            "status": verdict.status,
        },
    )
    return _abort_pending(store, run, reason=f"vetoed before the start: {verdict.reason}")


# ---- views (the JSON of the approval routes) -------------------------------------------------


class ApprovalView(views.CamelView):
    """One decision on a run."""

    id: int
    decision: Decision
    by: str
    comment: str
    plan_hash: str = pydantic.Field(alias="planHash")
    at: views.IsoTime
    expires_at: views.IsoTime | None = pydantic.Field(alias="expiresAt")
    counts: bool
    """Whether it counts now (an approval of the awaited plan, unexpired, not the requester's)."""

    @classmethod
    def from_approval(cls, approval: Approval, *, counts: bool) -> ApprovalView:
        return cls(
            id=approval.id,
            decision=approval.decision,
            by=approval.by,
            comment=approval.comment,
            plan_hash=approval.plan_hash,
            at=approval.at,
            expires_at=approval.expires_at,
            counts=counts,
        )


class ApprovalStatusView(views.CamelView):
    """Where a run's approval stands: what it needs, who approved, every decision."""

    awaiting_approval: bool = pydantic.Field(alias="awaitingApproval")
    required: int
    requester: str
    plan_hash: str = pydantic.Field(alias="planHash")
    """The plan the approvals must be given for."""
    approved_by: list[str] = pydantic.Field(alias="approvedBy")
    """Who approved that plan, unexpired (distinct people, never the requester)."""
    missing: int
    rejected_by: str | None = pydantic.Field(default=None, alias="rejectedBy")
    approvals: list[ApprovalView]


class ApprovedRunView(views.RunView):
    """A run with its approval status (`approval` is None when it never needed one)."""

    awaiting_approval: bool = pydantic.Field(alias="awaitingApproval")
    approval: ApprovalStatusView | None

    @classmethod
    def of(
        cls, store: journal.Journal, run: states.Run, *, now: datetime | None = None
    ) -> ApprovedRunView:
        at = now or _now()
        found = status(store, run.id, now=at, run=run)
        fields = dict(views.RunView.from_run(run))
        fields.update(
            awaiting_approval=found is not None and found.awaiting,
            approval=None if found is None else found.view(now=at),
        )
        return cls.model_validate(fields)


class RunApprovalsView(views.CamelView):
    """`GET /runs/{id}/approvals`: the run's approval status and decisions."""

    run_id: str = pydantic.Field(alias="runId")
    approval: ApprovalStatusView | None


def run_view(store: journal.Journal, run_id: states.RunId) -> ApprovedRunView:
    """The run with its approval status (`UnknownRun` when there is no such run)."""
    return ApprovedRunView.of(store, find_run(store, run_id))


def approvals_view(store: journal.Journal, run_id: states.RunId) -> RunApprovalsView:
    """The run's approvals (`UnknownRun` when there is no such run)."""
    run = find_run(store, run_id)
    at = _now()
    found = status(store, run.id, now=at, run=run)
    return RunApprovalsView(run_id=run.id, approval=None if found is None else found.view(now=at))


def find_run(store: journal.Journal, run_id: states.RunId) -> states.Run:
    """The stored run; `runs.UnknownRun` (404) when there is none."""
    try:
        return store.get_run(run_id)
    except orchestrator_errors.StoreUnreachable:
        raise
    except orchestrator_errors.JournalError:
        raise run_service.UnknownRun(f"no run {run_id!r} in the store at {store.url}") from None
