"""Schedules, their fires (one per schedule and nominal fire time) and blackout calendars.

Defined on `orchestrator.journal.metadata` (so `Journal.create_tables` and the Alembic
migrations include it).
Invariants:
- `schedule_fires` has one row per schedule and nominal fire time (`uq_schedule_fires_nominal`):
  a second replica claiming the same fire fails at the database, so no fire runs twice.
- A started fire names its run (`run_id`), written in the same transaction as that PENDING run.
- `schedules.next_due` is the actual (jittered) time of the next nominal fire `next_nominal`;
  both NULL once the schedule ended (`endAt`, `maxRuns`, a one-off fired).
- Deleting a schedule deletes its fires in the same transaction (`drills.service.schedules`).
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
    sa.Index("ix_blackouts_scope", "scope", "scope_value"),
)
