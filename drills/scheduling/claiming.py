"""Claiming: fire the due schedules, each fire exactly once across replicas.

`fire_due(store, now)` takes one due schedule at a time (`next_due <= now`) in its own write
transaction: `SELECT … FOR NO KEY UPDATE SKIP LOCKED` on PostgreSQL (another replica takes
another schedule), SQLite's single writer otherwise. In that transaction it decides every nominal
fire due by `now` and inserts one fire row for each (unique on schedule and nominal time),
the PENDING run of the one it starts (`Journal.create_run_in`, trigger `schedule`), and the
schedule's next fire. A unique violation means another replica fired it: the transaction is
rolled back and the schedule left to that replica.
Invariants:
- Never a backlog: of the fires due at once only the latest may start; the earlier ones are
  skipped as `missed`. The latest starts when it is within `misfireGrace` of its due time,
  or later with `catchUp: latest`; otherwise it is `missed` too.
- Every nominal fire gets a row (started, or skipped with its reason: paused,
  awaiting-approval, missed, blackout, freeze, guardrail, killswitch, overlap); at most
  `max_fires` rows per schedule and pass (a long outage of a fast interval is worked off
  over several passes, still without a run for each).
- Every fire row has its audit entry (`schedule.fire` by the system principal
  `schedule:NAME`, method `SCHEDULER`, the outcome and reason as detail), written in the
  same transaction: a claim rolled back leaves neither.
- A fire the guardrails would refuse without a cluster is skipped, not started
  (`drills.scheduling.guarding`: inside a change freeze of its Environment, `freeze: …`;
  outside the scenario's allowed environments or windows, or short of the Environment's
  approvals, `guardrail: …`), judged at `now`, when its run would be submitted; the engine
  re-checks every rule when it plans the run.
- The run a fire starts is the record `Engine.submit` writes for the drill (kept, secrets
  masked, in the schedule when it was applied), owner UNCLAIMED: a `serve` runner claims it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import logging
from collections.abc import Callable, Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from drills import tables_killswitch, tables_schedules
from drills.scheduling import blackouts, guarding, model, storing, triggers
from drills.service import approvals, audit
from orchestrator import journal, records, states

log = logging.getLogger(__name__)

Submit = Callable[[Connection, model.Schedule, dt.datetime, dt.datetime], states.Run]
"""`submit(conn, schedule, nominal, now)`: write the fire's PENDING run inside `conn`."""

MAX_FIRES_PER_PASS = 1000
MAX_SCHEDULES_PER_PASS = 100
AWAITING_APPROVAL = "awaiting-approval"
"""The skip reason of a fire of a schedule not approved (yet, or any more: rejected)."""
FIRE_ACTION = "schedule.fire"
"""The audit action of every fire, started or skipped."""
FIRE_METHOD = "SCHEDULER"

_SA = tables_schedules.schedule_approvals_table


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclasses.dataclass(frozen=True)
class ApprovalState:
    """Where a schedule's approval stands (`required` 0: its Environment needs none)."""

    required: int
    spec_hash: str
    requester: str
    """Who applied the spec `spec_hash` (never an approver of it)."""
    approvers: tuple[str, ...]
    """The distinct people whose approvals of `spec_hash` count (as they signed)."""
    rejected_by: str | None = None
    rejection: str = ""

    @property
    def approved(self) -> bool:
        return self.required == 0 or (
            self.rejected_by is None and len(self.approvers) >= self.required
        )

    @property
    def missing(self) -> int:
        return max(self.required - len(self.approvers), 0)

    def skip_detail(self) -> str:
        """Why a fire does not start, for its `awaiting-approval: …` reason."""
        if self.rejected_by is not None:
            return (
                f"rejected by {self.rejected_by}: {self.rejection} (apply a changed Drill, or"
                " delete the schedule and apply it again, to ask again)"
            )
        return (
            f"{self.missing} more approval(s) by someone other than {self.requester} needed"
            " (stormdrill schedules approve NAME)"
        )


def approval_state(conn: Connection, schedule_id: str) -> ApprovalState:
    """The approval of the schedule's current spec, read inside `conn`."""
    row = conn.execute(
        sa.select(
            storing.S.c.approvals_required, storing.S.c.spec_hash, storing.S.c.requested_by
        ).where(storing.S.c.id == schedule_id)
    ).first()
    if row is None or row.approvals_required <= 0:
        return ApprovalState(required=0, spec_hash="", requester="", approvers=())
    decided = conn.execute(
        sa.select(_SA.c.decision, _SA.c.by, _SA.c.comment)
        .where(_SA.c.schedule_id == schedule_id, _SA.c.spec_hash == row.spec_hash)
        .order_by(_SA.c.id)
    ).all()
    requester = approvals.person(row.requested_by)
    seen: dict[str, str] = {}
    rejected: tuple[str, str] | None = None
    for item in decided:
        if Decision(item.decision) is Decision.REJECT:
            rejected = rejected or (item.by, item.comment)
        elif approvals.person(item.by) != requester:
            seen.setdefault(approvals.person(item.by), item.by)
    return ApprovalState(
        required=row.approvals_required,
        spec_hash=row.spec_hash,
        requester=row.requested_by,
        approvers=tuple(seen.values()),
        rejected_by=None if rejected is None else rejected[0],
        rejection="" if rejected is None else rejected[1],
    )


def template_submitter(store: journal.Journal) -> Submit:
    """The default `Submit`: the schedule's run template as a PENDING run (trigger schedule)."""

    def submit(
        conn: Connection, schedule: model.Schedule, nominal: dt.datetime, now: dt.datetime
    ) -> states.Run:
        template = schedule.template
        trigger = records.Trigger(
            kind=records.TriggerKind.SCHEDULE,
            principal=f"schedule:{schedule.name}",
            reason=f"fire at {nominal.isoformat()} (owner {schedule.owner})",
        )
        raw = {**template.record, "trigger": cast(model.Json, trigger.to_json())}
        approval = approval_state(conn, schedule.id)
        if approval.required > 0:  # only the schedule's approvers count, as on the API path
            raw["approvals"] = list(approval.approvers)
        run = states.new_run(
            id=states.new_run_id(now),
            scenario=template.scenario,
            environment=template.environment,
            environment_source=template.environment_source,
            owner=journal.UNCLAIMED,
            at=now,
            record=records.RunRecord.from_json(raw),
        )
        return store.create_run_in(conn, run)

    return submit


@dataclasses.dataclass(frozen=True)
class _Due:
    nominal: dt.datetime
    due: dt.datetime


def fire_due(
    store: journal.Journal,
    now: dt.datetime,
    *,
    submit: Submit | None = None,
    max_fires: int = MAX_FIRES_PER_PASS,
) -> list[model.Fire]:
    """Fire every schedule due at `now`; the fire rows this call wrote."""
    submit = submit or template_submitter(store)
    written: list[model.Fire] = []
    tried: set[str] = set()
    for _ in range(MAX_SCHEDULES_PER_PASS):
        fired: list[model.Fire] = []
        try:
            with store.transaction(write=True) as conn:
                query = sa.select(storing.S).where(storing.S.c.next_due <= now)
                if tried:
                    query = query.where(storing.S.c.id.not_in(tried))
                row = conn.execute(
                    query.order_by(storing.S.c.next_due)
                    .limit(1)
                    .with_for_update(skip_locked=True, key_share=True)
                ).first()
                if row is None:
                    break
                schedule = storing.schedule_from_row(row)
                tried.add(schedule.id)
                fired = _fire(store, conn, schedule, now=now, submit=submit, max_fires=max_fires)
        except sa.exc.IntegrityError:
            log.info("a fire of a schedule was recorded by another replica; leaving it to it")
            continue
        written.extend(fired)
    return written


def _fire(
    store: journal.Journal,
    conn: Connection,
    schedule: model.Schedule,
    *,
    now: dt.datetime,
    submit: Submit,
    max_fires: int,
) -> list[model.Fire]:
    spec = schedule.trigger
    last = conn.execute(
        sa.select(storing.F.c.nominal_fire_time)
        .where(storing.F.c.schedule_id == schedule.id)
        .order_by(storing.F.c.nominal_fire_time.desc())
        .limit(1)
    ).scalar()
    due: list[_Due] = []
    current = schedule.next_nominal
    while current is not None and len(due) < max_fires:
        at = triggers.due_time(schedule.id, spec, current)
        if at > now:
            break
        if last is None or current > last:
            due.append(_Due(nominal=current, due=at))
        current = triggers.next_nominal(spec, after=current)
    complete = current is None or triggers.due_time(schedule.id, spec, current) > now
    fires: list[model.Fire] = []
    started = schedule.runs_started
    approval = approval_state(conn, schedule.id) if due else None
    facts = functools.cache(lambda: guarding.facts_of(schedule.template, now=now))
    for index, item in enumerate(due):
        latest = complete and index == len(due) - 1
        reason = _skip(
            conn,
            schedule,
            item,
            now=now,
            latest=latest,
            later=due[-1],
            approval=approval,
            facts=facts,
        )
        if reason is None and spec.max_runs is not None and started >= spec.max_runs:
            break
        if reason is None:
            run = submit(conn, schedule, item.nominal, now)
            started += 1
            fire = _row(schedule, item, model.Outcome.STARTED, run.id, "")
            log.info("schedule %s fired at %s: run %s", schedule.name, item.nominal, run.id)
        else:
            fire = _row(schedule, item, model.Outcome.SKIPPED, None, reason)
            log.info("schedule %s skipped its fire at %s: %s", schedule.name, item.nominal, reason)
        fires.append(fire)
        audit.record_in(store, conn, _audit_entry(schedule, fire, now=now))
    storing.insert_fires(conn, fires, now=now)
    ended = spec.max_runs is not None and started >= spec.max_runs
    following = None if ended else current
    conn.execute(
        storing.S.update()
        .where(storing.S.c.id == schedule.id)
        .values(
            next_nominal=following,
            next_due=None if following is None else triggers.due_time(schedule.id, spec, following),
            runs_started=started,
            updated_at=now,
        )
    )
    return fires


def _row(
    schedule: model.Schedule, item: _Due, outcome: model.Outcome, run_id: str | None, reason: str
) -> model.Fire:
    return model.Fire(
        schedule_id=schedule.id,
        nominal=item.nominal,
        actual=item.due,
        outcome=outcome,
        run_id=run_id,
        reason=reason,
    )


def _audit_entry(schedule: model.Schedule, fire: model.Fire, *, now: dt.datetime) -> audit.NewEntry:
    """The audit entry of `fire`: by the system principal `schedule:NAME`, its outcome and
    (skipped) reason or (started) run as detail."""
    what = (
        f"started run {fire.run_id}"
        if fire.outcome is model.Outcome.STARTED
        else f"skipped: {fire.reason}"
    )
    return audit.NewEntry(
        principal=f"schedule:{schedule.name}",
        principal_kind="system",
        action=FIRE_ACTION,
        target=f"schedules/{schedule.id}",
        status=201 if fire.outcome is model.Outcome.STARTED else 200,
        method=FIRE_METHOD,
        path="schedule claim pass",
        detail=f"fire at {fire.nominal.isoformat()}: {what}",
        at=now,
    )


def run_approvals(template: model.RunTemplate, approval: ApprovalState) -> tuple[str, ...]:
    """The approvals the run of a fire carries: the schedule's approvers when its
    Environment needs some, else those the Drill's record holds (as `template_submitter`)."""
    if approval.required > 0:
        return approval.approvers
    recorded = template.record.get("approvals")
    return tuple(str(item) for item in recorded) if isinstance(recorded, list) else ()


def _skip(
    conn: Connection,
    schedule: model.Schedule,
    item: _Due,
    *,
    now: dt.datetime,
    latest: bool,
    later: _Due,
    approval: ApprovalState | None = None,
    facts: Callable[[], guarding.Facts | None] | None = None,
) -> str | None:
    """Why the fire `item` does not start (`code: detail`), or None: it starts."""
    spec, template = schedule.trigger, schedule.template
    if schedule.paused:
        return model.skip_text(model.SkipReason.PAUSED, "the schedule is paused")
    if approval is not None and not approval.approved:
        return f"{AWAITING_APPROVAL}: {approval.skip_detail()}"
    if not latest:
        return model.skip_text(
            model.SkipReason.MISSED, f"superseded by the fire at {later.nominal.isoformat()}"
        )
    late = (now - item.due).total_seconds()
    if late > spec.misfire_grace_s and spec.catch_up is not model.CatchUp.LATEST:
        return model.skip_text(
            model.SkipReason.MISSED,
            f"{late:.0f}s late, past misfireGrace {spec.misfire_grace_s:g}s (catchUp none)",
        )
    found = blackouts.blocking(storing.blackouts(conn), template, at=item.due)
    if found is not None:
        return model.skip_text(model.SkipReason.BLACKOUT, found.describe())
    if facts is not None:  # judged at `now`: when the run would be submitted and planned
        refused = guarding.skip_reason(
            facts(),
            at=now,
            approvals=None if approval is None else run_approvals(template, approval),
            schedule=schedule.name,
        )
        if refused is not None:
            return refused
    switch = _killswitch(conn, template.environment)
    if switch is not None:
        return model.skip_text(model.SkipReason.KILLSWITCH, switch)
    active = _active_runs(conn, template)
    if active:
        return model.skip_text(
            model.SkipReason.OVERLAP, f"run {active[0]} of the same drill is still active"
        )
    return None


def _killswitch(conn: Connection, environment: str) -> str | None:
    """Which kill switch is engaged for `environment` (global first), if any."""
    global_on = conn.execute(
        sa.select(journal.killswitch_table.c.engaged_by).where(
            journal.killswitch_table.c.engaged.is_(True)
        )
    ).first()
    if global_on is not None:
        return f"the global kill switch is engaged by {global_on.engaged_by or 'someone'}"
    env = tables_killswitch.environment_killswitch_table
    env_on = conn.execute(
        sa.select(env.c.engaged_by).where(env.c.environment == environment, env.c.engaged.is_(True))
    ).first()
    if env_on is not None:
        return f"the kill switch of {environment} is engaged by {env_on.engaged_by or 'someone'}"
    return None


def _active_runs(conn: Connection, template: model.RunTemplate) -> Sequence[str]:
    """Runs of the same drill (scenario, environment, drill name) not yet in a final state."""
    runs = journal.runs_table
    rows = conn.execute(
        sa.select(runs.c.id, runs.c.record).where(
            runs.c.scenario == template.scenario,
            runs.c.environment == template.environment,
            runs.c.state.in_([state.value for state in states.IN_FLIGHT]),
        )
    ).all()
    drill = template.record.get("drill")
    return [row.id for row in rows if (row.record or {}).get("drill") == drill]
