"""Schedules: apply a Drill's `schedule:`, list, pause, resume, delete, preview and fires.

Typed functions the CLI and the API call (no entry-point framework here); the fire times
come from `drills.scheduling.triggers` (APScheduler) and the rows from
`drills.scheduling.storing`. `apply` binds the Drill once (as `runs.prepare` does) and keeps
in the schedule the record `Engine.submit` would write for it, secrets masked, so any
replica can submit its fires without the files' secret values.
Invariants: a schedule is named after its Drill's `metadata.name` (unique); applying again
updates it in place (its fires stay); a paused schedule still advances and records each of
its fires as skipped (`paused`); views here are the JSON contract of `--format json` and the
API (`FireView`: exactly `nominalFireTime`, `outcome`, `runId`, `reason`).

Approvals (the two-person rule of runs, for a schedule): applying a schedule whose
Environment is protected (`approvals.required`) leaves it awaiting approval by that many
distinct people other than who applied it; its fires are skipped `awaiting-approval` until
then (`drills.scheduling.claiming.approval_state`). An approval is of the schedule's spec
(`spec_hash`: the run it submits and its trigger, not `paused` or the owner), not of each
fire, and has no TTL: it lasts as long as the schedule (its `endAt`, `maxRuns`, or until
it is deleted, which deletes its decisions). Applying a changed spec needs a new approval;
applying the same spec again keeps it (and who asked for it). As on the API path of runs,
a Drill document's own `approvals:` do not count: only `approve` here does, and the runs a
fire starts carry the schedule's approvers as their approvals. A rejection stops the
schedule's fires until a changed spec is applied (or it is deleted and applied again).

Blackouts: `add_blackout` (the body of both entry points: `BlackoutBody`), `list_blackouts`,
`remove_blackout`; a blackout with `abortRunning` also stops drills already running when it
begins: `abort_in_blackouts`, a pass the lease holder's housekeeping runs every few seconds,
asks each running run in its scope to abort once (as `stormdrill abort` does), audited as
`run.abort` by the principal `blackout:ID`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import logging
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import pydantic
import sqlalchemy as sa

from drills import binding, tables_schedules
from drills import settings as settings_mod
from drills.scheduling import blackouts as blackout_rules
from drills.scheduling import claiming, guarding, model, storing, triggers
from drills.service import approvals, audit, auth, catalogs, documents, runs, views
from orchestrator import engine, journal, records, states
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from scenarios import loading
from scenarios import models as scenario_models

log = logging.getLogger(__name__)

ScheduleError = model.ScheduleError
BlackoutScope = model.BlackoutScope
Outcome = model.Outcome
parse_windows = model.windows_from_json


_SA = tables_schedules.schedule_approvals_table
_BA = tables_schedules.blackout_aborts_table
ApprovalState = claiming.ApprovalState
AWAITING_APPROVAL = claiming.AWAITING_APPROVAL


class UnknownSchedule(documents.NotFound):
    """No schedule (or blackout) has the id or name a person gave (the API answers 404)."""


class ScheduleNotAwaitingApproval(approvals.NotAwaitingApproval):
    """The schedule needs no approval, was rejected, or ended (409)."""


class SpecMismatch(approvals.PlanMismatch):
    """An approval of another spec than the one the schedule now has (it was applied again)."""


# ---- views --------------------------------------------------------------------------------


class FireView(views.CamelView):
    """One nominal fire: started (with its run) or skipped (with its reason)."""

    nominal_fire_time: views.IsoTime = pydantic.Field(alias="nominalFireTime")
    outcome: model.Outcome
    run_id: str | None = pydantic.Field(alias="runId")
    reason: str

    @classmethod
    def of(cls, fire: model.Fire) -> FireView:
        return cls(
            nominal_fire_time=fire.nominal,
            outcome=fire.outcome,
            run_id=fire.run_id,
            reason=fire.reason,
        )


class ScheduleApprovalView(views.CamelView):
    """Where a schedule's approval stands: what it needs, who approved its spec, or who
    rejected it. `ended`: the schedule ended, and its approval with it."""

    required: int
    requester: str
    spec_hash: str = pydantic.Field(alias="specHash")
    approved_by: list[str] = pydantic.Field(alias="approvedBy")
    missing: int
    approved: bool
    rejected_by: str | None = pydantic.Field(default=None, alias="rejectedBy")
    rejection: str = ""
    ended: bool = False

    @classmethod
    def of(cls, state: ApprovalState, *, ended: bool) -> ScheduleApprovalView:
        return cls(
            required=state.required,
            requester=state.requester,
            spec_hash=state.spec_hash,
            approved_by=list(state.approvers),
            missing=state.missing,
            approved=state.approved and not ended,
            rejected_by=state.rejected_by,
            rejection=state.rejection,
            ended=ended,
        )


class ScheduleView(views.CamelView):
    id: str
    name: str
    trigger: str
    timezone: str
    owner: str
    paused: bool
    scenario: str
    environment: str
    drill_source: str = pydantic.Field(alias="drillSource")
    next_fire_time: views.IsoTime | None = pydantic.Field(alias="nextFireTime")
    runs_started: int = pydantic.Field(alias="runsStarted")
    awaiting_approval: bool = pydantic.Field(default=False, alias="awaitingApproval")
    approval: ScheduleApprovalView | None = None
    """None when its Environment needs no approval (or it was not read)."""

    @classmethod
    def of(cls, schedule: model.Schedule, approval: ApprovalState | None = None) -> ScheduleView:
        needed = approval is not None and approval.required > 0
        return cls(
            awaiting_approval=needed and approval is not None and not approval.approved,
            approval=(
                ScheduleApprovalView.of(approval, ended=schedule.ended)
                if approval is not None and needed
                else None
            ),
            id=schedule.id,
            name=schedule.name,
            trigger=schedule.trigger.describe(),
            timezone=schedule.trigger.timezone,
            owner=schedule.owner,
            paused=schedule.paused,
            scenario=schedule.template.scenario,
            environment=schedule.template.environment,
            drill_source=schedule.template.drill_source,
            next_fire_time=schedule.next_nominal,
            runs_started=schedule.runs_started,
        )


class PreviewItemView(views.CamelView):
    """One upcoming fire: its (jittered) start in the schedule's zone and in UTC, its
    nominal time (the `nominalFireTime` its fire row will have), and whether it runs."""

    local: str
    utc: views.IsoTime
    nominal_fire_time: views.IsoTime | None = pydantic.Field(default=None, alias="nominalFireTime")
    skipped_by: str | None = pydantic.Field(alias="skippedBy")


class PreviewView(views.CamelView):
    name: str
    timezone: str
    fires: tuple[PreviewItemView, ...]


class BlackoutView(views.View):
    """A blackout calendar: scope, windows (as written), time zone and why."""

    id: str
    scope: model.BlackoutScope
    value: str
    windows: list[pydantic.JsonValue]
    timezone: str
    reason: str
    created_by: str
    abort_running: bool = pydantic.Field(default=False, alias="abortRunning")

    @classmethod
    def of(cls, blackout: model.Blackout, *, abort_running: bool = False) -> BlackoutView:
        return cls(
            abort_running=abort_running,
            id=blackout.id,
            scope=blackout.scope,
            value=blackout.value,
            windows=cast(list[pydantic.JsonValue], model.windows_to_json(blackout.windows)),
            timezone=blackout.timezone,
            reason=blackout.reason,
            created_by=blackout.created_by,
        )


# ---- apply -----------------------------------------------------------------------------------


def _template(
    config: settings_mod.Settings,
    store: journal.Journal,
    path: Path,
    folders: documents.Folders | None = None,
    *,
    at: dt.datetime,
) -> _Bound:
    """The Drill file's name, run template, trigger, `paused` and the approvals its
    Environment requires (bound once, as a run is). An interval's anchor is `at` (when
    it is applied: `apply` keeps the stored anchor of an unchanged interval).

    With `folders` (the API's document folders) its scenario and Environment are looked up
    there as a run request's are (`documents.drill_request`); else as `stormdrill run` does.
    """
    loaded = loading.load_documents([path])
    loaded.raise_for_problems()
    drills = loaded.drills()
    if not drills:
        raise ScheduleError(f"{path}: holds no Drill document (a schedule is a Drill's schedule:)")
    drill_doc = drills[0]
    schedule = drill_doc.model.spec.schedule
    if schedule is None:
        raise ScheduleError(
            f"{path}: spec.schedule is missing; add e.g. `schedule: {{cron: '0 10 * * tue',"
            " timezone: Europe/Berlin}`"
        )
    named = drill_doc.model.spec.environment
    relative = drill_doc.folder / named
    as_file = ("/" in named or named.endswith((".yaml", ".yml"))) and relative.is_file()
    # A file is found in the Drill's own folder, wherever we run from; a name is looked up
    # by binding (the Drill's folder, then the examples).
    env_ref = str(relative.resolve()) if as_file else None
    request = (
        runs.DrillRequest(target=str(path), environment=env_ref)
        if folders is None
        else documents.drill_request(folders, scenario=str(path), environment=None, parameters={})
    )
    prepared = runs.prepare(config, request)
    drill = prepared.drill
    values, keys = engine.secret_values(drill)
    record = records.RunRecord(
        scenario_source=drill.scenario_source,
        drill=drill.drill,
        parameters=dict(drill.parameters),
        time_scale=drill.time_scale,
        approvals=tuple(drill.approvals),
        redaction=engine.fingerprints_of(values),
        access=engine.access_of(drill.environment),
    ).to_json()
    masked = store.redactor.with_secrets(values, keys=keys).json(record)
    services, teams = _scope(drill.scenario.spec.services, prepared.catalog)
    template = model.RunTemplate(
        drill_source=str(path.resolve()),
        scenario=drill.scenario.metadata.name,
        environment=drill.environment.metadata.name,
        environment_source=drill.environment_source,
        record=cast(dict[str, model.Json], masked),
        services=services,
        teams=teams,
    )
    spec = model.TriggerSpec.from_schedule(schedule, anchor=at)
    triggers.aps_trigger(spec)  # refused here, not in the loop
    return _Bound(
        name=drill_doc.name,
        template=template,
        spec=spec,
        paused=schedule.paused,
        required=approvals.required(drill.environment),
    )


@dataclasses.dataclass(frozen=True)
class _Bound:
    name: str
    template: model.RunTemplate
    spec: model.TriggerSpec
    paused: bool
    required: int
    """Distinct approvers the schedule needs (0: its Environment is not protected)."""


def spec_hash(template: model.RunTemplate, spec: model.TriggerSpec) -> str:
    """What an approval of a schedule is bound to: the run it submits and when (SHA-256)."""
    canonical = json.dumps(
        {"drill": template.to_json(), "trigger": spec.to_json()},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _scope(
    declared: Sequence[str], catalog: cmdb_models.Catalog | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The services a drill declares (canonical refs when the CMDB knows them) and the
    teams owning them: what per-service and per-team blackouts match."""
    services: list[str] = []
    teams: list[str] = []
    for raw in declared:
        if catalog is None:
            services.append(raw)
            continue
        try:
            ref = catalog.lookup(raw)
        except cmdb_errors.CmdbError:
            services.append(raw)
            continue
        services.append(str(ref))
        found = catalog.services.get(ref)
        if found is not None:
            teams.append(str(found.owner))
    return tuple(dict.fromkeys(services)), tuple(dict.fromkeys(teams))


def apply(
    config: settings_mod.Settings,
    store: journal.Journal,
    path: Path,
    *,
    owner: str,
    now: dt.datetime | None = None,
    folders: documents.Folders | None = None,
) -> model.Schedule:
    """Create or update the schedule of the Drill file `path`; the stored schedule
    (`folders`: where its scenario and Environment are looked up, see `_template`).

    An interval (`every:`) fires on the grid `anchor + k * every`, the grid the
    claim loop, the preview and the calendar feed all use. Its first apply anchors it at
    `now` (first fire one span later). Applying again with the same interval length keeps
    the stored anchor and the stored next fire (a fire already nominally due but not yet
    recorded, as inside its jitter, still gets its row); a changed length (or a cron or
    `at:` becoming an interval) re-anchors it at `now`, so its first fire is one new span
    after the re-apply. Cron and `at:` schedules fire at their first time at or after `now`.
    """
    at = now or dt.datetime.now(dt.UTC)
    bound = _template(config, store, path, folders, at=at)
    name, template, spec, paused = bound.name, bound.template, bound.spec, bound.paused
    with store.transaction(write=True) as conn:
        existing = storing.get_schedule(conn, name)
        spec, first = _on_grid(existing, spec, at=at)
        if first is None and existing is None:
            raise ScheduleError(
                f"{path}: spec.schedule never fires ({spec.describe()} is past, or endAt is);"
                " give a later 'at' or 'endAt'"
            )
        digest = spec_hash(template, spec)
        values = {
            "drill": template.to_json(),
            "trigger": spec.to_json(),
            "timezone": spec.timezone,
            "owner": owner,
            "paused": paused,
            "next_nominal": first,
            "updated_at": at,
            "approvals_required": bound.required,
            "spec_hash": digest,
        }
        if existing is None or _requested(conn, existing.id) != (bound.required, digest):
            values["requested_by"] = owner  # a new spec (or policy): a new approval
        if existing is None:
            schedule_id = f"sch-{uuid.uuid4().hex[:12]}"
            values["next_due"] = (
                None if first is None else triggers.due_time(schedule_id, spec, first)
            )
            conn.execute(
                storing.S.insert().values(
                    id=schedule_id, name=name, runs_started=0, created_at=at, **values
                )
            )
        else:
            schedule_id = existing.id
            values["next_due"] = (
                None if first is None else triggers.due_time(schedule_id, spec, first)
            )
            conn.execute(storing.S.update().where(storing.S.c.id == schedule_id).values(**values))
        found = storing.get_schedule(conn, schedule_id)
    assert found is not None
    if bound.required > 0:
        log.info(
            "schedule %s (environment %s is protected) needs %d approval(s) by someone other"
            " than %s; its fires are skipped until then",
            name,
            template.environment,
            bound.required,
            owner,
        )
    return found


def _on_grid(
    existing: model.Schedule | None, spec: model.TriggerSpec, *, at: dt.datetime
) -> tuple[model.TriggerSpec, dt.datetime | None]:
    """`spec` as applying it at `at` stores it, and its first nominal fire: the same
    interval as the `existing` schedule keeps that one's grid (anchor) and its next fire on
    it; anything else starts from `at`. `apply` and the preview of a Drill file share it, so
    a preview shows the times the claim loop will fire."""
    if (
        existing is not None
        and spec.kind is model.TriggerKind.EVERY
        and existing.trigger.kind is spec.kind
        and existing.trigger.every_s == spec.every_s
    ):
        spec = dataclasses.replace(spec, anchor=existing.trigger.anchor)
        kept = existing.next_nominal
        if kept is not None and (spec.end_at is None or kept <= spec.end_at):
            return spec, kept
    return spec, triggers.first_nominal(spec, at=at)


def _requested(conn: sa.Connection, schedule_id: str) -> tuple[int, str]:
    row = conn.execute(
        sa.select(storing.S.c.approvals_required, storing.S.c.spec_hash).where(
            storing.S.c.id == schedule_id
        )
    ).one()
    return int(row.approvals_required), str(row.spec_hash)


# ---- read, pause, resume, delete --------------------------------------------------------------


def get(store: journal.Journal, key: str) -> model.Schedule:
    with store.transaction() as conn:
        found = storing.get_schedule(conn, key)
    if found is None:
        raise UnknownSchedule(
            f"no schedule has the id or name {key!r}; see `stormdrill schedules list`"
        )
    return found


def list_schedules(store: journal.Journal) -> list[model.Schedule]:
    with store.transaction() as conn:
        return storing.list_schedules(conn)


def set_paused(store: journal.Journal, key: str, *, paused: bool) -> model.Schedule:
    """Pause or resume. A resumed schedule starts at its next fire from now (fires missed
    while paused were recorded as skipped by the loop; an outage is `catchUp`'s to judge)."""
    schedule = get(store, key)
    now = dt.datetime.now(dt.UTC)
    values: dict[str, object] = {"paused": paused, "updated_at": now}
    with store.transaction(write=True) as conn:
        conn.execute(storing.S.update().where(storing.S.c.id == schedule.id).values(**values))
    return get(store, schedule.id)


def delete(store: journal.Journal, key: str, *, now: dt.datetime | None = None) -> model.Schedule:
    """Delete the schedule (id or name) and its approval decisions; the deleted schedule.

    Its fire rows are copied into the history first (`schedule_fire_history`, with its id
    and name, deleted at `now`), in the same transaction that deletes them: `fires` still
    lists them. The runs its fires started stay.
    """
    at = now or dt.datetime.now(dt.UTC)
    schedule = get(store, key)
    with store.transaction(write=True) as conn:
        # Lock the row first: a claim in flight (it holds the row) commits its fire before
        # the fires are copied and deleted, so no fire row is lost or left pointing at a
        # deleted schedule.
        locked = conn.execute(
            sa.select(storing.S.c.id).where(storing.S.c.id == schedule.id).with_for_update()
        ).first()
        if locked is None:
            raise UnknownSchedule(f"schedule {schedule.name} was deleted meanwhile")
        kept = storing.archive_fires(conn, schedule, at=at)
        conn.execute(storing.F.delete().where(storing.F.c.schedule_id == schedule.id))
        conn.execute(_SA.delete().where(_SA.c.schedule_id == schedule.id))
        conn.execute(storing.S.delete().where(storing.S.c.id == schedule.id))
    log.info("deleted schedule %s (%s); its %d fire(s) kept", schedule.name, schedule.id, kept)
    return schedule


def fires(store: journal.Journal, key: str, *, limit: int | None = None) -> list[FireView]:
    """What became of each nominal fire of the schedule with id or name `key`, newest first.

    A live schedule's own fires; when none has that id or name, those of the deleted one
    (`delete` keeps them). Always one schedule's fires, never a union: a name deleted and
    applied again shows the live schedule's (a new id, new fires); when several schedules
    of one name were deleted, the one deleted last. Each deleted one's fires stay listed by
    its id (the earlier ones' too). `UnknownSchedule` when neither a live schedule nor a
    deleted one's kept fire has that id or name (a deleted schedule that never fired).
    """
    with store.transaction() as conn:
        schedule = storing.get_schedule(conn, key)
        if schedule is not None:
            found = storing.fires(conn, schedule.id, limit=limit)
        else:
            deleted = storing.deleted_schedule_id(conn, key)
            if deleted is None:
                raise UnknownSchedule(
                    f"no schedule has the id or name {key!r}, and no fires of a deleted"
                    " one are kept under it; see `stormdrill schedules list`"
                )
            found = storing.archived_fires(conn, deleted, limit=limit)
    return [FireView.of(fire) for fire in found]


# ---- approvals --------------------------------------------------------------------------------


def approval_of(store: journal.Journal, key: str) -> tuple[model.Schedule, ApprovalState]:
    """The schedule (id or name) and where its approval stands."""
    schedule = get(store, key)
    with store.transaction() as conn:
        return schedule, claiming.approval_state(conn, schedule.id)


def view(store: journal.Journal, schedule: model.Schedule) -> ScheduleView:
    """The schedule as the CLI's `--format json` and the API show it, with its approval."""
    with store.transaction() as conn:
        return ScheduleView.of(schedule, claiming.approval_state(conn, schedule.id))


def views_of(store: journal.Journal) -> list[ScheduleView]:
    """Every schedule's view, by name."""
    with store.transaction() as conn:
        return [
            ScheduleView.of(schedule, claiming.approval_state(conn, schedule.id))
            for schedule in storing.list_schedules(conn)
        ]


def _decidable(schedule: model.Schedule, state: ApprovalState) -> None:
    """Raise `ScheduleNotAwaitingApproval` unless a decision on `schedule` can be made."""
    if state.required == 0:
        raise ScheduleNotAwaitingApproval(
            f"schedule {schedule.name} needs no approval: environment"
            f" {schedule.template.environment} is not protected"
        )
    if schedule.ended:
        raise ScheduleNotAwaitingApproval(
            f"schedule {schedule.name} has ended (endAt, maxRuns or its one fire), and its"
            " approval with it; apply the Drill with a later schedule to run it again"
        )
    if state.rejected_by is not None:
        raise ScheduleNotAwaitingApproval(
            f"schedule {schedule.name} was rejected by {state.rejected_by}: {state.rejection};"
            " apply a changed Drill (or delete the schedule and apply it again) to ask again"
        )


def _decide(
    store: journal.Journal,
    key: str,
    *,
    decision: claiming.Decision,
    by: str,
    comment: str,
    spec_hash: str | None,
    now: dt.datetime | None,
) -> ScheduleView:
    at = now or dt.datetime.now(dt.UTC)
    schedule = get(store, key)
    with store.transaction(write=True) as conn:
        # Lock the row: a spec applied meanwhile, or a claim, waits for this decision.
        conn.execute(
            sa.select(storing.S.c.id).where(storing.S.c.id == schedule.id).with_for_update()
        )
        current = storing.get_schedule(conn, schedule.id)
        if current is None:
            raise UnknownSchedule(f"schedule {schedule.name} was deleted meanwhile")
        state = claiming.approval_state(conn, current.id)
        _decidable(current, state)
        if decision is claiming.Decision.APPROVE and approvals.person(by) == approvals.person(
            state.requester
        ):
            raise auth.Forbidden(
                f"schedule {current.name}: {by} applied it and may not approve it; another"
                " approver must (the two-person rule)"
            )
        if spec_hash is not None and spec_hash != state.spec_hash:
            raise SpecMismatch(
                f"schedule {current.name}: you reviewed spec {spec_hash[:12]}, but it now has"
                f" spec {state.spec_hash[:12]} (it was applied again with changes); review"
                f" GET /api/v1/schedules/{current.id} and approve that spec"
            )
        conn.execute(
            _SA.insert().values(
                schedule_id=current.id,
                decision=decision.value,
                by=by,
                spec_hash=state.spec_hash,
                comment=store.redactor.text(comment),
                at=at,
            )
        )
        after = claiming.approval_state(conn, current.id)
    log.info(
        "schedule %s: %s by %s (%d/%d approval(s) count)%s",
        current.name,
        "approved" if decision is claiming.Decision.APPROVE else "rejected",
        by,
        len(after.approvers),
        after.required,
        "" if decision is claiming.Decision.APPROVE else "; its fires are skipped",
    )
    return ScheduleView.of(current, after)


def approve(
    store: journal.Journal,
    key: str,
    *,
    by: str,
    comment: str = "",
    spec_hash: str | None = None,
    now: dt.datetime | None = None,
) -> ScheduleView:
    """`by` approves the schedule's current spec; the schedule with its approval after.

    `spec_hash`, when given, is the spec the approver reviewed (`SpecMismatch` unless it is
    the current one). `auth.Forbidden` when `by` applied this spec (the two-person rule);
    `ScheduleNotAwaitingApproval` when it needs none, ended or was rejected. Approving
    again counts once per person.
    """
    return _decide(
        store,
        key,
        decision=claiming.Decision.APPROVE,
        by=by,
        comment=" ".join(comment.split()),
        spec_hash=spec_hash,
        now=now,
    )


def reject(
    store: journal.Journal,
    key: str,
    *,
    by: str,
    reason: str,
    now: dt.datetime | None = None,
) -> ScheduleView:
    """`by` rejects the schedule's spec: its fires are skipped (`awaiting-approval:
    rejected …`) until a changed spec is applied. Anyone who may approve may reject, the
    one who applied it included (stopping is always safe)."""
    return _decide(
        store,
        key,
        decision=claiming.Decision.REJECT,
        by=by,
        comment=" ".join(reason.split()) or "no reason given",
        spec_hash=None,
        now=now,
    )


# ---- preview ----------------------------------------------------------------------------------


def preview_schedule(
    store: journal.Journal, schedule: model.Schedule, *, n: int = 10, now: dt.datetime | None = None
) -> PreviewView:
    """The next `n` fire times from `now` (in the zone and UTC), marking the fires a
    blackout, a change freeze of the Environment or a guardrail decided without a cluster
    (`drills.scheduling.guarding`, judged at each due time) will skip."""
    at = now or dt.datetime.now(dt.UTC)
    with store.transaction() as conn:
        found = storing.blackouts(conn)
        approval = claiming.approval_state(conn, schedule.id)
    # Awaiting approval: its fires are skipped for that (not marked here), not by the policy.
    carried = claiming.run_approvals(schedule.template, approval) if approval.approved else None
    spec = schedule.trigger
    # From the stored next fire (the claim loop's own grid point), less those already
    # started: a nominal time passed whose jittered due time has not is still to come.
    earliest = at - dt.timedelta(seconds=spec.jitter_s)
    start = max(earliest, schedule.next_nominal) if schedule.next_nominal else at
    remaining = None if spec.max_runs is None else spec.max_runs - schedule.runs_started
    if schedule.ended or (remaining is not None and remaining <= 0):
        times: Sequence[dt.datetime] = ()
    else:
        limit = n if remaining is None else min(n, remaining)
        upcoming = (
            nominal
            for nominal in triggers.nominal_times(spec, start=start)
            if triggers.due_time(schedule.id, spec, nominal) >= at
        )
        times = list(itertools.islice(upcoming, limit))
    zone = zoneinfo.ZoneInfo(spec.timezone)
    facts = guarding.facts_of(schedule.template, now=at) if times else None
    items = []
    for nominal in times:
        due = triggers.due_time(schedule.id, spec, nominal)
        blocking = blackout_rules.blocking(found, schedule.template, at=due)
        skipped_by = None if blocking is None else blocking.describe()
        if skipped_by is None:
            skipped_by = guarding.skip_reason(
                facts, at=due, approvals=carried, schedule=schedule.name
            )
        items.append(
            PreviewItemView(
                local=due.astimezone(zone).isoformat(),
                utc=due,
                nominal_fire_time=nominal,
                skipped_by=skipped_by,
            )
        )
    return PreviewView(name=schedule.name, timezone=spec.timezone, fires=tuple(items))


def preview(
    config: settings_mod.Settings,
    store: journal.Journal,
    key: str,
    *,
    n: int = 10,
    now: dt.datetime | None = None,
) -> PreviewView:
    """Preview a stored schedule (id or name) or a Drill file not applied yet."""
    path = Path(key)
    if path.is_file():
        at = now or dt.datetime.now(dt.UTC)
        bound = _template(config, store, path, at=at)
        name, template = bound.name, bound.template
        with store.transaction() as conn:
            applied = storing.get_schedule(conn, name)
        spec, first = _on_grid(applied, bound.spec, at=at)
        draft = model.Schedule(  # jittered as the applied schedule will be (its id)
            id=applied.id if applied is not None else model.ScheduleId(name),
            name=name,
            template=template,
            trigger=spec,
            owner="",
            paused=False,
            next_nominal=first,
            next_due=first,
            runs_started=0,
            created_at=at,
            updated_at=at,
        )
        return preview_schedule(store, draft, n=n, now=at)
    return preview_schedule(store, get(store, key), n=n, now=now)


# ---- blackouts --------------------------------------------------------------------------------


class BlackoutBody(views.View):
    """A new blackout, as `POST /api/v1/blackouts` and `stormdrill blackouts add -f FILE`
    take it: a scope (and its value), windows in a time zone, why, and whether drills
    already running when it begins are aborted (`abortRunning`)."""

    scope: model.BlackoutScope
    value: str = ""
    """The environment name, CMDB service ref or team ref (empty for global)."""
    windows: list[dict[str, pydantic.JsonValue]]
    """`{start, end}` (dated) or `{days: [mon, …], start: "HH:MM", end: "HH:MM"}` (weekly)."""
    timezone: scenario_models.TimeZoneName = "UTC"
    reason: str = ""
    abort_running: bool = pydantic.Field(default=False, alias="abortRunning")


def add_blackout(
    store: journal.Journal,
    *,
    scope: model.BlackoutScope,
    value: str,
    windows: Sequence[model.Window],
    timezone: str,
    reason: str,
    by: str,
    abort_running: bool = False,
    known: blackout_rules.Known | None = None,
) -> model.Blackout:
    """Store a blackout: no scheduled fire in its scope starts inside its windows (and with
    `abort_running`, drills in its scope still running when it begins are aborted).

    Its value is stored canonical (`blackout_rules.canonical`: `checkout` as
    `component:default/checkout`, `team-payments` as `group:default/team-payments`),
    checked against `known` when given (`blackout_rules.UnknownScopeValue` for an
    Environment, service or team it does not hold); the entry points pass what they know
    (`add_blackout_from`). A service or team checked against no catalog is logged."""
    if scope is not model.BlackoutScope.GLOBAL and not value.strip():
        raise ScheduleError(
            f"value: a blackout of scope {scope.value} names its {_SCOPE_VALUE[scope]};"
            " or use scope global for everything"
        )
    stored = blackout_rules.canonical(scope, value, known=known)
    unchecked = known is None or known.catalog is None
    if scope in (model.BlackoutScope.SERVICE, model.BlackoutScope.TEAM) and unchecked:
        log.warning(
            "blackout of %s %r: no CMDB catalog is configured, so it is stored as %s"
            " unchecked; set %s (or pass --cmdb) to have it checked",
            scope.value,
            value.strip(),
            stored,
            settings_mod.CMDB_ENV_VAR,
        )
    blackout = model.Blackout(
        id=model.BlackoutId(f"blk-{uuid.uuid4().hex[:12]}"),
        scope=scope,
        value=stored,
        windows=tuple(windows),
        timezone=timezone,
        reason=reason,
        created_by=by,
    )
    with store.transaction(write=True) as conn:
        conn.execute(
            storing.B.insert().values(
                id=blackout.id,
                scope=blackout.scope.value,
                scope_value=blackout.value,
                windows=model.windows_to_json(blackout.windows),
                timezone=timezone,
                reason=reason,
                created_by=by,
                created_at=dt.datetime.now(dt.UTC),
                abort_running=abort_running,
            )
        )
    return blackout


_SCOPE_VALUE = {
    model.BlackoutScope.ENVIRONMENT: "Environment (e.g. value: staging)",
    model.BlackoutScope.SERVICE: "CMDB service (e.g. value: component:default/payments)",
    model.BlackoutScope.TEAM: "team (e.g. value: group:default/team-payments)",
    model.BlackoutScope.GLOBAL: "nothing",
}


def add_blackout_from(
    store: journal.Journal,
    body: BlackoutBody,
    *,
    by: str,
    config: settings_mod.Settings | None = None,
    folders: documents.Folders | None = None,
    cmdb: Sequence[Path] = (),
) -> BlackoutView:
    """Add the blackout `body` describes (what the API and the CLI both call).

    Its value is checked against what is known (`_blackout_known`): the Environments of
    the bundled examples, of `folders` (the API's environment folders) and of the stored
    schedules and runs; the CMDB catalog `cmdb` names, else `config`'s (`STORMDRILL_CMDB`),
    when there is one. `blackout_rules.UnknownScopeValue` (422, exit 3) names the value and
    the close or known names."""
    known = _blackout_known(store, scope=body.scope, config=config, folders=folders, cmdb=cmdb)
    blackout = add_blackout(
        store,
        scope=body.scope,
        value=body.value,
        windows=parse_windows(list(body.windows), timezone=body.timezone),
        timezone=body.timezone,
        reason=body.reason,
        by=by,
        abort_running=body.abort_running,
        known=known,
    )
    return BlackoutView.of(blackout, abort_running=body.abort_running)


def _blackout_known(
    store: journal.Journal,
    *,
    scope: model.BlackoutScope,
    config: settings_mod.Settings | None,
    folders: documents.Folders | None,
    cmdb: Sequence[Path],
) -> blackout_rules.Known:
    """What a new blackout of `scope` may name (only what that scope needs is read)."""
    if scope is model.BlackoutScope.ENVIRONMENT:
        names = {doc.name for doc in loading.load_documents([binding.EXAMPLES]).environments()}
        sources = ["the bundled examples"]
        if folders is not None:
            listed = documents.environment_list(folders).environments
            names.update(found.name for found in listed)
            sources.append("the environment folders")
        with store.transaction() as conn:
            names.update(found.template.environment for found in storing.list_schedules(conn))
            used = conn.execute(sa.select(journal.runs_table.c.environment).distinct())
            names.update(str(name) for name in used.scalars())
        sources.append("the stored schedules and runs")
        return blackout_rules.Known(
            environments=frozenset(names),
            environments_from=f"known from {', '.join(sources)}",
        )
    if scope is model.BlackoutScope.GLOBAL or config is None:
        return blackout_rules.Known()
    paths = catalogs.catalog_paths(config, None, list(cmdb))
    return blackout_rules.Known(
        catalog=catalogs.catalog_for(config, None, list(cmdb)),
        catalog_from=", ".join(str(path) for path in paths),
    )


def list_blackouts(store: journal.Journal) -> list[model.Blackout]:
    with store.transaction() as conn:
        return storing.blackouts(conn)


def blackout_views(store: journal.Journal) -> list[BlackoutView]:
    """Every blackout (by id), with its `abortRunning` option."""
    with store.transaction() as conn:
        aborting = _aborting(conn)
        return [BlackoutView.of(b, abort_running=b.id in aborting) for b in storing.blackouts(conn)]


def remove_blackout(store: journal.Journal, blackout_id: str) -> None:
    with store.transaction(write=True) as conn:
        gone = conn.execute(sa.delete(storing.B).where(storing.B.c.id == blackout_id)).rowcount
    if gone == 0:
        raise UnknownSchedule(
            f"no blackout has the id {blackout_id!r}; see `stormdrill blackouts list`"
        )


def _aborting(conn: sa.Connection) -> frozenset[str]:
    """The ids of the blackouts with `abortRunning`."""
    rows = conn.execute(sa.select(storing.B.c.id).where(storing.B.c.abort_running.is_(True)))
    return frozenset(str(found) for found in rows.scalars())


# ---- aborting running drills when a blackout begins ---------------------------------------


RUNNING: frozenset[states.RunState] = frozenset(
    {
        states.RunState.PLANNING,
        states.RunState.PREFLIGHT,
        states.RunState.INJECTING,
        states.RunState.OBSERVING,
    }
)
"""The states of a drill a blackout aborts (one rolling back or verifying is ending anyway;
a queued one is held by its fire's blackout check, or aborted here once it starts)."""

Fence = Callable[[sa.Connection], None]
"""Checked inside each write (`leases.fencer(held)`): raises when the lease was lost."""


@dataclasses.dataclass(frozen=True)
class BlackoutAbort:
    """A running drill a blackout asked to abort."""

    run_id: states.RunId
    blackout_id: model.BlackoutId
    reason: str


def abort_in_blackouts(
    store: journal.Journal,
    *,
    now: dt.datetime | None = None,
    fence: Fence | None = None,
) -> list[BlackoutAbort]:
    """Ask every running drill inside a begun blackout with `abortRunning` to abort.

    The run's environment, targeted CMDB services and their owning teams (its plan's
    impact rows; for a scheduled run also its schedule's services and teams) are matched
    as a fire's are. Each run is asked once (a `blackout_aborts` row, fenced by `fence`,
    written just after the request; a crash in between asks once more); the request is
    `runs.abort`'s (the engine stops injecting, rolls back and verifies), its timeline line
    names the blackout, and the audit trail gets a `run.abort` entry by `blackout:ID`. The
    runs asked now.
    """
    at = now or dt.datetime.now(dt.UTC)
    with store.transaction() as conn:
        aborting = _aborting(conn)
        if not aborting:
            return []
        begun = [
            b for b in storing.blackouts(conn) if b.id in aborting and blackout_rules.inside(b, at)
        ]
        if not begun:
            return []
        runs_table = journal.runs_table
        running = conn.execute(
            sa.select(runs_table.c.id)
            .where(runs_table.c.state.in_([state.value for state in RUNNING]))
            .where(runs_table.c.id.not_in(sa.select(_BA.c.run_id)))
            .order_by(runs_table.c.id)
        ).scalars()
        candidates = [states.RunId(str(run_id)) for run_id in running]
    asked: list[BlackoutAbort] = []
    for run_id in candidates:
        run = store.get_run(run_id)
        if run.state not in RUNNING:
            continue
        environment, services, teams = _run_scope(store, run)
        found = next(
            (
                b
                for b in begun
                if blackout_rules.covers(b, environment=environment, services=services, teams=teams)
            ),
            None,
        )
        if found is None:
            continue
        done = _ask_to_abort(store, run, found, at=at, fence=fence)
        if done is not None:
            asked.append(done)
    return asked


def _ask_to_abort(
    store: journal.Journal,
    run: states.Run,
    blackout: model.Blackout,
    *,
    at: dt.datetime,
    fence: Fence | None,
) -> BlackoutAbort | None:
    reason = f"{blackout.describe()}, which has begun (abortRunning)"
    # Asked first, recorded after: a crash in between asks again at the next pass (a second
    # abort request is harmless), where recording first could leave a run never asked.
    with store.transaction() as conn:
        if fence is not None:
            fence(conn)
        if conn.execute(sa.select(_BA.c.run_id).where(_BA.c.run_id == run.id)).first():
            return None  # asked already (by an earlier pass)
    try:
        runs.abort(store, run.id, source=reason)
    except runs.RunEnded:
        log.info("run %s ended before %s could abort it", run.id, blackout.id)
        return None
    try:
        with store.transaction(write=True) as conn:
            if fence is not None:
                fence(conn)
            conn.execute(
                _BA.insert().values(run_id=run.id, blackout_id=blackout.id, requested_at=at)
            )
    except sa.exc.IntegrityError:
        return None  # another pass recorded the same request at the same moment
    audit.record(
        store,
        audit.NewEntry(
            principal=f"blackout:{blackout.id}",
            principal_kind="system",
            action="run.abort",
            target=f"runs/{run.id}",
            status=202,
            method="HOUSEKEEPING",
            path="blackout abort pass",
            detail=reason,
            at=at,
        ),
    )
    log.warning("run %s in %s: abort requested by %s", run.id, run.environment, reason)
    return BlackoutAbort(run_id=run.id, blackout_id=blackout.id, reason=reason)


def _run_scope(
    store: journal.Journal, run: states.Run
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The run's environment, the services it targets and the teams owning them."""
    record = run.record
    targeted = [row for row in record.impact_rows if row.targeted]
    services = [row.ref for row in targeted]
    teams = [row.owner for row in targeted if row.owner]
    trigger = record.trigger
    if trigger is not None and trigger.kind is records.TriggerKind.SCHEDULE:
        name = (trigger.principal or "").removeprefix("schedule:")
        with store.transaction() as conn:
            schedule = storing.get_schedule(conn, name) if name else None
        if schedule is not None:
            services.extend(schedule.template.services)
            teams.extend(schedule.template.teams)
    return run.environment, tuple(dict.fromkeys(services)), tuple(dict.fromkeys(teams))
