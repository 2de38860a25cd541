"""Issue 14's tables: leases, schedules with their fires and blackouts, the notification outbox.

As `drills.tables_leases`, `drills.tables_schedules` and `drills.tables_outbox` define them
(`leases`; `schedules`, `schedule_fires` unique on (schedule, nominal fire time), `blackouts`;
`notification_outbox`, `notification_cursors`).

Like 0002, it creates each table only if it is missing: a store created by
`Journal.create_tables` in a process that had these table modules loaded (before it was
stamped) may have them already, in this shape.

Revision ID: 0003_schedules_leases_outbox
Revises: 0002_service_tables
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_schedules_leases_outbox"
down_revision = "0002_service_tables"
branch_labels = None
depends_on = None

_Time = sa.DateTime(timezone=True)
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _create(
    name: str, *elements: sa.schema.SchemaItem, indexes: Sequence[tuple[str, list[str]]] = ()
) -> None:
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *elements)
    for index, columns in indexes:
        op.create_index(index, name, columns)


def upgrade() -> None:
    _create(
        "blackouts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_value", sa.String(length=255), nullable=False),
        sa.Column("windows", _Json, nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=[("ix_blackouts_scope", ["scope", "scope_value"])],
    )
    _create(
        "leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", _Time, nullable=False),
        sa.Column("renewed_at", _Time, nullable=False),
        sa.Column("expires_at", _Time, nullable=False),
        sa.CheckConstraint("epoch >= 1", name="ck_leases_epoch_positive"),
        sa.PrimaryKeyConstraint("name"),
    )
    _create(
        "notification_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("position_at", _Time, nullable=True),
        sa.Column("gap_since", _Time, nullable=True),
        sa.Column("updated_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _create(
        "notification_outbox",
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("sink", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("payload", _Json, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _Time, nullable=False),
        sa.Column("claim_token", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.Column("delivered_at", _Time, nullable=True),
        sa.PrimaryKeyConstraint("delivery_id"),
        indexes=[
            ("ix_notification_outbox_due", ["state", "next_attempt_at"]),
            ("ix_notification_outbox_source", ["source"]),
        ],
    )
    _create(
        "schedules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("drill", _Json, nullable=False),
        sa.Column("trigger", _Json, nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_nominal", _Time, nullable=True),
        sa.Column("next_due", _Time, nullable=True),
        sa.Column("runs_started", sa.Integer(), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
        indexes=[("ix_schedules_next_due", ["next_due"])],
    )
    _create(
        "schedule_fires",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("schedule_id", sa.String(length=64), nullable=False),
        sa.Column("nominal_fire_time", _Time, nullable=False),
        sa.Column("actual_time", _Time, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", _Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["schedules.id"], name="fk_schedule_fires_schedule"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("schedule_id", "nominal_fire_time", name="uq_schedule_fires_nominal"),
    )


def downgrade() -> None:
    op.drop_table("schedule_fires")
    op.drop_index("ix_schedules_next_due", table_name="schedules")
    op.drop_table("schedules")
    op.drop_index("ix_notification_outbox_source", table_name="notification_outbox")
    op.drop_index("ix_notification_outbox_due", table_name="notification_outbox")
    op.drop_table("notification_outbox")
    op.drop_table("notification_cursors")
    op.drop_table("leases")
    op.drop_index("ix_blackouts_scope", table_name="blackouts")
    op.drop_table("blackouts")
