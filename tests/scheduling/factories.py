"""Schedules written straight into a store (no Drill files): what the claim tests fire."""

from __future__ import annotations

import datetime as dt

from drills import tables_schedules
from drills.scheduling import model, storing, triggers
from orchestrator import journal


def template(drill: str = "nightly") -> model.RunTemplate:
    return model.RunTemplate(
        drill_source=f"/drills/{drill}.drill.yaml",
        scenario="absence-cover",
        environment="test",
        environment_source="/envs/test.environment.yaml",
        record={"drill": drill, "parameters": {}},
    )


def every(seconds: float, *, anchor: dt.datetime, **extra: object) -> model.TriggerSpec:
    return model.TriggerSpec(
        kind=model.TriggerKind.EVERY,
        timezone="UTC",
        every_s=seconds,
        anchor=anchor,
        **extra,  # type: ignore[arg-type]
    )


def add(
    store: journal.Journal,
    spec: model.TriggerSpec,
    *,
    name: str = "nightly",
    now: dt.datetime,
    paused: bool = False,
) -> model.ScheduleId:
    """Insert a schedule whose first fire is the first nominal time at or after `now`."""
    schedule_id = model.ScheduleId(f"sch-{name}")
    first = triggers.next_nominal(spec, after=now, inclusive=True)
    assert first is not None
    with store.transaction(write=True) as conn:
        conn.execute(
            tables_schedules.schedules_table.insert().values(
                id=schedule_id,
                name=name,
                drill=template(name).to_json(),
                trigger=spec.to_json(),
                timezone=spec.timezone,
                owner="user:default/alice",
                paused=paused,
                next_nominal=first,
                next_due=triggers.due_time(schedule_id, spec, first),
                runs_started=0,
                created_at=now,
                updated_at=now,
            )
        )
    return schedule_id


def fires(store: journal.Journal, schedule_id: str) -> list[model.Fire]:
    with store.transaction() as conn:
        return list(reversed(storing.fires(conn, schedule_id)))
