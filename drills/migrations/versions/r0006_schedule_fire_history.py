"""Issue 14's schedule fire history: the fires of deleted schedules are kept.

Adds the table `schedule_fire_history` as `drills.tables_schedules` defines it: every
column of a `schedule_fires` row (its id as `fire_id`), the schedule's id and name, and
when the schedule was deleted (`deleted_at`); no foreign key (its schedule is gone), one
row per schedule and nominal fire time. `drills.service.schedules.delete` fills it; fires
of schedules deleted before this revision are gone and are not brought back. Like 0003
and 0005, it tolerates a store created by `Journal.create_tables` with today's table
modules (before it was stamped): a table that exists is left as it is.

On SQLite it also rebuilds `schedule_fires` with AUTOINCREMENT (batch mode: copy, drop,
rename), so a fire id is never reused: the notification cursor reads fires by id, and
without it the ids of a deleted schedule's newest fires were handed to the next fires,
which the cursor had already passed. PostgreSQL's sequence never reuses ids.

Revision ID: 0006_schedule_fire_history
Revises: 0005_schedule_approvals_aborts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_schedule_fire_history"
down_revision = "0005_schedule_approvals_aborts"
branch_labels = None
depends_on = None

_Time = sa.DateTime(timezone=True)
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _has_table(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def _autoincrement(name: str) -> bool:
    """Whether SQLite's table `name` was created with AUTOINCREMENT (its CREATE text)."""
    created = (
        op.get_bind()
        .execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": name},
        )
        .scalar()
    )
    return created is not None and "AUTOINCREMENT" in str(created).upper()


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite" and not _autoincrement("schedule_fires"):
        with op.batch_alter_table(
            "schedule_fires", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    if _has_table("schedule_fire_history"):
        return
    op.create_table(
        "schedule_fire_history",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("fire_id", sa.BigInteger(), nullable=False),
        sa.Column("schedule_id", sa.String(length=64), nullable=False),
        sa.Column("schedule_name", sa.String(length=255), nullable=False),
        sa.Column("nominal_fire_time", _Time, nullable=False),
        sa.Column("actual_time", _Time, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", _Time, nullable=False),
        sa.Column("deleted_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "schedule_id", "nominal_fire_time", name="uq_schedule_fire_history_nominal"
        ),
    )
    op.create_index(
        "ix_schedule_fire_history_name",
        "schedule_fire_history",
        ["schedule_name", "deleted_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_schedule_fire_history_name", table_name="schedule_fire_history")
    op.drop_table("schedule_fire_history")
