"""Schedules, their fires (one per schedule and nominal fire time) and blackout calendars.

Defined on `orchestrator.journal.metadata` (so `Journal.create_tables` and the Alembic
migrations include it).
Invariants:
- `schedule_fires` has one row per schedule and nominal fire time (`uq_schedule_fires_nominal`):
  a second replica claiming the same fire fails at the database, so no fire runs twice.
- A started fire names its run (`run_id`), written in the same transaction as that PENDING run.
- `schedules.next_due` is the actual (jittered) time of the next nominal fire `next_nominal`;
  both NULL once the schedule ended (`endAt`, `maxRuns`, a one-off fired).
- Deleting a schedule copies its fire rows into `schedule_fire_history` (INSERT … SELECT,
  with the schedule's id and name and `deleted_at`) and then deletes its fires and approval
  decisions, all in one transaction (`drills.service.schedules.delete`): no fire vanishes.
  The history has no foreign key (its schedule is gone) and its own id (SQLite may reuse
  the ids of deleted fire rows; `fire_id` keeps the original); it has one row per deleted
  schedule and nominal fire time (`uq_schedule_fire_history_nominal`, as `schedule_fires`).
- A schedule for a protected Environment (`approvals_required` > 0) fires only once
  `approvals_required` distinct people other than `requested_by` approved its current
  `spec_hash` (`schedule_approvals`, append-only decisions); a changed spec has a new hash,
  so the earlier approvals stop counting. Unprotected schedules have 0 and an empty hash.
- `blackout_aborts` has one row per run a blackout with `abort_running` asked to abort: the
  lease holder's pass asks each run once (`drills.service.blackouts`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect

from orchestrator import journal

_Json = sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql")
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # sqlite autoincrement needs INTEGER

schedules_table = sa.Table(
    "schedules",
    journal.metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("drill", _Json, nullable=False),  # the run a fire submits (secrets masked)
    sa.Column("trigger", _Json, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("next_nominal", journal.UtcDateTime),
    sa.Column("next_due", journal.UtcDateTime),
    sa.Column("runs_started", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", journal.UtcDateTime, nullable=False),
    sa.Column("updated_at", journal.UtcDateTime, nullable=False),
    sa.Column("approvals_required", sa.Integer, nullable=False, server_default="0"),
    sa.Column("spec_hash", sa.String(64), nullable=False, server_default=""),
    sa.Column("requested_by", sa.String(255), nullable=False, server_default=""),
    sa.UniqueConstraint("name", name="uq_schedules_name"),
    sa.Index("ix_schedules_next_due", "next_due"),
)

fires_table = sa.Table(
    "schedule_fires",
    journal.metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "schedule_id",
        sa.String(64),
        sa.ForeignKey("schedules.id", name="fk_schedule_fires_schedule"),
        nullable=False,
    ),
    sa.Column("nominal_fire_time", journal.UtcDateTime, nullable=False),
    sa.Column("actual_time", journal.UtcDateTime, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("recorded_at", journal.UtcDateTime, nullable=False),
    sa.UniqueConstraint("schedule_id", "nominal_fire_time", name="uq_schedule_fires_nominal"),
    # Ids never reused on SQLite either: the notification cursor reads fires by id, and a
    # deleted schedule's fires (the newest ids, perhaps) must not hand their ids to new ones.
    sqlite_autoincrement=True,
)

fire_history_table = sa.Table(
    "schedule_fire_history",
    journal.metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("fire_id", sa.BigInteger, nullable=False),  # its `schedule_fires.id`
    sa.Column("schedule_id", sa.String(64), nullable=False),
    sa.Column("schedule_name", sa.String(255), nullable=False),
    sa.Column("nominal_fire_time", journal.UtcDateTime, nullable=False),
    sa.Column("actual_time", journal.UtcDateTime, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("recorded_at", journal.UtcDateTime, nullable=False),
    sa.Column("deleted_at", journal.UtcDateTime, nullable=False),
    sa.UniqueConstraint(
        "schedule_id", "nominal_fire_time", name="uq_schedule_fire_history_nominal"
    ),
    sa.Index("ix_schedule_fire_history_name", "schedule_name", "deleted_at"),
)

blackouts_table = sa.Table(
    "blackouts",
    journal.metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("scope_value", sa.String(255), nullable=False, default=""),
    sa.Column("windows", _Json, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("created_by", sa.String(255), nullable=False, default=""),
    sa.Column("created_at", journal.UtcDateTime, nullable=False),
    sa.Column("abort_running", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_blackouts_scope", "scope", "scope_value"),
)

schedule_approvals_table = sa.Table(
    "schedule_approvals",
    journal.metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    # No foreign key (tables may be created apart, as some tests do): deleting a schedule
    # deletes its decisions in the same transaction (`drills.service.schedules.delete`).
    sa.Column("schedule_id", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("by", sa.String(255), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("at", journal.UtcDateTime, nullable=False),
    sa.Index("ix_schedule_approvals_schedule", "schedule_id", "id"),
)

blackout_aborts_table = sa.Table(
    "blackout_aborts",
    journal.metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("blackout_id", sa.String(64), nullable=False),
    sa.Column("requested_at", journal.UtcDateTime, nullable=False),
)
