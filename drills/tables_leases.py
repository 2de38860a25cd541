"""Singleton leases with an epoch (fencing token), one row per name (drills.service.leases).

Defined on `orchestrator.journal.metadata` (so `Journal.create_tables` and the Alembic
migrations include it).

Invariants (kept by `drills.service.leases.SqlLease`, the only writer):
- one row per lease `name`; `holder` is "" while nobody holds it (released);
- `epoch` only grows: it is bumped on every new tenure (a change of holder, or the same
  holder taking it again after it expired), never on a renewal;
- `expires_at` is `renewed_at + ttl` for a held lease, and in the past once released.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator import journal

leases_table = sa.Table(
    "leases",
    journal.metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("acquired_at", journal.UtcDateTime, nullable=False),
    sa.Column("renewed_at", journal.UtcDateTime, nullable=False),
    sa.Column("expires_at", journal.UtcDateTime, nullable=False),
    sa.CheckConstraint("epoch >= 1", name="ck_leases_epoch_positive"),
)
"""One singleton lease per row (primary key `name`, so no extra index)."""
