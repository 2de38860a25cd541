"""Sources: what the store records, turned into notices, and the collector that enqueues them.

`collect(store, cursor, config)` is one pass: in ONE write transaction it reads each source
past its cursor row (`notification_cursors`, named `<cursor>/<source>`), maps what it finds
to `notices.Notice`s, routes each to its sinks (`routing.Config.sinks_for`), inserts the
deliveries (ids derived from source and sink, so a row already there is skipped) and moves
the cursors. A crash before the commit leaves both as they were; collecting again after
one finds the same ids. Nothing in the engine is touched: the sources only read.

Sources (each pluggable, `Source`; one whose tables are absent is skipped and named in
`Collected.skipped`):
- `EventSource` reads the run timeline (`events`, by seq): `state` -> planning (`started`),
  aborted (`aborted`), completed / failed (`finished`, with the verdict and a report link
  on the configured base URL); `guardrail` with `ok: false` (`guardrail-tripped`: a plan
  refused, a start vetoed, a running drill aborted); `rollback-failed`; `approval` with
  decision `requested` or `replanned` (`awaiting-approval`, with what the request needs,
  from `approval_requests`). A run's teams and services are its record's impact rows
  (every service the plan reaches and their owners).
- `FireSource` reads part B's `schedule_fires` (by id): a skipped fire (`fire-skipped`,
  keyed by schedule and nominal fire time), at warning; a fire skipped `paused` is told
  once per pause, at info: only the first paused fire after one that was not (or after
  none) is told (resumed and paused again with no fire between is the same pause).
- `UpcomingSource` reads `schedules`: a schedule not paused whose next fire is due within
  the lead time (`upcoming`, keyed by schedule and nominal fire time: told once). A fire
  that will be skipped is announced so (`willSkip`, `skippedBy`): awaiting approval, or
  what `schedules.preview_schedule` marks (blackout, freeze, guardrail without a cluster).
- `ScheduleApprovalSource` reads `schedules` and `schedule_approvals`: a schedule not ended
  whose current spec is neither approved nor rejected (`awaiting-approval`, keyed
  `schedule-approval:<schedule id>:<spec hash>`: told once per spec, again after a change).
  A schedule's teams and services (all three sources) are its stored run template's: the
  CMDB services the scenario names and their owners, as `schedules apply` resolved them
  against the Environment's catalog (a change of owner counts from the next apply).
- `GameDaySource` reads `gamedays` (by `updated_at`): a game day that `start` moved to
  running (`gameday-started`) or `close` closed (`gameday-finished`, with its verdict and
  each drill's), keyed by the game day's id: each told once, a day seen closed first gets
  both. Its cursor's `position` is a time (microseconds since the epoch) below which every
  change is settled: the next pass reads from `now - gap_grace_s`, so a change committed
  late by up to that long is still read (ids make the re-read harmless).

The seq cursors (events, fires) tolerate PostgreSQL's out-of-order commits: a transaction
holding seq 10 may commit after seq 11 is visible. The cursor's `position` moves only over
a gap-free prefix; what lies past a gap is collected now (ids make the re-read harmless)
and read again until the gap fills or has stayed open for `gap_grace_s` (then it is a seq
rolled back or lost in a crash, and the cursor steps over it). On SQLite (one writer) a
gap never happens. The first pass with no cursor row starts at the end of the table (a
store's past is not announced) unless `from_start`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from drills import tables_approvals, tables_gamedays, tables_outbox, tables_schedules
from drills.service import schedules as schedule_service
from drills.service.notify import notices, outbox, routing
from orchestrator import events, journal, mutations, records, states
from scenarios import errors, secrets

log = logging.getLogger(__name__)

_K = notices.Kind
_V = notices.Severity
_C = tables_outbox.cursors_table
DEFAULT_CURSOR = "notifications"
DEFAULT_BATCH = 1000
DEFAULT_GAP_GRACE_S = 60.0


@dataclasses.dataclass(frozen=True)
class CursorState:
    """Where a source has read to: `position` (a seq) and since when a gap has held it."""

    position: int
    gap_since: datetime | None = None


@dataclasses.dataclass(frozen=True)
class Found:
    """What one source read: its notices and its cursor after them."""

    notices: tuple[notices.Notice, ...]
    cursor: CursorState


class Source(Protocol):
    """One kind of record notifications come from."""

    @property
    def name(self) -> str:
        """Its cursor's suffix (`events`, `fires`, `upcoming`)."""
        ...

    def unavailable(self, conn: sa.Connection) -> str | None:
        """Why this source cannot be read in this store (its table is absent), or None."""
        ...

    def start(self, conn: sa.Connection, *, from_start: bool) -> CursorState:
        """The cursor of a first pass."""
        ...

    def read(
        self,
        conn: sa.Connection,
        cursor: CursorState,
        *,
        now: datetime,
        config: routing.Config,
        redactor: secrets.Redactor,
        store: journal.Journal,
    ) -> Found:
        """What lies past `cursor`, read inside `conn` (`store` only for read-only
        judgements that open their own transaction, as the upcoming source's preview)."""
        ...


@dataclasses.dataclass(frozen=True)
class Collected:
    """One collection pass: the new delivery ids, the notices found, the sources skipped."""

    deliveries: tuple[notices.DeliveryId, ...]
    notices: int
    cursors: Mapping[str, CursorState]
    skipped: Mapping[str, str]
    """Source name -> why it was not read (e.g. its table is absent)."""


# ---- reading by seq, tolerating gaps ----------------------------------------------------


def _advance(
    cursor: CursorState,
    seqs: Sequence[int],
    *,
    now: datetime,
    grace: timedelta,
) -> CursorState:
    """The cursor after reading `seqs` (ascending, all past `cursor.position`)."""
    position, gap_since = cursor.position, cursor.gap_since
    for seq in seqs:
        if seq == position + 1:
            position = seq
            continue
        # a gap below `seq`: wait for it, unless it has been open too long
        if gap_since is None:
            gap_since = now
        if now - gap_since < grace:
            return CursorState(position, gap_since)
        log.info(
            "notifications: seq(s) %d..%d never appeared within %.0fs; stepping over them",
            position + 1,
            seq - 1,
            grace.total_seconds(),
        )
        position, gap_since = seq, None
    return CursorState(position, None)


def _max_of(conn: sa.Connection, column: sa.ColumnElement[int]) -> int:
    found = conn.execute(sa.select(sa.func.max(column))).scalar()
    return int(found or 0)


# ---- the run timeline -------------------------------------------------------------------

_E = events.EventKind
_WATCHED = (_E.STATE, _E.GUARDRAIL, _E.ROLLBACK_FAILED, _E.APPROVAL)
_RUNS = journal.runs_table
_EV = journal.events_table


@dataclasses.dataclass(frozen=True)
class _RunFacts:
    run_id: states.RunId
    scenario: str
    environment: str
    state: str
    verdict: str | None
    reason: str
    abort_reason: str | None
    record: records.RunRecord

    def teams(self) -> tuple[str, ...]:
        return tuple(sorted({row.owner for row in self.record.impact_rows if row.owner}))

    def services(self) -> tuple[str, ...]:
        return tuple(sorted({row.ref for row in self.record.impact_rows}))

    def trigger(self) -> dict[str, mutations.JsonValue] | None:
        trigger = self.record.trigger
        return None if trigger is None else trigger.to_json()


@dataclasses.dataclass(frozen=True)
class EventSource:
    """Notices from the run timeline (`events`)."""

    batch: int = DEFAULT_BATCH
    gap_grace_s: float = DEFAULT_GAP_GRACE_S
    name: str = "events"

    def unavailable(self, conn: sa.Connection) -> str | None:
        del conn
        return None

    def start(self, conn: sa.Connection, *, from_start: bool) -> CursorState:
        return CursorState(0 if from_start else _max_of(conn, _EV.c.seq))

    def read(
        self,
        conn: sa.Connection,
        cursor: CursorState,
        *,
        now: datetime,
        config: routing.Config,
        redactor: secrets.Redactor,
        store: journal.Journal,
    ) -> Found:
        del store
        heads = conn.execute(
            sa.select(_EV.c.seq, _EV.c.kind)
            .where(_EV.c.seq > cursor.position)
            .order_by(_EV.c.seq)
            .limit(self.batch)
        ).all()
        wanted = [int(row.seq) for row in heads if row.kind in _WATCHED]
        rows = (
            conn.execute(sa.select(_EV).where(_EV.c.seq.in_(wanted)).order_by(_EV.c.seq)).all()
            if wanted
            else []
        )
        runs = _runs(conn, {str(row.run_id) for row in rows})
        found: list[notices.Notice] = []
        for row in rows:
            facts = runs.get(str(row.run_id))
            if facts is None:
                continue
            notice = _notice_of(row, facts, config=config, redactor=redactor, conn=conn)
            if notice is not None:
                found.append(notice)
        after = _advance(
            cursor,
            [int(row.seq) for row in heads],
            now=now,
            grace=timedelta(seconds=self.gap_grace_s),
        )
        return Found(tuple(found), after)


def _runs(conn: sa.Connection, ids: set[str]) -> dict[str, _RunFacts]:
    if not ids:
        return {}
    rows = conn.execute(sa.select(_RUNS).where(_RUNS.c.id.in_(sorted(ids)))).all()
    return {
        str(row.id): _RunFacts(
            run_id=states.RunId(str(row.id)),
            scenario=str(row.scenario),
            environment=str(row.environment),
            state=str(row.state),
            verdict=None if row.verdict is None else str(row.verdict),
            reason=str(row.reason or ""),
            abort_reason=None if row.abort_reason is None else str(row.abort_reason),
            record=records.RunRecord.from_json(row.record),
        )
        for row in rows
    }


def _notice_of(
    row: sa.Row[tuple[object, ...]],
    facts: _RunFacts,
    *,
    config: routing.Config,
    redactor: secrets.Redactor,
    conn: sa.Connection,
) -> notices.Notice | None:
    kind = str(row._mapping["kind"])
    data: Mapping[str, mutations.JsonValue] = row._mapping["data"] or {}
    message = redactor.text(str(row._mapping["message"]))
    at: datetime = row._mapping["at"]
    run = facts.run_id
    details: dict[str, mutations.JsonValue] = {
        "scenario": facts.scenario,
        "state": facts.state,
        "message": message,
        "trigger": facts.trigger(),
    }
    picked: tuple[notices.Kind, notices.Severity, str] | None = None
    if kind == _E.STATE:
        moved_to = data.get("state")
        if moved_to == states.RunState.PLANNING.value:
            picked = (_K.STARTED, _V.INFO, f"drill {facts.scenario} started in {facts.environment}")
        elif moved_to == states.RunState.ABORTED.value:
            why = facts.abort_reason or facts.reason
            details |= _ending(facts, config)
            details["reason"] = redactor.text(why)
            picked = (
                _K.ABORTED,
                _V.WARNING,
                f"drill {facts.scenario} in {facts.environment} aborted: {redactor.text(why)}",
            )
        elif moved_to in (states.RunState.COMPLETED.value, states.RunState.FAILED.value):
            details |= _ending(facts, config)
            held = moved_to == states.RunState.COMPLETED.value and (
                facts.verdict == states.Verdict.HELD.value
            )
            verdict = facts.verdict or "no verdict"
            picked = (
                _K.FINISHED,
                _V.INFO if held else _V.WARNING,
                f"drill {facts.scenario} in {facts.environment} {moved_to}: {verdict}",
            )
    elif kind == _E.GUARDRAIL and data.get("ok") is False:
        details |= {"rule": data.get("rule"), "subject": data.get("subject")}
        picked = (
            _K.GUARDRAIL_TRIPPED,
            _V.WARNING,
            f"guardrail tripped on drill {facts.scenario} in {facts.environment}: {message}",
        )
    elif kind == _E.ROLLBACK_FAILED:
        leftovers = data.get("leftovers")
        count = len(leftovers) if isinstance(leftovers, list) else 0
        details |= {"leftovers": leftovers, "by": data.get("by")} | _ending(facts, config)
        picked = (
            _K.ROLLBACK_FAILED,
            _V.CRITICAL,
            f"ROLLBACK FAILED: drill {facts.scenario} in {facts.environment} left"
            f" {count} fault(s) in place; a human must act (`stormdrill recover`)",
        )
    elif kind == _E.APPROVAL and data.get("decision") in ("requested", "replanned"):
        details |= _approval_request(conn, run)
        picked = (
            _K.AWAITING_APPROVAL,
            _V.INFO,
            f"drill {facts.scenario} in {facts.environment} awaits approval",
        )
    if picked is None:
        return None
    notice_kind, severity, summary = picked
    return notices.Notice(
        source=f"event:{row._mapping['seq']}",
        kind=notice_kind,
        severity=severity,
        occurred_at=at,
        summary=summary,
        run_id=run,
        environment=facts.environment,
        teams=facts.teams(),
        services=facts.services(),
        details=details,
    )


def _ending(facts: _RunFacts, config: routing.Config) -> dict[str, mutations.JsonValue]:
    objectives = facts.record.objectives
    return {
        "verdict": facts.verdict,
        "reportUrl": config.report_url(facts.run_id),
        "achievedRtoS": None if objectives is None else objectives.achieved_rto_s,
        "targetRtoS": None if objectives is None else objectives.target_rto_s,
    }


def _approval_request(conn: sa.Connection, run_id: states.RunId) -> dict[str, mutations.JsonValue]:
    table = tables_approvals.approval_requests_table
    row = conn.execute(
        sa.select(table.c.requester, table.c.required).where(table.c.run_id == run_id)
    ).first()
    if row is None:
        return {}
    return {"requester": str(row.requester), "required": int(row.required)}


# ---- schedules (part B's tables; skipped while absent) ----------------------------------


def _table_missing(conn: sa.Connection, name: str) -> str | None:
    table = getattr(tables_schedules, name, None)
    if not isinstance(table, sa.Table):
        return f"drills.tables_schedules defines no {name}"
    if not sa.inspect(conn).has_table(table.name):
        return f"the store has no {table.name} table (not migrated yet)"
    return None


@dataclasses.dataclass(frozen=True)
class _Scope:
    """Who a schedule's notices concern: its run template's Environment, CMDB services and
    their owner teams (as `schedules apply` resolved them against the Environment's CMDB)."""

    environment: str | None
    teams: tuple[str, ...]
    services: tuple[str, ...]


def _texts_of(drill: Mapping[str, object], key: str) -> tuple[str, ...]:
    found = drill.get(key)
    return tuple(sorted({str(item) for item in found})) if isinstance(found, list) else ()


def _scope_of(drill: object) -> _Scope:
    """The scope of a stored run template (`schedules.drill`, `RunTemplate.to_json`: its
    `environment`, `services` and `teams`; a row without them concerns no team)."""
    if not isinstance(drill, Mapping):
        return _Scope(None, (), ())
    return _Scope(_environment_of(drill), _texts_of(drill, "teams"), _texts_of(drill, "services"))


def _at_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


_PAUSED = "paused"
"""The skip code of a paused schedule's fires (`drills.scheduling.model.SkipReason.PAUSED`)."""
_SKIPPED = schedule_service.Outcome.SKIPPED.value


def _skip_code(reason: str) -> str:
    """The first word of a skipped fire's reason (`paused`, `blackout`, `awaiting-approval`)."""
    return reason.partition(":")[0].strip()


def _continues_a_pause(conn: sa.Connection, schedule_id: str, nominal: datetime) -> bool:
    """Whether the fire of `schedule_id` just before `nominal` was skipped paused too (then
    this one belongs to a pause already told)."""
    fires: sa.Table = tables_schedules.fires_table
    before = conn.execute(
        sa.select(fires.c.outcome, fires.c.reason)
        .where(fires.c.schedule_id == schedule_id, fires.c.nominal_fire_time < nominal)
        .order_by(fires.c.nominal_fire_time.desc())
        .limit(1)
    ).first()
    return (
        before is not None
        and before.outcome == _SKIPPED
        and _skip_code(str(before.reason or "")) == _PAUSED
    )


@dataclasses.dataclass(frozen=True)
class FireSource:
    """Notices from skipped schedule fires (`schedule_fires`, by id).

    A fire skipped `paused` is told once per pause, at info: the first paused fire after
    one that was not (keyed by that fire); the paused fires after it say nothing. Every
    other skip is told per fire, at warning. Keys: `fire:<schedule id>:<nominal UTC>`.
    """

    batch: int = DEFAULT_BATCH
    gap_grace_s: float = DEFAULT_GAP_GRACE_S
    name: str = "fires"

    def unavailable(self, conn: sa.Connection) -> str | None:
        return _table_missing(conn, "fires_table") or _table_missing(conn, "schedules_table")

    def start(self, conn: sa.Connection, *, from_start: bool) -> CursorState:
        fires: sa.Table = tables_schedules.fires_table
        return CursorState(0 if from_start else _max_of(conn, fires.c.id))

    def read(
        self,
        conn: sa.Connection,
        cursor: CursorState,
        *,
        now: datetime,
        config: routing.Config,
        redactor: secrets.Redactor,
        store: journal.Journal,
    ) -> Found:
        del config, store
        fires: sa.Table = tables_schedules.fires_table
        schedules: sa.Table = tables_schedules.schedules_table
        rows = conn.execute(
            sa.select(
                fires.c.id,
                fires.c.schedule_id,
                fires.c.nominal_fire_time,
                fires.c.actual_time,
                fires.c.outcome,
                fires.c.reason,
                schedules.c.name,
                schedules.c.drill,
            )
            .select_from(fires.outerjoin(schedules, schedules.c.id == fires.c.schedule_id))
            .where(fires.c.id > cursor.position)
            .order_by(fires.c.id)
            .limit(self.batch)
        ).all()
        found: list[notices.Notice] = []
        for row in rows:
            if row.outcome != _SKIPPED:
                continue
            notice = self._notice(conn, row._mapping, now=now, redactor=redactor)
            if notice is not None:
                found.append(notice)
        after = _advance(
            cursor,
            [int(row.id) for row in rows],
            now=now,
            grace=timedelta(seconds=self.gap_grace_s),
        )
        return Found(tuple(found), after)

    @staticmethod
    def _notice(
        conn: sa.Connection,
        m: sa.RowMapping,
        *,
        now: datetime,
        redactor: secrets.Redactor,
    ) -> notices.Notice | None:
        reason = redactor.text(str(m["reason"] or ""))
        name = str(m["name"] or m["schedule_id"])
        nominal: datetime = m["nominal_fire_time"]
        paused = _skip_code(reason) == _PAUSED
        if paused and _continues_a_pause(conn, str(m["schedule_id"]), nominal):
            return None
        scope = _scope_of(m["drill"])
        if paused:
            severity = _V.INFO
            summary = (
                f"schedule {name} is paused: its fires are skipped from"
                f" {nominal.isoformat()} until it is resumed (stormdrill schedules resume"
                f" {name})"
            )
        else:
            severity = _V.WARNING
            summary = (
                f"schedule {name}: the fire at {nominal.isoformat()} was skipped:"
                f" {reason or 'no reason recorded'}"
            )
        return notices.Notice(
            source=f"fire:{m['schedule_id']}:{_at_utc(nominal)}",
            kind=_K.FIRE_SKIPPED,
            severity=severity,
            occurred_at=m["actual_time"] or now,
            summary=summary,
            environment=scope.environment,
            teams=scope.teams,
            services=scope.services,
            details={
                "schedule": name,
                "scheduleId": str(m["schedule_id"]),
                "nominalFireTime": nominal.isoformat(),
                "reason": reason,
                "paused": paused,
            },
        )


def _environment_of(drill: object) -> str | None:
    if isinstance(drill, Mapping):
        found = drill.get("environment")
        return found if isinstance(found, str) else None
    return None


def _told(conn: sa.Connection, source: str, config: routing.Config, notice: notices.Notice) -> bool:
    """Whether every delivery `notice` (keyed `source`) would get is already in the outbox."""
    ids = [notices.delivery_id(source, sink) for sink in config.sinks_for(notice)]
    if not ids:
        return True
    outbox_table = tables_outbox.outbox_table
    there = conn.execute(
        sa.select(sa.func.count())
        .select_from(outbox_table)
        .where(outbox_table.c.delivery_id.in_(ids))
    ).scalar_one()
    return int(there) == len(ids)


def _will_skip(
    store: journal.Journal, schedule_id: str, *, nominal: datetime, now: datetime
) -> str | None:
    """Why the schedule's next fire (`nominal`) will be skipped, or None: as far as can be
    told now it starts. Awaiting approval first (the claim checks it before the rest), then
    the preview's judgement (`schedules.preview_schedule`: blackouts, the Environment's
    freezes, the guardrails decided without a cluster). Read-only, in its own transactions."""
    try:
        schedule, approval = schedule_service.approval_of(store, schedule_id)
    except (errors.StormdrillError, KeyError, TypeError, ValueError) as exc:
        log.warning(
            "notifications: cannot judge the next fire of schedule %s (%s); announced unmarked",
            schedule_id,
            exc,
        )
        return None
    if not approval.approved:
        return f"{schedule_service.AWAITING_APPROVAL}: {approval.skip_detail()}"
    preview = schedule_service.preview_schedule(store, schedule, n=1, now=now)
    for item in preview.fires:
        if item.nominal_fire_time == nominal:
            return item.skipped_by
    return None


@dataclasses.dataclass(frozen=True)
class UpcomingSource:
    """Notices of schedules due within the lead time (`schedules.next_due`).

    A fire that will be skipped (awaiting approval, or what `schedules preview` marks: a
    blackout, a change freeze, a guardrail decided without a cluster) is announced so:
    `willSkip: true` and `skippedBy` in the details and `will be skipped` in the summary,
    still at info (the kind, severity, teams and services do not depend on the judgement, so
    neither does routing). The judgement reads the documents; a notice already in the outbox
    for every sink it routes to is not judged again.
    """

    name: str = "upcoming"

    def unavailable(self, conn: sa.Connection) -> str | None:
        return _table_missing(conn, "schedules_table")

    def start(self, conn: sa.Connection, *, from_start: bool) -> CursorState:
        del conn, from_start
        return CursorState(0)

    def read(
        self,
        conn: sa.Connection,
        cursor: CursorState,
        *,
        now: datetime,
        config: routing.Config,
        redactor: secrets.Redactor,
        store: journal.Journal,
    ) -> Found:
        schedules: sa.Table = tables_schedules.schedules_table
        horizon = now + timedelta(seconds=config.upcoming_lead_s)
        rows = conn.execute(
            sa.select(schedules).where(
                schedules.c.paused.is_(False),
                schedules.c.next_due.is_not(None),
                schedules.c.next_due > now,
                schedules.c.next_due <= horizon,
            )
        ).all()
        found = []
        for row in rows:
            nominal: datetime = row.next_nominal or row.next_due
            due: datetime = row.next_due
            minutes = max(0, round((due - now).total_seconds() / 60))
            scope = _scope_of(row.drill)
            details: dict[str, mutations.JsonValue] = {
                "schedule": str(row.name),
                "scheduleId": str(row.id),
                "nominalFireTime": nominal.isoformat(),
                "dueAt": due.isoformat(),
                "timezone": str(row.timezone),
                "willSkip": False,
                "skippedBy": None,
            }
            notice = notices.Notice(
                source=f"upcoming:{row.id}:{_at_utc(nominal)}",
                kind=_K.UPCOMING,
                severity=_V.INFO,
                occurred_at=now,
                summary=f"schedule {row.name} fires in about {minutes} min ({due.isoformat()})",
                environment=scope.environment,
                teams=scope.teams,
                services=scope.services,
                details=details,
            )
            if not _told(conn, notice.source, config, notice):
                skipped_by = _will_skip(store, str(row.id), nominal=nominal, now=now)
                if skipped_by is not None:
                    why = redactor.text(skipped_by)
                    notice = dataclasses.replace(
                        notice,
                        summary=f"schedule {row.name}: the fire in about {minutes} min"
                        f" ({due.isoformat()}) will be skipped: {why}",
                        details=details | {"willSkip": True, "skippedBy": why},
                    )
            found.append(notice)
        return Found(tuple(found), cursor)


@dataclasses.dataclass(frozen=True)
class ScheduleApprovalSource:
    """Notices of schedules awaiting approval (`schedules` of protected Environments).

    A schedule not ended whose current spec is neither approved nor rejected is told once
    per spec (`schedule-approval:<schedule id>:<spec hash>`): a changed spec (a new hash)
    is told again. With what the approval needs: how many approvals, whose count so far,
    who applied the spec (never an approver of it), and the command.
    """

    name: str = "schedule-approvals"

    def unavailable(self, conn: sa.Connection) -> str | None:
        return _table_missing(conn, "schedules_table") or _table_missing(
            conn, "schedule_approvals_table"
        )

    def start(self, conn: sa.Connection, *, from_start: bool) -> CursorState:
        del conn, from_start
        return CursorState(0)

    def read(
        self,
        conn: sa.Connection,
        cursor: CursorState,
        *,
        now: datetime,
        config: routing.Config,
        redactor: secrets.Redactor,
        store: journal.Journal,
    ) -> Found:
        del config
        schedules: sa.Table = tables_schedules.schedules_table
        rows = conn.execute(
            sa.select(schedules.c.id, schedules.c.name, schedules.c.drill)
            .where(schedules.c.approvals_required > 0, schedules.c.next_nominal.is_not(None))
            .order_by(schedules.c.name)
        ).all()
        found: list[notices.Notice] = []
        for row in rows:
            try:  # read-only, in its own transaction (the approval rules live beside the claim)
                _, state = schedule_service.approval_of(store, str(row.id))
            except (errors.StormdrillError, KeyError, TypeError, ValueError) as exc:
                log.warning(
                    "notifications: cannot read the approval of schedule %s (%s)", row.name, exc
                )
                continue
            if state.approved or state.rejected_by is not None or not state.spec_hash:
                continue
            scope = _scope_of(row.drill)
            requester = redactor.text(state.requester)
            command = f"stormdrill schedules approve {row.name}"
            found.append(
                notices.Notice(
                    source=f"schedule-approval:{row.id}:{state.spec_hash}",
                    kind=_K.AWAITING_APPROVAL,
                    severity=_V.INFO,
                    occurred_at=now,
                    summary=f"schedule {row.name} awaits approval: {state.missing} more"
                    f" approval(s) by someone other than {requester} ({command})",
                    environment=scope.environment,
                    teams=scope.teams,
                    services=scope.services,
                    details={
                        "schedule": str(row.name),
                        "scheduleId": str(row.id),
                        "specHash": state.spec_hash,
                        "required": state.required,
                        "approvals": len(state.approvers),
                        "approvedBy": list(state.approvers),
                        "missing": state.missing,
                        "requester": requester,
                        "command": command,
                    },
                )
            )
        return Found(tuple(found), cursor)


# ---- game days ------------------------------------------------------------------------------

_GD = tables_gamedays.gamedays_table
_GDP = tables_gamedays.participants_table
_GDD = tables_gamedays.gameday_drills_table
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICRO


def _instant(micros: int) -> datetime:
    return _EPOCH + micros * _MICRO


@dataclasses.dataclass(frozen=True)
class GameDaySource:
    """Notices of game days started and finished (`gamedays`, by `updated_at`)."""

    gap_grace_s: float = DEFAULT_GAP_GRACE_S
    name: str = "gamedays"

    def unavailable(self, conn: sa.Connection) -> str | None:
        if not sa.inspect(conn).has_table(_GD.name):
            return f"the store has no {_GD.name} table (not migrated yet)"
        return None

    def start(self, conn: sa.Connection, *, from_start: bool) -> CursorState:
        if from_start:
            return CursorState(0)
        newest = conn.execute(sa.select(sa.func.max(_GD.c.updated_at))).scalar()
        if not isinstance(newest, datetime):
            return CursorState(0)  # no game day yet: every one to come is new
        aware = newest if newest.tzinfo is not None else newest.replace(tzinfo=UTC)
        return CursorState(_micros(aware))

    def read(
        self,
        conn: sa.Connection,
        cursor: CursorState,
        *,
        now: datetime,
        config: routing.Config,
        redactor: secrets.Redactor,
        store: journal.Journal,
    ) -> Found:
        del config, store
        rows = conn.execute(
            sa.select(_GD)
            .where(
                _GD.c.updated_at > _instant(cursor.position),
                _GD.c.state.in_(("running", "closed")),
            )
            .order_by(_GD.c.updated_at, _GD.c.id)
        ).all()
        found: list[notices.Notice] = []
        for row in rows:
            facts = _gameday_facts(conn, row, redactor=redactor)
            found.append(_gameday_started(row, facts))
            if row.state == "closed":
                found.append(_gameday_finished(row, facts, redactor=redactor))
        settled = max(cursor.position, _micros(now - timedelta(seconds=self.gap_grace_s)))
        return Found(tuple(found), CursorState(settled))


def _gameday_facts(
    conn: sa.Connection, row: sa.Row[tuple[object, ...]], *, redactor: secrets.Redactor
) -> dict[str, mutations.JsonValue]:
    day_id = str(row._mapping["id"])
    roles: dict[str, list[str]] = {}
    for person, role in conn.execute(
        sa.select(_GDP.c.person, _GDP.c.role)
        .where(_GDP.c.gameday_id == day_id)
        .order_by(_GDP.c.person, _GDP.c.role)
    ).all():
        roles.setdefault(str(person), []).append(str(role))
    drills: list[mutations.JsonValue] = [
        {
            "position": int(d.position),
            "ref": redactor.text(str(d.ref)),
            "environment": None if d.environment is None else str(d.environment),
            "gate": str(d.gate),
            "decision": None if d.gate_decision is None else str(d.gate_decision),
            "runId": None if d.run_id is None else str(d.run_id),
            "verdict": None if d.verdict is None else str(d.verdict),
        }
        for d in conn.execute(
            sa.select(_GDD).where(_GDD.c.gameday_id == day_id).order_by(_GDD.c.position)
        ).all()
    ]
    window_start: datetime = row._mapping["window_start"]
    window_end: datetime = row._mapping["window_end"]
    return {
        "gameday": str(row._mapping["name"]),
        "gamedayId": day_id,
        "windowStart": window_start.isoformat(),
        "windowEnd": window_end.isoformat(),
        "timezone": str(row._mapping["timezone"]),
        "channel": str(row._mapping["channel_url"] or "") or None,
        "facilitator": next(
            (person for person, held in roles.items() if "facilitator" in held), None
        ),
        "participants": [{"person": p, "roles": list(r)} for p, r in roles.items()],
        "drills": drills,
    }


def _gameday_services(row: sa.Row[tuple[object, ...]]) -> tuple[str, ...]:
    services = row._mapping["services"]
    if not isinstance(services, list):
        return ()
    return tuple(str(service) for service in services)


def _gameday_started(
    row: sa.Row[tuple[object, ...]], facts: Mapping[str, mutations.JsonValue]
) -> notices.Notice:
    drills = facts["drills"]
    count = len(drills) if isinstance(drills, list) else 0
    led = f", facilitator {facts['facilitator']}" if facts.get("facilitator") else ""
    return notices.Notice(
        source=f"gameday-started:{row._mapping['id']}",
        kind=_K.GAMEDAY_STARTED,
        severity=_V.INFO,
        occurred_at=row._mapping["updated_at"],
        summary=f"game day {row._mapping['name']} started ({count} drill(s){led})",
        services=_gameday_services(row),
        details=dict(facts),
    )


def _gameday_finished(
    row: sa.Row[tuple[object, ...]],
    facts: Mapping[str, mutations.JsonValue],
    *,
    redactor: secrets.Redactor,
) -> notices.Notice:
    verdict = redactor.text(str(row._mapping["verdict"] or ""))
    return notices.Notice(
        source=f"gameday-finished:{row._mapping['id']}",
        kind=_K.GAMEDAY_FINISHED,
        severity=_V.INFO,
        occurred_at=row._mapping["updated_at"],
        summary=f"game day {row._mapping['name']} finished: {verdict or 'no verdict given'}",
        services=_gameday_services(row),
        details={**facts, "verdict": verdict or None},
    )


def default_sources() -> tuple[Source, ...]:
    return (
        EventSource(),
        FireSource(),
        UpcomingSource(),
        ScheduleApprovalSource(),
        GameDaySource(),
    )


# ---- the pass ------------------------------------------------------------------------------


def collect(
    store: journal.Journal,
    cursor: str = DEFAULT_CURSOR,
    config: routing.Config | None = None,
    *,
    now: datetime | None = None,
    sources: Sequence[Source] | None = None,
    from_start: bool = False,
    fence: outbox.Fence | None = None,
) -> Collected:
    """One collection pass (see the module doc): the deliveries it added, in one transaction.

    `fence` runs first inside the transaction (a former lease holder writes nothing).
    """
    config = config or routing.Config()
    at = now or datetime.now(UTC)
    redactor = store.redactor.with_secrets(config.secrets())
    added: list[notices.DeliveryId] = []
    moved: dict[str, CursorState] = {}
    skipped: dict[str, str] = {}
    count = 0
    with store.transaction(write=True) as conn:
        if fence is not None:
            fence(conn)
        for source in sources if sources is not None else default_sources():
            why = source.unavailable(conn)
            if why is not None:
                skipped[source.name] = why
                continue
            name = f"{cursor}/{source.name}"
            row = conn.execute(
                sa.select(_C.c.position, _C.c.gap_since).where(_C.c.name == name).with_for_update()
            ).first()
            if row is None:  # a first pass (two at once: one inserts, both then lock it)
                first = source.start(conn, from_start=from_start)
                conn.execute(_insert_cursor(conn, name=name, position=first.position, at=at))
                row = conn.execute(
                    sa.select(_C.c.position, _C.c.gap_since)
                    .where(_C.c.name == name)
                    .with_for_update()
                ).one()
            state = CursorState(int(row.position), row.gap_since)
            found = source.read(conn, state, now=at, config=config, redactor=redactor, store=store)
            count += len(found.notices)
            rows = [
                outbox.NewDelivery.of(notice, sink)
                for notice in found.notices
                for sink in config.sinks_for(notice)
            ]
            added.extend(outbox.enqueue(conn, rows, now=at))
            if found.cursor != state:
                changed = conn.execute(
                    _C.update()
                    .where(_C.c.name == name, _C.c.position == state.position)
                    .values(
                        position=found.cursor.position,
                        gap_since=found.cursor.gap_since,
                        updated_at=at,
                    )
                ).rowcount
                if changed != 1:  # cannot happen under the row lock; never write past it
                    raise CursorMoved(f"notification cursor {name} moved under this pass")
            moved[source.name] = found.cursor
    if skipped:
        log.debug("notifications: sources skipped: %s", skipped)
    return Collected(tuple(added), count, moved, skipped)


def _insert_cursor(conn: sa.Connection, *, name: str, position: int, at: datetime) -> sa.Insert:
    values = {"name": name, "position": position, "updated_at": at}
    if conn.dialect.name == "postgresql":
        return pg_dialect.insert(_C).values(values).on_conflict_do_nothing()
    return sqlite_dialect.insert(_C).values(values).on_conflict_do_nothing()


class CursorMoved(errors.StormdrillError):
    """Another collector moved the cursor during this pass (the pass rolled back: retry)."""
