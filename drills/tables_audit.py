"""The store's audit trail table, on `orchestrator.journal.metadata` (append-only).

Defined on the journal's metadata so `Journal.create_tables` and the Alembic migrations
create it beside runs and the journal. Invariant: rows are only ever inserted; no code
updates or deletes one (`drills.service.audit` has no such path, and a test checks it).
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator import journal

AUDIT_TABLE = "audit"

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # sqlite autoincrement: INTEGER

audit_table = sa.Table(
    AUDIT_TABLE,
    journal.metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("at", journal.UtcDateTime, nullable=False, index=True),
    sa.Column("principal", sa.String(255), nullable=False, index=True),
    sa.Column("principal_kind", sa.String(32), nullable=False),
    sa.Column("action", sa.String(128), nullable=False, index=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("address", sa.String(255)),
    sa.Column("user_agent", sa.Text),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
