"""Game days: a planned window of drills with people, gates between drills, notes and findings.

Typed functions the CLI and the API call. A game day is created from a YAML document
`kind: GameDay` (`GameDayDocument`, validated here: the scenario library's loader knows
only Scenario, Drill and Environment), then started, noted on, gated drill by drill, its
drills run (`run_drill` submits a slot's drill through `drills.service.runs`; `drive_drill`
drives it in this process) or their results recorded by hand (`set_drill_result`), and
closed with a verdict.
Invariants:
- State moves only planned -> running -> closed (`start`, `close`); anything else is refused.
  A start more than `EARLY_START` (1 hour) before the window opens or after it ended is
  refused unless forced (`start(force=True)`; the entry points audit it as forced).
- The gate of position N is passed before drill N: `manual` is decided by the facilitator,
  `approval` by a participant with the approver role who is not the facilitator, `auto`
  decides itself (go when the drill before it held; drill 1's auto gate opens at `start`).
  A gate is decided once, only while running, and only after drill N-1 has its verdict.
- A drill's result can be recorded only once its gate said go.
- A slot runs at most once: `run_drill` sets the slot's run id with one conditional UPDATE
  (`run_id IS NULL`, gate go, game day running) before it submits, so of two concurrent
  calls exactly one submits a run. Only a participant with the role operator or
  facilitator who is not absent runs a drill.
- A slot's verdict is its run's once the run ended (`sync_results`: no verdict means
  inconclusive); filling it decides the next `auto` gate as `set_drill_result` does. The
  CLI syncs before it shows, lists or runs; `run_drill`, `gate` and `close` sync first.
- Only participants act (notes, gates, runs), and a person marked absent (`mark_absent`,
  the key-person rule) acts no more in that game day. A slot's run that marks people
  absent (`people.mark-unavailable`, journaled per person as `user:<ns>/<name>`) marks
  the participants who are those people absent too (`sync_absences`: participants and
  journal targets compared as canonical user refs, `orchestrator.manual.person_key`).
- Game day started / finished notifications are not sent from here: the lease holder's
  collector reads the state `start` and `close` leave (`notify.sources.GameDaySource`).
- `spec.services` are stored as canonical CMDB refs (`component:default/checkout`), read
  as Backstage reads refs (case-insensitive; kind and namespace may be left out): with a
  catalog each must be one of its services (a Component or Resource), without one each
  must at least be a service's ref (`canonical_services`).
Errors: `GameDayError` (bad input or a refused move; the message names the field and the
fix), `ServicesInvalid` (a `ScenarioInvalid`: services placed at file:line:column, 422 in
the API), `UnknownGameDay` (no such name or id: 404 in an API).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import threading
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, NewType

import pydantic
import sqlalchemy as sa
import yaml

from drills import settings as settings_mod
from drills import tables_gamedays as tables
from drills.service import documents, runs, views
from orchestrator import engine, events, journal, manual, mutations, registry, states
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from scenarios import errors, loading, models, reading

log = logging.getLogger(__name__)

GameDayId = NewType("GameDayId", str)

AUTO = "auto"
"""Who decides an `auto` gate (as `decided_by`)."""


class GameDayError(errors.StormdrillError):
    """A game day document or action that cannot work as written (names the field and fix)."""


class UnknownGameDay(documents.NotFound):
    """No game day has the id or name a person gave."""


class ServicesInvalid(errors.ScenarioInvalid):
    """`spec.services` names what is no service (not in the CMDB, or no entity ref): each
    one placed at file:line:column with the field, as `stormdrill validate` prints them."""


class State(enum.StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    CLOSED = "closed"


class Role(enum.StrEnum):
    FACILITATOR = "facilitator"
    OPERATOR = "operator"
    SCRIBE = "scribe"
    APPROVER = "approver"
    OBSERVER = "observer"
    SERVICE_OWNER = "service-owner"


class Gate(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    APPROVAL = "approval"


class Decision(enum.StrEnum):
    GO = "go"
    NO_GO = "no-go"


class NoteKind(enum.StrEnum):
    NOTE = "note"
    FINDING = "finding"


class RefKind(enum.StrEnum):
    DRILL = "drill"
    SCENARIO = "scenario"


# ---- the document -------------------------------------------------------------------------


class WindowDoc(models.Model):
    """`spec.window`: local start and end (ISO 8601) in `timezone` (an IANA zone)."""

    start: dt.datetime
    end: dt.datetime
    timezone: models.NonEmptyText

    @pydantic.field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"'{value}' is not an IANA time zone; write e.g. 'Europe/Berlin' or 'UTC'"
            ) from None
        return value

    def utc(self) -> tuple[dt.datetime, dt.datetime]:
        zone = zoneinfo.ZoneInfo(self.timezone)
        start, end = (
            (t if t.tzinfo is not None else t.replace(tzinfo=zone)).astimezone(dt.UTC)
            for t in (self.start, self.end)
        )
        return start, end

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> WindowDoc:
        start, end = self.utc()
        if end <= start:
            raise ValueError("'end' must be after 'start'; give the window's end time")
        return self


class ParticipantDoc(models.Model):
    """One person and their roles in the game day."""

    person: models.NonEmptyText
    roles: tuple[Role, ...] = pydantic.Field(min_length=1)


class DrillDoc(models.Model):
    """One drill: a Drill file (`drill:`) or a scenario name with an `environment:`."""

    drill: models.NonEmptyText | None = None
    scenario: models.NonEmptyText | None = None
    environment: models.NonEmptyText | None = None
    gate: Gate = Gate.MANUAL

    @pydantic.model_validator(mode="after")
    def _one_ref(self) -> DrillDoc:
        if (self.drill is None) == (self.scenario is None):
            raise ValueError(
                "give exactly one of 'drill' (a Drill file) or 'scenario' (a scenario name)"
            )
        if self.scenario is not None and self.environment is None:
            raise ValueError(f"scenario '{self.scenario}' needs 'environment' (a name or file)")
        return self


class GameDaySpec(models.Model):
    window: WindowDoc
    services: tuple[models.NonEmptyText, ...] = ()
    channel: models.NonEmptyText | None = None
    participants: tuple[ParticipantDoc, ...] = pydantic.Field(min_length=1)
    drills: tuple[DrillDoc, ...] = pydantic.Field(min_length=1)

    @pydantic.field_validator("channel")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"'{value}' is not an http(s) URL; link the chat channel")
        return value

    @pydantic.model_validator(mode="after")
    def _people(self) -> GameDaySpec:
        people = [p.person for p in self.participants]
        twice = sorted({p for p in people if people.count(p) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed twice; give each person once, all roles")
        facilitators = [p.person for p in self.participants if Role.FACILITATOR in p.roles]
        if len(facilitators) != 1:
            raise ValueError(
                f"participants need exactly one facilitator (found {len(facilitators)});"
                " give one person the role 'facilitator'"
            )
        approvers = [
            p.person
            for p in self.participants
            if Role.APPROVER in p.roles and p.person != facilitators[0]
        ]
        if any(d.gate is Gate.APPROVAL for d in self.drills) and not approvers:
            raise ValueError(
                "an 'approval' gate needs a participant with the role 'approver' who is not"
                " the facilitator; add one"
            )
        return self


class GameDayDocument(models.Model):
    """A GameDay document (`apiVersion: stormdrill.dev/v1`, `kind: GameDay`)."""

    api_version: Literal["stormdrill.dev/v1"]
    kind: Literal["GameDay"]
    metadata: models.Metadata
    spec: GameDaySpec


# ---- the stored game day ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Participant:
    person: str
    roles: tuple[Role, ...]
    absent: bool


@dataclasses.dataclass(frozen=True)
class DrillSlot:
    position: int
    ref_kind: RefKind
    ref: str
    environment: str | None
    gate: Gate
    run_id: str | None
    verdict: states.Verdict | None
    decision: Decision | None
    decided_by: str | None
    decided_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class Note:
    id: int
    at: dt.datetime
    author: str
    text: str
    kind: NoteKind
    action_owner: str | None
    due: dt.date | None
    ticket_url: str | None


@dataclasses.dataclass(frozen=True)
class Finding:
    """What a `finding` note carries besides its text: the action item."""

    owner: str | None = None
    due: dt.date | None = None
    ticket_url: str | None = None


@dataclasses.dataclass(frozen=True)
class GameDay:
    id: GameDayId
    name: str
    window_start: dt.datetime
    window_end: dt.datetime
    timezone: str
    services: tuple[str, ...]
    channel_url: str
    state: State
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    verdict: str | None
    participants: tuple[Participant, ...]
    drills: tuple[DrillSlot, ...]
    notes: tuple[Note, ...]

    @property
    def facilitator(self) -> str:
        return next(p.person for p in self.participants if Role.FACILITATOR in p.roles)

    def participant(self, person: str) -> Participant | None:
        return next((p for p in self.participants if p.person == person), None)

    def slot(self, position: int) -> DrillSlot:
        for slot in self.drills:
            if slot.position == position:
                return slot
        raise GameDayError(
            f"{self.name}: no drill at position {position}; positions are 1 to {len(self.drills)}"
        )


# ---- views --------------------------------------------------------------------------------


class ParticipantView(views.CamelView):
    person: str
    roles: tuple[Role, ...]
    absent: bool


class DrillSlotView(views.CamelView):
    position: int
    drill: str | None
    scenario: str | None
    environment: str | None
    gate: Gate
    decision: Decision | None
    decided_by: str | None = pydantic.Field(alias="decidedBy")
    decided_at: views.IsoTime | None = pydantic.Field(alias="decidedAt")
    run_id: str | None = pydantic.Field(alias="runId")
    verdict: states.Verdict | None


class NoteView(views.CamelView):
    at: views.IsoTime
    author: str
    kind: NoteKind
    text: str
    action_owner: str | None = pydantic.Field(alias="actionOwner")
    due: dt.date | None
    ticket_url: str | None = pydantic.Field(alias="ticketUrl")


class GameDayView(views.CamelView):
    """A game day as `show --format json` prints it."""

    id: str
    name: str
    state: State
    window_start: views.IsoTime = pydantic.Field(alias="windowStart")
    window_end: views.IsoTime = pydantic.Field(alias="windowEnd")
    timezone: str
    services: tuple[str, ...]
    channel: str
    created_by: str = pydantic.Field(alias="createdBy")
    verdict: str | None
    participants: tuple[ParticipantView, ...]
    drills: tuple[DrillSlotView, ...]
    notes: tuple[NoteView, ...]

    @classmethod
    def of(cls, day: GameDay) -> GameDayView:
        return cls(
            id=day.id,
            name=day.name,
            state=day.state,
            window_start=day.window_start,
            window_end=day.window_end,
            timezone=day.timezone,
            services=day.services,
            channel=day.channel_url,
            created_by=day.created_by,
            verdict=day.verdict,
            participants=tuple(
                ParticipantView(person=p.person, roles=p.roles, absent=p.absent)
                for p in day.participants
            ),
            drills=tuple(
                DrillSlotView(
                    position=s.position,
                    drill=s.ref if s.ref_kind is RefKind.DRILL else None,
                    scenario=s.ref if s.ref_kind is RefKind.SCENARIO else None,
                    environment=s.environment,
                    gate=s.gate,
                    decision=s.decision,
                    decided_by=s.decided_by,
                    decided_at=s.decided_at,
                    run_id=s.run_id,
                    verdict=s.verdict,
                )
                for s in day.drills
            ),
            notes=tuple(
                NoteView(
                    at=n.at,
                    author=n.author,
                    kind=n.kind,
                    text=n.text,
                    action_owner=n.action_owner,
                    due=n.due,
                    ticket_url=n.ticket_url,
                )
                for n in day.notes
            ),
        )


# ---- reading the document -----------------------------------------------------------------


def _field(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "(document)"


def load_document(path: Path) -> GameDayDocument:
    """The GameDay document in `path`; `GameDayError` naming the file and each bad field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GameDayError(
            f"{path}: cannot be read ({exc.strerror}); give a GameDay file"
        ) from None
    except yaml.YAMLError as exc:
        raise GameDayError(f"{path}: is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != "GameDay":
        raise GameDayError(
            f"{path}: kind: holds no GameDay document; start it with"
            f" 'apiVersion: {models.API_VERSION}' and 'kind: GameDay'"
        )
    try:
        return GameDayDocument.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise GameDayError(f"{path}: {problems}") from None


def _slot_ref(doc: DrillDoc, *, index: int, folder: Path, source: str) -> tuple[RefKind, str]:
    if doc.drill is not None:
        file = (folder / doc.drill).resolve()
        if not file.is_file():
            raise GameDayError(
                f"{source}: spec.drills.{index}.drill: no Drill file {doc.drill!r} next to the"
                " game day; give a path relative to it"
            )
        return RefKind.DRILL, str(file)
    assert doc.scenario is not None
    try:
        found = loading.resolve_reference(
            doc.scenario, kind=models.Kind.SCENARIO, relative_to=folder
        )
    except errors.ScenarioInvalid as exc:
        raise GameDayError(f"{source}: spec.drills.{index}.scenario: {exc}") from None
    # a file is kept as its absolute path (a run binds it from anywhere); a name stays a name
    return RefKind.SCENARIO, str(found) if _is_path(doc.scenario) else doc.scenario


def _is_path(ref: str) -> bool:
    """Whether a `scenario:` / `environment:` reference names a file (as the loader reads it)."""
    return "/" in ref or ref.endswith(loading.YAML_SUFFIXES)


def _slot_environment(doc: DrillDoc, *, index: int, folder: Path, source: str) -> str | None:
    """The slot's `environment:`: a file as its absolute path (relative to the game day),
    a name as written (looked up when the drill runs, as `stormdrill run --env NAME`)."""
    if doc.environment is None or not _is_path(doc.environment):
        return doc.environment
    file = (folder / doc.environment).resolve()
    if not file.is_file():
        raise GameDayError(
            f"{source}: spec.drills.{index}.environment: no Environment file"
            f" {doc.environment!r} next to the game day; give a path relative to it or a name"
        )
    return str(file)


# ---- the services ------------------------------------------------------------------------

_SERVICES_HINT = "name a Component or Resource of the CMDB; `stormdrill cmdb show` lists them"


def _service_ref(raw: str, catalog: cmdb_models.Catalog | None) -> cmdb_models.EntityRef:
    """The service `raw` names, as the CMDB reads a ref a person typed; `CmdbError` if none."""
    if catalog is None:
        ref = cmdb_models.EntityRef.parse(raw, default_kind=cmdb_models.EntityKind.COMPONENT)
    else:
        try:
            ref = catalog.lookup(raw)
        except cmdb_errors.UnknownRef as exc:
            close = ", ".join(repr(s) for s in exc.suggestions)
            raise cmdb_errors.CmdbError(
                f"no service {raw!r} in the CMDB" + (f" (did you mean {close}?)" if close else "")
            ) from None
    if ref.kind not in cmdb_models.SERVICE_KINDS:
        raise cmdb_errors.CmdbError(
            f"{raw!r} is {ref} (a {ref.kind.value}), not a service: a Component or Resource"
        )
    return ref


def canonical_services(
    services: Sequence[str],
    *,
    catalog: cmdb_models.Catalog | None,
    source: str,
    tree: reading.MarkedTree | None = None,
) -> tuple[str, ...]:
    """`services` (a GameDay's `spec.services`) as canonical refs, each once, in order.

    Each is read as Backstage reads a ref (`checkout`, `Checkout`, `resource:payments-db`,
    `component:default/checkout`: case-insensitive, kind `component` and namespace
    `default` when left out); with `catalog` it must be one of its services (a bare name
    is found in any namespace and kind when unique, as `stormdrill cmdb show NAME`).
    `ServicesInvalid` places every one that is not, at `tree`'s marks (1:1 in `source`
    without a tree), with close names of the catalog.
    """
    found: list[str] = []
    problems: list[errors.Problem] = []
    for index, raw in enumerate(services):
        try:
            found.append(str(_service_ref(raw, catalog)))
        except cmdb_errors.CmdbError as exc:
            path: reading.TreePath = ("spec", "services", index)
            mark = tree.mark_for(path) if tree is not None else reading.Mark(1, 1)
            problems.append(
                errors.Problem(
                    file=tree.file if tree is not None else source,
                    line=mark.line,
                    column=mark.column,
                    field=reading.render_path(path),
                    message=str(exc),
                    hint=_SERVICES_HINT if catalog is not None else "",
                )
            )
    if problems:
        raise ServicesInvalid(problems)
    return tuple(dict.fromkeys(found))


def _marked(path: Path) -> reading.MarkedTree | None:
    """The document of `path` with its marks (None when it cannot be read that way)."""
    read = reading.read_file(path)
    return read.trees[0] if len(read.trees) == 1 and not read.problems else None


# ---- store access -------------------------------------------------------------------------

_G = tables.gamedays_table
_P = tables.participants_table
_D = tables.gameday_drills_table
_N = tables.notes_table


def _read(conn: sa.Connection, key: str) -> GameDay | None:
    row = conn.execute(sa.select(_G).where(sa.or_(_G.c.id == key, _G.c.name == key))).first()
    if row is None:
        return None
    roles: dict[str, list[Role]] = {}
    absent: dict[str, bool] = {}
    for p in conn.execute(
        sa.select(_P).where(_P.c.gameday_id == row.id).order_by(_P.c.person, _P.c.role)
    ):
        roles.setdefault(p.person, []).append(Role(p.role))
        absent[p.person] = absent.get(p.person, False) or p.absent_at is not None
    slots = tuple(
        DrillSlot(
            position=d.position,
            ref_kind=RefKind(d.ref_kind),
            ref=d.ref,
            environment=d.environment,
            gate=Gate(d.gate),
            run_id=d.run_id,
            verdict=None if d.verdict is None else states.Verdict(d.verdict),
            decision=None if d.gate_decision is None else Decision(d.gate_decision),
            decided_by=d.decided_by,
            decided_at=d.decided_at,
        )
        for d in conn.execute(
            sa.select(_D).where(_D.c.gameday_id == row.id).order_by(_D.c.position)
        )
    )
    notes = tuple(
        Note(
            id=n.id,
            at=n.at,
            author=n.author,
            text=n.text,
            kind=NoteKind(n.kind),
            action_owner=n.action_owner,
            due=n.due_date,
            ticket_url=n.ticket_url,
        )
        for n in conn.execute(
            sa.select(_N).where(_N.c.gameday_id == row.id).order_by(_N.c.at, _N.c.id)
        )
    )
    return GameDay(
        id=GameDayId(row.id),
        name=row.name,
        window_start=row.window_start,
        window_end=row.window_end,
        timezone=row.timezone,
        services=tuple(row.services),
        channel_url=row.channel_url,
        state=State(row.state),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        verdict=row.verdict,
        participants=tuple(
            Participant(person=person, roles=tuple(r), absent=absent[person])
            for person, r in roles.items()
        ),
        drills=slots,
        notes=notes,
    )


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


# ---- create, list, show -------------------------------------------------------------------


def create(
    store: journal.Journal,
    path: Path,
    *,
    by: str,
    catalog: cmdb_models.Catalog | None = None,
    now: dt.datetime | None = None,
) -> GameDay:
    """Create the game day of the GameDay document `path` (state planned), created by `by`;
    its services checked against `catalog` (`canonical_services`)."""
    doc = load_document(path)
    return create_from_document(
        store,
        doc,
        folder=path.resolve().parent,
        source=str(path),
        by=by,
        catalog=catalog,
        tree=_marked(path) if doc.spec.services else None,
        now=now,
    )


def create_from_document(
    store: journal.Journal,
    doc: GameDayDocument,
    *,
    folder: Path,
    source: str,
    by: str,
    catalog: cmdb_models.Catalog | None = None,
    tree: reading.MarkedTree | None = None,
    now: dt.datetime | None = None,
) -> GameDay:
    """Create the game day of a validated document; `folder` is where its Drill files are
    found, `source` names it in errors (a path, or e.g. `request body`), `tree` (the
    document as read, with marks) places a service `catalog` does not have."""
    services = canonical_services(doc.spec.services, catalog=catalog, source=source, tree=tree)
    refs = [
        _slot_ref(d, index=i, folder=folder, source=source) for i, d in enumerate(doc.spec.drills)
    ]
    environments = [
        _slot_environment(d, index=i, folder=folder, source=source)
        for i, d in enumerate(doc.spec.drills)
    ]
    start, end = doc.spec.window.utc()
    at = _now(now)
    day_id = f"gd-{uuid.uuid4().hex[:12]}"
    with store.transaction(write=True) as conn:
        if _read(conn, doc.metadata.name) is not None:
            raise GameDayError(
                f"{source}: metadata.name: a game day named {doc.metadata.name!r} exists;"
                " give this one another name"
            )
        conn.execute(
            _G.insert().values(
                id=day_id,
                name=doc.metadata.name,
                window_start=start,
                window_end=end,
                timezone=doc.spec.window.timezone,
                services=list(services),
                channel_url=doc.spec.channel or "",
                state=State.PLANNED.value,
                created_by=by,
                created_at=at,
                updated_at=at,
                verdict=None,
            )
        )
        for participant in doc.spec.participants:
            for role in dict.fromkeys(participant.roles):
                conn.execute(
                    _P.insert().values(
                        gameday_id=day_id, person=participant.person, role=role.value
                    )
                )
        for position, (drill_doc, (kind, ref), environment) in enumerate(
            zip(doc.spec.drills, refs, environments, strict=True), start=1
        ):
            conn.execute(
                _D.insert().values(
                    gameday_id=day_id,
                    position=position,
                    ref_kind=kind.value,
                    ref=ref,
                    environment=environment,
                    gate=drill_doc.gate.value,
                )
            )
        created = _read(conn, day_id)
    assert created is not None
    return created


def get(store: journal.Journal, key: str) -> GameDay:
    """The game day with id or name `key`; `UnknownGameDay` if none."""
    with store.transaction() as conn:
        found = _read(conn, key)
    if found is None:
        raise UnknownGameDay(
            f"no game day has the id or name {key!r}; see `stormdrill gamedays list`"
        )
    return found


def list_gamedays(store: journal.Journal) -> list[GameDay]:
    """Every game day, by window start."""
    with store.transaction() as conn:
        ids = conn.execute(sa.select(_G.c.id).order_by(_G.c.window_start, _G.c.name)).scalars()
        found = [_read(conn, day_id) for day_id in list(ids)]
    return [day for day in found if day is not None]


# ---- acting in a running game day ---------------------------------------------------------


_HOW_TO_REACH = {
    (State.PLANNED, State.RUNNING): "start it first: stormdrill gamedays start {name}",
    (State.RUNNING, State.CLOSED): "close it first: stormdrill gamedays close {name} --verdict …",
}


def _require_state(day: GameDay, wanted: State, *, doing: str) -> None:
    if day.state is not wanted:
        fix = _HOW_TO_REACH.get((day.state, wanted))
        hint = f"; {fix.format(name=day.name)}" if fix else ""
        raise GameDayError(
            f"{day.name}: cannot {doing} a game day that is {day.state.value}"
            f" (only one that is {wanted.value}){hint}"
        )


def _actor(day: GameDay, person: str, *, doing: str) -> Participant:
    found = day.participant(person)
    if found is None:
        raise GameDayError(
            f"{day.name}: {person!r} is not a participant and may not {doing};"
            " add them to spec.participants"
        )
    if found.absent:
        raise GameDayError(
            f"{day.name}: {person!r} is marked absent in this game day and may not {doing};"
            " another participant has to"
        )
    return found


def _touch(conn: sa.Connection, day: GameDay, at: dt.datetime, **values: object) -> None:
    """Bump `updated_at` (and set `values`), only if the state is still the one read: a
    concurrent start or close makes this action fail instead of landing on the wrong state."""
    changed = conn.execute(
        _G.update()
        .where(_G.c.id == day.id, _G.c.state == day.state.value)
        .values(updated_at=at, **values)
    )
    if changed.rowcount != 1:
        raise GameDayError(f"{day.name}: changed state meanwhile; look again and retry")


def _decide(
    conn: sa.Connection,
    day: GameDay,
    position: int,
    *,
    decision: Decision,
    by: str,
    at: dt.datetime,
) -> None:
    conn.execute(
        _D.update()
        .where(_D.c.gameday_id == day.id, _D.c.position == position)
        .values(gate_decision=decision.value, decided_by=by, decided_at=at)
    )


EARLY_START = dt.timedelta(hours=1)
"""How long before its window opens a game day may start. An hour is the facilitator's
lead time: people join the bridge, the dashboards and the kill switch are checked, and the
briefing is held, so the first drill can go at the window's start. Starting opens drill 1's
`auto` gate, and drills run as soon as a gate says go, so a start earlier than that is
almost always the wrong day or the wrong time zone, and the people the document lists
(and the services' owners who were told the window) are not there yet."""


def _local(value: dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _span(span: dt.timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} minutes"
    hours = minutes // 60
    return "an hour" if hours == 1 else f"{hours} hours"


def window_text(day: GameDay) -> str:
    """The window in its own time zone: `2026-12-08 10:00 to 13:00 Europe/Berlin` (the
    end's date is given when it is another day)."""
    zone = zoneinfo.ZoneInfo(day.timezone)
    start, end = (t.astimezone(zone) for t in (day.window_start, day.window_end))
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} to {until} {day.timezone}"


def start_refusal(day: GameDay, at: dt.datetime) -> str | None:
    """Why `day` may not start at `at` (more than `EARLY_START` before its window opens, or
    once its window has ended), naming the window in its time zone and the override; None
    when it may start then."""
    zone = zoneinfo.ZoneInfo(day.timezone)
    earliest = day.window_start - EARLY_START
    override = 'or start it anyway with --force (API: "force": true)'
    if at < earliest:
        return (
            f"{day.name}: its window is {window_text(day)}; a game day starts at most"
            f" {_span(EARLY_START)} before its window opens (from {_local(earliest, zone)}),"
            f" and it is {_local(at, zone)} {day.timezone} now; start it then, {override}"
        )
    if at >= day.window_end:
        return (
            f"{day.name}: its window was {window_text(day)} and has ended (it is"
            f" {_local(at, zone)} {day.timezone} now); create the game day again with a new"
            f" window, {override}"
        )
    return None


def forced_start(day: GameDay, at: dt.datetime, *, force: bool) -> str:
    """The audit detail of a start at `at`: empty unless `force`; `forced` when the start
    overrode nothing, else `forced: at 2026-12-05 17:30 Europe/Berlin, outside its window
    2026-12-08 10:00 to 13:00 Europe/Berlin` (what both entry points record)."""
    if not force:
        return ""
    if start_refusal(day, at) is None:
        return "forced (inside its window: nothing overridden)"
    zone = zoneinfo.ZoneInfo(day.timezone)
    return f"forced: at {_local(at, zone)} {day.timezone}, outside its window {window_text(day)}"


def start(
    store: journal.Journal, key: str, *, force: bool = False, now: dt.datetime | None = None
) -> GameDay:
    """planned -> running; drill 1's `auto` gate opens (go).

    Refused (`GameDayError`, see `start_refusal`) more than `EARLY_START` before the window
    opens and after it ended, unless `force`: the entry point then records the forced start
    in the audit trail (`start_refusal` of the same time says what was overridden)."""
    day = get(store, key)
    _require_state(day, State.PLANNED, doing="start")
    at = _now(now)
    refusal = start_refusal(day, at)
    if refusal is not None and not force:
        raise GameDayError(refusal)
    if refusal is not None:
        log.warning(
            "game day %s started outside its window %s (forced)", day.name, window_text(day)
        )
    with store.transaction(write=True) as conn:
        _touch(conn, day, at, state=State.RUNNING.value)
        if day.slot(1).gate is Gate.AUTO:
            _decide(conn, day, 1, decision=Decision.GO, by=AUTO, at=at)
    return get(store, day.id)


def note(
    store: journal.Journal,
    key: str,
    *,
    author: str,
    text: str,
    finding: Finding | None = None,
    now: dt.datetime | None = None,
) -> Note:
    """A timestamped note (or, with `finding`, a finding with its action item) by a
    participant who is not absent, while the game day runs."""
    day = get(store, key)
    _require_state(day, State.RUNNING, doing="take notes in")
    _actor(day, author, doing="write notes")
    if not text.strip():
        raise GameDayError(f"{day.name}: text: a note needs some text; say what happened")
    item = finding or Finding()
    kind = NoteKind.NOTE if finding is None else NoteKind.FINDING
    if item.ticket_url is not None and not item.ticket_url.startswith(("https://", "http://")):
        raise GameDayError(
            f"{day.name}: ticket: {item.ticket_url!r} is not an http(s) URL; link the ticket"
        )
    at = _now(now)
    with store.transaction(write=True) as conn:
        inserted = conn.execute(
            _N.insert().values(
                gameday_id=day.id,
                at=at,
                author=author,
                text=text,
                kind=kind.value,
                action_owner=item.owner,
                due_date=item.due,
                ticket_url=item.ticket_url,
            )
        )
        _touch(conn, day, at)
        keys = inserted.inserted_primary_key
    return Note(
        id=int(keys[0]) if keys else 0,
        at=at,
        author=author,
        text=text,
        kind=kind,
        action_owner=item.owner,
        due=item.due,
        ticket_url=item.ticket_url,
    )


def gate(
    store: journal.Journal,
    key: str,
    *,
    position: int,
    decision: Decision,
    by: str,
    now: dt.datetime | None = None,
) -> GameDay:
    """Decide the gate before drill `position`: `manual` by the facilitator, `approval` by an
    approver who is not the facilitator; an `auto` gate is never decided by a person.

    Syncs first (`sync_results`): drill N-1's verdict is its run's once that run ended."""
    day = sync_results(store, key, now=now)
    _require_state(day, State.RUNNING, doing="decide a gate of")
    slot = day.slot(position)
    actor = _actor(day, by, doing="decide gates")
    if slot.decision is not None:
        raise GameDayError(
            f"{day.name}: the gate of drill {position} was decided already"
            f" ({slot.decision.value} by {slot.decided_by})"
        )
    if slot.gate is Gate.AUTO:
        raise GameDayError(
            f"{day.name}: the gate of drill {position} is auto: it opens by itself when drill"
            f" {position - 1} held; record that drill's result instead"
        )
    if position > 1 and day.slot(position - 1).verdict is None:
        raise GameDayError(
            f"{day.name}: drill {position - 1} has no verdict yet; record its result before"
            f" deciding the gate of drill {position}"
        )
    if slot.gate is Gate.MANUAL and Role.FACILITATOR not in actor.roles:
        raise GameDayError(
            f"{day.name}: the gate of drill {position} is manual: only the facilitator"
            f" ({day.facilitator}) decides it, not {by!r}"
        )
    if slot.gate is Gate.APPROVAL and (
        Role.APPROVER not in actor.roles or Role.FACILITATOR in actor.roles
    ):
        raise GameDayError(
            f"{day.name}: the gate of drill {position} needs an approval: a participant with"
            f" the role approver who is not the facilitator decides it, not {by!r}"
        )
    at = _now(now)
    with store.transaction(write=True) as conn:
        _decide(conn, day, position, decision=decision, by=by, at=at)
        _touch(conn, day, at)
    return get(store, day.id)


def set_drill_result(
    store: journal.Journal,
    key: str,
    *,
    position: int,
    run_id: str | None,
    verdict: states.Verdict,
    now: dt.datetime | None = None,
) -> GameDay:
    """Record drill `position`'s run and verdict (its gate must have said go); the next
    drill's `auto` gate decides itself: go when this one held, else no-go.

    A drill started by `run_drill` takes its run's verdict (`sync_results`); recording
    another run or a typed verdict for it is refused, unless its run never reached the
    store (the process died between the slot's reservation and the submit)."""
    day = get(store, key)
    _require_state(day, State.RUNNING, doing="record a drill result in")
    slot = day.slot(position)
    if slot.decision is not Decision.GO:
        said = "is undecided" if slot.decision is None else "said no-go"
        raise GameDayError(
            f"{day.name}: drill {position}'s gate {said}; a drill runs only after its gate said go"
        )
    if slot.verdict is not None:
        raise GameDayError(
            f"{day.name}: drill {position} has its verdict already ({slot.verdict.value})"
        )
    if (
        slot.run_id is not None
        and run_id != slot.run_id
        and store.find_run(slot.run_id) is not None
    ):
        raise GameDayError(
            f"{day.name}: drill {position} runs as run {slot.run_id}; its verdict is that"
            " run's once it ends (`stormdrill gamedays show` fills it in), not a recorded one"
        )
    at = _now(now)
    with store.transaction(write=True) as conn:
        conn.execute(
            _D.update()
            .where(_D.c.gameday_id == day.id, _D.c.position == position)
            .values(run_id=run_id, verdict=verdict.value)
        )
        _decide_following(conn, day, position, verdict=verdict, at=at)
        _touch(conn, day, at)
    return get(store, day.id)


def _decide_following(
    conn: sa.Connection, day: GameDay, position: int, *, verdict: states.Verdict, at: dt.datetime
) -> None:
    """The `auto` gate after drill `position` decides itself (go when it held), if undecided."""
    following = next((s for s in day.drills if s.position == position + 1), None)
    if following is None or following.gate is not Gate.AUTO:
        return
    decision = Decision.GO if verdict is states.Verdict.HELD else Decision.NO_GO
    conn.execute(
        _D.update()
        .where(
            _D.c.gameday_id == day.id,
            _D.c.position == following.position,
            _D.c.gate_decision.is_(None),
        )
        .values(gate_decision=decision.value, decided_by=AUTO, decided_at=at)
    )


def mark_absent(
    store: journal.Journal, key: str, *, person: str, now: dt.datetime | None = None
) -> GameDay:
    """Mark a participant absent (a key-person drill took them out): they act no more here."""
    day = get(store, key)
    if day.state is State.CLOSED:
        raise GameDayError(f"{day.name}: is closed; nobody is marked absent in it any more")
    if day.participant(person) is None:
        raise GameDayError(
            f"{day.name}: {person!r} is not a participant; name one of"
            f" {', '.join(p.person for p in day.participants)}"
        )
    at = _now(now)
    with store.transaction(write=True) as conn:
        conn.execute(
            _P.update()
            .where(_P.c.gameday_id == day.id, _P.c.person == person, _P.c.absent_at.is_(None))
            .values(absent_at=at)
        )
        _touch(conn, day, at)
    return get(store, day.id)


def close(
    store: journal.Journal, key: str, *, verdict: str, now: dt.datetime | None = None
) -> GameDay:
    """running -> closed, with the game day's verdict (a sentence); the verdicts of drills
    whose runs ended are filled in first (`sync_results`)."""
    day = sync_results(store, key, now=now)
    _require_state(day, State.RUNNING, doing="close")
    if not verdict.strip():
        raise GameDayError(f"{day.name}: verdict: give the game day's verdict in a sentence")
    at = _now(now)
    with store.transaction(write=True) as conn:
        _touch(conn, day, at, state=State.CLOSED.value, verdict=verdict.strip())
    return get(store, day.id)


# ---- running a slot's drill ----------------------------------------------------------------

RUNNERS = frozenset({Role.OPERATOR, Role.FACILITATOR})
"""The roles whose holders may run a game day's drill."""

_ABSENT_ONCE = frozenset(
    {
        mutations.EntryState.INTENDED,
        mutations.EntryState.APPLIED,
        mutations.EntryState.REVERTED,
        mutations.EntryState.REVERT_FAILED,
    }
)
"""Entry states of an absence that took effect (or may have): the person was taken out of
the drill, so they stay out of the game day even after the run made them available again."""


@dataclasses.dataclass(frozen=True)
class StartedDrill:
    """A slot's drill submitted by `run_drill`: the PENDING run and what it was bound from."""

    day: GameDay
    position: int
    run: states.Run
    prepared: runs.Prepared
    """The drill and CMDB the run was submitted with (`drive_drill` drives it with them)."""


@dataclasses.dataclass(frozen=True)
class DrivenDrill:
    """A slot's drill driven to its end, and the game day after its verdict was synced."""

    day: GameDay
    position: int
    driven: runs.Driven

    @property
    def slot(self) -> DrillSlot:
        return self.day.slot(self.position)


def _person(day: GameDay, raw: str) -> str:
    """The participant `raw` names: exactly, or as the same user (`alice`, `user:alice` and
    `user:default/alice` are one person); `raw` itself when nobody matches."""
    if day.participant(raw) is not None:
        return raw
    key = manual.person_key(raw)
    return next((p.person for p in day.participants if manual.person_key(p.person) == key), raw)


def drill_request(slot: DrillSlot) -> runs.DrillRequest:
    """What the slot's drill is, as `runs.prepare` binds it: a Drill file (its own
    Environment), or a scenario (bundled name or absolute file) with its Environment."""
    if slot.ref_kind is RefKind.DRILL:
        return runs.DrillRequest(target=slot.ref)
    return runs.DrillRequest(target=slot.ref, environment=slot.environment)


def _trigger(day: GameDay, position: int, *, by: str) -> engine.Trigger:
    return engine.Trigger(
        kind=engine.TriggerKind.GAMEDAY,
        principal=f"gameday:{day.id}",
        reason=f"drill {position} of game day {day.name}, run by {by}",
    )


def run_drill(
    store: journal.Journal,
    key: str,
    *,
    position: int,
    by: str,
    config: settings_mod.Settings,
    reg: registry.Registry,
    now: dt.datetime | None = None,
) -> StartedDrill:
    """Submit drill `position`'s drill as a PENDING run (trigger `gameday`) and record its
    run id on the slot; drive it with `drive_drill` (here) or let any claimant drive it.

    Refused (`GameDayError`) unless the game day runs, the slot's gate said go, the slot has
    no run or verdict yet, and `by` is a participant with the role operator or facilitator
    who is not absent. The slot is reserved by one conditional UPDATE before the submit: of
    two concurrent calls one submits, the other is refused. A drill that cannot be bound
    (a file gone, a bad parameter) is refused before anything is written; a submit that
    is refused (a kill switch) frees the slot again.
    """
    day = sync_results(store, key, now=now)
    _require_state(day, State.RUNNING, doing="run a drill of")
    slot = day.slot(position)
    person = _person(day, by)
    actor = _actor(day, person, doing="run drills")
    if not RUNNERS & set(actor.roles):
        raise GameDayError(
            f"{day.name}: {person!r} ({', '.join(r.value for r in actor.roles)}) may not run"
            " drills; an operator or the facilitator runs them"
        )
    _check_runnable(day, slot)
    try:
        prepared = runs.prepare(config, drill_request(slot))
    except errors.StormdrillError as exc:
        raise GameDayError(
            f"{day.name}: drill {position} ({slot.ref}) cannot be bound: {exc}"
        ) from None
    at = _now(now)
    run_id = states.new_run_id(at)
    _reserve(store, day, slot, run_id=run_id, at=at)
    try:
        run = runs.submit(
            config, store, reg, prepared, trigger=_trigger(day, position, by=person), run_id=run_id
        )
    except BaseException:
        _release(store, day, slot, run_id=run_id)
        raise
    log.info("game day %s: drill %d submitted as run %s by %s", day.name, position, run.id, person)
    return StartedDrill(day=get(store, day.id), position=position, run=run, prepared=prepared)


def _check_runnable(day: GameDay, slot: DrillSlot) -> None:
    position = slot.position
    if slot.decision is not Decision.GO:
        said = "is undecided" if slot.decision is None else "said no-go"
        raise GameDayError(
            f"{day.name}: drill {position}'s gate {said}; a drill runs only after its gate said go"
        )
    if slot.run_id is not None:
        raise GameDayError(
            f"{day.name}: drill {position} was started already as run {slot.run_id};"
            f" follow it with `stormdrill runs show {slot.run_id}`"
        )
    if slot.verdict is not None:
        raise GameDayError(
            f"{day.name}: drill {position} has its verdict already ({slot.verdict.value});"
            " it is not run again"
        )


def _reserve(
    store: journal.Journal, day: GameDay, slot: DrillSlot, *, run_id: str, at: dt.datetime
) -> None:
    """Set the slot's run id if it still has none (gate go, no verdict, game day running):
    the check and the set are one UPDATE, so exactly one of concurrent callers wins."""
    running_day = sa.select(_G.c.id).where(_G.c.id == day.id, _G.c.state == State.RUNNING.value)
    with store.transaction(write=True) as conn:
        won = conn.execute(
            _D.update()
            .where(
                _D.c.gameday_id.in_(running_day),
                _D.c.position == slot.position,
                _D.c.run_id.is_(None),
                _D.c.verdict.is_(None),
                _D.c.gate_decision == Decision.GO.value,
            )
            .values(run_id=run_id)
        ).rowcount
        if won == 1:
            _touch(conn, day, at)
    if won != 1:
        now_slot = get(store, day.id).slot(slot.position)
        raise GameDayError(
            f"{day.name}: drill {slot.position} was started meanwhile"
            + (f" as run {now_slot.run_id}" if now_slot.run_id else "")
            + "; it runs once"
        )


def _release(store: journal.Journal, day: GameDay, slot: DrillSlot, *, run_id: str) -> None:
    """Free the slot reserved for `run_id` (its submit failed: no run exists)."""
    with store.transaction(write=True) as conn:
        conn.execute(
            _D.update()
            .where(
                _D.c.gameday_id == day.id,
                _D.c.position == slot.position,
                _D.c.run_id == run_id,
                _D.c.verdict.is_(None),
            )
            .values(run_id=None)
        )


def drive_drill(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    *,
    started: StartedDrill,
    engine_config: engine.EngineConfig | None = None,
    stop: threading.Event | None = None,
    listener: engine.Listener | None = None,
    junit_path: Path | None = None,
) -> DrivenDrill:
    """Drive the run `run_drill` submitted here to its end (`runs.drive`, with the drill it
    was submitted with), then sync the slot's verdict (`sync_results`).

    While it runs, each applied mutation makes the people its run marked absent absent in
    the game day at once (`sync_absences`), so they cannot act while the drill goes on.
    `listener` hears every timeline event as `runs.drive`'s does.
    """
    day_id, run_id = started.day.id, started.run.id

    def listen(kind: str, message: str, data: Mapping[str, mutations.JsonValue]) -> None:
        if kind == events.EventKind.MUTATION and data.get("state") == "applied":
            try:
                sync_absences(store, day_id)
            except errors.StormdrillError as exc:  # never stop the drill for the game day
                log.warning(
                    "game day %s: absences of run %s not recorded: %s; `gamedays show`"
                    " records them later",
                    day_id,
                    run_id,
                    exc,
                )
        if listener is not None:
            listener(kind, message, data)

    driven = runs.drive(
        config,
        store,
        reg,
        run_id,
        drill=started.prepared.drill,
        catalog=started.prepared.catalog,
        engine_config=engine_config,
        stop=stop,
        listener=listen,
        junit_path=junit_path,
    )
    return DrivenDrill(day=sync_results(store, day_id), position=started.position, driven=driven)


# ---- results and absences from the slots' runs ---------------------------------------------


def _absent_refs(store: journal.Journal, run_id: str) -> frozenset[str]:
    """The people (canonical user refs) the run `run_id` marked absent at some point."""
    return frozenset(
        manual.person_key(entry.target.name)
        for entry in store.entries(states.RunId(run_id))
        if entry.action == manual.ABSENCE_ACTION
        and entry.target.kind == manual.PERSON
        and entry.state in _ABSENT_ONCE
    )


def sync_absences(
    store: journal.Journal, key: str, *, now: dt.datetime | None = None
) -> tuple[str, ...]:
    """Mark absent in the running game day every participant a slot's run marked absent
    (`people.mark-unavailable`); the participants newly marked.

    A participant is the person of an absence entry when both name the same user
    (`manual.person_key`: `alice`, `user:alice`, `user:default/alice`). A game day that is
    not running is left as it is.
    """
    day = get(store, key)
    if day.state is not State.RUNNING:
        return ()
    taken: set[str] = set()
    for slot in day.drills:
        if slot.run_id is not None:
            taken |= _absent_refs(store, slot.run_id)
    newly = tuple(
        p.person for p in day.participants if not p.absent and manual.person_key(p.person) in taken
    )
    if not newly:
        return ()
    at = _now(now)
    with store.transaction(write=True) as conn:
        conn.execute(
            _P.update()
            .where(_P.c.gameday_id == day.id, _P.c.person.in_(newly), _P.c.absent_at.is_(None))
            .values(absent_at=at)
        )
        _touch(conn, day, at)
    log.info("game day %s: %s marked absent by a key-person drill", day.name, ", ".join(newly))
    return newly


def _ended_verdict(run: states.Run) -> states.Verdict | None:
    """A slot's verdict from its run: the run's once it ended (none given: inconclusive)."""
    if not run.terminal:
        return None
    return run.verdict or states.Verdict.INCONCLUSIVE


def sync_results(store: journal.Journal, key: str, *, now: dt.datetime | None = None) -> GameDay:
    """Fill the verdict of every slot whose run ended (its run's verdict; none:
    inconclusive) and, while the game day runs, let the next `auto` gate decide itself
    (go when it held), as `set_drill_result` does; record the absences its runs made
    (`sync_absences`). The game day as it is then. Safe to call from several processes:
    each verdict is set by one conditional UPDATE (`verdict IS NULL`).

    A slot whose run is not in the store (being submitted right now) is left alone.
    """
    day = get(store, key)
    if day.state is State.PLANNED:
        return day
    sync_absences(store, day.id, now=now)
    ended: list[tuple[DrillSlot, states.Verdict]] = []
    for slot in day.drills:
        if slot.run_id is None or slot.verdict is not None:
            continue
        run = store.find_run(slot.run_id)
        verdict = None if run is None else _ended_verdict(run)
        if verdict is not None:
            ended.append((slot, verdict))
    if not ended:
        return get(store, day.id)
    at = _now(now)
    with store.transaction(write=True) as conn:
        current = _read(conn, day.id)
        assert current is not None
        for slot, verdict in ended:
            filled = conn.execute(
                _D.update()
                .where(
                    _D.c.gameday_id == day.id,
                    _D.c.position == slot.position,
                    _D.c.run_id == slot.run_id,
                    _D.c.verdict.is_(None),
                )
                .values(verdict=verdict.value)
            ).rowcount
            if filled == 1 and current.state is State.RUNNING:
                _decide_following(conn, current, slot.position, verdict=verdict, at=at)
            if filled == 1:
                log.info(
                    "game day %s: drill %d's run %s ended: %s",
                    day.name,
                    slot.position,
                    slot.run_id,
                    verdict.value,
                )
        _touch(conn, current, at)
    return get(store, day.id)


def sync_all(store: journal.Journal, *, now: dt.datetime | None = None) -> list[GameDay]:
    """Every game day (as `list_gamedays`), the running ones synced first (`sync_results`)."""
    for day in list_gamedays(store):
        if day.state is State.RUNNING:
            sync_results(store, day.id, now=now)
    return list_gamedays(store)
