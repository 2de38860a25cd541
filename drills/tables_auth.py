"""The store's table of Stormdrill API tokens, on `orchestrator.journal.metadata`.

Defined here (not in the journal) because tokens belong to the application; defining it on
the journal's metadata makes `Journal.create_tables` and the Alembic migrations create it
beside runs and the journal. Invariants: a token's secret is never stored, only its
SHA-256 digest (unique) and its first characters (`prefix`, to find and show it); rows are
never deleted: revoking sets `revoked_at`, so a token's history stays readable.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator import journal

TOKENS_TABLE = "tokens"

tokens_table = sa.Table(
    TOKENS_TABLE,
    journal.metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("teams", sa.JSON, nullable=False),
    sa.Column("services", sa.JSON, nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False, index=True),
    sa.Column("digest", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", journal.UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("expires_at", journal.UtcDateTime),
    sa.Column("last_used_at", journal.UtcDateTime),
    sa.Column("revoked_at", journal.UtcDateTime),
    sa.Column("revoked_by", sa.String(255)),
)
