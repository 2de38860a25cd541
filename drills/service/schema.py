"""The store's schema version (Alembic): is the store current, bring it there, or say how.

The run store is one schema, migrated by the revisions in `drills/migrations` (Alembic,
configured here without an `alembic.ini`: the script folder is in the package and the
connection is the open store's). `status(store)` reads where a store stands without
importing Alembic (`SchemaStatus`: `current`, `head`, `ok`, and a `state`); `upgrade(store)`
brings any store to the head revision (`stormdrill db upgrade`); `require_current(store)`
raises `SchemaOutdated` naming that command (`serve` calls it before answering anything).

What happens when a store is opened (`prepare`, called by `drills.store.open_store` for
every entry point), which is what an SRE expects of a zero-setup tool with a shared mode:
- an empty store (a new SQLite file, an empty PostgreSQL database or schema) is created at
  the head revision and stamped, by the migrations themselves: `stormdrill run` on a new
  machine needs no setup, and so does the first `serve` on an empty database;
- a current store is used as it is (one query: the version table's row);
- a SQLite store that is behind (or from before migrations: no `alembic_version`, the base
  tables present) is upgraded on the spot, with a warning saying from which revision: a
  SQLite store belongs to one host, and nothing else is running older code against it;
- a PostgreSQL store that is behind a revision is refused (`SchemaOutdated`: "run
  `stormdrill db upgrade`"), by the CLI and by `serve` alike: several replicas share it,
  some may still run the older version, and changing a shared schema is an operator's
  deliberate step (the chart runs it as a pre-upgrade job);
- a PostgreSQL store from before migrations (the tables `create_all` made, no version
  table) is stamped and brought to head on open, with a warning, as SQLite is: that step
  only adds what is missing (base tables, then the revisions' new tables, which tolerate
  tables already there), and the Stormdrill that made it did the same `create_all` on every
  open, so nothing running against it is surprised;
- a store at a revision this Stormdrill does not know was written by a newer one
  (`SchemaTooNew`): upgrade Stormdrill, never the other way round.

A store from before migrations is stamped at the base revision, once any base table it
lacks is created (as the journal's `create_all` did on every open back then), and upgraded
from there. Every upgrade runs in one transaction under a lock (PostgreSQL: an advisory
transaction lock; SQLite: `BEGIN IMMEDIATE`), so replicas starting together migrate once
and a failed migration leaves the store as it was.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from orchestrator import errors, journal

if TYPE_CHECKING:
    from alembic import config as alembic_config

log = logging.getLogger(__name__)

TABLE_MODULES: tuple[str, ...] = (
    "drills.tables_auth",
    "drills.tables_audit",
    "drills.tables_approvals",
    "drills.tables_idempotency",
    "drills.tables_killswitch",
    "drills.tables_leases",
    "drills.tables_schedules",
    "drills.tables_outbox",
    "drills.tables_gamedays",
    "drills.tables_web",
)
"""The application's table modules (each defines its tables on `journal.metadata`)."""

REVISIONS: tuple[str, ...] = (
    "0001_base",
    "0002_service_tables",
    "0003_schedules_leases_outbox",
    "0004_gamedays",
    "0005_schedule_approvals_aborts",
    "0006_schedule_fire_history",
    "0007_web_sessions",
)
"""Every revision in `drills/migrations/versions`, oldest first (a test checks the chain)."""
BASE = REVISIONS[0]
HEAD = REVISIONS[-1]
VERSION_TABLE = "alembic_version"
BASE_TABLES: tuple[sa.Table, ...] = (
    journal.runs_table,
    journal.journal_table,
    journal.events_table,
    journal.killswitch_table,
    journal.locks_table,
)
"""The tables of the base revision: what a store from before migrations has."""
UPGRADE_COMMAND = "stormdrill db upgrade"
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_ID = 0x5707_D112  # pg_advisory_xact_lock key serialising migrations


class SchemaState(enum.StrEnum):
    EMPTY = "empty"
    """No tables at all: a new store."""
    UNVERSIONED = "unversioned"
    """The base tables but no version table: created before migrations existed."""
    BEHIND = "behind"
    """At an older revision than this Stormdrill's head."""
    CURRENT = "current"
    AHEAD = "ahead"
    """At a revision this Stormdrill does not know: a newer one migrated it."""


@dataclasses.dataclass(frozen=True)
class SchemaStatus:
    """Where a store's schema stands: its revision, this Stormdrill's head, and the verdict."""

    current: str | None
    """The store's revision; None when it has no version table (empty or unversioned)."""
    head: str
    state: SchemaState
    url: str
    """The store, password masked."""

    @property
    def ok(self) -> bool:
        return self.state is SchemaState.CURRENT

    @property
    def pending(self) -> tuple[str, ...]:
        """The revisions `upgrade` would apply, oldest first."""
        if self.state in (SchemaState.EMPTY, SchemaState.UNVERSIONED):
            return REVISIONS if self.state is SchemaState.EMPTY else REVISIONS[1:]
        if self.state is SchemaState.BEHIND and self.current in REVISIONS:
            return REVISIONS[REVISIONS.index(self.current) + 1 :]
        return ()

    def describe(self) -> str:
        """One line: `revision 0001_base, head 0002_service_tables: behind (1 to apply)`."""
        where = "no revision" if self.current is None else f"revision {self.current}"
        text = f"{where}, head {self.head}: {self.state.value}"
        return text + (f" ({len(self.pending)} to apply)" if self.pending else "")


class SchemaOutdated(errors.JournalError):
    """The store's schema is older than this Stormdrill's: `stormdrill db upgrade` fixes it."""

    def __init__(self, status: SchemaStatus) -> None:
        self.status = status
        found = "no schema revision" if status.current is None else f"revision {status.current}"
        super().__init__(
            f"the run store at {status.url} has {found} ({status.state.value}); this"
            f" Stormdrill needs {status.head}. Run `{UPGRADE_COMMAND}` (with the same"
            " STORMDRILL_DATABASE_URL) to migrate it, then start again"
        )


class SchemaTooNew(errors.JournalError):
    """The store was migrated by a newer Stormdrill (a revision this one does not know)."""

    def __init__(self, status: SchemaStatus) -> None:
        self.status = status
        super().__init__(
            f"the run store at {status.url} is at revision {status.current}, which this"
            f" Stormdrill (head {status.head}) does not know: a newer Stormdrill migrated"
            " it. Upgrade Stormdrill to use this store"
        )


def load_tables() -> sa.MetaData:
    """`journal.metadata` with every application table on it (imports `TABLE_MODULES`)."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return journal.metadata


# ---- where a store stands ----------------------------------------------------------------


def status(store: journal.Journal) -> SchemaStatus:
    """The store's schema status (reads the version table; never changes anything)."""
    with _unreachable_as_typed(store), store.transaction() as conn:
        return _status_of(conn, url=store.url)


def _status_of(conn: sa.Connection, *, url: str) -> SchemaStatus:
    inspector = sa.inspect(conn)
    if not inspector.has_table(VERSION_TABLE):
        state = (
            SchemaState.UNVERSIONED
            if inspector.has_table(journal.runs_table.name)
            else SchemaState.EMPTY
        )
        return SchemaStatus(current=None, head=HEAD, state=state, url=url)
    found = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if not found:  # a version table left empty (a stamp to nothing): treat as unversioned
        state = (
            SchemaState.UNVERSIONED
            if inspector.has_table(journal.runs_table.name)
            else SchemaState.EMPTY
        )
        return SchemaStatus(current=None, head=HEAD, state=state, url=url)
    current = str(found[0]) if len(found) == 1 else ",".join(sorted(map(str, found)))
    if current == HEAD:
        state = SchemaState.CURRENT
    elif current in REVISIONS:
        state = SchemaState.BEHIND
    else:
        state = SchemaState.AHEAD
    return SchemaStatus(current=current, head=HEAD, state=state, url=url)


def require_current(store: journal.Journal) -> SchemaStatus:
    """The status when the store is at the head revision; else `SchemaOutdated` (naming
    `stormdrill db upgrade`) or `SchemaTooNew` (a newer Stormdrill migrated it)."""
    found = status(store)
    if found.state is SchemaState.AHEAD:
        raise SchemaTooNew(found)
    if not found.ok:
        raise SchemaOutdated(found)
    return found


# ---- changing it -------------------------------------------------------------------------


def upgrade(store: journal.Journal) -> tuple[SchemaStatus, SchemaStatus]:
    """Bring the store to the head revision; (status before, status after).

    Empty: created by the migrations. From before migrations: the base tables it lacks
    created, stamped at the base revision, upgraded. Behind: upgraded. Current: nothing.
    `SchemaTooNew` when a newer Stormdrill migrated it. One transaction, under a lock.
    """
    with _unreachable_as_typed(store), _locked(store) as conn:
        before = _status_of(conn, url=store.url)
        if before.state is SchemaState.AHEAD:
            raise SchemaTooNew(before)
        if before.ok:
            return before, before
        _migrate(conn, before)
        after = _status_of(conn, url=store.url)
        _check_complete(conn)
    log.info(
        "the run store at %s: upgraded from %s to %s", store.url, before.current, after.current
    )
    return before, after


def prepare(store: journal.Journal) -> SchemaStatus:
    """The schema step of opening a store, for every entry point (see the module doc).

    Empty: created at head. Current: as is. From before migrations: upgraded (with a
    warning). Behind: upgraded when SQLite (with a warning), else `SchemaOutdated`. Unknown
    revision: `SchemaTooNew`.
    """
    found = status(store)
    if found.ok:
        return found
    if found.state is SchemaState.AHEAD:
        raise SchemaTooNew(found)
    if found.state is SchemaState.BEHIND and store.dialect != "sqlite":
        raise SchemaOutdated(found)
    before, after = upgrade(store)
    if before.state in (SchemaState.UNVERSIONED, SchemaState.BEHIND):  # not: another did it
        log.warning(
            "the run store at %s was at %s; upgraded it to %s (SQLite stores are upgraded"
            " when opened, PostgreSQL ones from before migrations too; later PostgreSQL"
            " upgrades by `%s`)",
            store.url,
            before.current or "no revision (created before migrations)",
            after.current,
            UPGRADE_COMMAND,
        )
    return after


def _migrate(conn: sa.Connection, before: SchemaStatus) -> None:
    from alembic import command  # imported only when a store changes (it is not light)

    load_tables()
    config = alembic_config_for(conn)
    if before.state is SchemaState.UNVERSIONED:
        journal.metadata.create_all(conn, tables=list(BASE_TABLES), checkfirst=True)
        command.stamp(config, BASE)
    command.upgrade(config, "head")


class TablesUnmigrated(errors.JournalError):
    """A table is defined on the store's metadata but no migration creates it (a bug)."""


def _check_complete(conn: sa.Connection) -> None:
    """Every table defined on `journal.metadata` exists after the migrations ran.

    A table module added without a revision would otherwise fail later, far from the cause.
    """
    present = set(sa.inspect(conn).get_table_names())
    missing = sorted(name for name in journal.metadata.tables if name not in present)
    if missing:
        raise TablesUnmigrated(
            f"table(s) {', '.join(missing)} are defined on orchestrator.journal.metadata but no"
            " migration creates them: add a revision under drills/migrations/versions (see"
            " drills/migrations/__init__.py) and the module to drills.service.schema.TABLE_MODULES"
        )


def alembic_config_for(conn: sa.Connection) -> alembic_config.Config:
    """Alembic's config for migrating over `conn` (no `alembic.ini`; scripts in the package)."""
    from alembic import config as alembic_config

    config = alembic_config.Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = conn
    return config


@contextmanager
def _locked(store: journal.Journal) -> Iterator[sa.Connection]:
    with store.transaction(write=True) as conn:
        if store.dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_ID)))
        yield conn


@contextmanager
def _unreachable_as_typed(store: journal.Journal) -> Iterator[None]:
    """A store that stops answering mid-way is `StoreUnreachable`, as when it is opened."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        raise errors.StoreUnreachable(url=store.url, reason=str(exc.orig)) from exc
