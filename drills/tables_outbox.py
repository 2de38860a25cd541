"""The notification outbox (one row per delivery id) and the collectors' cursors.

Filled and read only by `drills.service.notify`. Defined on `orchestrator.journal.metadata`
(so `Journal.create_tables` and the Alembic migrations include it).

`notification_outbox`: one row per delivery, keyed by its delivery id, which is derived from
the source (an event's seq, a fire, an upcoming fire) and the sink, so collecting the same
source twice can never add a second delivery. State `pending` (due at `next_attempt_at`),
`delivered` (`delivered_at` set) or `failed` (given up after the last attempt, or refused
for good by the receiver; `last_error` says why). `claim_token` is set while a dispatcher
holds the row (it pushed `next_attempt_at` past its send); a delivery is marked only by the
claim that sent it. Rows are never deleted by the collector or the dispatcher.

`notification_cursors`: one row per collector source (`events`, `fires`): how far it has
read (`position`: every event seq at or below it is settled; a time for time-ordered
sources) and, for the events cursor, since when the lowest unfilled seq above it has been
missing (`gap_since`: a PostgreSQL transaction still in flight, or a seq lost for good).
The cursor moves in the same transaction as the outbox rows it produced.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect

from orchestrator import journal

_Json = sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql")

outbox_table = sa.Table(
    "notification_outbox",
    journal.metadata,
    sa.Column("delivery_id", sa.String(64), primary_key=True),
    sa.Column("sink", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("payload", _Json, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", journal.UtcDateTime, nullable=False),
    sa.Column("claim_token", sa.String(64)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", journal.UtcDateTime, nullable=False),
    sa.Column("updated_at", journal.UtcDateTime, nullable=False),
    sa.Column("delivered_at", journal.UtcDateTime),
    sa.Index("ix_notification_outbox_due", "state", "next_attempt_at"),
    sa.Index("ix_notification_outbox_source", "source"),
)

cursors_table = sa.Table(
    "notification_cursors",
    journal.metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("position_at", journal.UtcDateTime),
    sa.Column("gap_since", journal.UtcDateTime),
    sa.Column("updated_at", journal.UtcDateTime, nullable=False),
)
