"""Issue 15's web sessions: the table `web_sessions` as `drills.tables_web` defines it.

A browser login (`POST /login` with a token) is a row keyed by the SHA-256 digest of the
session cookie, with the principal it names, the token's id (revoking the token ends the
session), the session's CSRF token, and when it expires or was ended. Like 0003, 0005 and
0006, it tolerates a store created by `Journal.create_tables` with today's table modules
(before it was stamped): a table that exists is left as it is.

Revision ID: 0007_web_sessions
Revises: 0006_schedule_fire_history
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_web_sessions"
down_revision = "0006_schedule_fire_history"
branch_labels = None
depends_on = None

_Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("web_sessions"):
        return
    op.create_table(
        "web_sessions",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.JSON(), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=True),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("expires_at", _Time, nullable=False),
        sa.Column("revoked_at", _Time, nullable=True),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_web_sessions_token_id", "web_sessions", ["token_id"])
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_web_sessions_expires_at", table_name="web_sessions")
    op.drop_index("ix_web_sessions_token_id", table_name="web_sessions")
    op.drop_table("web_sessions")
