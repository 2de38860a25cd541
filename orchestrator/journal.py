"""Journal: the write-ahead record of runs and mutations (SQLite or PostgreSQL).

Invariants:
- Every write commits before the method returns: an intent is on disk before the
  caller mutates anything (SQLite: WAL + synchronous=FULL; PostgreSQL: committed
  transaction). A write of one statement (an intent, one mark, one event) commits on its
  own (autocommit: one round trip, durable when the statement returns).
- Entry-state changes made at the same moment by several threads (a concurrent rollback
  marking entries reverted) share one transaction (group commit): the first caller to find
  no write in flight writes every queued mark, one `UPDATE ... WHERE seq IN (...) RETURNING`
  per group of identical changes, plus the timeline events the marks carry (`Timeline`), so a
  mark and its events are durable together or not at all. Each caller returns only once the
  transaction holding its change has committed.
- Entries are append-only; only their state (intended -> applied | apply_failed |
  skipped | reverted | revert_failed; applied/revert_failed -> reverted |
  revert_failed) and attempts/error change, each change checked against the state
  the entry is in.
- Runs are saved optimistically: `save_run` only writes if the stored state is the
  one the caller moved from, so two processes can never both move one run.
- Several processes may share one store: SQLite writers take the database lock up
  front (BEGIN IMMEDIATE, or the one autocommit statement, which takes it as it starts)
  and wait on it (busy_timeout); target locks are rows with
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

import functools
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
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
PING_AFTER_IDLE_S = 1.0
"""A pooled PostgreSQL connection unused this long is pinged before it is used again."""
MAX_SEQS_PER_STATEMENT = 500
"""A group of marks larger than this is written with several UPDATEs (bound-parameter limits)."""
_IDLE_SINCE = "stormdrill_idle_since"
_SCHEMA_LOCK_ID = 0x5707_D111  # pg_advisory_xact_lock key serialising table creation
_AUTOCOMMIT = "stormdrill_autocommit"


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


@dataclass(frozen=True)
class Timeline:
    """Events of one run to write in the same transaction as an entry's mark (all or none).

    A rollback passes each revert's "reverting" and "reverted" lines with its mark, so the
    timeline never says more (or less) than the entry's durable state.
    """

    run_id: states.RunId
    events: Sequence[NewEvent]


@dataclass(frozen=True)
class _PendingEvent:
    """A timeline event, redacted, waiting for its mark's transaction (`at` None: then)."""

    run_id: states.RunId
    kind: str
    message: str
    data: dict[str, mutations.JsonValue]
    at: datetime | None


@dataclass
class _Mark:
    """One entry-state change waiting for its (possibly shared) transaction."""

    seq: int
    to: mutations.EntryState
    error: str | None
    add_attempts: int
    extra: Mapping[str, Any]
    events: Sequence[_PendingEvent] = ()
    done: bool = False
    row: Row[Any] | None = None
    moved: bool = False
    """The UPDATE matched (the entry was in an allowed state); `row` is then its new state."""
    failure: BaseException | None = None
    allowed: frozenset[mutations.EntryState] = frozenset()
    future: Future[mutations.JournalEntry] | None = None
    """Set for a mark queued without waiting (`Journal.mark_reverted_later`)."""
    known: mutations.JournalEntry | None = None
    """The entry as the caller read it: the UPDATE then returns only the columns a mark
    changes, and the result is `known` with those (see `_outcome`)."""
    partial: bool = False
    """`row` holds only the changing columns (`known` holds the rest)."""

    def group(self) -> tuple[str, str | None, int, str]:
        """Marks of one group write identical values: one UPDATE covers them all."""
        extra = json.dumps(self.extra, sort_keys=True, default=str) if self.extra else ""
        return (self.to.value, self.error, self.add_attempts, extra)


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


def open_store(url: str, *, clock: Clock | None = None, create_tables: bool = True) -> Journal:
    """Connect to the journal at `url`, creating its tables if missing.

    `sqlite:///path/to/journal.db` or `postgresql+psycopg://user@host/db`. With
    `create_tables=False` it only checks the store answers: the application's opener
    (`drills.store`) leaves the schema to its Alembic migrations (`drills.service.schema`).
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
        if create_tables:
            store.create_tables()
        else:
            with engine.connect():
                pass
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
    engine = sa.create_engine(parsed, pool_size=8, max_overflow=24, connect_args=connect_args)
    _ping_when_idle(engine, idle_s=PING_AFTER_IDLE_S)
    return engine


def _ping_when_idle(engine: Engine, *, idle_s: float) -> None:
    """Check a pooled connection still answers before use, if it sat unused `idle_s` or more.

    What `pool_pre_ping` does, without its extra round trip on every checkout: a connection
    returned moments ago (a rollback or a drill writing back to back) was alive then. One that
    answers no more is dropped and the pool connects afresh (SQLAlchemy retries checkout on
    `DisconnectionError`), so a restarted server costs no error.
    """

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < idle_s:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(f"pooled connection is gone: {exc}") from exc


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
        options = conn.get_execution_options()
        if options.get(_AUTOCOMMIT, False):
            return  # one statement, committed on its own (see `Journal._statement`)
        immediate = options.get("stormdrill_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Journal:
    """The run store and write-ahead mutation journal. Thread-safe; one per process."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._redactor = secrets.Redactor()
        self._fingerprints: dict[states.RunId, secrets.Fingerprints | None] = {}
        self._marks_lock = threading.Lock()  # guards the fingerprint cache
        self._queued: list[_Mark] = []
        self._queue = threading.Condition(threading.Lock())
        self._leading = False  # a caller (or the writer thread) is writing a batch right now
        self._writer: threading.Thread | None = None  # writes marks queued without a waiter
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for Alembic migrations: `drills.service.schema`)."""
        return self._engine

    def transaction(self, *, write: bool = False) -> AbstractContextManager[Connection]:
        """A connection inside one transaction, committed on exit, rolled back on error.

        For the tables the application adds to `metadata` (approvals, tokens, audit…);
        `write=True` takes SQLite's write lock at BEGIN, as the journal's own writes do.
        """
        return self._writing() if write else self._reading()

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
        """Write every mark still queued (`mark_reverted_later`), then release connections."""
        with self._queue:
            self._closing = True
            self._queue.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()
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
    def _statement(self) -> Iterator[Connection]:
        """A connection whose one write statement commits on its own (autocommit).

        Durable when the statement has returned every row: SQLite commits (and syncs the WAL)
        as the statement completes, PostgreSQL before it reports ready. One round trip instead
        of BEGIN, statement, COMMIT. Only for writes of exactly one statement.
        """
        with self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(**{_AUTOCOMMIT: True})
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT")
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

    def create_run_in(self, conn: Connection, run: states.Run) -> states.Run:
        """Store a new run inside the caller's transaction `conn` (same values as `create_run`).

        For a caller that writes the run together with rows of its own (a schedule's fire):
        both commit, or neither. A taken id raises `sa.exc.IntegrityError` into that
        transaction (the caller rolls it back).
        """
        run = self._readable_run(run)
        conn.execute(runs_table.insert().values(**_run_values(run), id=run.id))
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
        verdicts: Collection[states.Verdict] | None = None,
        started_from: datetime | None = None,
        started_before: datetime | None = None,
        older_than: tuple[datetime, str] | None = None,
        limit: int | None = 100,
    ) -> list[states.Run]:
        """Runs, newest first (started_at, then id), optionally filtered, in SQL.

        `started_from` is inclusive, `started_before` exclusive; `older_than` is a keyset
        cursor: only runs strictly after `(started_at, id)` in that order.
        """
        query = runs_table.select()
        if states_in is not None:
            query = query.where(runs_table.c.state.in_([s.value for s in states_in]))
        if scenario is not None:
            query = query.where(runs_table.c.scenario == scenario)
        if environment is not None:
            query = query.where(runs_table.c.environment == environment)
        if verdicts is not None:
            query = query.where(runs_table.c.verdict.in_([v.value for v in verdicts]))
        if started_from is not None:
            query = query.where(runs_table.c.started_at >= started_from)
        if started_before is not None:
            query = query.where(runs_table.c.started_at < started_before)
        if older_than is not None:
            at, run_id = older_than
            query = query.where(
                sa.or_(
                    runs_table.c.started_at < at,
                    sa.and_(runs_table.c.started_at == at, runs_table.c.id < run_id),
                )
            )
        query = query.order_by(runs_table.c.started_at.desc(), runs_table.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as conn:
            return [_run_from_row(row) for row in conn.execute(query)]

    def run_ids(self, *, prefix: str | None = None, limit: int | None = None) -> list[states.RunId]:
        """Run ids only (no records read), newest first; with `prefix`, those ids that start
        with it or whose random part (after the last `-`) does."""
        query = sa.select(runs_table.c.id)
        if prefix is not None:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(
                sa.or_(
                    runs_table.c.id.like(f"{escaped}%", escape="\\"),
                    runs_table.c.id.like(f"%-{escaped}%", escape="\\"),
                )
            )
        query = query.order_by(runs_table.c.started_at.desc(), runs_table.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as conn:
            return [states.RunId(row[0]) for row in conn.execute(query)]

    def find_run(self, run_id: str) -> states.Run | None:
        """The run with exactly this id, or None."""
        with self._reading() as conn:
            row = conn.execute(runs_table.select().where(runs_table.c.id == run_id)).first()
        return None if row is None else _run_from_row(row)

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
            with self._statement() as conn:
                seq = conn.execute(_INSERT_ENTRY, values).scalar_one()
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

    def mark_reverted(
        self, seq: int, *, attempts: int = 1, timeline: Timeline | None = None
    ) -> mutations.JournalEntry:
        """The mutation is undone (or never happened). Idempotent.

        `timeline`'s events are written in the same transaction as the mark, and only if the
        mark is made: when this returns, both are durable; when it raises, neither was written.
        """
        return self._mark(seq, _E.REVERTED, error=None, add_attempts=attempts, timeline=timeline)

    def mark_revert_failed(
        self, seq: int, *, error: str, attempts: int = 1, timeline: Timeline | None = None
    ) -> mutations.JournalEntry:
        """The undo failed; the mutation may still be in effect (`timeline`: as `mark_reverted`)."""
        return self._mark(
            seq, _E.REVERT_FAILED, error=error, add_attempts=attempts, timeline=timeline
        )

    def mark_reverted_later(
        self,
        seq: int,
        *,
        attempts: int = 1,
        timeline: Timeline | None = None,
        known: mutations.JournalEntry | None = None,
    ) -> Future[mutations.JournalEntry]:
        """Queue `mark_reverted` without waiting: the future resolves once the mark is durable.

        The same durability as `mark_reverted` (the same group commit; the future's result
        is the entry as committed, its exception what `mark_reverted` would have raised), but
        the caller may go on meanwhile: a rollback worker starts its next revert while the
        journal writes the last one. A mark queued here is written by the journal's writer
        thread (or by any caller of a waiting mark that leads the next batch); `close` writes
        every mark still queued before it returns. `known`, the entry as the caller read it
        (seq `seq`), spares reading back the columns a mark does not change.
        """
        mark = self._new_mark(
            seq, _E.REVERTED, error=None, add_attempts=attempts, timeline=timeline
        )
        if known is not None:
            if known.seq != seq:
                raise ValueError(f"known is entry #{known.seq}, not #{seq}")
            mark.known = known
        mark.future = Future()
        mark.future.set_running_or_notify_cancel()
        with self._queue:
            if self._closing:
                raise errors.JournalError(f"the journal at {self.url} is closed")
            self._queued.append(mark)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_queued, name="stormdrill-journal-writer", daemon=True
                )
                self._writer.start()
            self._queue.notify_all()
        return mark.future

    def _write_queued(self) -> None:
        """The writer thread: write queued marks in batches until the journal closes."""
        with self._queue:
            while True:
                if self._leading or not self._queued:
                    if self._closing and not self._queued:
                        return
                    self._queue.wait()
                    continue
                self._lead_one_batch()

    def _new_mark(
        self,
        seq: int,
        to: mutations.EntryState,
        *,
        error: str | None,
        add_attempts: int = 0,
        timeline: Timeline | None = None,
        **extra: Any,
    ) -> _Mark:
        if error is not None:
            error = self._text(error)
        return _Mark(
            seq=seq,
            to=to,
            error=error,
            add_attempts=add_attempts,
            extra=extra,
            events=self._pending_events(timeline),
            allowed=_ENTRY_MOVES[to],
        )

    def _mark(
        self,
        seq: int,
        to: mutations.EntryState,
        *,
        error: str | None,
        add_attempts: int = 0,
        timeline: Timeline | None = None,
        **extra: Any,
    ) -> mutations.JournalEntry:
        mark = self._new_mark(
            seq, to, error=error, add_attempts=add_attempts, timeline=timeline, **extra
        )
        self._commit_together(mark)
        return self._outcome(mark)

    def _outcome(self, mark: _Mark) -> mutations.JournalEntry:
        """The entry a written mark committed, or the error it ends in."""
        if mark.failure is not None:
            raise mark.failure
        row = mark.row
        if row is None:
            raise errors.JournalError(f"no journal entry #{mark.seq} at {self.url}")
        if mark.partial and mark.known is not None:
            return replace(
                mark.known,
                state=mutations.EntryState(row.state),
                error=row.error,
                attempts=row.attempts,
                updated_at=row.updated_at,
            )
        entry = _entry_from_row(row)
        if not mark.moved:
            raise errors.JournalError(
                f"journal entry {entry} is {entry.state.value}; it cannot be marked "
                f"{mark.to.value} (only from {', '.join(sorted(s.value for s in mark.allowed))})"
            )
        return entry

    @property
    def pending_marks(self) -> int:
        """Marks queued behind the batch being written now (what the next batch will hold)."""
        with self._queue:
            return len(self._queued)

    def _pending_events(self, timeline: Timeline | None) -> tuple[_PendingEvent, ...]:
        if timeline is None:
            return ()
        run_id = timeline.run_id
        return tuple(
            _PendingEvent(
                run_id=run_id,
                kind=event.kind,
                message=self._text(event.message, run_id=run_id),
                data=self._data(
                    mutations.freeze_json(event.data, what=f"event {event.kind} data"),
                    run_id=run_id,
                ),
                at=None if event.at is None else _aware(event.at, what=f"event {event.kind} time"),
            )
            for event in timeline.events
        )

    def _commit_together(self, mark: _Mark) -> None:
        """Return once `mark` is committed (or failed), sharing a transaction with others.

        Group commit: a caller that finds no batch being written writes every mark queued so
        far (its own included); callers arriving meanwhile queue theirs and wait, and the first
        of them still waiting when that batch is done writes the next one.
        """
        with self._queue:
            self._queued.append(mark)
            while not mark.done:
                if self._leading:
                    self._queue.wait()
                    continue
                self._lead_one_batch()

    def _lead_one_batch(self) -> None:
        """Write every queued mark as one batch (called holding `_queue`, which it releases
        while writing and holds again when it returns)."""
        self._leading = True
        batch, self._queued = self._queued, []
        self._queue.release()
        try:
            try:
                self._commit_marks(batch)
            finally:  # outside the lock: a future's callbacks may use the journal
                for mark in batch:
                    if mark.future is not None:
                        self._settle(mark, mark.future)
        finally:
            self._queue.acquire()
            self._leading = False
            self._queue.notify_all()

    def _settle(self, mark: _Mark, future: Future[mutations.JournalEntry]) -> None:
        try:
            entry = self._outcome(mark)
        except BaseException as exc:  # the waiter raises it, as `mark_reverted` would
            future.set_exception(exc)
        else:
            future.set_result(entry)

    def _commit_marks(self, batch: Sequence[_Mark]) -> None:
        """Write `batch` in one transaction; every mark ends done (with its row or failure).

        A batch whose connection was cut (the server restarted, `pg_terminate_backend`) is
        written once more on a fresh connection when every mark in it is idempotent (marking
        reverted twice is harmless), so one dropped connection does not page a human; if the
        cut came after the commit (the rows show this batch's changes), it is not written again,
        so its events are not written twice.
        """
        now = self._now()
        try:
            try:
                self._write_marks(batch, now=now)
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
                for mark in batch:
                    mark.row, mark.moved, mark.partial = None, False, False
                if not self._landed(batch, now=now):
                    self._write_marks(batch, now=now)
        except BaseException as exc:  # nothing of the batch is on disk: each caller raises it
            for mark in batch:
                mark.failure = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for mark in batch:
                mark.done = True

    def _landed(self, batch: Sequence[_Mark], *, now: datetime) -> bool:
        """Whether a batch whose connection was cut committed after all (then fill its marks).

        Every mark retried is idempotent (its target state is among the states it may move
        from), so after a commit a mark took effect exactly when its entry is in that state.
        """
        with self._reading() as conn:
            rows = {
                row.seq: row
                for row in conn.execute(_SELECT_ENTRIES, {"b_seqs": sorted({m.seq for m in batch})})
            }
        if not any(
            (row := rows.get(m.seq)) is not None
            and row.updated_at == now
            and row.state == m.to.value
            for m in batch
        ):
            return False
        for mark in batch:
            mark.row, mark.partial = rows.get(mark.seq), False
            mark.moved = mark.row is not None and mark.row.state == mark.to.value
        return True

    def _write_marks(self, batch: Sequence[_Mark], *, now: datetime) -> None:
        """One UPDATE ... RETURNING per group of identical marks, then the marks' events.

        Marks of one entry keep their order (`_rounds`); a mark the UPDATE did not match (the
        entry is missing or in a state it may not move from) is read back for its message
        and its events are not written. A batch of one statement commits on its own.
        """
        rounds = [_groups(marks) for marks in _rounds(batch)]
        has_events = any(mark.events for mark in batch)
        single = (
            len(rounds) == 1
            and len(rounds[0]) == 1
            and len(rounds[0][0]) <= MAX_SEQS_PER_STATEMENT
            and not has_events
        )
        with self._statement() if single else self._writing() as conn:
            for groups in rounds:
                for group in groups:
                    for start in range(0, len(group), MAX_SEQS_PER_STATEMENT):
                        _update_group(conn, group[start : start + MAX_SEQS_PER_STATEMENT], now=now)
                refused = [mark for group in groups for mark in group if not mark.moved]
                if refused:
                    found = {
                        row.seq: row
                        for row in conn.execute(
                            _SELECT_ENTRIES, {"b_seqs": sorted({m.seq for m in refused})}
                        )
                    }
                    for mark in refused:
                        mark.row = found.get(mark.seq)
            events = [
                {
                    "run_id": event.run_id,
                    "at": now if event.at is None else event.at,
                    "kind": event.kind,
                    "message": event.message,
                    "data": event.data,
                }
                for mark in batch
                if mark.moved
                for event in mark.events
            ]
            if events:
                conn.execute(events_table.insert(), events)

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
        with self._statement() as conn:
            seq = conn.execute(
                _INSERT_EVENT,
                {"run_id": run_id, "at": at, "kind": kind, "message": message, "data": payload},
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

    def events(
        self, run_id: states.RunId, *, kind: str | None = None, after: int | None = None
    ) -> list[Event]:
        """A run's timeline, oldest first; with `after`, only the events past that seq."""
        query = events_table.select().where(events_table.c.run_id == run_id)
        if kind is not None:
            query = query.where(events_table.c.kind == kind)
        if after is not None:
            query = query.where(events_table.c.seq > after)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(events_table.c.seq)).all()
        return [_event_from_row(row) for row in rows]

    def events_of_kinds(self, kinds: Collection[str]) -> list[Event]:
        """Every run's events of `kinds`, in seq order (what store-wide metrics read)."""
        query = (
            events_table.select()
            .where(events_table.c.kind.in_(sorted(kinds)))
            .order_by(events_table.c.seq)
        )
        with self._reading() as conn:
            rows = conn.execute(query).all()
        return [_event_from_row(row) for row in rows]

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


_INSERT_ENTRY = journal_table.insert().returning(journal_table.c.seq)
_INSERT_EVENT = events_table.insert().returning(events_table.c.seq)
_SELECT_ENTRIES = journal_table.select().where(
    journal_table.c.seq.in_(sa.bindparam("b_seqs", expanding=True))
)


_CHANGED_BY_MARKS = ("seq", "state", "error", "attempts", "updated_at")
"""The columns a mark changes (and the key): what an UPDATE of marks with `known` returns."""


@functools.cache
def _update_statement(extra: tuple[str, ...], *, partial: bool = False) -> sa.Update:
    """The UPDATE of one group of marks (built once per set of extra columns).

    `partial`: it returns only `_CHANGED_BY_MARKS` (every mark of the group has `known`).
    """
    columns = journal_table.c
    values: dict[str, Any] = {
        "state": sa.bindparam("b_state", type_=columns.state.type),
        "error": sa.bindparam("b_error", type_=columns.error.type),
        "attempts": columns.attempts + sa.bindparam("b_add", type_=columns.attempts.type),
        "updated_at": sa.bindparam("b_now", type_=columns.updated_at.type),
    }
    for name in extra:
        values[name] = sa.bindparam(f"b_x_{name}", type_=columns[name].type)
    returned = [columns[name] for name in _CHANGED_BY_MARKS] if partial else list(columns)
    return (
        journal_table.update()
        .where(
            columns.seq.in_(sa.bindparam("b_seqs", expanding=True)),
            columns.state.in_(sa.bindparam("b_allowed", expanding=True)),
        )
        .values(values)
        .returning(*returned)
    )


def _update_group(conn: Connection, group: Sequence[_Mark], *, now: datetime) -> None:
    """Move every mark of `group` (identical changes, distinct entries) with one UPDATE."""
    first = group[0]
    params: dict[str, Any] = {
        "b_seqs": [mark.seq for mark in group],
        "b_allowed": sorted(s.value for s in _ENTRY_MOVES[first.to]),
        "b_state": first.to.value,
        "b_error": first.error,
        "b_add": first.add_attempts,
        "b_now": now,
    }
    for name, value in first.extra.items():
        params[f"b_x_{name}"] = value
    partial = all(mark.known is not None for mark in group)
    statement = _update_statement(tuple(sorted(first.extra)), partial=partial)
    moved = {row.seq: row for row in conn.execute(statement, params).all()}
    for mark in group:
        row = moved.get(mark.seq)
        if row is not None:
            mark.row, mark.moved, mark.partial = row, True, partial


def _rounds(batch: Sequence[_Mark]) -> list[list[_Mark]]:
    """`batch` split so no entry appears twice in a round; an entry's marks keep their order."""
    rounds: list[list[_Mark]] = []
    seen: dict[int, int] = {}
    for mark in batch:
        index = seen.get(mark.seq, -1) + 1
        seen[mark.seq] = index
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(mark)
    return rounds


def _groups(marks: Sequence[_Mark]) -> list[list[_Mark]]:
    """`marks` grouped by the values they write, in order of first appearance."""
    groups: dict[tuple[str, str | None, int, str], list[_Mark]] = {}
    for mark in marks:
        groups.setdefault(mark.group(), []).append(mark)
    return list(groups.values())


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


def _event_from_row(row: Row[Any]) -> Event:
    return Event(
        seq=row.seq,
        run_id=states.RunId(row.run_id),
        at=row.at,
        kind=row.kind,
        message=row.message,
        data=row.data,
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
