"""Schedules: apply a Drill's `schedule:`, list, pause, resume, delete, preview and fires.

Typed functions the CLI and the API call (no entry-point framework here); the fire times
come from `drills.scheduling.triggers` (APScheduler) and the rows from
`drills.scheduling.storing`. `apply` binds the Drill once (as `runs.prepare` does) and keeps
in the schedule the record `Engine.submit` would write for it, secrets masked, so any
replica can submit its fires without the files' secret values.
Invariants: a schedule is named after its Drill's `metadata.name` (unique); applying again
updates it in place (its fires stay); a paused schedule still advances and records each of
its fires as skipped (`paused`); views here are the JSON contract of `--format json` and the
API (`FireView`: exactly `nominalFireTime`, `outcome`, `runId`, `reason`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pydantic
import sqlalchemy as sa

from drills import settings as settings_mod
from drills.scheduling import blackouts as blackout_rules
from drills.scheduling import model, storing, triggers
from drills.service import documents, runs, views
from orchestrator import engine, journal, records
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from scenarios import loading

ScheduleError = model.ScheduleError
BlackoutScope = model.BlackoutScope
Outcome = model.Outcome
parse_windows = model.windows_from_json


class UnknownSchedule(documents.NotFound):
    """No schedule (or blackout) has the id or name a person gave (the API answers 404)."""


# ---- views --------------------------------------------------------------------------------


class FireView(views.CamelView):
    """One nominal fire: started (with its run) or skipped (with its reason)."""

    nominal_fire_time: views.IsoTime = pydantic.Field(alias="nominalFireTime")
    outcome: model.Outcome
    run_id: str | None = pydantic.Field(alias="runId")
    reason: str

    @classmethod
    def of(cls, fire: model.Fire) -> FireView:
        return cls(
            nominal_fire_time=fire.nominal,
            outcome=fire.outcome,
            run_id=fire.run_id,
            reason=fire.reason,
        )


class ScheduleView(views.CamelView):
    id: str
    name: str
    trigger: str
    timezone: str
    owner: str
    paused: bool
    scenario: str
    environment: str
    drill_source: str = pydantic.Field(alias="drillSource")
    next_fire_time: views.IsoTime | None = pydantic.Field(alias="nextFireTime")
    runs_started: int = pydantic.Field(alias="runsStarted")

    @classmethod
    def of(cls, schedule: model.Schedule) -> ScheduleView:
        return cls(
            id=schedule.id,
            name=schedule.name,
            trigger=schedule.trigger.describe(),
            timezone=schedule.trigger.timezone,
            owner=schedule.owner,
            paused=schedule.paused,
            scenario=schedule.template.scenario,
            environment=schedule.template.environment,
            drill_source=schedule.template.drill_source,
            next_fire_time=schedule.next_nominal,
            runs_started=schedule.runs_started,
        )


class PreviewItemView(views.CamelView):
    """One upcoming fire: its time in the schedule's zone and in UTC, and whether it runs."""

    local: str
    utc: views.IsoTime
    skipped_by: str | None = pydantic.Field(alias="skippedBy")


class PreviewView(views.CamelView):
    name: str
    timezone: str
    fires: tuple[PreviewItemView, ...]


class BlackoutView(views.View):
    """A blackout calendar: scope, windows (as written), time zone and why."""

    id: str
    scope: model.BlackoutScope
    value: str
    windows: list[pydantic.JsonValue]
    timezone: str
    reason: str
    created_by: str

    @classmethod
    def of(cls, blackout: model.Blackout) -> BlackoutView:
        return cls(
            id=blackout.id,
            scope=blackout.scope,
            value=blackout.value,
            windows=cast(list[pydantic.JsonValue], model.windows_to_json(blackout.windows)),
            timezone=blackout.timezone,
            reason=blackout.reason,
            created_by=blackout.created_by,
        )


# ---- apply -----------------------------------------------------------------------------------


def _template(
    config: settings_mod.Settings,
    store: journal.Journal,
    path: Path,
    folders: documents.Folders | None = None,
) -> tuple[str, model.RunTemplate, model.TriggerSpec, bool]:
    """The Drill file's name, run template, trigger and `paused` (bound once, as a run is).

    With `folders` (the API's document folders) its scenario and Environment are looked up
    there as a run request's are (`documents.drill_request`); else as `stormdrill run` does.
    """
    loaded = loading.load_documents([path])
    loaded.raise_for_problems()
    drills = loaded.drills()
    if not drills:
        raise ScheduleError(f"{path}: holds no Drill document (a schedule is a Drill's schedule:)")
    drill_doc = drills[0]
    schedule = drill_doc.model.spec.schedule
    if schedule is None:
        raise ScheduleError(
            f"{path}: spec.schedule is missing; add e.g. `schedule: {{cron: '0 10 * * tue',"
            " timezone: Europe/Berlin}`"
        )
    named = drill_doc.model.spec.environment
    relative = drill_doc.folder / named
    as_file = ("/" in named or named.endswith((".yaml", ".yml"))) and relative.is_file()
    # A file is found in the Drill's own folder, wherever we run from; a name is looked up
    # by binding (the Drill's folder, then the examples).
    env_ref = str(relative.resolve()) if as_file else None
    request = (
        runs.DrillRequest(target=str(path), environment=env_ref)
        if folders is None
        else documents.drill_request(folders, scenario=str(path), environment=None, parameters={})
    )
    prepared = runs.prepare(config, request)
    drill = prepared.drill
    values, keys = engine.secret_values(drill)
    record = records.RunRecord(
        scenario_source=drill.scenario_source,
        drill=drill.drill,
        parameters=dict(drill.parameters),
        time_scale=drill.time_scale,
        approvals=tuple(drill.approvals),
        redaction=engine.fingerprints_of(values),
        access=engine.access_of(drill.environment),
    ).to_json()
    masked = store.redactor.with_secrets(values, keys=keys).json(record)
    services, teams = _scope(drill.scenario.spec.services, prepared.catalog)
    template = model.RunTemplate(
        drill_source=str(path.resolve()),
        scenario=drill.scenario.metadata.name,
        environment=drill.environment.metadata.name,
        environment_source=drill.environment_source,
        record=cast(dict[str, model.Json], masked),
        services=services,
        teams=teams,
    )
    spec = model.TriggerSpec.from_schedule(schedule, anchor=dt.datetime.now(dt.UTC))
    triggers.aps_trigger(spec)  # refused here, not in the loop
    return drill_doc.name, template, spec, schedule.paused


def _scope(
    declared: Sequence[str], catalog: cmdb_models.Catalog | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The services a drill declares (canonical refs when the CMDB knows them) and the
    teams owning them: what per-service and per-team blackouts match."""
    services: list[str] = []
    teams: list[str] = []
    for raw in declared:
        if catalog is None:
            services.append(raw)
            continue
        try:
            ref = catalog.lookup(raw)
        except cmdb_errors.CmdbError:
            services.append(raw)
            continue
        services.append(str(ref))
        found = catalog.services.get(ref)
        if found is not None:
            teams.append(str(found.owner))
    return tuple(dict.fromkeys(services)), tuple(dict.fromkeys(teams))


def apply(
    config: settings_mod.Settings,
    store: journal.Journal,
    path: Path,
    *,
    owner: str,
    now: dt.datetime | None = None,
    folders: documents.Folders | None = None,
) -> model.Schedule:
    """Create or update the schedule of the Drill file `path`; the stored schedule
    (`folders`: where its scenario and Environment are looked up, see `_template`)."""
    at = now or dt.datetime.now(dt.UTC)
    name, template, spec, paused = _template(config, store, path, folders)
    with store.transaction(write=True) as conn:
        existing = storing.get_schedule(conn, name)
        if (
            existing is not None
            and spec.kind is model.TriggerKind.EVERY
            and existing.trigger.kind is spec.kind
            and existing.trigger.every_s == spec.every_s
        ):  # the same interval keeps counting from where it started
            spec = dataclasses.replace(spec, anchor=existing.trigger.anchor)
        first = triggers.first_nominal(spec, at=at)
        if first is None and existing is None:
            raise ScheduleError(
                f"{path}: spec.schedule never fires ({spec.describe()} is past, or endAt is);"
                " give a later 'at' or 'endAt'"
            )
        values = {
            "drill": template.to_json(),
            "trigger": spec.to_json(),
            "timezone": spec.timezone,
            "owner": owner,
            "paused": paused,
            "next_nominal": first,
            "updated_at": at,
        }
        if existing is None:
            schedule_id = f"sch-{uuid.uuid4().hex[:12]}"
            values["next_due"] = (
                None if first is None else triggers.due_time(schedule_id, spec, first)
            )
            conn.execute(
                storing.S.insert().values(
                    id=schedule_id, name=name, runs_started=0, created_at=at, **values
                )
            )
        else:
            schedule_id = existing.id
            values["next_due"] = (
                None if first is None else triggers.due_time(schedule_id, spec, first)
            )
            conn.execute(storing.S.update().where(storing.S.c.id == schedule_id).values(**values))
        found = storing.get_schedule(conn, schedule_id)
    assert found is not None
    return found


# ---- read, pause, resume, delete --------------------------------------------------------------


def get(store: journal.Journal, key: str) -> model.Schedule:
    with store.transaction() as conn:
        found = storing.get_schedule(conn, key)
    if found is None:
        raise UnknownSchedule(
            f"no schedule has the id or name {key!r}; see `stormdrill schedules list`"
        )
    return found


def list_schedules(store: journal.Journal) -> list[model.Schedule]:
    with store.transaction() as conn:
        return storing.list_schedules(conn)


def set_paused(store: journal.Journal, key: str, *, paused: bool) -> model.Schedule:
    """Pause or resume. A resumed schedule starts at its next fire from now (fires missed
    while paused were recorded as skipped by the loop; an outage is `catchUp`'s to judge)."""
    schedule = get(store, key)
    now = dt.datetime.now(dt.UTC)
    values: dict[str, object] = {"paused": paused, "updated_at": now}
    with store.transaction(write=True) as conn:
        conn.execute(storing.S.update().where(storing.S.c.id == schedule.id).values(**values))
    return get(store, schedule.id)


def delete(store: journal.Journal, key: str) -> model.Schedule:
    schedule = get(store, key)
    with store.transaction(write=True) as conn:
        # Lock the row first: a claim in flight (it holds the row) commits its fire before
        # the fires are deleted, so no fire row is left pointing at a deleted schedule.
        conn.execute(
            sa.select(storing.S.c.id).where(storing.S.c.id == schedule.id).with_for_update()
        )
        conn.execute(storing.F.delete().where(storing.F.c.schedule_id == schedule.id))
        conn.execute(storing.S.delete().where(storing.S.c.id == schedule.id))
    return schedule


def fires(store: journal.Journal, key: str, *, limit: int | None = None) -> list[FireView]:
    schedule = get(store, key)
    with store.transaction() as conn:
        return [FireView.of(fire) for fire in storing.fires(conn, schedule.id, limit=limit)]


# ---- preview ----------------------------------------------------------------------------------


def preview_schedule(
    store: journal.Journal, schedule: model.Schedule, *, n: int = 10, now: dt.datetime | None = None
) -> PreviewView:
    """The next `n` fire times from `now` (in the zone and UTC), marking blackout skips."""
    at = now or dt.datetime.now(dt.UTC)
    with store.transaction() as conn:
        found = storing.blackouts(conn)
    spec = schedule.trigger
    start = max(at, schedule.next_nominal) if schedule.next_nominal else at
    remaining = None if spec.max_runs is None else spec.max_runs - schedule.runs_started
    if schedule.ended or (remaining is not None and remaining <= 0):
        times: Sequence[dt.datetime] = ()
    else:
        limit = n if remaining is None else min(n, remaining)
        times = list(itertools.islice(triggers.nominal_times(spec, start=start), limit))
    zone = zoneinfo.ZoneInfo(spec.timezone)
    items = []
    for nominal in times:
        due = triggers.due_time(schedule.id, spec, nominal)
        blocking = blackout_rules.blocking(found, schedule.template, at=due)
        items.append(
            PreviewItemView(
                local=due.astimezone(zone).isoformat(),
                utc=due,
                skipped_by=None if blocking is None else blocking.describe(),
            )
        )
    return PreviewView(name=schedule.name, timezone=spec.timezone, fires=tuple(items))


def preview(
    config: settings_mod.Settings,
    store: journal.Journal,
    key: str,
    *,
    n: int = 10,
    now: dt.datetime | None = None,
) -> PreviewView:
    """Preview a stored schedule (id or name) or a Drill file not applied yet."""
    path = Path(key)
    if path.is_file():
        at = now or dt.datetime.now(dt.UTC)
        name, template, spec, _paused = _template(config, store, path)
        first = triggers.first_nominal(spec, at=at)
        with store.transaction() as conn:
            applied = storing.get_schedule(conn, name)
        draft = model.Schedule(  # jittered as the applied schedule will be (its id)
            id=applied.id if applied is not None else model.ScheduleId(name),
            name=name,
            template=template,
            trigger=spec,
            owner="",
            paused=False,
            next_nominal=first,
            next_due=first,
            runs_started=0,
            created_at=at,
            updated_at=at,
        )
        return preview_schedule(store, draft, n=n, now=at)
    return preview_schedule(store, get(store, key), n=n, now=now)


# ---- blackouts --------------------------------------------------------------------------------


def add_blackout(
    store: journal.Journal,
    *,
    scope: model.BlackoutScope,
    value: str,
    windows: Sequence[model.Window],
    timezone: str,
    reason: str,
    by: str,
) -> model.Blackout:
    blackout = model.Blackout(
        id=model.BlackoutId(f"blk-{uuid.uuid4().hex[:12]}"),
        scope=scope,
        value="" if scope is model.BlackoutScope.GLOBAL else value,
        windows=tuple(windows),
        timezone=timezone,
        reason=reason,
        created_by=by,
    )
    with store.transaction(write=True) as conn:
        conn.execute(
            storing.B.insert().values(
                id=blackout.id,
                scope=blackout.scope.value,
                scope_value=blackout.value,
                windows=model.windows_to_json(blackout.windows),
                timezone=timezone,
                reason=reason,
                created_by=by,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return blackout


def list_blackouts(store: journal.Journal) -> list[model.Blackout]:
    with store.transaction() as conn:
        return storing.blackouts(conn)


def remove_blackout(store: journal.Journal, blackout_id: str) -> None:
    with store.transaction(write=True) as conn:
        gone = conn.execute(sa.delete(storing.B).where(storing.B.c.id == blackout_id)).rowcount
    if gone == 0:
        raise UnknownSchedule(f"no blackout has the id {blackout_id!r}")
