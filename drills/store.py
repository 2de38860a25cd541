"""The store opener: the run store the settings name (a SQLite file by default).

Every entry point (the CLI, the API, a runner) opens the store here. Invariants: a SQLite
store's folder is created private (0700) before the file; what goes wrong is raised as a
typed error whose message names the store with its password masked — `StoreUnreachable`
when the store cannot be reached (an entry point's exit 5 / HTTP 503), any other
`JournalError` when the URL is not usable at all (invalid input), `schema.SchemaOutdated`
when its schema needs `stormdrill db upgrade` (see `drills.service.schema`).
"""

from __future__ import annotations

from pathlib import Path

from drills import settings as settings_mod
from drills.service import schema
from orchestrator import errors, journal


class StoreUnusable(errors.JournalError):
    """The store URL is not usable at all (not a reachability problem): invalid input."""


def open_store(config: settings_mod.Settings) -> journal.Journal:
    """The run store named by `config.database_url`, its schema current.

    The schema is the migrations' (`schema.prepare`): a new store is created at the head
    revision, an older SQLite one upgraded, an older PostgreSQL one refused with
    `schema.SchemaOutdated` (it names `stormdrill db upgrade`). Raises
    `errors.StoreUnreachable` (the store is down, refuses us, or its file cannot be
    created) or `StoreUnusable` (the URL is wrong); both name the store, password masked.
    """
    store = open_unprepared(config)
    try:
        schema.prepare(store)
    except BaseException:
        store.close()
        raise
    return store


def open_unprepared(config: settings_mod.Settings) -> journal.Journal:
    """The run store, reachable, its schema as found (`stormdrill db status|upgrade`)."""
    url = config.database_url
    try:
        if url.startswith("sqlite:///"):
            folder = Path(url.removeprefix("sqlite:///")).parent
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the store is private
        return journal.open_store(url, create_tables=False)
    except OSError as exc:
        reason = f"{type(exc).__name__}: {exc.strerror or exc}"
        raise errors.StoreUnreachable(
            url=settings_mod.mask_url_password(url), reason=reason
        ) from exc
    except errors.StoreUnreachable:
        raise
    except errors.JournalError as exc:
        message = settings_mod.mask_url_password(url, " ".join(str(exc).split()))
        raise StoreUnusable(message) from exc
