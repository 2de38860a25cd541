"""Outbox: the delivery rows (`drills.tables_outbox`) and every change made to them.

A delivery is inserted `pending` once (its id is its primary key: `enqueue` ignores a row
already there), claimed by one dispatcher at a time (`claim_due`: `FOR UPDATE SKIP LOCKED`
on PostgreSQL, the single writer on SQLite; the claim stamps a token, counts the attempt and
pushes `next_attempt_at` past the send, so a dispatcher that dies mid-send leaves the row
due again once that hold passes), then marked by the claim that sent it: `delivered`,
`pending` again for a retry at a later time, or `failed` for good. A mark whose claim token
no longer matches changes nothing (another dispatcher took the row after the hold expired).
Invariants: rows are never deleted here; `delivered` and `failed` are final; every write is
one short transaction (no network I/O inside one).
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from drills import tables_outbox
from drills.service.notify import notices
from orchestrator import journal, mutations, states

_T = tables_outbox.outbox_table

Fence = Callable[[sa.Connection], None]
"""Raises (e.g. `drills.service.leases.LeaseLost`) inside a transaction that must not write
because this process no longer holds the lease: the transaction then rolls back."""


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class NewDelivery:
    """A row to enqueue: one notice for one sink."""

    delivery_id: notices.DeliveryId
    sink: notices.SinkName
    notice: notices.Notice

    @classmethod
    def of(cls, notice: notices.Notice, sink: notices.SinkName) -> NewDelivery:
        return cls(notices.delivery_id(notice.source, sink), sink, notice)


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One outbox row as stored."""

    delivery_id: notices.DeliveryId
    sink: notices.SinkName
    kind: notices.Kind
    severity: notices.Severity
    source: str
    run_id: states.RunId | None
    payload: Mapping[str, mutations.JsonValue]
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    claim_token: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


def enqueue(
    conn: sa.Connection, rows: Sequence[NewDelivery], *, now: datetime
) -> list[notices.DeliveryId]:
    """Insert `rows` pending, due `now`, skipping ids already in the outbox; the new ids.

    Runs inside the caller's transaction (the collector's, with its cursor move).
    """
    if not rows:
        return []
    values = [
        {
            "delivery_id": row.delivery_id,
            "sink": row.sink,
            "kind": row.notice.kind.value,
            "severity": row.notice.severity.value,
            "source": row.notice.source,
            "run_id": row.notice.run_id,
            "payload": mutations.freeze_json(row.notice.payload(), what="notification payload"),
            "state": DeliveryState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "claim_token": None,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
            "delivered_at": None,
        }
        for row in rows
    ]
    insert: sa.Insert
    if conn.dialect.name == "postgresql":
        insert = pg_dialect.insert(_T).values(values).on_conflict_do_nothing()
    else:
        insert = sqlite_dialect.insert(_T).values(values).on_conflict_do_nothing()
    inserted = conn.execute(insert.returning(_T.c.delivery_id)).scalars().all()
    return [notices.DeliveryId(str(found)) for found in inserted]


def claim_due(
    store: journal.Journal,
    *,
    now: datetime,
    limit: int,
    hold: timedelta,
    fence: Fence | None = None,
) -> tuple[str, list[Delivery]]:
    """Claim up to `limit` pending deliveries due at `now`, oldest due first: (token, rows).

    Each claimed row has its attempt counted, the claim token set and `next_attempt_at`
    moved to `now + hold` (due again then if nobody marks it). Rows another dispatcher holds
    locked are skipped (PostgreSQL `SKIP LOCKED`). `fence` runs first, in the same
    transaction: a process that lost the lease claims nothing.
    """
    token = uuid.uuid4().hex
    with store.transaction(write=True) as conn:
        if fence is not None:
            fence(conn)
        due = conn.execute(
            sa.select(_T.c.delivery_id)
            .where(_T.c.state == DeliveryState.PENDING.value, _T.c.next_attempt_at <= now)
            .order_by(_T.c.next_attempt_at, _T.c.delivery_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
        ids = list(due)
        if not ids:
            return token, []
        rows = conn.execute(
            _T.update()
            .where(_T.c.delivery_id.in_(ids), _T.c.state == DeliveryState.PENDING.value)
            .values(
                claim_token=token,
                attempts=_T.c.attempts + 1,
                next_attempt_at=now + hold,
                updated_at=now,
            )
            .returning(*_T.c)
        ).all()
    claimed = sorted((_delivery(row) for row in rows), key=lambda d: (d.created_at, d.delivery_id))
    return token, claimed


def mark_delivered(store: journal.Journal, delivery: Delivery, *, now: datetime) -> bool:
    """`delivered` (final), if `delivery`'s claim still holds the row; False otherwise."""
    return _mark(
        store,
        delivery,
        state=DeliveryState.DELIVERED,
        values={"delivered_at": now, "last_error": None, "next_attempt_at": now},
        now=now,
    )


def mark_retry(
    store: journal.Journal, delivery: Delivery, *, now: datetime, at: datetime, error: str
) -> bool:
    """`pending` again, due `at`, with the attempt's error; False if the claim is gone."""
    return _mark(
        store,
        delivery,
        state=DeliveryState.PENDING,
        values={"next_attempt_at": at, "last_error": error},
        now=now,
    )


def mark_failed(store: journal.Journal, delivery: Delivery, *, now: datetime, error: str) -> bool:
    """`failed` (final, kept visible with its error); False if the claim is gone."""
    return _mark(
        store,
        delivery,
        state=DeliveryState.FAILED,
        values={"last_error": error, "next_attempt_at": now},
        now=now,
    )


def release(store: journal.Journal, token: str, ids: Sequence[str], *, now: datetime) -> int:
    """Give claimed rows back unsent (due `now`, the attempt not counted); how many."""
    if not ids:
        return 0
    with store.transaction(write=True) as conn:
        return conn.execute(
            _T.update()
            .where(
                _T.c.delivery_id.in_(list(ids)),
                _T.c.claim_token == token,
                _T.c.state == DeliveryState.PENDING.value,
            )
            .values(
                claim_token=None,
                attempts=_T.c.attempts - 1,
                next_attempt_at=now,
                updated_at=now,
            )
        ).rowcount


def _mark(
    store: journal.Journal,
    delivery: Delivery,
    *,
    state: DeliveryState,
    values: Mapping[str, object],
    now: datetime,
) -> bool:
    with store.transaction(write=True) as conn:
        changed = conn.execute(
            _T.update()
            .where(
                _T.c.delivery_id == delivery.delivery_id,
                _T.c.claim_token == delivery.claim_token,
                _T.c.state == DeliveryState.PENDING.value,
            )
            .values(state=state.value, claim_token=None, updated_at=now, **values)
        ).rowcount
    return changed == 1


def deliveries(
    store: journal.Journal,
    *,
    state: DeliveryState | None = None,
    run_id: states.RunId | None = None,
    sink: str | None = None,
) -> list[Delivery]:
    """Outbox rows, oldest first, optionally filtered (what `failed` deliveries an SRE sees)."""
    query = _T.select()
    if state is not None:
        query = query.where(_T.c.state == state.value)
    if run_id is not None:
        query = query.where(_T.c.run_id == run_id)
    if sink is not None:
        query = query.where(_T.c.sink == sink)
    with store.transaction() as conn:
        rows = conn.execute(query.order_by(_T.c.created_at, _T.c.delivery_id)).all()
    return [_delivery(row) for row in rows]


def _delivery(row: sa.Row[tuple[object, ...]]) -> Delivery:
    data = row._mapping
    run_id = data["run_id"]
    return Delivery(
        delivery_id=notices.DeliveryId(str(data["delivery_id"])),
        sink=notices.SinkName(str(data["sink"])),
        kind=notices.Kind(str(data["kind"])),
        severity=notices.Severity(str(data["severity"])),
        source=str(data["source"]),
        run_id=None if run_id is None else states.RunId(str(run_id)),
        payload=data["payload"],
        state=DeliveryState(str(data["state"])),
        attempts=int(data["attempts"]),
        next_attempt_at=data["next_attempt_at"],
        claim_token=data["claim_token"],
        last_error=data["last_error"],
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        delivered_at=data["delivered_at"],
    )
