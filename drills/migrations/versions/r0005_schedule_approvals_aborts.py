"""Issue 14's schedule approvals and blackouts that abort running drills.

Adds to `schedules` the approval it needs (`approvals_required`, the `spec_hash` approved
and who applied that spec, `requested_by`), to `blackouts` the `abort_running` option, and
the tables `schedule_approvals` (append-only decisions on a schedule's spec) and
`blackout_aborts` (one row per run a blackout asked to abort), as `drills.tables_schedules`
defines them. Like 0003, it tolerates what a store created by `Journal.create_tables` with
today's table modules (before it was stamped) has already: a column or table that exists
is left as it is.

Revision ID: 0005_schedule_approvals_aborts
Revises: 0004_gamedays
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_schedule_approvals_aborts"
down_revision = "0004_gamedays"
branch_labels = None
depends_on = None

_Time = sa.DateTime(timezone=True)
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_SCHEDULE_COLUMNS = (
    (
        "approvals_required",
        lambda: sa.Column("approvals_required", sa.Integer(), nullable=False, server_default="0"),
    ),
    (
        "spec_hash",
        lambda: sa.Column("spec_hash", sa.String(length=64), nullable=False, server_default=""),
    ),
    (
        "requested_by",
        lambda: sa.Column("requested_by", sa.String(length=255), nullable=False, server_default=""),
    ),
)


def _columns(table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}


def _has_table(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    present = _columns("schedules")
    missing = [make() for name, make in _SCHEDULE_COLUMNS if name not in present]
    if missing:
        with op.batch_alter_table("schedules") as batch:
            for column in missing:
                batch.add_column(column)
    if "abort_running" not in _columns("blackouts"):
        with op.batch_alter_table("blackouts") as batch:
            batch.add_column(
                sa.Column("abort_running", sa.Boolean(), nullable=False, server_default=sa.false())
            )
    if not _has_table("schedule_approvals"):
        op.create_table(
            "schedule_approvals",
            sa.Column("id", _BigId, autoincrement=True, nullable=False),
            sa.Column("schedule_id", sa.String(length=64), nullable=False),
            sa.Column("decision", sa.String(length=16), nullable=False),
            sa.Column("by", sa.String(length=255), nullable=False),
            sa.Column("spec_hash", sa.String(length=64), nullable=False),
            sa.Column("comment", sa.Text(), nullable=False),
            sa.Column("at", _Time, nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            "ix_schedule_approvals_schedule", "schedule_approvals", ["schedule_id", "id"]
        )
    if not _has_table("blackout_aborts"):
        op.create_table(
            "blackout_aborts",
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("blackout_id", sa.String(length=64), nullable=False),
            sa.Column("requested_at", _Time, nullable=False),
            sa.PrimaryKeyConstraint("run_id"),
        )


def downgrade() -> None:
    op.drop_table("blackout_aborts")
    op.drop_index("ix_schedule_approvals_schedule", table_name="schedule_approvals")
    op.drop_table("schedule_approvals")
    with op.batch_alter_table("blackouts") as batch:
        batch.drop_column("abort_running")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("requested_by")
        batch.drop_column("spec_hash")
        batch.drop_column("approvals_required")
