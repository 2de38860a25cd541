"""Journal: the write-ahead record of runs and mutations (SQLite or PostgreSQL).

Invariants:
- Every write commits before the method returns: an intent is on disk before the
  caller mutates anything (SQLite: WAL + synchronous=FULL; PostgreSQL: committed
  transaction). Entry-state changes made at the same moment by several threads (a
  concurrent rollback marking entries reverted) share one transaction (group commit):
  each caller still returns only once the transaction holding its change has committed.
- Entries are append-only; only their state (intended -> applied | apply_failed |
  skipped | reverted | revert_failed; applied/revert_failed -> reverted |
  revert_failed) and attempts/error change, each change checked against the state
  the entry is in.
- Runs are saved optimistically: `save_run` only writes if the stored state is the
  one the caller moved from, so two processes can never both move one run.
- Several processes may share one store: SQLite writers take the database lock up
  front (BEGIN IMMEDIATE) and wait on it (busy_timeout); target locks are rows with
  a unique key, acquired all-or-nothing in sorted order (no deadlocks).
- All timestamps are timezone-aware UTC.
- Nothing a person reads is written with a secret in it: run records, reasons, event
  messages and data, entry params, pre-states and errors pass through the store's
  `secrets.Redactor` first (credential-looking text always; the secret values a run bound,
  once `mask_secrets` names them). Undo tokens are kept exactly as the provider gave them
  (rollback and recovery need them; nothing shows them).
- A SQLite store is private: its file (and so its -wal/-shm, which SQLite creates with the
  database file's mode) is created 0600; an existing one readable by others is warned about.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, Row

from orchestrator import errors, mutations, records, states
from scenarios import secrets

log = logging.getLogger(__name__)

REDACTION_KEY = records.REDACTION_KEY
"""The run-record field holding the salted digests of the run's secrets (never the secrets)."""

Clock = Callable[[], datetime]

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10
"""A PostgreSQL host that never answers is reported after this long (unless the URL says)."""
_SCHEMA_LOCK_ID = 0x5707_D111  # pg_advisory_xact_lock key serialising table creation


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the journal stores aware UTC")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(
        self,
        value: datetime | None,
        dialect: sa.Dialect,  # noqa: ARG002
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_Json = sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql")
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # sqlite autoincrement needs INTEGER

metadata = sa.MetaData()

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("scenario", sa.String(255), nullable=False),
    sa.Column("environment", sa.String(255), nullable=False),
    sa.Column("environment_source", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("verdict", sa.String(32)),
    sa.Column("ending", sa.String(32)),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("abort_reason", sa.Text),
    sa.Column("owner_host", sa.String(255), nullable=False),
    sa.Column("owner_pid", sa.Integer, nullable=False),
    sa.Column("owner_token", sa.String(255), nullable=False),
    sa.Column("heartbeat_at", UtcDateTime),
    sa.Column("started_at", UtcDateTime, nullable=False, index=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("record", _Json, nullable=False),
)

journal_table = sa.Table(
    "journal",
    metadata,
    sa.Column("seq", _BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("step", sa.String(255), nullable=False),
    sa.Column("target_key", sa.Text, nullable=False),
    sa.Column("target", _Json, nullable=False),
    sa.Column("action", sa.String(255), nullable=False),
    sa.Column("params", _Json, nullable=False),
    sa.Column("pre_state", _Json, nullable=False),
    sa.Column("undo", _Json, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_journal_run_seq", "run_id", "seq"),
)

events_table = sa.Table(
    "events",
    metadata,
    sa.Column("seq", _BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", _Json, nullable=False),
    sa.Index("ix_events_run_seq", "run_id", "seq"),
)

killswitch_table = sa.Table(
    "killswitch",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("engaged", sa.Boolean, nullable=False),
    sa.Column("engaged_by", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.CheckConstraint("id = 1", name="killswitch_single_row"),
)

locks_table = sa.Table(
    "locks",
    metadata,
    sa.Column("target_key", sa.String(512), primary_key=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
)

UNCLAIMED = states.Owner(host="", pid=0, token="")
"""The owner of a submitted run that no process drives yet: any process may claim it."""

CLAIMABLE: frozenset[states.RunState] = frozenset(
    {states.RunState.PENDING, states.RunState.CRASHED, states.RunState.ROLLBACK_FAILED}
)
"""States in which a run may change hands (`claim_run`): queued, or left for recovery."""

_E = mutations.EntryState
_ENTRY_MOVES: Mapping[mutations.EntryState, frozenset[mutations.EntryState]] = {
    _E.APPLIED: frozenset({_E.INTENDED}),
    _E.APPLY_FAILED: frozenset({_E.INTENDED}),
    # APPLIED -> SKIPPED: a mutation with no undo (not revertible) is recorded, never reverted.
    _E.SKIPPED: frozenset({_E.INTENDED, _E.APPLIED}),
    # Reverting is idempotent: marking an already-reverted entry again is harmless.
    _E.REVERTED: frozenset({_E.INTENDED, _E.APPLIED, _E.REVERT_FAILED, _E.REVERTED}),
    _E.REVERT_FAILED: frozenset({_E.INTENDED, _E.APPLIED, _E.REVERT_FAILED}),
}
"""For each entry state, the states an entry may be in to be marked with it."""


@dataclass(frozen=True)
class Event:
    """One line of a run's timeline (probe result, guardrail, acknowledgement, ...)."""

    seq: int
    run_id: states.RunId
    at: datetime
    kind: str
    message: str
    data: Mapping[str, mutations.JsonValue]


@dataclass
class _Mark:
    """One entry-state change waiting for its (possibly shared) transaction."""

    seq: int
    to: mutations.EntryState
    error: str | None
    add_attempts: int
    extra: Mapping[str, Any]
    done: bool = False
    rowcount: int = 0
    row: Row[Any] | None = None
    failure: Exception | None = None


@dataclass(frozen=True)
class NewEvent:
    """An event to append with `Journal.append_events`; `at` None means when it is written."""

    kind: str
    message: str
    data: Mapping[str, mutations.JsonValue] = field(default_factory=dict)
    at: datetime | None = None


@dataclass(frozen=True)
class Killswitch:
    """The global stop: while engaged no drill may start or keep injecting."""

    engaged: bool
    by: str
    reason: str
    at: datetime | None


@dataclass(frozen=True)
class TargetConflict:
    """A target another run already holds."""

    key: str
    run_id: states.RunId


def _utcnow() -> datetime:
    return datetime.now(UTC)


def normalise_url(url: str) -> str:
    """Point bare `postgresql://` URLs at psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_store(url: str, *, clock: Clock | None = None) -> Journal:
    """Connect to the journal at `url`, creating its tables if missing.

    `sqlite:///path/to/journal.db` or `postgresql+psycopg://user@host/db`.
    """
    url = normalise_url(url)
    try:
        engine = _create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise errors.JournalError(
            secrets.redact(
                f"journal URL {url!r} is not usable: {exc} "
                "(use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)"
            )
        ) from exc
    store = Journal(engine, clock=clock or _utcnow)
    try:
        store.create_tables()
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise errors.StoreUnreachable(
            url=engine.url.render_as_string(hide_password=True), reason=str(exc.orig)
        ) from exc
    return store


def _create_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise errors.JournalError(
                secrets.redact(
                    f"journal URL {url!r}: an in-memory SQLite journal is not durable; "
                    "use sqlite:///PATH"
                )
            )
        if not parsed.database.startswith("file:"):
            _private_sqlite_file(Path(parsed.database))
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=8,
            max_overflow=24,
        )
        _install_sqlite_pragmas(engine)
        return engine
    connect_args: dict[str, object] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return sa.create_engine(
        parsed, pool_pre_ping=True, pool_size=8, max_overflow=24, connect_args=connect_args
    )


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 if missing; warn if an existing one is open to others.

    SQLite gives its -wal and -shm files the database file's permissions, so those follow.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "the run store %s is readable or writable by others (mode %04o): it holds "
                "run records and journals; make it private with `chmod 600 %s`",
                path,
                mode,
                path,
            )
        return
    except OSError:
        return  # the folder is missing or read-only: SQLite reports it when it connects
    os.close(fd)


def _install_sqlite_pragmas(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below): let pysqlite not start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock at BEGIN, so a read-then-write transaction never
        # deadlocks on lock upgrade; readers use a plain (deferred) BEGIN.
        immediate = conn.get_execution_options().get("stormdrill_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Journal:
    """The run store and write-ahead mutation journal. Thread-safe; one per process."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._redactor = secrets.Redactor()
        self._fingerprints: dict[states.RunId, secrets.Fingerprints | None] = {}
        self._marks: list[_Mark] = []
        self._marks_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def redactor(self) -> secrets.Redactor:
        """What this store masks before writing (pattern rules and the secrets named so far)."""
        return self._redactor

    def mask_secrets(self, values: Iterable[str], *, keys: Iterable[str] = ()) -> None:
        """From now on, mask `values` (and the values under `keys`) in everything written."""
        self._redactor = self._redactor.with_secrets(values, keys=keys)

    def _text(self, text: str, *, run_id: states.RunId | None = None) -> str:
        return self._redactor_for(run_id).text(text)

    def _data(
        self, data: Mapping[str, mutations.JsonValue], *, run_id: states.RunId | None = None
    ) -> dict[str, mutations.JsonValue]:
        return cast(dict[str, mutations.JsonValue], self._redactor_for(run_id).json(data))

    def _redactor_for(self, run_id: states.RunId | None) -> secrets.Redactor:
        """This store's redactor plus the secret fingerprints `run_id`'s record holds.

        A process that did not bind the run (an `ack`, an `abort` from another shell) knows
        its secrets only by their digests; they are read once per run and kept.
        """
        if run_id is None:
            return self._redactor
        with self._marks_lock:
            known = run_id in self._fingerprints
            prints = self._fingerprints.get(run_id)
        if not known:
            with self._reading() as conn:
                record = conn.execute(
                    sa.select(runs_table.c.record).where(runs_table.c.id == run_id)
                ).scalar()
            raw = record.get(REDACTION_KEY) if isinstance(record, Mapping) else None
            prints = secrets.Fingerprints.from_json(raw)
            with self._marks_lock:
                self._fingerprints[run_id] = prints
        return self._redactor.with_fingerprints(prints)

    def _readable_run(self, run: states.Run) -> states.Run:
        """`run` as it may be stored: record, reason and abort reason redacted."""
        redactor = self._redactor.with_fingerprints(run.record.redaction)
        record = mutations.freeze_json(run.record.to_json(), what=f"run {run.id} record")
        return replace(
            run,
            record=records.RunRecord.from_json(
                cast(dict[str, mutations.JsonValue], redactor.json(record))
            ),
            reason=redactor.text(run.reason),
            abort_reason=redactor.text(run.abort_reason) if run.abort_reason else run.abort_reason,
        )

    def create_tables(self) -> None:
        """Create the tables if missing (safe when several processes start at once)."""
        with self._writing() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_ID)))
            metadata.create_all(conn, checkfirst=True)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _now(self) -> datetime:
        return _aware(self._clock(), what="the journal clock")

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(stormdrill_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    # -- runs ----------------------------------------------------------------------

    def create_run(self, run: states.Run) -> states.Run:
        """Store a new run; `JournalError` if its id is taken."""
        run = self._readable_run(run)
        try:
            with self._writing() as conn:
                conn.execute(runs_table.insert().values(**_run_values(run), id=run.id))
        except sa.exc.IntegrityError as exc:
            raise errors.JournalError(f"run {run.id} already exists in the journal") from exc
        return run

    def get_run(self, run_id: states.RunId) -> states.Run:
        """The stored run; `JournalError` if there is none."""
        with self._reading() as conn:
            row = conn.execute(runs_table.select().where(runs_table.c.id == run_id)).first()
        if row is None:
            raise errors.JournalError(f"no run {run_id!r} in the journal at {self.url}")
        return _run_from_row(row)

    def list_runs(
        self,
        *,
        states_in: Collection[states.RunState] | None = None,
        scenario: str | None = None,
        environment: str | None = None,
        limit: int | None = 100,
    ) -> list[states.Run]:
        """Runs, newest first, optionally filtered."""
        query = runs_table.select()
        if states_in is not None:
            query = query.where(runs_table.c.state.in_([s.value for s in states_in]))
        if scenario is not None:
            query = query.where(runs_table.c.scenario == scenario)
        if environment is not None:
            query = query.where(runs_table.c.environment == environment)
        query = query.order_by(runs_table.c.started_at.desc(), runs_table.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as conn:
            return [_run_from_row(row) for row in conn.execute(query)]

    def runs_in_flight(self) -> list[states.Run]:
        """Runs not in a terminal state (including CRASHED), newest first."""
        return self.list_runs(states_in=states.IN_FLIGHT, limit=None)

    def save_run(self, run: states.Run, *, expected_state: states.RunState) -> states.Run:
        """Write `run` if the stored run is still in `expected_state`; else `StaleRun`.

        Call after `states.transition(old, ...)` with `expected_state=old.state`.
        """
        run = self._readable_run(run)
        with self._writing() as conn:
            result = conn.execute(
                runs_table.update()
                .where(runs_table.c.id == run.id, runs_table.c.state == expected_state.value)
                .values(**_run_values(run))
            )
            if result.rowcount == 1:
                return run
            current = conn.execute(
                sa.select(runs_table.c.state).where(runs_table.c.id == run.id)
            ).scalar_one_or_none()
        if current is None:
            raise errors.JournalError(f"no run {run.id!r} in the journal at {self.url}")
        raise errors.StaleRun(
            f"run {run.id}: expected it in state {expected_state.value} but the journal has "
            f"{current}; another process moved it. Re-read the run before deciding again."
        )

    def heartbeat(self, run_id: states.RunId, *, owner: states.Owner) -> bool:
        """Record that `owner` is alive; False if the run is no longer owned by it."""
        with self._writing() as conn:
            result = conn.execute(
                runs_table.update()
                .where(
                    runs_table.c.id == run_id,
                    runs_table.c.owner_host == owner.host,
                    runs_table.c.owner_pid == owner.pid,
                    runs_table.c.owner_token == owner.token,
                )
                .values(heartbeat_at=self._now())
            )
            return result.rowcount == 1

    def claim_run(
        self,
        run_id: states.RunId,
        owner: states.Owner,
        *,
        previous: states.Owner,
        claimable: Collection[states.RunState] = CLAIMABLE,
    ) -> states.Run | None:
        """Make `owner` the one process that drives `run_id`; None if another got there first.

        A conditional owner update like `heartbeat`: it takes effect only while the run is
        still in a `claimable` state and still owned by `previous`, the owner the caller
        read and judged free (`UNCLAIMED` for a submitted run nobody drives yet, else a dead
        process or a stale heartbeat: see `engine.owner_dead`). Of several processes
        claiming the same run at once exactly one wins. Claiming also stamps the heartbeat,
        so the new owner is not judged stale before it beats.
        """
        with self._writing() as conn:
            result = conn.execute(
                runs_table.update()
                .where(
                    runs_table.c.id == run_id,
                    runs_table.c.state.in_([s.value for s in claimable]),
                    runs_table.c.owner_host == previous.host,
                    runs_table.c.owner_pid == previous.pid,
                    runs_table.c.owner_token == previous.token,
                )
                .values(
                    owner_host=owner.host,
                    owner_pid=owner.pid,
                    owner_token=owner.token,
                    heartbeat_at=self._now(),
                )
            )
            if result.rowcount != 1:
                return None
            row = conn.execute(runs_table.select().where(runs_table.c.id == run_id)).one()
        return _run_from_row(row)

    # -- mutations -------------------------------------------------------------------

    def record_intent(
        self, run_id: states.RunId, mutation: mutations.PlannedMutation
    ) -> mutations.JournalEntry:
        """Durably record that `mutation` is about to be made. Call BEFORE applying it."""
        now = self._now()
        params, pre_state = self._data(mutation.params), self._data(mutation.pre_state)
        values = {
            "run_id": run_id,
            "step": mutation.step,
            "target_key": mutation.target.key,
            "target": mutation.target.to_json(),
            "action": mutation.action,
            "params": params,
            "pre_state": pre_state,
            "undo": mutation.undo.to_json(),  # intact: rollback and recovery need it
            "state": _E.INTENDED.value,
            "error": None,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._writing() as conn:
                seq = conn.execute(
                    journal_table.insert().values(**values).returning(journal_table.c.seq)
                ).scalar_one()
        except sa.exc.IntegrityError as exc:
            raise errors.JournalError(
                f"cannot journal {mutation.action} on {mutation.target.key} for run {run_id}: "
                f"no such run ({exc.orig})"
            ) from exc
        return mutations.JournalEntry(
            seq=seq,
            run_id=run_id,
            step=mutation.step,
            target=mutation.target,
            action=mutation.action,
            params=params,
            pre_state=pre_state,
            undo=mutation.undo,
            state=_E.INTENDED,
            error=None,
            created_at=now,
            updated_at=now,
            attempts=0,
        )

    def mark_applied(
        self, seq: int, *, undo: mutations.UndoToken | None = None
    ) -> mutations.JournalEntry:
        """The mutation happened; `undo` replaces the token if apply refined it."""
        extra: dict[str, Any] = {} if undo is None else {"undo": undo.to_json()}
        return self._mark(seq, _E.APPLIED, error=None, **extra)

    def mark_apply_failed(self, seq: int, *, error: str) -> mutations.JournalEntry:
        """The provider reported the mutation was NOT made."""
        return self._mark(seq, _E.APPLY_FAILED, error=error)

    def mark_skipped(self, seq: int, *, reason: str) -> mutations.JournalEntry:
        """The mutation was never attempted."""
        return self._mark(seq, _E.SKIPPED, error=reason)

    def mark_reverted(self, seq: int, *, attempts: int = 1) -> mutations.JournalEntry:
        """The mutation is undone (or never happened). Idempotent."""
        return self._mark(seq, _E.REVERTED, error=None, add_attempts=attempts)

    def mark_revert_failed(
        self, seq: int, *, error: str, attempts: int = 1
    ) -> mutations.JournalEntry:
        """The undo failed; the mutation may still be in effect."""
        return self._mark(seq, _E.REVERT_FAILED, error=error, add_attempts=attempts)

    def _mark(
        self,
        seq: int,
        to: mutations.EntryState,
        *,
        error: str | None,
        add_attempts: int = 0,
        **extra: Any,
    ) -> mutations.JournalEntry:
        allowed = _ENTRY_MOVES[to]
        if error is not None:
            error = self._text(error)
        mark = _Mark(seq=seq, to=to, error=error, add_attempts=add_attempts, extra=extra)
        with self._marks_lock:
            self._marks.append(mark)
        # Group commit: whoever holds the commit lock writes every mark queued so far in one
        # transaction; a caller whose mark a previous holder already committed just returns.
        with self._commit_lock:
            if not mark.done:
                with self._marks_lock:
                    batch, self._marks = self._marks, []
                self._commit_marks(batch)
        if mark.failure is not None:
            raise mark.failure
        row = mark.row
        if row is None:
            raise errors.JournalError(f"no journal entry #{seq} at {self.url}")
        entry = _entry_from_row(row)
        if mark.rowcount != 1:
            raise errors.JournalError(
                f"journal entry {entry} is {entry.state.value}; it cannot be marked {to.value} "
                f"(only from {', '.join(sorted(s.value for s in allowed))})"
            )
        return entry

    def _commit_marks(self, batch: Sequence[_Mark]) -> None:
        """Write `batch` in one transaction; every mark ends done (with its row or failure).

        A batch whose connection was cut (the server restarted, `pg_terminate_backend`) is
        written once more on a fresh connection when every mark in it is idempotent (marking
        reverted twice is harmless), so one dropped connection does not page a human.
        """
        try:
            try:
                self._write_marks(batch)
            except sa.exc.DBAPIError as exc:
                if not (
                    exc.connection_invalidated and all(m.to in _ENTRY_MOVES[m.to] for m in batch)
                ):
                    raise
                log.warning(
                    "the journal connection was cut (%s); writing %d mark(s) again",
                    exc.orig,
                    len(batch),
                )
                self._write_marks(batch)
        except Exception as exc:  # nothing of the batch is on disk: each caller raises it
            for mark in batch:
                mark.failure = exc
        finally:
            for mark in batch:
                mark.done = True

    def _write_marks(self, batch: Sequence[_Mark]) -> None:
        now = self._now()
        with self._writing() as conn:
            for mark in batch:
                allowed = _ENTRY_MOVES[mark.to]
                result = conn.execute(
                    journal_table.update()
                    .where(
                        journal_table.c.seq == mark.seq,
                        journal_table.c.state.in_([s.value for s in allowed]),
                    )
                    .values(
                        state=mark.to.value,
                        error=mark.error,
                        attempts=journal_table.c.attempts + mark.add_attempts,
                        updated_at=now,
                        **mark.extra,
                    )
                )
                mark.rowcount = result.rowcount
                mark.row = conn.execute(
                    journal_table.select().where(journal_table.c.seq == mark.seq)
                ).first()

    def entries(self, run_id: states.RunId) -> list[mutations.JournalEntry]:
        """All of a run's entries, oldest first."""
        query = (
            journal_table.select()
            .where(journal_table.c.run_id == run_id)
            .order_by(journal_table.c.seq)
        )
        with self._reading() as conn:
            return [_entry_from_row(row) for row in conn.execute(query)]

    def entry(self, seq: int) -> mutations.JournalEntry:
        with self._reading() as conn:
            row = conn.execute(journal_table.select().where(journal_table.c.seq == seq)).first()
        if row is None:
            raise errors.JournalError(f"no journal entry #{seq} at {self.url}")
        return _entry_from_row(row)

    def undo_plan(self, run_id: states.RunId) -> list[mutations.JournalEntry]:
        """What must be undone, newest first: applied, revert-failed, and intended entries.

        Intended-but-unmarked entries are included: the process may have died between
        making the mutation and marking it, so whether it happened is unknown, and
        reverts are idempotent.
        """
        query = (
            journal_table.select()
            .where(
                journal_table.c.run_id == run_id,
                journal_table.c.state.in_([s.value for s in mutations.NEEDS_UNDO]),
            )
            .order_by(journal_table.c.seq.desc())
        )
        with self._reading() as conn:
            return [_entry_from_row(row) for row in conn.execute(query)]

    # -- timeline --------------------------------------------------------------------

    def append_event(
        self,
        run_id: states.RunId,
        *,
        kind: str,
        message: str,
        data: Mapping[str, mutations.JsonValue] | None = None,
    ) -> Event:
        at = self._now()
        frozen = mutations.freeze_json(data or {}, what=f"event {kind} data")
        payload = self._data(frozen, run_id=run_id)
        message = self._text(message, run_id=run_id)
        with self._writing() as conn:
            seq = conn.execute(
                events_table.insert()
                .values(run_id=run_id, at=at, kind=kind, message=message, data=payload)
                .returning(events_table.c.seq)
            ).scalar_one()
        return Event(seq=seq, run_id=run_id, at=at, kind=kind, message=message, data=payload)

    def append_events(self, run_id: states.RunId, events: Sequence[NewEvent]) -> list[Event]:
        """Append `events` in order, in one transaction: one durable write, all or none.

        For timelines written after the fact (a rollback's "reverted" lines): each event keeps
        the `at` it was given (when it happened), or gets the moment of writing.
        """
        if not events:
            return []
        now = self._now()
        rows = [
            (
                replace(event, message=self._text(event.message, run_id=run_id)),
                now if event.at is None else _aware(event.at, what=f"event {event.kind} time"),
                self._data(
                    mutations.freeze_json(event.data, what=f"event {event.kind} data"),
                    run_id=run_id,
                ),
            )
            for event in events
        ]
        written: list[Event] = []
        with self._writing() as conn:
            for event, at, payload in rows:
                seq = conn.execute(
                    events_table.insert()
                    .values(
                        run_id=run_id, at=at, kind=event.kind, message=event.message, data=payload
                    )
                    .returning(events_table.c.seq)
                ).scalar_one()
                written.append(
                    Event(
                        seq=seq,
                        run_id=run_id,
                        at=at,
                        kind=event.kind,
                        message=event.message,
                        data=payload,
                    )
                )
        return written

    def events(self, run_id: states.RunId, *, kind: str | None = None) -> list[Event]:
        """A run's timeline, oldest first."""
        query = events_table.select().where(events_table.c.run_id == run_id)
        if kind is not None:
            query = query.where(events_table.c.kind == kind)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(events_table.c.seq)).all()
        return [
            Event(
                seq=row.seq,
                run_id=states.RunId(row.run_id),
                at=row.at,
                kind=row.kind,
                message=row.message,
                data=row.data,
            )
            for row in rows
        ]

    # -- killswitch ------------------------------------------------------------------

    def killswitch(self) -> Killswitch:
        with self._reading() as conn:
            row = conn.execute(killswitch_table.select()).first()
        if row is None:
            return Killswitch(engaged=False, by="", reason="", at=None)
        return Killswitch(engaged=row.engaged, by=row.engaged_by, reason=row.reason, at=row.at)

    def set_killswitch(self, *, engaged: bool, by: str, reason: str) -> Killswitch:
        at = self._now()
        reason = self._text(reason)
        values = {"engaged": engaged, "engaged_by": by, "reason": reason, "at": at}
        with self._writing() as conn:
            updated = conn.execute(
                killswitch_table.update().where(killswitch_table.c.id == 1).values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(killswitch_table.insert().values(id=1, **values))
        return Killswitch(engaged=engaged, by=by, reason=reason, at=at)

    # -- target locks ----------------------------------------------------------------

    def acquire_targets(self, run_id: states.RunId, keys: Iterable[str]) -> list[TargetConflict]:
        """Lock every key for `run_id`, or none of them.

        Returns the conflicts (keys held by other runs); empty means all are held by
        `run_id` now. Re-acquiring keys the run already holds is fine.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return []
        now = self._now()
        insert = self._insert_ignoring_conflicts(
            [{"target_key": key, "run_id": run_id, "acquired_at": now} for key in wanted]
        )
        with self._writing() as conn:
            conn.execute(insert)
            holders = conn.execute(
                sa.select(locks_table.c.target_key, locks_table.c.run_id)
                .where(locks_table.c.target_key.in_(wanted))
                .order_by(locks_table.c.target_key)
            ).all()
            conflicts = [
                TargetConflict(key=row.target_key, run_id=states.RunId(row.run_id))
                for row in holders
                if row.run_id != run_id
            ]
            if conflicts:
                conn.rollback()
        return conflicts

    def _insert_ignoring_conflicts(self, rows: list[dict[str, Any]]) -> sa.Executable:
        if self.dialect == "postgresql":
            return pg_dialect.insert(locks_table).values(rows).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite_dialect.insert(locks_table).values(rows).on_conflict_do_nothing()
        raise errors.JournalError(f"unsupported journal database {self.dialect!r}")

    def release_targets(self, run_id: states.RunId) -> int:
        """Release every lock `run_id` holds; returns how many."""
        with self._writing() as conn:
            result = conn.execute(locks_table.delete().where(locks_table.c.run_id == run_id))
            return result.rowcount

    def lock_holders(self) -> list[states.RunId]:
        """Every run holding at least one target lock (one query, whatever the store's size)."""
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(locks_table.c.run_id).distinct().order_by(locks_table.c.run_id)
            ).scalars()
            return [states.RunId(run_id) for run_id in rows]

    def held_targets(self, run_id: states.RunId) -> list[str]:
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(locks_table.c.target_key)
                .where(locks_table.c.run_id == run_id)
                .order_by(locks_table.c.target_key)
            ).scalars()
            return list(rows)


def _aware(value: datetime, *, what: str) -> datetime:
    if value.tzinfo is None:
        raise errors.JournalError(
            f"{what} gave the naive datetime {value.isoformat()}; the journal stores "
            "timezone-aware UTC (use datetime.now(UTC))"
        )
    return value


def _run_values(run: states.Run) -> dict[str, Any]:
    for name in ("started_at", "updated_at", "finished_at", "heartbeat_at"):
        value = getattr(run, name)
        if value is not None:
            _aware(value, what=f"run {run.id} {name}")
    return {
        "scenario": run.scenario,
        "environment": run.environment,
        "environment_source": run.environment_source,
        "state": run.state.value,
        "verdict": run.verdict.value if run.verdict else None,
        "ending": run.ending.value if run.ending else None,
        "reason": run.reason,
        "abort_reason": run.abort_reason,
        "owner_host": run.owner.host,
        "owner_pid": run.owner.pid,
        "owner_token": run.owner.token,
        "heartbeat_at": run.heartbeat_at,
        "started_at": run.started_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
        "record": mutations.freeze_json(run.record.to_json(), what=f"run {run.id} record"),
    }


def _run_from_row(row: Row[Any]) -> states.Run:
    return states.Run(
        id=states.RunId(row.id),
        scenario=row.scenario,
        environment=row.environment,
        environment_source=row.environment_source,
        state=states.RunState(row.state),
        verdict=states.Verdict(row.verdict) if row.verdict else None,
        ending=states.Ending(row.ending) if row.ending else None,
        reason=row.reason,
        abort_reason=row.abort_reason,
        owner=states.Owner(host=row.owner_host, pid=row.owner_pid, token=row.owner_token),
        heartbeat_at=row.heartbeat_at,
        started_at=row.started_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        record=records.RunRecord.from_json(row.record),
    )


def _entry_from_row(row: Row[Any]) -> mutations.JournalEntry:
    return mutations.JournalEntry(
        seq=row.seq,
        run_id=states.RunId(row.run_id),
        step=row.step,
        target=mutations.TargetRef.from_json(row.target),
        action=row.action,
        params=row.params,
        pre_state=row.pre_state,
        undo=mutations.UndoToken.from_json(row.undo),
        state=mutations.EntryState(row.state),
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attempts=row.attempts,
    )


__all__: Sequence[str] = (
    "Event",
    "Journal",
    "Killswitch",
    "TargetConflict",
    "metadata",
    "open_store",
)
