"""The per-Environment kill switch table (the global switch is the journal's `killswitch`).

Defined on `orchestrator.journal.metadata` (so `Journal.create_tables` and the Alembic
migrations include it). One row per Environment name ever switched, updated in place:
engaged or not, by whom, why, since when. `drills.service.killswitches` reads and writes it.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator import journal

environment_killswitch_table = sa.Table(
    "environment_killswitch",
    journal.metadata,
    sa.Column("environment", sa.String(255), primary_key=True),
    sa.Column("engaged", sa.Boolean, nullable=False),
    sa.Column("engaged_by", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", journal.UtcDateTime, nullable=False),
)
