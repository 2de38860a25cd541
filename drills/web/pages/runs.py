"""The runs pages: `/runs` (filters, search, cursor pages) and `/runs/{id}` (one run).

`GET /runs` takes the filters of `GET /api/v1/runs` (`state` and `verdict` repeatable,
`scenario`, `environment`, `service`, `trigger`, `since`, `until`, `limit`, `cursor`) and
a search box `q` (a run id or a unique prefix of one: 303 to that run). `GET /runs/{id}`
(a full id, a unique prefix or `latest`, as the API names runs) shows the run's timeline
and probe strips as pictures (`reports.pictures`, drawn from the redacted post-mortem as
the post-mortem HTML draws them) above its tables: the targets and what was done to each,
guardrail verdicts, probes, manual steps, the journal, and the post-mortem once the run
ended (`GET /runs/{id}/report`: the API's report, for the browser's session).

Forms: `POST /runs/{id}/abort` and `POST /runs/{id}/steps/{step}/ack` check the CSRF token
(`deps.FormSessionDep`), authorise as the API's routes do (the role, then a scoped role
against the services the run's plan targeted), call the API's service functions
(`runs.cancel`, `runs.ack`) once per idempotency key (`forms.act_once`), are audited with
the API's action names (`run.abort`, `run.ack`) — refusals too, with their status — and
answer 303 back to the run. The Abort button and the Ack forms are drawn only for a
principal the same checks let through, and only while the run is live / the step waits.

Live: `GET /runs/{id}/events` streams the run's timeline as Server-Sent Events for the
browser's session (an EventSource cannot send a bearer header): the same frames and
`Last-Event-ID` (or `?lastEventId=`) replay as the API's stream, over
`drills.service.events.follow`. `static/run.js` follows it while the page says the run is
live (`data-live`); without JS the page is complete, just not live.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated

import fastapi
from fastapi import responses
from starlette import concurrency

from drills import settings as settings_mod
from drills.service import auth, catalogs, problems, sessions
from drills.service import events as event_streams
from drills.service import runs as run_service
from drills.web import audit, deps, forms, rendering, routing
from orchestrator import engine, journal, manual, mutations, states
from orchestrator import errors as orchestrator_errors
from orchestrator import events as event_kinds
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from reports import evidence as reports_evidence
from reports import pictures, sections
from reports import rendering as reports_rendering
from scenarios import errors, models, secrets

log = logging.getLogger(__name__)

router = routing.router()

_S = states.RunState
_K = event_kinds.EventKind

EVENT_STREAM = "text/event-stream"
DEFAULT_LIMIT = 20
MAX_LIMIT = 500
LIMITS = (20, 50, 100, 500)
HIDDEN_KINDS = frozenset({_K.REPORT_FACTS.value})
"""Timeline events the page does not list (the reports' own bookkeeping)."""
EVIDENCE_FIELDS: Mapping[str, str] = {
    models.Evidence.TEXT.value: "evidence_text",
    models.Evidence.URL.value: "evidence_url",
    models.Evidence.CHOICE.value: "evidence_choice",
}
"""The form field of each kind of evidence a manual step asks for."""

STATE_STYLES: Mapping[str, tuple[str, str]] = {
    _S.PENDING.value: ("state-not-run", "○"),
    _S.PLANNING.value: ("state-running", "▶"),
    _S.PREFLIGHT.value: ("state-running", "▶"),
    _S.INJECTING.value: ("state-running", "▶"),
    _S.OBSERVING.value: ("state-running", "▶"),
    _S.ROLLING_BACK.value: ("state-running", "↺"),
    _S.VERIFYING.value: ("state-running", "▶"),
    _S.COMPLETED.value: ("state-passed", "✓"),
    _S.ABORTED.value: ("state-stale", "■"),
    _S.FAILED.value: ("state-failed", "✗"),
    _S.CRASHED.value: ("state-failed", "⚠"),
    _S.ROLLBACK_FAILED.value: ("state-failed", "⚠"),
}
"""A run state's class (style.css) and symbol: never colour alone (run.js reads these too)."""

VERDICT_STYLES: Mapping[str, tuple[str, str]] = {
    states.Verdict.HELD.value: ("state-passed", "✓"),
    states.Verdict.DEVIATED.value: ("state-failed", "✗"),
    states.Verdict.INCONCLUSIVE.value: ("state-stale", "?"),
}

ENTRY_STYLES: Mapping[str, tuple[str, str, str]] = {
    mutations.EntryState.INTENDED.value: ("state-stale", "?", "intended (not known applied)"),
    mutations.EntryState.APPLIED.value: ("state-running", "●", "applied (in place)"),
    mutations.EntryState.APPLY_FAILED.value: ("state-failed", "✗", "apply failed"),
    mutations.EntryState.REVERTED.value: ("state-passed", "✓", "reverted"),
    mutations.EntryState.REVERT_FAILED.value: ("state-failed", "⚠", "revert failed"),
    mutations.EntryState.SKIPPED.value: ("state-not-applicable", "·", "skipped"),
}
"""A journal entry's class, symbol and words (what was done to its target)."""

_LIVE_STATES = tuple(s for s in _S if s not in states.TERMINAL)
"""The states of the list's "live now" link."""
_STOPPING = frozenset({_S.ROLLING_BACK, _S.VERIFYING})
"""States in which no manual step waits any more (the run is undoing its faults)."""
_ENDS_A_WAIT = frozenset({"manual-timeout", "no-eligible-assignee"})
"""Finding rules that end a manual step's wait."""


class EvidenceMissing(errors.StormdrillError):
    """An Ack form without the evidence its step asks for (422)."""


class BadFilter(errors.StormdrillError):
    """A `/runs` filter value the list cannot use (the form shows why)."""


# ---- the list ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunRow:
    """One run as the list shows it."""

    run: states.Run
    duration: str

    @property
    def trigger(self) -> str:
        trigger = self.run.record.trigger
        return "—" if trigger is None else trigger.kind.value


@dataclasses.dataclass(frozen=True)
class Filters:
    """The list's filters as typed (`values`, for the form) and as the service takes them."""

    where: run_service.RunFilter
    states: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    scenario: str = ""
    environment: str = ""
    service: str = ""
    trigger: str = ""
    since: str = ""
    until: str = ""
    limit: int = DEFAULT_LIMIT

    def query(self) -> list[tuple[str, str]]:
        """The filters as query pairs (for the Older link and the quick links)."""
        pairs = [("state", s) for s in self.states] + [("verdict", v) for v in self.verdicts]
        for name in ("scenario", "environment", "service", "trigger", "since", "until"):
            value = getattr(self, name)
            if value:
                pairs.append((name, value))
        if self.limit != DEFAULT_LIMIT:
            pairs.append(("limit", str(self.limit)))
        return pairs

    @property
    def any(self) -> bool:
        return bool(self.query())


def _text(params: Mapping[str, str], name: str) -> str:
    return (params.get(name) or "").strip()


def _enums(raw: Iterable[str], kind: type[enum.StrEnum], *, what: str) -> tuple[str, ...]:
    """The values of `raw` as members of `kind` (blank ones skipped), deduplicated."""
    found: list[str] = []
    for text in raw:
        value = text.strip()
        if not value:
            continue
        try:
            found.append(kind(value).value)
        except ValueError:
            known = ", ".join(member.value for member in kind)
            raise BadFilter(f"{what} {value!r}: choose one of {known}") from None
    return tuple(dict.fromkeys(found))


def _parse_until(text: str) -> datetime:
    """An ISO date or time (UTC unless it names its offset), as the API reads `until`."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter(
            f"until {text!r}: write an ISO date or time (e.g. 2025-01-31, 2025-01-31T12:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_filters(params: fastapi.datastructures.QueryParams, *, now: datetime) -> Filters:
    """The list's filters from the query (empty fields are no filter); `BadFilter` or
    `runs.BadSince` for values that do not parse, naming the field and the fix."""
    state_values = _enums(params.getlist("state"), _S, what="state")
    verdict_values = _enums(params.getlist("verdict"), states.Verdict, what="verdict")
    trigger = _text(params, "trigger")
    trigger_kind: engine.TriggerKind | None = None
    if trigger:
        try:
            trigger_kind = engine.TriggerKind(trigger)
        except ValueError:
            known = ", ".join(k.value for k in engine.TriggerKind)
            raise BadFilter(f"trigger {trigger!r}: choose one of {known}") from None
    limit_text = _text(params, "limit")
    try:
        limit = int(limit_text) if limit_text else DEFAULT_LIMIT
    except ValueError:
        raise BadFilter(
            f"limit {limit_text!r}: write a whole number from 1 to {MAX_LIMIT}"
        ) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadFilter(f"limit {limit}: write a whole number from 1 to {MAX_LIMIT}")
    since, until = _text(params, "since"), _text(params, "until")
    scenario, environment = _text(params, "scenario"), _text(params, "environment")
    service = _text(params, "service")
    where = run_service.RunFilter(
        state=frozenset(_S(s) for s in state_values) or None,
        verdict=frozenset(states.Verdict(v) for v in verdict_values) or None,
        scenario=scenario or None,
        environment=environment or None,
        service=service or None,
        trigger=trigger_kind,
        since=run_service.parse_since(since, now=now) if since else None,
        until=_parse_until(until) if until else None,
    )
    return Filters(
        where=where,
        states=state_values,
        verdicts=verdict_values,
        scenario=scenario,
        environment=environment,
        service=service,
        trigger=trigger,
        since=since,
        until=until,
        limit=limit,
    )


def duration_text(seconds: float | None) -> str:
    """`0.4 s`, `42 s`, `3m 05s`, `2h 10m`; `—` for none."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _run_duration(run: states.Run) -> str:
    if run.finished_at is None:
        return "running" if not run.terminal else "—"
    return duration_text(max((run.finished_at - run.started_at).total_seconds(), 0.0))


def typed_filters(params: fastapi.datastructures.QueryParams) -> Filters:
    """The filters as typed, matching everything (the form shown again with an error)."""
    limit = _text(params, "limit")
    return Filters(
        where=run_service.RunFilter(),
        states=tuple(v for v in params.getlist("state") if v.strip()),
        verdicts=tuple(v for v in params.getlist("verdict") if v.strip()),
        scenario=_text(params, "scenario"),
        environment=_text(params, "environment"),
        service=_text(params, "service"),
        trigger=_text(params, "trigger"),
        since=_text(params, "since"),
        until=_text(params, "until"),
        limit=int(limit) if limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT else DEFAULT_LIMIT,
    )


@router.get("/runs", response_class=responses.HTMLResponse)
async def list_page(
    request: fastapi.Request, store: deps.StoreDep, session: deps.SessionDep
) -> responses.Response:
    auth.authorize(session.principal, auth.Permission.READ)
    params = request.query_params
    search = _text(params, "q")
    notice: str | None = None
    candidates: tuple[states.RunId, ...] = ()
    if search:
        try:
            found = await concurrency.run_in_threadpool(run_service.resolve_id, store, search)
        except run_service.UnknownRun:
            notice = f"No run has the id {search!r} or an id starting with it."
        except run_service.AmbiguousRunId as exc:
            notice = f"Several runs match {search!r}: type more of the id, or pick one below."
            candidates = exc.candidates[:20]
        else:
            return responses.RedirectResponse(f"/runs/{urllib.parse.quote(found)}", 303)
    try:
        filters = parse_filters(params, now=datetime.now(UTC))
    except (BadFilter, run_service.BadSince) as exc:
        return _list(request, filters=typed_filters(params), rows=[], error=str(exc), status=422)
    cursor = _text(params, "cursor") or None
    try:
        page = await concurrency.run_in_threadpool(
            functools.partial(
                run_service.list_runs,
                store,
                where=filters.where,
                limit=filters.limit,
                cursor=cursor,
            )
        )
    except run_service.BadCursor as exc:
        return _list(request, filters=filters, rows=[], error=str(exc), status=422)
    rows = [RunRow(run=run, duration=_run_duration(run)) for run in page.runs]
    older = None
    if page.next_cursor is not None:
        older = "/runs?" + urllib.parse.urlencode([*filters.query(), ("cursor", page.next_cursor)])
    return _list(
        request,
        filters=filters,
        rows=rows,
        older=older,
        first=cursor is not None,
        search=search,
        notice=notice,
        candidates=candidates,
    )


def _list(
    request: fastapi.Request,
    *,
    filters: Filters,
    rows: Sequence[RunRow],
    error: str | None = None,
    status: int = 200,
    older: str | None = None,
    first: bool = False,
    search: str = "",
    notice: str | None = None,
    candidates: Sequence[states.RunId] = (),
) -> responses.Response:
    newest = "/runs?" + urllib.parse.urlencode(filters.query()) if filters.any else "/runs"
    live = "/runs?" + urllib.parse.urlencode([("state", s.value) for s in _LIVE_STATES])
    return rendering.page(
        request,
        "runs.html",
        status_code=status,
        title="Runs",
        filters=filters,
        rows=rows,
        error=error,
        older=older,
        newest=newest if first else None,
        live_link=live,
        search=search,
        notice=notice,
        candidates=candidates,
        run_states=[s.value for s in _S],
        verdicts=[v.value for v in states.Verdict],
        triggers=[k.value for k in engine.TriggerKind],
        limits=LIMITS,
        state_styles=STATE_STYLES,
        verdict_styles=VERDICT_STYLES,
    )


# ---- one run: what the page shows -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TargetRow:
    """One named target selection as planned."""

    name: str
    provider: str
    kind: str
    refs: tuple[str, ...]
    population: int
    excluded: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ChangeRow:
    """One journal entry: what was done to a target, and where it stands."""

    seq: int
    target: str
    step: str
    action: str
    state: str
    attempts: int
    error: str | None
    at: datetime

    @property
    def style(self) -> tuple[str, str, str]:
        return ENTRY_STYLES.get(self.state, ("state-not-applicable", "·", self.state))


@dataclasses.dataclass(frozen=True)
class GuardrailRow:
    seq: int
    at: datetime
    rule: str
    ok: bool
    subject: str
    message: str


@dataclasses.dataclass(frozen=True)
class ProbeRow:
    """A probe's samples summed up (the strip draws each)."""

    probe: str
    samples: int
    failed: int
    last_ok: bool
    last_at: datetime
    last_message: str
    phases: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ManualRow:
    """A manual step: who was asked, what it asks for, and how it stands."""

    step: str
    seq: int
    at: datetime
    assignee: str
    role: str
    instructions: str
    may_act: str
    absent: tuple[str, ...]
    evidence: tuple[str, ...]
    """The kinds of evidence asked for (`text`, `url`, `choice`)."""
    choices: tuple[str, ...]
    deadline: str | None
    waiting: bool
    outcome: str
    ack_by: str | None = None
    ack_evidence: str | None = None
    can_ack: bool = False
    why_not: str | None = None
    """Why the viewer may not acknowledge a waiting step (shown instead of the form)."""

    @property
    def fields(self) -> list[tuple[str, str]]:
        """(kind, form field) of each evidence asked for, `text` when it names none."""
        kinds = self.evidence or (models.Evidence.TEXT.value,)
        return [(kind, EVIDENCE_FIELDS[kind]) for kind in kinds if kind in EVIDENCE_FIELDS]


@dataclasses.dataclass(frozen=True)
class Pictures:
    timeline: str
    probes: str


@dataclasses.dataclass(frozen=True)
class RunPage:
    """Everything `/runs/{id}` draws, read in one worker-thread hop."""

    run: states.Run
    events: tuple[journal.Event, ...]
    targets: tuple[TargetRow, ...]
    changes: tuple[ChangeRow, ...]
    guardrails: tuple[GuardrailRow, ...]
    probes: tuple[ProbeRow, ...]
    manual: tuple[ManualRow, ...]
    pictures: Pictures | None
    report: sections.PostMortem | None
    report_problem: str | None
    may_abort: bool

    @property
    def live(self) -> bool:
        return not self.run.terminal

    @property
    def last_seq(self) -> int:
        return max((e.seq for e in self.events), default=0)

    @property
    def shown_events(self) -> list[journal.Event]:
        return [e for e in self.events if e.kind not in HIDDEN_KINDS]

    @property
    def duration(self) -> str:
        return _run_duration(self.run)


def _scoped(principal: auth.Principal) -> bool:
    return any(grant.scoped for grant in principal.effective_grants())


def authorize_run(
    principal: auth.Principal,
    permission: auth.Permission,
    *,
    run: states.Run,
    settings: settings_mod.Settings,
) -> None:
    """As the API's run routes authorise: the role, then (a scoped role) the services the
    run's recorded plan targeted, with the CMDB of the Environment it recorded."""
    auth.authorize(principal, permission)
    if not _scoped(principal):
        return
    catalog = catalogs.catalog_for(settings, catalogs.recorded_environment(run), ())
    auth.authorize(principal, permission, auth.services_of_run(run.record, catalog=catalog))


def refusal(
    principal: auth.Principal,
    permission: auth.Permission,
    *,
    run: states.Run,
    settings: settings_mod.Settings,
) -> str | None:
    """Why `authorize_run` would refuse `principal` `permission` on `run` (None: it may)."""
    try:
        authorize_run(principal, permission, run=run, settings=settings)
    except auth.Forbidden as exc:
        return str(exc)
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        log.warning("cannot check %s on run %s for %s: %s", permission, run.id, principal, exc)
        return f"it cannot be checked: {secrets.redact(str(exc))}"
    return None


def _data_text(data: Mapping[str, mutations.JsonValue], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _data_texts(data: Mapping[str, mutations.JsonValue], key: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if not isinstance(value, list | tuple):
        return None
    return tuple(str(item) for item in value)


def _targets(run: states.Run) -> tuple[TargetRow, ...]:
    return tuple(
        TargetRow(
            name=name,
            provider=record.provider,
            kind=record.kind,
            refs=record.refs,
            population=record.population,
            excluded=record.excluded,
        )
        for name, record in sorted((run.record.targets or {}).items())
    )


def _changes(entries: Sequence[mutations.JournalEntry]) -> tuple[ChangeRow, ...]:
    rows = (
        ChangeRow(
            seq=entry.seq,
            target=str(entry.target),
            step=entry.step,
            action=entry.action,
            state=entry.state.value,
            attempts=entry.attempts,
            error=entry.error,
            at=entry.updated_at,
        )
        for entry in entries
    )
    return tuple(sorted(rows, key=lambda row: (row.target, row.seq)))


def _guardrails(events: Sequence[journal.Event]) -> tuple[GuardrailRow, ...]:
    return tuple(
        GuardrailRow(
            seq=event.seq,
            at=event.at,
            rule=_data_text(event.data, "rule") or "guardrail",
            ok=event.data.get("ok") is True,
            subject=_data_text(event.data, "subject") or _data_text(event.data, "source"),
            message=event.message,
        )
        for event in events
        if event.kind == _K.GUARDRAIL
    )


def _probes(events: Sequence[journal.Event]) -> tuple[ProbeRow, ...]:
    grouped: dict[str, list[journal.Event]] = {}
    for event in events:
        if event.kind == _K.PROBE:
            grouped.setdefault(_data_text(event.data, "probe") or "probe", []).append(event)
    rows = []
    for probe, samples in grouped.items():
        last = samples[-1]
        rows.append(
            ProbeRow(
                probe=probe,
                samples=len(samples),
                failed=sum(1 for s in samples if s.data.get("ok") is not True),
                last_ok=last.data.get("ok") is True,
                last_at=last.at,
                last_message=_data_text(last.data, "message") or last.message,
                phases=tuple(dict.fromkeys(_data_text(s.data, "phase") for s in samples)),
            )
        )
    return tuple(rows)


def _person(raw: str) -> str:
    """`bob` for `user:default/bob` (how the CMDB's people are known); `raw` otherwise."""
    try:
        return cmdb_models.EntityRef.parse(raw, default_kind=cmdb_models.EntityKind.USER).short
    except cmdb_errors.CmdbError:
        return raw


def _scenario_steps(run: states.Run) -> dict[str, models.Manual]:
    """The run's manual steps as its scenario describes them (instructions, choices)."""
    scenario = reports_evidence.scenario_for(run)
    if scenario is None:
        return {}
    return {step.name: step.manual for step in scenario.spec.steps if step.manual is not None}


@dataclasses.dataclass(frozen=True)
class _Wait:
    """How one `manual` event's wait stands, from the events after it."""

    waiting: bool
    outcome: str
    ack: journal.Event | None


def _wait_of(run: states.Run, wait: journal.Event, later: Sequence[journal.Event]) -> _Wait:
    """Whether the step of `wait` still waits: no accepted ack, timeout or abort after it,
    and the run neither ended nor is undoing its faults (`later`: its events since)."""
    step = _data_text(wait.data, "step")
    ack = next(
        (
            e
            for e in later
            if e.kind == _K.ACK
            and _data_text(e.data, "step") == step
            and manual.accepts(wait.data, e.data)
        ),
        None,
    )
    if ack is not None:
        return _Wait(waiting=False, outcome="acknowledged", ack=ack)
    ended = next(
        (
            _data_text(e.data, "rule")
            for e in later
            if e.kind == _K.FINDING
            and _data_text(e.data, "step") == step
            and _data_text(e.data, "rule") in _ENDS_A_WAIT
        ),
        None,
    )
    if ended is not None:
        said = "nobody eligible" if ended == "no-eligible-assignee" else "timed out"
        return _Wait(waiting=False, outcome=said, ack=None)
    if any(e.kind == _K.ABORT for e in later) or run.terminal or run.state in _STOPPING:
        return _Wait(waiting=False, outcome="not acknowledged (the run stopped waiting)", ack=None)
    return _Wait(waiting=True, outcome="waiting for an acknowledgement", ack=None)


def _why_not(
    events: Sequence[journal.Event],
    *,
    run: states.Run,
    step: str,
    principal: auth.Principal,
    ack_refused: str | None,
) -> str | None:
    """Why `principal` may not acknowledge the waiting `step` (None: they may), as the
    API's route would refuse it: the role and scope first, then who the step is for."""
    if ack_refused is not None:
        return f"You may not acknowledge it: {ack_refused}."
    try:
        manual.check_ack(events, run_id=run.id, step=step, by=principal.name)
    except orchestrator_errors.AckRejected as exc:
        said = str(exc).split("; pass --by", 1)[0]  # drop the CLI's hint
        return f"You may not acknowledge it: {said}."
    return None


def _manual_rows(
    run: states.Run,
    events: Sequence[journal.Event],
    *,
    principal: auth.Principal,
    ack_refused: str | None,
    mask: secrets.Redactor,
) -> tuple[ManualRow, ...]:
    """A row per `manual` event (a step that waited again is its latest wait only)."""
    waits = [e for e in events if e.kind == _K.MANUAL]
    latest = {_data_text(w.data, "step"): w.seq for w in waits}
    described = _scenario_steps(run) if waits else {}
    rows: list[ManualRow] = []
    for wait in waits:
        step = _data_text(wait.data, "step")
        if latest[step] != wait.seq:
            continue
        stands = _wait_of(run, wait, [e for e in events if e.seq > wait.seq])
        why_not = (
            _why_not(events, run=run, step=step, principal=principal, ack_refused=ack_refused)
            if stands.waiting
            else None
        )
        eligible = _data_texts(wait.data, "eligible")
        description = described.get(step)
        deadline = wait.data.get("deadline")
        rows.append(
            ManualRow(
                step=step,
                seq=wait.seq,
                at=wait.at,
                assignee=_data_text(wait.data, "assignee"),
                role=_data_text(wait.data, "role"),
                instructions=wait.message
                if description is None
                else mask.text(description.instructions),
                may_act="anyone (no CMDB)"
                if eligible is None
                else ", ".join(_person(p) for p in eligible) or "nobody",
                absent=tuple(_person(p) for p in _data_texts(wait.data, "absent") or ()),
                evidence=_data_texts(wait.data, "evidence") or (),
                choices=()
                if description is None
                else tuple(mask.text(c) for c in description.choices),
                deadline=deadline if isinstance(deadline, str) else None,
                waiting=stands.waiting,
                outcome=stands.outcome,
                ack_by=None if stands.ack is None else _data_text(stands.ack.data, "by"),
                ack_evidence=None
                if stands.ack is None
                else _data_text(stands.ack.data, "evidence"),
                can_ack=stands.waiting and why_not is None,
                why_not=why_not,
            )
        )
    return tuple(rows)


def _pictures(
    config: settings_mod.Settings, store: journal.Journal, detail: run_service.RunDetail
) -> tuple[sections.PostMortem, Pictures]:
    """The run's redacted post-mortem (as the API serves it) and its pictures from it."""
    report = run_service.postmortem(config, store, detail.run.id)
    facts = reports_evidence.RunEvidence(
        run=detail.run, events=detail.events, entries=detail.entries
    )
    drawn = pictures.pictures_of(facts, report, redactor=store.redactor)
    return report, Pictures(
        timeline=pictures.timeline_svg(drawn.timeline),
        probes=pictures.probe_strips_svg(drawn.probes, duration_s=drawn.timeline.duration_s),
    )


def read_page(
    config: settings_mod.Settings,
    store: journal.Journal,
    text: str,
    *,
    principal: auth.Principal,
) -> RunPage:
    """What `/runs/{text}` shows to `principal` (`runs.UnknownRun`: 404)."""
    detail = run_service.show_named(store, text)
    run = detail.run
    report: sections.PostMortem | None = None
    drawn: Pictures | None = None
    problem: str | None = None
    try:
        report, drawn = _pictures(config, store, detail)
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        problem = secrets.redact(str(exc))
        log.warning("run %s: no pictures or post-mortem: %s", run.id, problem)
    mask = store.redactor.with_fingerprints(run.record.redaction)
    ack_refused = refusal(principal, auth.Permission.ACK, run=run, settings=config)
    return RunPage(
        run=run,
        events=detail.events,
        targets=_targets(run),
        changes=_changes(detail.entries),
        guardrails=_guardrails(detail.events),
        probes=_probes(detail.events),
        manual=_manual_rows(
            run, detail.events, principal=principal, ack_refused=ack_refused, mask=mask
        ),
        pictures=drawn,
        report=report,
        report_problem=problem,
        may_abort=not run.terminal
        and refusal(principal, auth.Permission.ABORT, run=run, settings=config) is None,
    )


@router.get("/runs/{run_id}", response_class=responses.HTMLResponse)
async def run_page(
    run_id: str,
    request: fastapi.Request,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    session: deps.SessionDep,
) -> responses.Response:
    auth.authorize(session.principal, auth.Permission.READ)
    shown = await concurrency.run_in_threadpool(
        functools.partial(read_page, settings, store, run_id, principal=session.principal)
    )
    return rendering.page(
        request,
        "run.html",
        title=f"Run {shown.run.id}",
        page=shown,
        state_styles=STATE_STYLES,
        verdict_styles=VERDICT_STYLES,
        state_styles_json=json.dumps(STATE_STYLES, ensure_ascii=False),
        terminal_states=" ".join(sorted(s.value for s in states.TERMINAL)),
        event_kinds=" ".join(sorted({k.value for k in _K} - HIDDEN_KINDS)),
        evidence_labels=_EVIDENCE_LABELS,
        clock=clock,
    )


def clock(moment: datetime) -> str:
    """`21:04:07.3` (UTC): a timeline line's time of day, to a tenth of a second."""
    at = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    at = at.astimezone(UTC)
    return f"{at:%H:%M:%S}.{at.microsecond // 100_000}"


_EVIDENCE_LABELS: Mapping[str, str] = {
    models.Evidence.TEXT.value: "What was done",
    models.Evidence.URL.value: "Link (incident channel, ticket or notes)",
    models.Evidence.CHOICE.value: "Outcome",
}


# ---- the report -------------------------------------------------------------------------

_MEDIA: Mapping[reports_rendering.Format, str] = {
    reports_rendering.Format.MARKDOWN: "text/markdown; charset=utf-8",
    reports_rendering.Format.HTML: "text/html; charset=utf-8",
    reports_rendering.Format.JSON: "application/json",
}


@router.get("/runs/{run_id}/report")
async def report(
    run_id: str,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    session: deps.SessionDep,
    output_format: Annotated[
        reports_rendering.Format, fastapi.Query(alias="format")
    ] = reports_rendering.Format.HTML,
) -> fastapi.Response:
    """The run's post-mortem as the API serves it (`runs.postmortem_text`), HTML by default."""
    auth.authorize(session.principal, auth.Permission.READ)

    def build() -> str:
        return run_service.postmortem_text(
            settings, store, run_service.resolve_id(store, run_id), output_format
        )

    text = await concurrency.run_in_threadpool(build)
    return fastapi.Response(content=text, media_type=_MEDIA[output_format])


# ---- abort and acknowledge --------------------------------------------------------------


async def _resolved(store: journal.Journal, run_id: str) -> str:
    """The run's full id for the audit trail (the typed one if it names no run)."""
    try:
        return await concurrency.run_in_threadpool(run_service.resolve_id, store, run_id)
    except errors.StormdrillError:
        return run_id


async def _acted(
    request: fastapi.Request,
    store: journal.Journal,
    session: sessions.Session,
    act: Callable[[], str],
    *,
    action: str,
    target: str,
) -> responses.Response:
    """`forms.act_once(act)`, audited: once when it acted, and for a refusal (its status);
    a second send of the same form (replayed) is not audited again."""
    acted: list[bool] = []

    def once() -> str:
        where = act()
        acted.append(True)
        return where

    try:
        answer = await forms.act_once(request, store, session, once)
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        await audit.record(
            request,
            store,
            action=action,
            target=target,
            status=problems.kind_of(exc).status,
            detail=secrets.redact(str(exc)),
        )
        raise
    if acted:
        await audit.record(request, store, action=action, target=target)
    return answer


@router.post("/runs/{run_id}/abort")
async def abort(
    run_id: str,
    request: fastapi.Request,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    session: deps.FormSessionDep,
) -> responses.Response:
    """Abort the run (a queued one is cancelled at once), as `POST /api/v1/runs/{id}/abort`."""
    principal = session.principal
    resolved = await _resolved(store, run_id)

    def act() -> str:
        run = store.get_run(run_service.resolve_id(store, run_id))
        authorize_run(principal, auth.Permission.ABORT, run=run, settings=settings)
        run_service.cancel(
            store,
            run.id,
            reason=f"aborted by {principal.name} from the web pages",
            source=f"the web pages ({principal.name})",
        )
        return f"/runs/{urllib.parse.quote(run.id)}"

    return await _acted(
        request, store, session, act, action="run.abort", target=f"runs/{resolved}/abort"
    )


def evidence_text(
    form: Mapping[str, str], *, asked: Sequence[str], choices: Sequence[str], step: str
) -> str:
    """The evidence the Ack form carries, as one text: each kind the step asks for, in
    order (`text`, then `url: …`, then `choice: …`). `EvidenceMissing` names what is
    missing or wrong."""
    kinds = list(asked) or [models.Evidence.TEXT.value]
    parts: list[str] = []
    for kind in kinds:
        field = EVIDENCE_FIELDS.get(kind)
        if field is None:
            continue
        value = (form.get(field) or "").strip()
        label = _EVIDENCE_LABELS[kind].lower()
        if not value:
            raise EvidenceMissing(f"step {step}: fill in {label!r}, then send the form again")
        if kind == models.Evidence.URL.value:
            if not value.lower().startswith(("http://", "https://")):
                raise EvidenceMissing(
                    f"step {step}: {value!r} is not an http(s) link; paste e.g."
                    " https://chat.example/incident/123"
                )
            parts.append(f"url: {value}")
        elif kind == models.Evidence.CHOICE.value:
            if choices and value not in choices:
                raise EvidenceMissing(
                    f"step {step}: {value!r} is not one of its choices ({', '.join(choices)})"
                )
            parts.append(f"choice: {value}")
        else:
            parts.append(value)
    return "; ".join(parts)


def _asked(store: journal.Journal, run: states.Run, step: str) -> tuple[str, ...]:
    waits = store.events(run.id, kind=_K.MANUAL)
    found = [w for w in waits if _data_text(w.data, "step") == step]
    return (_data_texts(found[-1].data, "evidence") or ()) if found else ()


@router.post("/runs/{run_id}/steps/{step}/ack")
async def ack(
    run_id: str,
    step: str,
    request: fastapi.Request,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    session: deps.FormSessionDep,
) -> responses.Response:
    """Acknowledge `step` as the session's person, with the evidence the step asks for, as
    `POST /api/v1/runs/{id}/steps/{step}/ack`; 403 for someone it is not assigned to."""
    principal = session.principal
    resolved = await _resolved(store, run_id)
    submitted = await request.form()
    form = {key: value for key, value in submitted.items() if isinstance(value, str)}

    def act() -> str:
        run = store.get_run(run_service.resolve_id(store, run_id))
        authorize_run(principal, auth.Permission.ACK, run=run, settings=settings)
        described = _scenario_steps(run).get(step)
        evidence = evidence_text(
            form,
            asked=_asked(store, run, step),
            choices=described.choices if described is not None else (),
            step=step,
        )
        run_service.ack(store, run.id, step, by=principal.name, evidence=evidence)
        return f"/runs/{urllib.parse.quote(run.id)}#step-{urllib.parse.quote(step)}"

    return await _acted(
        request,
        store,
        session,
        act,
        action="run.ack",
        target=f"runs/{resolved}/steps/{step}/ack",
    )


# ---- live: the run's timeline as Server-Sent Events ------------------------------------


def frame(update: event_streams.Update) -> str:
    """One update in `text/event-stream` framing, as the API's stream frames it."""
    if isinstance(update, event_streams.Heartbeat):
        return ": heartbeat\n\n"
    data = json.dumps(update.view().dump(), separators=(",", ":"))
    return f"id: {update.seq}\nevent: {update.kind}\ndata: {data}\n\n"


async def _framed(updates: AsyncIterator[event_streams.Update]) -> AsyncIterator[str]:
    async for update in updates:
        yield frame(update)


def follow_options() -> event_streams.Follow:
    """How the page's streams poll and beat (a dependency: tests poll faster)."""
    return event_streams.Follow()


FollowDep = Annotated[event_streams.Follow, fastapi.Depends(follow_options)]


@router.get("/runs/{run_id}/events")
async def events(
    run_id: str,
    store: deps.StoreDep,
    session: deps.SessionDep,
    options: FollowDep,
    last_event_id: Annotated[int | None, fastapi.Header(alias="Last-Event-ID", ge=0)] = None,
    last_event_id_query: Annotated[int | None, fastapi.Query(alias="lastEventId", ge=0)] = None,
) -> responses.Response:
    """The run's events past the cursor (the header, else `?lastEventId=`), then live ones;
    the stream ends after the run's terminal state event."""
    auth.authorize(session.principal, auth.Permission.READ)
    run = await concurrency.run_in_threadpool(event_streams.check_run, store, run_id)
    after = last_event_id if last_event_id is not None else last_event_id_query
    updates = event_streams.follow(store, run.id, after=after, options=options)
    return responses.StreamingResponse(
        _framed(updates),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


__all__ = [
    "EVENT_STREAM",
    "FollowDep",
    "RunPage",
    "authorize_run",
    "duration_text",
    "evidence_text",
    "follow_options",
    "frame",
    "parse_filters",
    "read_page",
    "refusal",
    "router",
]
