"""The idempotency table: the first response to each `Idempotency-Key` of a POST.

Defined on `orchestrator.journal.metadata` (so `Journal.create_tables` and the Alembic
migrations include it). One row per (principal, method and path, key): the fingerprint of
the first request's body, and, once it was answered, its status, body and `Location`.
A row without a status is a request still being answered. Rows older than the API's
`idempotency_ttl_s` are deleted when a new key is stored.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator import journal

idempotency_table = sa.Table(
    "idempotency_keys",
    journal.metadata,
    sa.Column("principal", sa.String(255), primary_key=True),
    sa.Column("route", sa.String(512), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("body", sa.LargeBinary),
    sa.Column("media_type", sa.String(255)),
    sa.Column("location", sa.Text),
    sa.Column("created_at", journal.UtcDateTime, nullable=False, index=True),
)
