"""Storing: schedule, fire and blackout rows <-> `drills.scheduling.model` (no fire-time math).

Invariants: every function takes an open `Connection` (the caller's transaction) so a
claim's reads and writes share one transaction; rows are read into frozen dataclasses.
The fires of a deleted schedule are copied into the history (`archive_fires`, one
INSERT … SELECT) before they are deleted, and read back in the shape of live fires
(`archived_fires`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from drills import tables_schedules
from drills.scheduling import model

S = tables_schedules.schedules_table
F = tables_schedules.fires_table
H = tables_schedules.fire_history_table
B = tables_schedules.blackouts_table


def schedule_from_row(row: Row[Any]) -> model.Schedule:
    return model.Schedule(
        id=model.ScheduleId(row.id),
        name=row.name,
        template=model.RunTemplate.from_json(cast(Mapping[str, model.Json], row.drill)),
        trigger=model.TriggerSpec.from_json(cast(Mapping[str, model.Json], row.trigger)),
        owner=row.owner,
        paused=row.paused,
        next_nominal=row.next_nominal,
        next_due=row.next_due,
        runs_started=row.runs_started,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def fire_from_row(row: Row[Any]) -> model.Fire:
    return model.Fire(
        schedule_id=model.ScheduleId(row.schedule_id),
        nominal=row.nominal_fire_time,
        actual=row.actual_time,
        outcome=model.Outcome(row.outcome),
        run_id=row.run_id,
        reason=row.reason,
    )


def blackout_from_row(row: Row[Any]) -> model.Blackout:
    return model.Blackout(
        id=model.BlackoutId(row.id),
        scope=model.BlackoutScope(row.scope),
        value=row.scope_value,
        windows=model.windows_from_json(row.windows, timezone=row.timezone),
        timezone=row.timezone,
        reason=row.reason,
        created_by=row.created_by,
    )


def get_schedule(conn: Connection, key: str) -> model.Schedule | None:
    """The schedule with id or name `key`."""
    row = conn.execute(sa.select(S).where(sa.or_(S.c.id == key, S.c.name == key))).first()
    return None if row is None else schedule_from_row(row)


def list_schedules(conn: Connection) -> list[model.Schedule]:
    return [schedule_from_row(row) for row in conn.execute(sa.select(S).order_by(S.c.name))]


def blackouts(conn: Connection) -> list[model.Blackout]:
    return [blackout_from_row(row) for row in conn.execute(sa.select(B).order_by(B.c.id))]


def fires(conn: Connection, schedule_id: str, *, limit: int | None = None) -> list[model.Fire]:
    """The fires of a schedule, newest nominal time first."""
    query = (
        sa.select(F)
        .where(F.c.schedule_id == schedule_id)
        .order_by(F.c.nominal_fire_time.desc())
        .limit(limit)
    )
    return [fire_from_row(row) for row in conn.execute(query)]


def insert_fires(conn: Connection, rows: Sequence[model.Fire], *, now: dt.datetime) -> None:
    """Insert fire rows; `sa.exc.IntegrityError` if one (schedule, nominal time) exists."""
    if not rows:
        return
    conn.execute(
        F.insert(),
        [
            {
                "schedule_id": fire.schedule_id,
                "nominal_fire_time": fire.nominal,
                "actual_time": fire.actual,
                "outcome": fire.outcome.value,
                "run_id": fire.run_id,
                "reason": fire.reason,
                "recorded_at": now,
            }
            for fire in rows
        ],
    )


def archive_fires(conn: Connection, schedule: model.Schedule, *, at: dt.datetime) -> int:
    """Copy every fire row of `schedule` into the history (deleted at `at`), inside the
    caller's transaction (the one that deletes them); how many were copied."""
    copied = sa.select(
        F.c.id,
        F.c.schedule_id,
        sa.literal(schedule.name, sa.String(255)),
        F.c.nominal_fire_time,
        F.c.actual_time,
        F.c.outcome,
        F.c.run_id,
        F.c.reason,
        F.c.recorded_at,
        sa.literal(at, H.c.deleted_at.type),
    ).where(F.c.schedule_id == schedule.id)
    columns = [
        "fire_id",
        "schedule_id",
        "schedule_name",
        "nominal_fire_time",
        "actual_time",
        "outcome",
        "run_id",
        "reason",
        "recorded_at",
        "deleted_at",
    ]
    return conn.execute(H.insert().from_select(columns, copied)).rowcount


def deleted_schedule_id(conn: Connection, key: str) -> model.ScheduleId | None:
    """The deleted schedule with id or name `key` whose fires the history keeps: the one
    deleted last when several of that name were (None: no fire of one is kept)."""
    found = conn.execute(
        sa.select(H.c.schedule_id)
        .where(sa.or_(H.c.schedule_id == key, H.c.schedule_name == key))
        .order_by(H.c.deleted_at.desc(), H.c.id.desc())
        .limit(1)
    ).scalar()
    return None if found is None else model.ScheduleId(str(found))


def archived_fires(
    conn: Connection, schedule_id: str, *, limit: int | None = None
) -> list[model.Fire]:
    """The kept fires of a deleted schedule, newest nominal time first (as `fires`)."""
    query = (
        sa.select(H)
        .where(H.c.schedule_id == schedule_id)
        .order_by(H.c.nominal_fire_time.desc())
        .limit(limit)
    )
    return [fire_from_row(row) for row in conn.execute(query)]
