"""The service's tables: tokens, audit, approvals, idempotency keys, per-environment switches.

As `drills.tables_auth`, `drills.tables_audit`, `drills.tables_approvals`,
`drills.tables_idempotency` and `drills.tables_killswitch` define them. This revision
creates each table only if it is missing: a store created before migrations may have some
of them already (the journal's `create_all` made every table defined on its metadata, in
whatever shape that version had). It is the only revision allowed that leniency; later
ones state what they change.

Revision ID: 0002_service_tables
Revises: 0001_base
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision = "0002_service_tables"
down_revision = "0001_base"
branch_labels = None
depends_on = None

_Time = sa.DateTime(timezone=True)
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _create(
    name: str, *elements: sa.schema.SchemaItem, indexes: Sequence[tuple[str, list[str]]] = ()
) -> None:
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *elements)
    for index, columns in indexes:
        op.create_index(index, name, columns)


def upgrade() -> None:
    _create(
        "tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("teams", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires_at", _Time, nullable=True),
        sa.Column("last_used_at", _Time, nullable=True),
        sa.Column("revoked_at", _Time, nullable=True),
        sa.Column("revoked_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
        indexes=[("ix_tokens_prefix", ["prefix"])],
    )
    _create(
        "audit",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("principal_kind", sa.String(32), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("address", sa.String(255), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=[
            ("ix_audit_action", ["action"]),
            ("ix_audit_at", ["at"]),
            ("ix_audit_principal", ["principal"]),
        ],
    )
    _create(
        "approval_requests",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("ttl_s", sa.Float(), nullable=False),
        sa.Column("requested_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id"),
    )
    _create(
        "approvals",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("expires_at", _Time, nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        indexes=[("ix_approvals_run_id", ["run_id", "id"])],
    )
    _create(
        "idempotency_keys",
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("route", sa.String(512), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("media_type", sa.String(255), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("created_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("principal", "route", "key"),
        indexes=[("ix_idempotency_keys_created_at", ["created_at"])],
    )
    _create(
        "environment_killswitch",
        sa.Column("environment", sa.String(255), nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("engaged_by", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("environment"),
    )


def downgrade() -> None:
    for table in (
        "environment_killswitch",
        "idempotency_keys",
        "approvals",
        "approval_requests",
        "audit",
        "tokens",
    ):
        op.drop_table(table)
