"""Game days: a planned window of drills with people, gates between drills, notes and findings.

Typed functions the CLI (and later the API) call. A game day is created from a YAML
document `kind: GameDay` (`GameDayDocument`, validated here: the scenario library's loader
knows only Scenario, Drill and Environment), then started, noted on, gated drill by drill,
and closed with a verdict. Running the drills is not done here: whoever runs drill N
records its run and verdict with `set_drill_result`.
Invariants:
- State moves only planned -> running -> closed (`start`, `close`); anything else is refused.
- The gate of position N is passed before drill N: `manual` is decided by the facilitator,
  `approval` by a participant with the approver role who is not the facilitator, `auto`
  decides itself (go when the drill before it held; drill 1's auto gate opens at `start`).
  A gate is decided once, only while running, and only after drill N-1 has its verdict.
- A drill's result can be recorded only once its gate said go.
- Only participants act (notes, gates), and a person marked absent (`mark_absent`, the
  key-person rule) acts no more in that game day.
Errors: `GameDayError` (bad input or a refused move; the message names the field and the
fix), `UnknownGameDay` (no such name or id: 404 in an API).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NewType

import pydantic
import sqlalchemy as sa
import yaml

from drills import tables_gamedays as tables
from drills.service import documents, views
from orchestrator import journal, states
from scenarios import errors, loading, models

GameDayId = NewType("GameDayId", str)

AUTO = "auto"
"""Who decides an `auto` gate (as `decided_by`)."""


class GameDayError(errors.StormdrillError):
    """A game day document or action that cannot work as written (names the field and fix)."""


class UnknownGameDay(documents.NotFound):
    """No game day has the id or name a person gave."""


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
        loading.resolve_reference(doc.scenario, kind=models.Kind.SCENARIO, relative_to=folder)
    except errors.ScenarioInvalid as exc:
        raise GameDayError(f"{source}: spec.drills.{index}.scenario: {exc}") from None
    return RefKind.SCENARIO, doc.scenario


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
    store: journal.Journal, path: Path, *, by: str, now: dt.datetime | None = None
) -> GameDay:
    """Create the game day of the GameDay document `path` (state planned), created by `by`."""
    doc = load_document(path)
    return create_from_document(
        store, doc, folder=path.resolve().parent, source=str(path), by=by, now=now
    )


def create_from_document(
    store: journal.Journal,
    doc: GameDayDocument,
    *,
    folder: Path,
    source: str,
    by: str,
    now: dt.datetime | None = None,
) -> GameDay:
    """Create the game day of a validated document; `folder` is where its Drill files are
    found, `source` names it in errors (a path, or e.g. `request body`)."""
    refs = [
        _slot_ref(d, index=i, folder=folder, source=source) for i, d in enumerate(doc.spec.drills)
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
                services=list(doc.spec.services),
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
        for position, (drill_doc, (kind, ref)) in enumerate(
            zip(doc.spec.drills, refs, strict=True), start=1
        ):
            conn.execute(
                _D.insert().values(
                    gameday_id=day_id,
                    position=position,
                    ref_kind=kind.value,
                    ref=ref,
                    environment=drill_doc.environment,
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


def _require_state(day: GameDay, wanted: State, *, doing: str) -> None:
    if day.state is not wanted:
        raise GameDayError(
            f"{day.name}: cannot {doing} a game day that is {day.state.value}"
            f" (only one that is {wanted.value})"
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


def start(store: journal.Journal, key: str, *, now: dt.datetime | None = None) -> GameDay:
    """planned -> running; drill 1's `auto` gate opens (go)."""
    day = get(store, key)
    _require_state(day, State.PLANNED, doing="start")
    at = _now(now)
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
    approver who is not the facilitator; an `auto` gate is never decided by a person."""
    day = get(store, key)
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
    drill's `auto` gate decides itself: go when this one held, else no-go."""
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
    at = _now(now)
    following = next((s for s in day.drills if s.position == position + 1), None)
    with store.transaction(write=True) as conn:
        conn.execute(
            _D.update()
            .where(_D.c.gameday_id == day.id, _D.c.position == position)
            .values(run_id=run_id, verdict=verdict.value)
        )
        if following is not None and following.gate is Gate.AUTO:
            held = verdict is states.Verdict.HELD
            decision = Decision.GO if held else Decision.NO_GO
            _decide(conn, day, following.position, decision=decision, by=AUTO, at=at)
        _touch(conn, day, at)
    return get(store, day.id)


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
    """running -> closed, with the game day's verdict (a sentence)."""
    day = get(store, key)
    _require_state(day, State.RUNNING, doing="close")
    if not verdict.strip():
        raise GameDayError(f"{day.name}: verdict: give the game day's verdict in a sentence")
    at = _now(now)
    with store.transaction(write=True) as conn:
        _touch(conn, day, at, state=State.CLOSED.value, verdict=verdict.strip())
    return get(store, day.id)
