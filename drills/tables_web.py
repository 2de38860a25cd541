"""The store's table of web sessions (`drills.service.sessions`), on `journal.metadata`.

One row per browser login. Invariants: the session's secret (the cookie) is never stored,
only its SHA-256 digest (the key); the principal is the one the pasted token (or OIDC JWT)
named at login, and a session of a Stormdrill token also keeps the token's id, so revoking
the token ends its sessions. Logging out sets `revoked_at`; expired and revoked rows are
deleted when a new session is made.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator import journal

WEB_SESSIONS_TABLE = "web_sessions"

web_sessions_table = sa.Table(
    WEB_SESSIONS_TABLE,
    journal.metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("principal", sa.JSON, nullable=False),
    sa.Column("token_id", sa.String(32), index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", journal.UtcDateTime, nullable=False),
    sa.Column("expires_at", journal.UtcDateTime, nullable=False, index=True),
    sa.Column("revoked_at", journal.UtcDateTime),
)
