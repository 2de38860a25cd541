"""The audit trail: who did what, to what, when, from where, and with which outcome.

Append-only: this module inserts entries and reads them back; it has no path that changes
or removes one (a test reads this module's source to keep it so). Every entry point
records through `record`: the API's middleware (`drills.api.audit`) one entry per mutating
request, refused ones included; the CLI may record its own actions with principal kind
`local`, as the OS user who runs it (`local_user`: the one function that names the local
principal, for audit entries and for what the CLI records as done by someone: a
schedule's owner, a game day's creator, a token's creator). A writer whose entry must
commit or roll back with its own rows (the schedule claim pass: a fire row and its entry)
records through `record_in`, inside its transaction. Entries are read newest first with
filters (`entries`) and exported as JSON lines (`jsonl`), oldest first, for a SIEM.
"""

from __future__ import annotations

import dataclasses
import enum
import getpass
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NewType

from sqlalchemy.engine import Connection, Row

from drills import tables_audit
from drills.service import views
from orchestrator import journal

EntryId = NewType("EntryId", int)

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

_A = tables_audit.audit_table


class Outcome(enum.StrEnum):
    """How the request ended: done, refused (401/403), rejected (other 4xx) or failed (5xx)."""

    OK = "ok"
    REFUSED = "refused"
    REJECTED = "rejected"
    FAILED = "failed"

    @classmethod
    def of_status(cls, status: int) -> Outcome:
        if status in (401, 403):
            return cls.REFUSED
        if 400 <= status < 500:
            return cls.REJECTED
        if status >= 500:
            return cls.FAILED
        return cls.OK


@dataclasses.dataclass(frozen=True)
class NewEntry:
    """What happened (the store adds the id; `at` defaults to now)."""

    principal: str
    principal_kind: str
    action: str
    """`run.start`, `killswitch.engage`, `token.create`, … (`drills.api.audit.ACTIONS`)."""
    target: str
    status: int
    method: str = ""
    path: str = ""
    address: str | None = None
    user_agent: str | None = None
    request_id: str = ""
    detail: str = ""
    at: datetime | None = None
    outcome: Outcome | None = None
    """Default: from `status`."""


@dataclasses.dataclass(frozen=True)
class Entry:
    id: EntryId
    at: datetime
    principal: str
    principal_kind: str
    action: str
    target: str
    method: str
    path: str
    status: int
    outcome: Outcome
    address: str | None
    user_agent: str | None
    request_id: str
    detail: str


@dataclasses.dataclass(frozen=True)
class EntryFilter:
    """Which entries to read: by principal, action (exact, or a `run.` prefix), time."""

    principal: str | None = None
    action: str | None = None
    """`run.abort` matches that action; `run.` (ending in a dot) every action of runs."""
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    """Only entries older than this one (paging back through the trail)."""
    after_id: int | None = None
    """Only entries newer than this one (paging forward, as the export does)."""


@contextmanager
def _writing(store: journal.Journal) -> Iterator[Connection]:
    # The journal's own write transaction (BEGIN IMMEDIATE on SQLite); it has no public one.
    with store._writing() as conn:
        yield conn


@contextmanager
def _reading(store: journal.Journal) -> Iterator[Connection]:
    with store._reading() as conn:
        yield conn


def record(store: journal.Journal, new: NewEntry) -> Entry:
    """Append `new` to the trail (committed before this returns); the entry as stored.

    Free text (target, path, detail, user agent) passes through the store's redactor, so a
    credential in a URL or a reason is masked like everywhere else in the store.
    """
    with _writing(store) as conn:
        return record_in(store, conn, new)


def record_in(store: journal.Journal, conn: Connection, new: NewEntry) -> Entry:
    """Append `new` inside the caller's write transaction `conn` on `store` (committed, or
    rolled back, with it); redacted as `record` does. The entry as it will be stored."""
    text = store.redactor.text
    values: dict[str, Any] = {
        "at": new.at or datetime.now(UTC),
        "principal": new.principal[:255],
        "principal_kind": new.principal_kind[:32],
        "action": new.action[:128],
        "target": text(new.target),
        "method": new.method.upper()[:16],
        "path": text(new.path),
        "status": new.status,
        "outcome": (new.outcome or Outcome.of_status(new.status)).value,
        "address": new.address[:255] if new.address else None,
        "user_agent": text(new.user_agent) if new.user_agent else None,
        "request_id": new.request_id[:128],
        "detail": text(new.detail),
    }
    inserted = conn.execute(_A.insert().values(**values))
    key = inserted.inserted_primary_key
    if key is None:  # every backend we support returns it
        raise RuntimeError("the store did not return the new audit entry's id")
    return Entry(id=EntryId(int(key[0])), **{**values, "outcome": Outcome(values["outcome"])})


def local_user() -> str:
    """Who runs this CLI process: the principal of its audit entries and the person its
    commands name (a schedule's owner, a game day's creator, a token's creator).

    The OS user as `getpass.getuser()` finds them: the first of `LOGNAME`, `USER`, `LNAME`
    and `USERNAME` that is set and not empty, else the password database's name for this
    process's uid; a uid the database does not know (a container started with `--user
    12345`) is `uid:12345`, so an entry still names who it was, never a made-up `cli`.
    """
    try:
        name = getpass.getuser().strip()
    except (KeyError, OSError, ImportError):  # no variable, and no passwd entry for the uid
        name = ""
    return name or f"uid:{os.getuid()}"


def record_cli(
    store: journal.Journal, *, action: str, target: str, command: str, detail: str = ""
) -> Entry:
    """An audit entry for a CLI action that succeeded: the local user, method `CLI`, the
    command as `path` (e.g. `stormdrill tokens create`)."""
    return record(
        store,
        NewEntry(
            principal=local_user(),
            principal_kind="local",
            action=action,
            target=target,
            status=200,
            method="CLI",
            path=command,
            detail=detail,
        ),
    )


def entries(
    store: journal.Journal,
    *,
    where: EntryFilter | None = None,
    limit: int | None = DEFAULT_LIMIT,
    oldest_first: bool = False,
) -> list[Entry]:
    """The entries `where` selects, newest first (or oldest first), at most `limit`."""
    where = where or EntryFilter()
    query = _A.select()
    if where.principal is not None:
        query = query.where(_A.c.principal == where.principal)
    if where.action is not None:
        if where.action.endswith("."):
            query = query.where(_A.c.action.startswith(where.action, autoescape=True))
        else:
            query = query.where(_A.c.action == where.action)
    if where.since is not None:
        query = query.where(_A.c.at >= where.since)
    if where.until is not None:
        query = query.where(_A.c.at < where.until)
    if where.before_id is not None:
        query = query.where(_A.c.id < where.before_id)
    if where.after_id is not None:
        query = query.where(_A.c.id > where.after_id)
    query = query.order_by(_A.c.id.asc() if oldest_first else _A.c.id.desc())
    if limit is not None:
        query = query.limit(max(0, min(limit, MAX_LIMIT)))
    with _reading(store) as conn:
        rows = conn.execute(query).all()
    return [_entry(row) for row in rows]


def export(
    store: journal.Journal, *, where: EntryFilter | None = None, chunk: int = 1000
) -> Iterator[Entry]:
    """Every entry `where` selects, oldest first, read `chunk` at a time (for the export)."""
    where = where or EntryFilter()
    while True:
        found = entries(store, where=where, limit=chunk, oldest_first=True)
        yield from found
        if len(found) < chunk:
            return
        where = dataclasses.replace(where, after_id=found[-1].id)


def _entry(row: Row[Any]) -> Entry:
    return Entry(
        id=EntryId(row.id),
        at=row.at,
        principal=row.principal,
        principal_kind=row.principal_kind,
        action=row.action,
        target=row.target,
        method=row.method,
        path=row.path,
        status=row.status,
        outcome=Outcome(row.outcome),
        address=row.address,
        user_agent=row.user_agent,
        request_id=row.request_id,
        detail=row.detail,
    )


# ---- views ------------------------------------------------------------------------------


class AuditEntryView(views.View):
    """One audit entry, as `GET /audit` and its JSON lines export show it."""

    id: int
    at: views.IsoTime
    principal: str
    principal_kind: str
    action: str
    target: str
    method: str
    path: str
    status: int
    outcome: Outcome
    address: str | None = None
    user_agent: str | None = None
    request_id: str
    detail: str = ""

    @classmethod
    def from_entry(cls, entry: Entry) -> AuditEntryView:
        return cls(**dataclasses.asdict(entry))


class AuditPageView(views.View):
    """Entries newest first; `next_before` pages on (`?before=` it), None at the end."""

    entries: list[AuditEntryView]
    next_before: int | None = None

    @classmethod
    def from_entries(cls, found: Iterable[Entry], *, limit: int | None) -> AuditPageView:
        listed = [AuditEntryView.from_entry(e) for e in found]
        full = limit is not None and len(listed) >= limit > 0
        return cls(entries=listed, next_before=listed[-1].id if full and listed else None)


def jsonl(found: Iterable[Entry]) -> Iterator[str]:
    """Each entry as one line of JSON (the `?format=jsonl` export), newline-terminated."""
    for entry in found:
        yield json.dumps(AuditEntryView.from_entry(entry).dump(), separators=(",", ":")) + "\n"
