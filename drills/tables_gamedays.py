"""Game days: the day itself, its participants, its ordered drills with gates, its notes.

Defined on `orchestrator.journal.metadata` (so `Journal.create_tables` and the Alembic
migrations include it).
Invariants:
- A game day's name is unique (`uq_gamedays_name`); `state` is `planned`, `running` or
  `closed` and only `drills.service.gamedays` changes it (planned -> running -> closed).
- A participant row is one (game day, person, role); a person with two roles has two rows.
  `absent_at` set on a person's rows means the person may not act in the game day.
- Drills are numbered from 1 (`position`, unique per game day); the gate of position N is
  the one passed before drill N runs. A decided gate keeps who decided it and when.
- Notes are append-only; a `finding` may carry an action item (owner, due date, ticket).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect

from orchestrator import journal

_Json = sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql")
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # sqlite autoincrement needs INTEGER

gamedays_table = sa.Table(
    "gamedays",
    journal.metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("window_start", journal.UtcDateTime, nullable=False),
    sa.Column("window_end", journal.UtcDateTime, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("services", _Json, nullable=False),
    sa.Column("channel_url", sa.Text, nullable=False, default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", journal.UtcDateTime, nullable=False),
    sa.Column("updated_at", journal.UtcDateTime, nullable=False),
    sa.Column("verdict", sa.Text),
    sa.UniqueConstraint("name", name="uq_gamedays_name"),
)

participants_table = sa.Table(
    "gameday_participants",
    journal.metadata,
    sa.Column(
        "gameday_id",
        sa.String(64),
        sa.ForeignKey("gamedays.id", name="fk_gameday_participants_gameday"),
        primary_key=True,
    ),
    sa.Column("person", sa.String(255), primary_key=True),
    sa.Column("role", sa.String(32), primary_key=True),
    sa.Column("absent_at", journal.UtcDateTime),
)

gameday_drills_table = sa.Table(
    "gameday_drills",
    journal.metadata,
    sa.Column(
        "gameday_id",
        sa.String(64),
        sa.ForeignKey("gamedays.id", name="fk_gameday_drills_gameday"),
        primary_key=True,
    ),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("ref_kind", sa.String(16), nullable=False),  # drill (a file) | scenario (a name)
    sa.Column("ref", sa.Text, nullable=False),
    sa.Column("environment", sa.String(255)),
    sa.Column("gate", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("verdict", sa.String(16)),
    sa.Column("gate_decision", sa.String(8)),
    sa.Column("decided_by", sa.String(255)),
    sa.Column("decided_at", journal.UtcDateTime),
)

notes_table = sa.Table(
    "gameday_notes",
    journal.metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "gameday_id",
        sa.String(64),
        sa.ForeignKey("gamedays.id", name="fk_gameday_notes_gameday"),
        nullable=False,
    ),
    sa.Column("at", journal.UtcDateTime, nullable=False),
    sa.Column("author", sa.String(255), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("action_owner", sa.String(255)),
    sa.Column("due_date", sa.Date),
    sa.Column("ticket_url", sa.Text),
    sa.Index("ix_gameday_notes_gameday", "gameday_id", "at"),
)
