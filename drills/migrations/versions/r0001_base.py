"""The base: the run store's tables from before migrations.

Runs, journal, events, the kill switch and target locks, exactly as `orchestrator.journal`
defines them. A store created by `metadata.create_all` before Alembic has these tables and no
`alembic_version`: `drills.service.schema.upgrade` stamps it at this revision (creating any
base table it lacks first) and upgrades it from here.

Revision ID: 0001_base
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_base"
down_revision = None
branch_labels = None
depends_on = None

_Time = sa.DateTime(timezone=True)
_Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("scenario", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(255), nullable=False),
        sa.Column("environment_source", sa.Text(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=True),
        sa.Column("ending", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("abort_reason", sa.Text(), nullable=True),
        sa.Column("owner_host", sa.String(255), nullable=False),
        sa.Column("owner_pid", sa.Integer(), nullable=False),
        sa.Column("owner_token", sa.String(255), nullable=False),
        sa.Column("heartbeat_at", _Time, nullable=True),
        sa.Column("started_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.Column("finished_at", _Time, nullable=True),
        sa.Column("record", _Json, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_state", "runs", ["state"])

    op.create_table(
        "journal",
        sa.Column("seq", _BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("step", sa.String(255), nullable=False),
        sa.Column("target_key", sa.Text(), nullable=False),
        sa.Column("target", _Json, nullable=False),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("params", _Json, nullable=False),
        sa.Column("pre_state", _Json, nullable=False),
        sa.Column("undo", _Json, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_journal_run_seq", "journal", ["run_id", "seq"])

    op.create_table(
        "events",
        sa.Column("seq", _BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", _Json, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_events_run_seq", "events", ["run_id", "seq"])

    op.create_table(
        "killswitch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("engaged_by", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.CheckConstraint("id = 1", name="killswitch_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "locks",
        sa.Column("target_key", sa.String(512), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("acquired_at", _Time, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("target_key"),
    )
    op.create_index("ix_locks_run_id", "locks", ["run_id"])


def downgrade() -> None:
    for table in ("locks", "killswitch", "events", "journal", "runs"):
        op.drop_table(table)
