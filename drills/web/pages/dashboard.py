"""`/`: the dashboard, and `POST /killswitch`, the kill switch's form.

The dashboard (any role) shows, from the same service calls as the API: the drills in
flight (each linked to `/runs/{id}`, with an Abort form posting to `/runs/{id}/abort` for a
principal the API's abort route would let abort it), the kill switches (the global one and
each Environment's of the environment folders; an engaged one is also a `banner engaged`
above the page), the runs awaiting *my* approval (the two-person rule: not my own request,
not one I already approved, within my scope), the next 7 days of scheduled fires
(`drills.service.calendar.schedule_events`, the calendar feed's) and game days, the
blackouts active now or starting within those 7 days (banners), and the last finished runs.

`POST /killswitch` (form fields `action` = `engage` | `release`, `environment` (empty:
the global switch), `reason`, required to engage) needs the CSRF token and the permission
the API's `PUT`/`DELETE /api/v1/killswitch` need (`auth.Permission.KILLSWITCH`); it calls
`drills.service.runs.engage_killswitch` / `release_killswitch` as the API does (engaging
aborts the runs in flight in its scope), once per form (`forms.act_once`), wakes the
runner, records `killswitch.engage` / `killswitch.release` in the audit trail (a refusal
too, with its status) and answers 303 to `/`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import urllib.parse
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Annotated

import fastapi
from fastapi import responses

from drills import settings as settings_mod
from drills.service import approvals, auth, catalogs, documents, killswitches, problems
from drills.service import calendar as calendar_service
from drills.service import gamedays as gameday_service
from drills.service import runs as run_service
from drills.service import schedules as schedule_service
from drills.web import audit, deps, forms, rendering, routing
from orchestrator import journal, states
from orchestrator.cmdb import errors as cmdb_errors
from scenarios import errors

router = routing.router()

HORIZON = dt.timedelta(days=7)
"""How far ahead the dashboard looks for fires, game days and blackouts."""
RECENT = 10
"""How many finished runs "Recent results" shows."""
IN_FLIGHT_LIMIT = 200
FIRES_PER_SCHEDULE = 50
"""Enough for a schedule firing every few hours over `HORIZON`."""
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_S = states.RunState


class FormInvalid(errors.StormdrillError):
    """A kill switch form that cannot be acted on (422): names the field and the fix."""


class SwitchAction(enum.StrEnum):
    ENGAGE = "engage"
    RELEASE = "release"


# ---- what the page shows ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StateLook:
    """A run state or verdict as shown: a word with a symbol, and its CSS class."""

    text: str
    css: str


def run_state_look(state: states.RunState) -> StateLook:
    if state is _S.COMPLETED:
        return StateLook("✓ completed", "state-passed")
    if state in (_S.FAILED, _S.ROLLBACK_FAILED, _S.CRASHED):
        return StateLook(f"✗ {state.value.replace('_', ' ')}", "state-failed")
    if state is _S.ABORTED:
        return StateLook("■ aborted", "state-stale")
    return StateLook(f"▶ {state.value.replace('_', ' ')}", "state-running")


def verdict_look(verdict: states.Verdict | None) -> StateLook:
    if verdict is states.Verdict.HELD:
        return StateLook("✓ held", "state-passed")
    if verdict is states.Verdict.DEVIATED:
        return StateLook("✗ deviated", "state-failed")
    if verdict is states.Verdict.INCONCLUSIVE:
        return StateLook("? inconclusive", "state-not-applicable")
    return StateLook("— none", "state-not-applicable")


@dataclasses.dataclass(frozen=True)
class InFlight:
    """A run in flight, whether the principal may abort it, whether it awaits approval."""

    run: states.Run
    look: StateLook
    may_abort: bool
    awaiting_approval: bool

    @property
    def href(self) -> str:
        return run_href(self.run.id)


@dataclasses.dataclass(frozen=True)
class Awaiting:
    """A run the principal could approve now: who asked, how many approvals are missing."""

    run: states.Run
    requester: str
    missing: int
    required: int

    @property
    def href(self) -> str:
        return run_href(self.run.id)


@dataclasses.dataclass(frozen=True)
class Switch:
    """One kill switch: the global one (`environment` None) or an Environment's."""

    environment: str | None
    state: journal.Killswitch

    @property
    def label(self) -> str:
        return "Global" if self.environment is None else f"Environment {self.environment}"

    @property
    def scope(self) -> str:
        return "global" if self.environment is None else self.environment

    @property
    def field_id(self) -> str:
        if self.environment is None:
            return "reason-global"
        return "reason-env-" + "".join(ch if ch.isalnum() else "-" for ch in self.environment)


@dataclasses.dataclass(frozen=True)
class Upcoming:
    """A scheduled fire or a game day within the horizon."""

    kind: str
    """`drill` or `game day`."""
    summary: str
    start: dt.datetime
    end: dt.datetime
    timezone: str
    href: str
    skipped: str | None = None

    @property
    def local(self) -> str:
        zone = zoneinfo.ZoneInfo(self.timezone)
        return f"{self.start.astimezone(zone):%a %Y-%m-%d %H:%M} {self.timezone}"


@dataclasses.dataclass(frozen=True)
class BlackoutBanner:
    """A blackout with a window active now, or the first starting within the horizon."""

    view: schedule_service.BlackoutView
    start: dt.datetime
    end: dt.datetime
    active: bool

    @property
    def scope(self) -> str:
        if self.view.scope.value == "global":
            return "everything"
        return f"{self.view.scope.value} {auth.short_ref(self.view.value)}"


@dataclasses.dataclass(frozen=True)
class Finished:
    run: states.Run
    look: StateLook
    verdict: StateLook

    @property
    def href(self) -> str:
        return run_href(self.run.id)


def run_href(run_id: str) -> str:
    return f"/runs/{urllib.parse.quote(run_id, safe='')}"


def _allowed(
    principal: auth.Principal,
    permission: auth.Permission,
    services: Sequence[auth.ScopedService] | None = None,
) -> bool:
    try:
        auth.authorize(principal, permission, services)
    except auth.Forbidden:
        return False
    return True


def may_abort(principal: auth.Principal, run: states.Run, *, config: settings_mod.Settings) -> bool:
    """What the API's abort route checks: the ABORT permission and, for a scoped principal,
    the services the run's plan targeted (owners from the run's CMDB)."""
    if not _allowed(principal, auth.Permission.ABORT):
        return False
    if not any(grant.scoped for grant in principal.effective_grants()):
        return True
    try:
        catalog = catalogs.catalog_for(config, catalogs.recorded_environment(run), ())
    except (errors.StormdrillError, cmdb_errors.CmdbError):
        catalog = None
    services = auth.services_of_run(run.record, catalog=catalog)
    return _allowed(principal, auth.Permission.ABORT, services)


def in_flight(
    store: journal.Journal,
    principal: auth.Principal,
    *,
    config: settings_mod.Settings,
    now: dt.datetime,
) -> list[InFlight]:
    """Every run not finished yet (queued, awaiting approval, being driven, crashed)."""
    page = run_service.list_runs(
        store,
        where=run_service.RunFilter(state=frozenset(states.IN_FLIGHT)),
        limit=IN_FLIGHT_LIMIT,
    )
    return [
        InFlight(
            run=run,
            look=run_state_look(run.state),
            may_abort=may_abort(principal, run, config=config),
            awaiting_approval=approvals.awaiting_approval(store, run, now=now),
        )
        for run in page.runs
    ]


def awaiting_mine(
    store: journal.Journal, principal: auth.Principal, *, now: dt.datetime
) -> list[Awaiting]:
    """The runs awaiting approval that `principal` may approve now (the API's approve
    route would not refuse): the APPROVE permission within its scope, not the requester,
    not one of the approvals that already count."""
    if not _allowed(principal, auth.Permission.APPROVE):
        return []
    me = approvals.person(principal.name)
    page = run_service.list_runs(
        store, where=run_service.RunFilter(state=frozenset({_S.PENDING})), limit=IN_FLIGHT_LIMIT
    )
    found = []
    for run in page.runs:
        status = approvals.status(store, run.id, now=now, run=run)
        if status is None or not status.awaiting:
            continue
        if me == approvals.person(status.request.requester):
            continue
        if any(approvals.person(name) == me for name in status.approvers):
            continue
        services = auth.services_of_run(run.record)
        if not _allowed(principal, auth.Permission.APPROVE, services):
            continue
        found.append(
            Awaiting(
                run=run,
                requester=status.request.requester,
                missing=status.missing,
                required=status.request.required,
            )
        )
    return found


def switches(store: journal.Journal, folders: documents.Folders) -> list[Switch]:
    """The global kill switch, then each Environment's of the environment folders."""
    names = [env.name for env in documents.environment_list(folders).environments]
    found = [Switch(environment=None, state=killswitches.get(store))]
    found += [Switch(environment=n, state=killswitches.get(store, environment=n)) for n in names]
    return found


def upcoming(store: journal.Journal, *, now: dt.datetime) -> list[Upcoming]:
    """The schedules' fires (as the calendar feed has them) and the game days not closed
    whose window overlaps the next `HORIZON`, by start."""
    found = [
        Upcoming(
            kind="drill",
            summary=event.summary.removeprefix(f"[{calendar_service.SKIPPED}] "),
            start=event.start,
            end=event.end,
            timezone=event.timezone,
            href="/schedules",
            skipped=_skipped(event),
        )
        for event in calendar_service.schedule_events(
            store, now=now, horizon=HORIZON, limit_per_schedule=FIRES_PER_SCHEDULE
        )
    ]
    until = now + HORIZON
    for day in gameday_service.list_gamedays(store):
        if day.state is gameday_service.State.CLOSED:
            continue
        if day.window_end < now or day.window_start > until:
            continue
        found.append(
            Upcoming(
                kind="game day",
                summary=f"Game day {day.name} ({day.state.value}), {len(day.drills)} drill(s)",
                start=day.window_start,
                end=day.window_end,
                timezone=day.timezone,
                href=f"/gamedays/{urllib.parse.quote(str(day.id), safe='')}",
            )
        )
    return sorted(found, key=lambda item: (item.start, item.summary))


def _skipped(event: calendar_service.CalendarEvent) -> str | None:
    if calendar_service.SKIPPED not in event.categories:
        return None
    for line in event.description.splitlines():
        if line.startswith("Skipped: "):
            return line.removeprefix("Skipped: ")
    return "skipped"


def _weekly(
    raw: Mapping[str, object], zone: zoneinfo.ZoneInfo, *, now: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    days_raw = raw.get("days")
    if not isinstance(days_raw, list):
        return []
    days = {_DAYS.index(str(d).lower()[:3]) for d in days_raw if str(d).lower()[:3] in _DAYS}
    start_t = dt.time.fromisoformat(str(raw["start"]))
    end_t = dt.time.fromisoformat(str(raw["end"]))
    today = now.astimezone(zone).date()
    found = []
    for offset in range(-1, HORIZON.days + 1):
        day = today + dt.timedelta(days=offset)
        if day.weekday() not in days:
            continue
        end_day = day if end_t > start_t else day + dt.timedelta(days=1)
        found.append(
            (
                dt.datetime.combine(day, start_t, tzinfo=zone),
                dt.datetime.combine(end_day, end_t, tzinfo=zone),
            )
        )
    return found


def windows_of(
    view: schedule_service.BlackoutView, *, now: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The blackout's windows (as written: dated, or weekly in its zone) from a day before
    `now` to the end of the horizon, as aware (start, end) pairs; an unreadable one is
    left out (the blackout was checked when it was added)."""
    zone = zoneinfo.ZoneInfo(view.timezone)
    found: list[tuple[dt.datetime, dt.datetime]] = []
    for raw in view.windows:
        if not isinstance(raw, dict):
            continue
        try:
            if "days" in raw:
                found += _weekly(raw, zone, now=now)
                continue
            start = dt.datetime.fromisoformat(str(raw["start"]))
            end = dt.datetime.fromisoformat(str(raw["end"]))
        except (KeyError, ValueError):
            continue
        found.append(
            (
                start if start.tzinfo else start.replace(tzinfo=zone),
                end if end.tzinfo else end.replace(tzinfo=zone),
            )
        )
    return found


def blackout_banners(
    found: Sequence[schedule_service.BlackoutView], *, now: dt.datetime
) -> list[BlackoutBanner]:
    """Each blackout with a window active at `now` (that window) or starting within the
    horizon (the first such); active ones first."""
    banners = []
    for view in found:
        spans = sorted(windows_of(view, now=now))
        active = [(s, e) for s, e in spans if s <= now < e]
        soon = [(s, e) for s, e in spans if now < s <= now + HORIZON]
        if active:
            start, end = max(active, key=lambda span: span[1])
            banners.append(BlackoutBanner(view=view, start=start, end=end, active=True))
        elif soon:
            start, end = soon[0]
            banners.append(BlackoutBanner(view=view, start=start, end=end, active=False))
    return sorted(banners, key=lambda b: (not b.active, b.start, b.view.id))


def recent(store: journal.Journal) -> list[Finished]:
    page = run_service.list_runs(
        store, where=run_service.RunFilter(state=frozenset(states.TERMINAL)), limit=RECENT
    )
    return [
        Finished(run=run, look=run_state_look(run.state), verdict=verdict_look(run.verdict))
        for run in page.runs
    ]


# ---- routes -----------------------------------------------------------------------------


@router.get("/", response_class=responses.HTMLResponse)
def dashboard(
    request: fastapi.Request,
    session: deps.SessionDep,
    store: deps.StoreDep,
    config: deps.SettingsDep,
    folders: deps.FoldersDep,
) -> responses.Response:
    principal = session.principal
    auth.authorize(principal, auth.Permission.READ)
    now = dt.datetime.now(dt.UTC)
    scoped = switches(store, folders)
    return rendering.page(
        request,
        "dashboard.html",
        title="Dashboard",
        running=in_flight(store, principal, config=config, now=now),
        switches=scoped,
        engaged=[s for s in scoped if s.state.engaged],
        may_switch=_allowed(principal, auth.Permission.KILLSWITCH),
        may_approve=_allowed(principal, auth.Permission.APPROVE),
        awaiting=awaiting_mine(store, principal, now=now),
        upcoming=upcoming(store, now=now),
        blackouts=blackout_banners(schedule_service.blackout_views(store), now=now),
        recent=recent(store),
        horizon_days=HORIZON.days,
    )


def _target(environment: str | None) -> str:
    """The audit target, as the API writes it (`killswitch?environment=NAME`)."""
    if environment is None:
        return "killswitch"
    return "killswitch?" + urllib.parse.urlencode({"environment": environment})


def _parse_form(action: str, environment: str, reason: str) -> tuple[SwitchAction, str | None]:
    try:
        doing = SwitchAction(action.strip().lower())
    except ValueError:
        raise FormInvalid(f"kill switch form: action {action!r}: give engage or release") from None
    scope = environment.strip() or None
    if scope is not None and len(scope) > 255:
        raise FormInvalid("kill switch form: environment: give a name of at most 255 characters")
    if doing is SwitchAction.ENGAGE and not reason.strip():
        raise FormInvalid("kill switch form: reason: say why you engage the kill switch")
    if len(reason) > 4000:
        raise FormInvalid("kill switch form: reason: keep it under 4000 characters")
    return doing, scope


@router.post("/killswitch")
async def killswitch_form(
    request: fastapi.Request,
    store: deps.StoreDep,
    session: deps.FormSessionDep,
    runner: deps.DriverDep,
    action: Annotated[str, fastapi.Form()] = "",
    environment: Annotated[str, fastapi.Form()] = "",
    reason: Annotated[str, fastapi.Form()] = "",
) -> responses.Response:
    """Engage or release a kill switch (see the module doc); 303 to `/`."""
    principal = session.principal
    releasing = action.strip().lower() == SwitchAction.RELEASE.value
    name = "killswitch.release" if releasing else "killswitch.engage"
    scope: str | None = environment.strip() or None
    try:
        auth.authorize(principal, auth.Permission.KILLSWITCH)
        doing, scope = _parse_form(action, environment, reason)
    except errors.StormdrillError as exc:
        await audit.record(
            request,
            store,
            action=name,
            target=_target(scope),
            status=problems.kind_of(exc).status,
            detail=str(exc),
        )
        raise
    name = f"killswitch.{doing.value}"
    stopped: list[list[states.RunId]] = []

    def act() -> str:
        if doing is SwitchAction.ENGAGE:
            _, aborted = run_service.engage_killswitch(
                store, environment=scope, by=principal.name, reason=reason.strip()
            )
        else:
            run_service.release_killswitch(store, environment=scope, by=principal.name)
            aborted = []
        if runner is not None:
            runner.wake()
        stopped.append(aborted)
        return "/"

    try:
        answer = await forms.act_once(request, store, session, act)
    except errors.StormdrillError as exc:
        await audit.record(
            request,
            store,
            action=name,
            target=_target(scope),
            status=problems.kind_of(exc).status,
            detail=str(exc),
        )
        raise
    if stopped:  # acted now (a repeat of the same form is not acted on, nor audited again)
        aborted = stopped[0]
        detail = f"asked to abort: {', '.join(aborted)}" if aborted else ""
        await audit.record(request, store, action=name, target=_target(scope), detail=detail)
    return answer
