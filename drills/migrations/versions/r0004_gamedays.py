"""Issue 14's game days: `gamedays`, `gameday_participants`, `gameday_drills`, `gameday_notes`.

As `drills.tables_gamedays` defines them. Like 0003, it creates each table only if it is
missing: a store created by `Journal.create_tables` in a process that had the table module
loaded (before it was stamped) may have them already, in this shape.

Revision ID: 0004_gamedays
Revises: 0003_schedules_leases_outbox
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_gamedays"
down_revision = "0003_schedules_leases_outbox"
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
        "gamedays",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("window_start", _Time, nullable=False),
        sa.Column("window_end", _Time, nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("services", _Json, nullable=False),
        sa.Column("channel_url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.Column("verdict", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_gamedays_name"),
    )
    _create(
        "gameday_participants",
        sa.Column("gameday_id", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("absent_at", _Time, nullable=True),
        sa.ForeignKeyConstraint(
            ["gameday_id"], ["gamedays.id"], name="fk_gameday_participants_gameday"
        ),
        sa.PrimaryKeyConstraint("gameday_id", "person", "role"),
    )
    _create(
        "gameday_drills",
        sa.Column("gameday_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("ref_kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("environment", sa.String(length=255), nullable=True),
        sa.Column("gate", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("gate_decision", sa.String(length=8), nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("decided_at", _Time, nullable=True),
        sa.ForeignKeyConstraint(["gameday_id"], ["gamedays.id"], name="fk_gameday_drills_gameday"),
        sa.PrimaryKeyConstraint("gameday_id", "position"),
    )
    _create(
        "gameday_notes",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("gameday_id", sa.String(length=64), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("action_owner", sa.String(length=255), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("ticket_url", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["gameday_id"], ["gamedays.id"], name="fk_gameday_notes_gameday"),
        sa.PrimaryKeyConstraint("id"),
        indexes=[("ix_gameday_notes_gameday", ["gameday_id", "at"])],
    )


def downgrade() -> None:
    op.drop_index("ix_gameday_notes_gameday", table_name="gameday_notes")
    op.drop_table("gameday_notes")
    op.drop_table("gameday_drills")
    op.drop_table("gameday_participants")
    op.drop_table("gamedays")
