"""Approval tables: who asked for a protected run, and who approved or rejected which plan.

Two tables on the run store's `orchestrator.journal.metadata` (migrated by
`drills/migrations`): `approval_requests`, one row per run that awaits approval (its
requester, how many distinct approvers it needs, the hash of the plan they approve), and
`approvals`, one append-only row per decision (approve or reject) with the plan hash it was
given for and, for an approval, when it stops counting (its request's `ttl_s` after it was
given). Only `drills.service.approvals` reads or writes them. Invariants: a decision row
is never updated or deleted; a request's `plan_hash` changes only when a re-plan finds
another plan (the older approvals then stop counting, they are not removed).
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator import journal

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # sqlite autoincrement needs INTEGER

approval_requests_table = sa.Table(
    "approval_requests",
    journal.metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("requester", sa.String(255), nullable=False),
    sa.Column("required", sa.Integer, nullable=False),
    sa.Column("plan_hash", sa.String(64), nullable=False),
    sa.Column("ttl_s", sa.Float, nullable=False),
    sa.Column("requested_at", journal.UtcDateTime, nullable=False),
    sa.Column("updated_at", journal.UtcDateTime, nullable=False),
)

approvals_table = sa.Table(
    "approvals",
    journal.metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("by", sa.String(255), nullable=False),
    sa.Column("plan_hash", sa.String(64), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("at", journal.UtcDateTime, nullable=False),
    sa.Column("expires_at", journal.UtcDateTime),
    sa.Index("ix_approvals_run_id", "run_id", "id"),
)
