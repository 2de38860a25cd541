"""Routes: game days: create from a GameDay document, list, show, start, notes and findings,
gates, running a drill, drill results, absences, close, and the game-day report.

`POST /gamedays` takes a `kind: GameDay` document as the body (YAML or JSON text;
`?filename=` names it in problems, default `gameday.yaml`): an invalid one is a 422
`invalid-document` problem whose `errors` are `filename:line:column: field: message` lines,
as for every document route. Its drills name documents of the API's folders, never files of
the server outside them: `drill:` a Drill by name (or a file inside the drill folders),
`scenario:` a Scenario by name (the scenario folders, then the bundled library) or a file
inside those folders, `environment:` an Environment (name or file) of the environment
folders; each is stored as the absolute file found (a bundled scenario by its name), so a
drill binds the same documents wherever it runs. `spec.services` are stored as canonical
CMDB refs; with the server's catalog (`STORMDRILL_CMDB`) one it does not have is a 422
placing it, with close names (`gamedays.canonical_services`).
`POST /gamedays/{id}/start` takes an optional body `{"force": true}`: without it a start
more than an hour before the window opens or after it ended is a 409 naming the window in
its time zone; a forced start's audit entry has the detail `forced: …` (what it overrode).
Who acts: the caller's principal name is the participant, read as a CMDB user
(`alice`, `user:alice` and `user:default/alice` are one person: `manual.person_key`, the
mapping the game-day service and the manual steps use); a caller who is no participant,
or one marked absent, may not write notes, decide gates or run drills (403). Viewers read
(show, list and the report sync first, as `stormdrill gamedays show` does: verdicts of
runs that ended, absences key-person drills made); operators (unscoped, as for schedules)
change.
Every POST accepts an `Idempotency-Key` and is audited by the API's audit trail
(`drills.api.audit`, one entry per request; the action names, the CLI's
`gameday.create|start|note|gate|run|result|close` and `gameday.absent`, belong in its
`ACTIONS`). Refused moves of the service (`gamedays.GameDayError`: the wrong
state, a gate decided already, a drill without its gate's go) are 409 problems; an unknown
game day, drill position or participant is 404.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import fastapi
import pydantic
import starlette.exceptions
from fastapi import responses
from starlette import concurrency

from drills import binding
from drills import settings as settings_mod
from drills.api import audit as api_audit
from drills.api import deps, idempotency, problems
from drills.service import auth, catalogs, documents, gameday_reports, gamedays, views
from drills.service import runs as run_service
from orchestrator import journal, manual, states
from reports import rendering
from scenarios import diagnostics, errors, library, loading, models, reading

router = fastapi.APIRouter(tags=["gamedays"], route_class=idempotency.IdempotentRoute)

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]
Operator = Annotated[auth.Principal, deps.require(auth.Permission.START)]
GameDayPath = Annotated[
    str,
    fastapi.Path(description="A game day's id or name.", examples=["checkout-gameday"]),
]
PositionPath = Annotated[
    int, fastapi.Path(ge=1, description="A drill of the game day, from 1.", examples=[2])
]
PersonPath = Annotated[
    str,
    fastapi.Path(
        description="A participant (`user:default/alice`, or `alice`).",
        examples=["user:default/bob"],
    ),
]
MAX_DOCUMENT_BYTES = reading.MAX_FILE_BYTES
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_CHANGES = problems.responses(*problems.COMMON, 404, 409)


class UnknownDrillPosition(documents.NotFound):
    """A drill position the game day does not have (404)."""


class UnknownParticipant(documents.NotFound):
    """A person who is not a participant of the game day (404)."""


def location(day_id: str) -> str:
    return f"/api/v1/gamedays/{day_id}"


# ---- request bodies -----------------------------------------------------------------------


def _some_text(value: str, *, field: str, fix: str) -> str:
    if not value.strip():
        raise ValueError(f"{field} is blank; {fix}")
    return value


class NoteBody(views.CamelView):
    """A note, or (`kind: finding`) a finding with its action item."""

    text: str = pydantic.Field(examples=["checkout p99 doubled while zone b drained"])
    kind: gamedays.NoteKind = gamedays.NoteKind.NOTE
    owner: str | None = pydantic.Field(default=None, examples=["user:default/bob"])
    """A finding's action owner."""
    due: dt.date | None = pydantic.Field(default=None, examples=["2026-12-31"])
    """A finding's due date."""
    ticket_url: str | None = pydantic.Field(
        default=None,
        alias="ticketUrl",
        pattern=r"^https?://",
        examples=["https://tickets.example.com/SRE-42"],
    )
    """A finding's ticket (an http(s) URL)."""

    @pydantic.field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _some_text(value, field="text", fix="say what happened")

    @pydantic.model_validator(mode="after")
    def _finding_fields(self) -> NoteBody:
        if self.kind is gamedays.NoteKind.NOTE and (
            self.owner is not None or self.due is not None or self.ticket_url is not None
        ):
            raise ValueError('owner, due and ticketUrl belong to a finding; add "kind": "finding"')
        return self


class GateBody(views.CamelView):
    """The gate's decision (by the caller: the facilitator, or an approver for `approval`)."""

    decision: gamedays.Decision = pydantic.Field(examples=["go"])


class ResultBody(views.CamelView):
    """A drill's result: its run (whose verdict is used), or a verdict (a tabletop drill)."""

    run_id: str | None = pydantic.Field(
        default=None,
        alias="runId",
        description="A run id, a unique prefix of one, or `latest`; the run must have ended.",
        examples=["20250101T120000Z-3f9a1c2b"],
    )
    verdict: states.Verdict | None = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> ResultBody:
        if (self.run_id is None) == (self.verdict is None):
            raise ValueError(
                "give exactly one of runId (its verdict is used) or verdict (without a run)"
            )
        return self


class StartBody(views.CamelView):
    """How to start: `force` starts it even more than an hour before its window opens or
    after it ended (audited as a forced start, with what it overrode)."""

    force: bool = False


class CloseBody(views.CamelView):
    """The game day's verdict, a sentence."""

    verdict: str = pydantic.Field(examples=["Checkout survives a zone loss; payments fallback"])

    @pydantic.field_validator("verdict")
    @classmethod
    def _verdict(cls, value: str) -> str:
        return _some_text(value, field="verdict", fix="give the game day's verdict in a sentence")


# ---- the document -------------------------------------------------------------------------


def _at(tree: reading.MarkedTree, path: reading.TreePath, message: str) -> errors.Problem:
    mark = tree.mark_for(path)
    return errors.Problem(
        file=tree.file,
        line=mark.line,
        column=mark.column,
        field=reading.render_path(path),
        message=message,
    )


def _why(exc: errors.StormdrillError) -> str:
    if isinstance(exc, errors.ScenarioInvalid):
        return "; ".join(p.message + (f" ({p.hint})" if p.hint else "") for p in exc.problems)
    return str(exc)


def read_document(
    body: bytes, *, filename: str
) -> tuple[reading.MarkedTree, gamedays.GameDayDocument]:
    """The one GameDay document of `body`; `ScenarioInvalid` placing each problem."""
    read = reading.read_bytes(body, file=filename)
    if read.problems:
        raise errors.ScenarioInvalid(list(read.problems))
    tree, *more = read.trees
    if more:
        mark = more[0].start
        raise errors.ScenarioInvalid(
            [
                errors.Problem(
                    file=filename,
                    line=mark.line,
                    column=mark.column,
                    field="",
                    message=f"{1 + len(more)} documents; send one GameDay document per request",
                )
            ]
        )
    if not isinstance(tree.data, dict) or tree.data.get("kind") != "GameDay":
        raise errors.ScenarioInvalid(
            [
                dataclasses.replace(
                    _at(tree, ("kind",), "holds no GameDay document"),
                    hint=f"start it with 'apiVersion: {models.API_VERSION}' and 'kind: GameDay'",
                )
            ]
        )
    try:
        doc = gamedays.GameDayDocument.model_validate(tree.data)
    except pydantic.ValidationError as exc:
        raise errors.ScenarioInvalid(
            diagnostics.from_validation(exc, tree=tree, model=gamedays.GameDayDocument)
        ) from None
    return tree, doc


def _is_path(ref: str) -> bool:
    return "/" in ref or ref.endswith(loading.YAML_SUFFIXES)


def _drill_file(folders: documents.Folders, ref: str) -> str:
    if not _is_path(ref):
        return str(documents.find_drill(folders, ref).source.path)
    found = documents.resolve_target(folders, ref)
    if not loading.load_documents([Path(found)]).drills():
        raise documents.NotFound(f"{ref!r} holds no Drill document; name a Drill file")
    return found


def _scenario_ref(folders: documents.Folders, ref: str) -> str:
    if not _is_path(ref):
        path = documents.find_scenario(folders, ref).source.path
        return ref if library.is_bundled(path) else str(path)
    found = documents.resolve_target(folders, ref)
    if not loading.load_documents([Path(found)]).scenarios():
        raise documents.NotFound(
            f"{ref!r} holds no Scenario document; name a Scenario (a Drill goes under 'drill:')"
        )
    return found


_REF_ERRORS = (documents.NotFound, binding.BindingError, errors.ScenarioInvalid)


def resolve_refs(
    doc: gamedays.GameDayDocument, *, tree: reading.MarkedTree, folders: documents.Folders
) -> gamedays.GameDayDocument:
    """`doc` with each drill's documents found in the API's folders (`ScenarioInvalid`
    placing each one that is not there)."""
    found: list[gamedays.DrillDoc] = []
    problems_found: list[errors.Problem] = []
    for index, drill in enumerate(doc.spec.drills):
        at: reading.TreePath = ("spec", "drills", index)
        update: dict[str, Any] = {}
        try:
            if drill.drill is not None:
                update["drill"] = _drill_file(folders, drill.drill)
            if drill.scenario is not None:
                update["scenario"] = _scenario_ref(folders, drill.scenario)
        except _REF_ERRORS as exc:
            field = "drill" if drill.drill is not None else "scenario"
            problems_found.append(_at(tree, (*at, field), _why(exc)))
        if drill.environment is not None:
            try:
                update["environment"] = documents.resolve_environment(folders, drill.environment)
            except _REF_ERRORS as exc:
                problems_found.append(_at(tree, (*at, "environment"), _why(exc)))
        found.append(drill.model_copy(update=update))
    if problems_found:
        raise errors.ScenarioInvalid(problems_found)
    return doc.model_copy(update={"spec": doc.spec.model_copy(update={"drills": tuple(found)})})


# ---- helpers ------------------------------------------------------------------------------


def _unscoped(principal: auth.Principal) -> None:
    auth.authorize(principal, auth.Permission.START, ())


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A move the game day refuses (`GameDayError`) as a 409 problem."""
    try:
        yield
    except gamedays.GameDayError as exc:
        raise starlette.exceptions.HTTPException(status_code=409, detail=str(exc)) from None


def _participant(day: gamedays.GameDay, person: str) -> gamedays.Participant | None:
    """The participant `person` names: exactly, or as the same CMDB user."""
    wanted = manual.person_key(person)
    return day.participant(person) or next(
        (p for p in day.participants if manual.person_key(p.person) == wanted), None
    )


def acting_person(day: gamedays.GameDay, principal: auth.Principal, *, doing: str) -> str:
    """The participant the caller is (their spelling in the game day); `Forbidden` if none
    or if they are marked absent."""
    found = _participant(day, principal.name)
    if found is None:
        raise auth.Forbidden(
            f"{day.name}: {principal.name!r} is not a participant and may not {doing}; add"
            f" {manual.person_key(principal.name)!r} to spec.participants or act with a"
            " participant's token"
        )
    if found.absent:
        raise auth.Forbidden(
            f"{day.name}: {found.person!r} is marked absent in this game day and may not"
            f" {doing}; another participant has to"
        )
    return found.person


def _slot(day: gamedays.GameDay, position: int) -> gamedays.DrillSlot:
    for slot in day.drills:
        if slot.position == position:
            return slot
    raise UnknownDrillPosition(
        f"{day.name}: no drill at position {position}; positions are 1 to {len(day.drills)}"
    )


# ---- read ---------------------------------------------------------------------------------


@router.get(
    "/gamedays",
    summary="Every game day, by window start",
    response_model=list[gamedays.GameDayView],
    responses=problems.responses(*problems.COMMON),
)
def list_gamedays(store: deps.StoreDep, _: Reader) -> list[gamedays.GameDayView]:
    """As `stormdrill gamedays list --format json` prints them (running ones synced)."""
    return [gamedays.GameDayView.of(day) for day in gamedays.sync_all(store)]


@router.get(
    "/gamedays/{gameday}",
    summary="One game day: its people, drills with gates and verdicts, and notes",
    response_model=gamedays.GameDayView,
    responses=problems.responses(*problems.COMMON, 404),
)
def get_gameday(gameday: GameDayPath, store: deps.StoreDep, _: Reader) -> gamedays.GameDayView:
    """As `stormdrill gamedays show NAME --format json` prints it (synced first)."""
    return gamedays.GameDayView.of(gamedays.sync_results(store, gameday))


# ---- the report: GET /gamedays/{gameday}/report?format=md|html|json ------------------------


@router.get(
    "/gamedays/{gameday}/report",
    summary="The game day's after-action report (Markdown, HTML or JSON)",
    response_class=fastapi.Response,
    responses={
        200: {
            "description": "The report in the format asked for.",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        **problems.responses(*problems.COMMON, 404),
    },
)
def report(
    gameday: GameDayPath,
    store: deps.StoreDep,
    _: Reader,
    output_format: Annotated[
        rendering.Format, fastapi.Query(alias="format")
    ] = rendering.Format.MARKDOWN,
) -> fastapi.Response:
    """Each drill with its post-mortem link, the findings and action items, the RTOs
    achieved against their targets, and who took part (`drills.service.gameday_reports`)."""
    text = gameday_reports.render(store, gameday, fmt=output_format)
    return fastapi.Response(content=text, media_type=gameday_reports.MEDIA_TYPES[output_format])


# ---- create -------------------------------------------------------------------------------


def _create(
    body: bytes,
    *,
    filename: str,
    store: journal.Journal,
    folders: documents.Folders,
    settings: settings_mod.Settings,
    by: str,
) -> gamedays.GameDay:
    tree, doc = read_document(body, filename=filename)
    resolved = resolve_refs(doc, tree=tree, folders=folders)
    catalog = catalogs.catalog_for(settings, None, ()) if doc.spec.services else None
    with _refusals():  # the name is taken
        # every drill names an absolute file or a bundled scenario by now: the folder
        # only places the service's own messages
        return gamedays.create_from_document(
            store,
            resolved,
            folder=library.folder(),
            source=filename,
            by=by,
            catalog=catalog,
            tree=tree,
        )


@router.post(
    "/gamedays",
    summary="Create a game day (planned) from a GameDay document",
    status_code=201,
    response_model=gamedays.GameDayView,
    responses={
        201: {"headers": {"Location": {"description": "The game day: /api/v1/gamedays/{id}"}}},
        **problems.responses(*problems.COMMON, 409),
    },
    dependencies=[idempotency.IdempotencyDep],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {
                    "schema": {"type": "string"},
                    "example": "apiVersion: stormdrill.dev/v1\nkind: GameDay\n...",
                },
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def create_gameday(
    request: fastapi.Request,
    response: responses.Response,
    store: deps.StoreDep,
    folders: deps.FoldersDep,
    settings: deps.SettingsDep,
    principal: Operator,
    filename: Annotated[
        str,
        fastapi.Query(description="The name problems are placed at.", pattern=_SAFE_NAME.pattern),
    ] = "gameday.yaml",
) -> gamedays.GameDayView:
    """A GameDay document (YAML or JSON); 422 placing each problem, 409 if its name is taken."""
    _unscoped(principal)
    body = await request.body()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise errors.ScenarioInvalid(
            [
                errors.Problem(
                    file=filename,
                    line=1,
                    column=1,
                    field="",
                    message=f"the document is {len(body)} bytes, over {MAX_DOCUMENT_BYTES}",
                    hint="a GameDay document is a few KiB",
                )
            ]
        )
    day = await concurrency.run_in_threadpool(
        _create,
        body,
        filename=filename,
        store=store,
        folders=folders,
        settings=settings,
        by=principal.name,
    )
    response.headers["Location"] = location(day.id)
    return gamedays.GameDayView.of(day)


# ---- act ----------------------------------------------------------------------------------


@router.post(
    "/gamedays/{gameday}/start",
    summary="Start a planned game day (drill 1's auto gate opens)",
    response_model=gamedays.GameDayView,
    responses=_CHANGES,
    dependencies=[idempotency.IdempotencyDep],
)
def start_gameday(
    gameday: GameDayPath,
    request: fastapi.Request,
    store: deps.StoreDep,
    principal: Operator,
    body: Annotated[StartBody | None, fastapi.Body()] = None,
) -> gamedays.GameDayView:
    """planned → running; 409 if it is running or closed, or (without `"force": true`)
    more than an hour before its window opens or after it ended. A forced start's audit
    entry says so, and what it overrode. The body is optional."""
    _unscoped(principal)
    force = body is not None and body.force
    at = dt.datetime.now(dt.UTC)
    with _refusals():
        day = gamedays.start(store, gameday, force=force, now=at)
    detail = gamedays.forced_start(day, at, force=force)
    if detail:
        setattr(request.state, api_audit.DETAIL_STATE, detail)
    return gamedays.GameDayView.of(day)


@router.post(
    "/gamedays/{gameday}/notes",
    summary="Add a timestamped note, or a finding with its action item",
    status_code=201,
    response_model=gamedays.NoteView,
    responses=_CHANGES,
    dependencies=[idempotency.IdempotencyDep],
)
def add_note(
    gameday: GameDayPath, body: NoteBody, store: deps.StoreDep, principal: Operator
) -> gamedays.NoteView:
    """By the caller, a participant not marked absent, while the game day runs."""
    _unscoped(principal)
    day = gamedays.get(store, gameday)
    author = acting_person(day, principal, doing="write notes")
    finding = (
        gamedays.Finding(owner=body.owner, due=body.due, ticket_url=body.ticket_url)
        if body.kind is gamedays.NoteKind.FINDING
        else None
    )
    with _refusals():
        added = gamedays.note(store, day.id, author=author, text=body.text, finding=finding)
    return gamedays.NoteView(
        at=added.at,
        author=added.author,
        kind=added.kind,
        text=added.text,
        action_owner=added.action_owner,
        due=added.due,
        ticket_url=added.ticket_url,
    )


@router.post(
    "/gamedays/{gameday}/drills/{position}/gate",
    summary="Decide the gate before a drill: go or no-go",
    response_model=gamedays.GameDayView,
    responses=_CHANGES,
    dependencies=[idempotency.IdempotencyDep],
)
def decide_gate(
    gameday: GameDayPath,
    position: PositionPath,
    body: GateBody,
    store: deps.StoreDep,
    principal: Operator,
) -> gamedays.GameDayView:
    """`manual`: the facilitator decides; `approval`: an approver who is not the facilitator;
    `auto` gates decide themselves (409)."""
    _unscoped(principal)
    day = gamedays.get(store, gameday)
    _slot(day, position)
    by = acting_person(day, principal, doing="decide gates")
    with _refusals():
        decided = gamedays.gate(store, day.id, position=position, decision=body.decision, by=by)
    return gamedays.GameDayView.of(decided)


def _verdict_of(store: journal.Journal, run_text: str) -> tuple[str, states.Verdict]:
    run = store.get_run(run_service.resolve_id(store, run_text))
    if run.verdict is None:
        raise starlette.exceptions.HTTPException(
            status_code=409,
            detail=f"run {run.id} has no verdict yet (it is {run.state.value}); record its"
            " result once it has ended",
        )
    return run.id, run.verdict


@router.post(
    "/gamedays/{gameday}/drills/{position}/result",
    summary="Record a drill's result: its run's verdict, or a verdict",
    response_model=gamedays.GameDayView,
    responses=_CHANGES,
    dependencies=[idempotency.IdempotencyDep],
)
def record_result(
    gameday: GameDayPath,
    position: PositionPath,
    body: ResultBody,
    store: deps.StoreDep,
    principal: Operator,
) -> gamedays.GameDayView:
    """The next drill's `auto` gate then decides itself: go when this one held."""
    _unscoped(principal)
    day = gamedays.get(store, gameday)
    _slot(day, position)
    run_id: str | None = None
    verdict = body.verdict
    if body.run_id is not None:
        run_id, verdict = _verdict_of(store, body.run_id)
    assert verdict is not None  # ResultBody holds one of the two
    with _refusals():
        recorded = gamedays.set_drill_result(
            store, day.id, position=position, run_id=run_id, verdict=verdict
        )
    return gamedays.GameDayView.of(recorded)


@router.post(
    "/gamedays/{gameday}/drills/{position}/run",
    summary="Run a drill of the game day (submitted; the runner drives it)",
    status_code=202,
    response_model=gamedays.GameDayView,
    responses={
        202: {"headers": {"Location": {"description": "The drill's run: /api/v1/runs/{id}"}}},
        **_CHANGES,
    },
    dependencies=[idempotency.IdempotencyDep],
)
def run_drill(
    gameday: GameDayPath,
    position: PositionPath,
    response: responses.Response,
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    reg: deps.RegistryDep,
    runner: deps.DriverDep,
    principal: Operator,
) -> gamedays.GameDayView:
    """By the caller, an operator or the facilitator of the game day, once the drill's gate
    said go; the drill runs once (409 after), as `stormdrill gamedays run` starts it. The
    slot's verdict becomes its run's when the run ends (trigger `gameday`; in a protected
    Environment the run waits for its approvers first)."""
    _unscoped(principal)
    day = gamedays.get(store, gameday)
    _slot(day, position)
    by = acting_person(day, principal, doing="run drills")
    with _refusals():
        started = gamedays.run_drill(
            store, day.id, position=position, by=by, config=settings, reg=reg
        )
    if runner is not None:
        runner.hand_over(started.run.id, started.prepared)
    response.headers["Location"] = f"/api/v1/runs/{started.run.id}"
    return gamedays.GameDayView.of(started.day)


@router.post(
    "/gamedays/{gameday}/participants/{person:path}/absent",
    summary="Mark a participant absent: they act no more in this game day",
    response_model=gamedays.GameDayView,
    responses=_CHANGES,
    dependencies=[idempotency.IdempotencyDep],
)
def mark_absent(
    gameday: GameDayPath, person: PersonPath, store: deps.StoreDep, principal: Operator
) -> gamedays.GameDayView:
    """The key-person rule: a person a drill took out may not take notes or decide gates."""
    _unscoped(principal)
    day = gamedays.get(store, gameday)
    found = _participant(day, person)
    if found is None:
        raise UnknownParticipant(
            f"{day.name}: {person!r} is not a participant; name one of"
            f" {', '.join(p.person for p in day.participants)}"
        )
    with _refusals():
        return gamedays.GameDayView.of(gamedays.mark_absent(store, day.id, person=found.person))


@router.post(
    "/gamedays/{gameday}/close",
    summary="Close a running game day with its verdict",
    response_model=gamedays.GameDayView,
    responses=_CHANGES,
    dependencies=[idempotency.IdempotencyDep],
)
def close_gameday(
    gameday: GameDayPath, body: CloseBody, store: deps.StoreDep, principal: Operator
) -> gamedays.GameDayView:
    """running → closed; 409 if it is not running."""
    _unscoped(principal)
    with _refusals():
        return gamedays.GameDayView.of(gamedays.close(store, gameday, verdict=body.verdict))
