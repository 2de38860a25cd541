"""`stormdrill db status|upgrade`: where the run store's schema stands, and migrating it.

`status` prints the store's revision, this Stormdrill's head and the verdict (`current`,
`behind`, `unversioned`: created before migrations, `empty`, `ahead`: a newer Stormdrill
migrated it) and exits 0 when current, 1 when `db upgrade` is needed, 3 when the store is
ahead (upgrade Stormdrill instead) or its URL unusable, 5 when it cannot be reached.
`upgrade` migrates the store to the head revision (`drills.service.schema.upgrade`: one
transaction, under a lock, safe while other replicas start) and exits 0, or 3 / 5 as above.
Neither changes anything else; both open the store as found (`open_unprepared`), so an old
PostgreSQL store, which every other command refuses, can be inspected and migrated here.
SQLite stores are also upgraded when any command opens them (see `drills.service.schema`).
"""

from __future__ import annotations

from typing import TypeVar

import rich.console
import typer

from drills import settings
from drills import store as store_mod
from drills.commands import output, running
from drills.service import schema
from orchestrator import engine, journal

app = typer.Typer(
    help="Show or migrate the run store's schema (Alembic revisions).", no_args_is_help=True
)

_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)
_T = TypeVar("_T")

OutputFormat = output.Format


@app.command("status")
def status_command(
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help="table (one line), json or yaml."
    ),
) -> None:
    """Show the store's schema revision and whether `db upgrade` is needed (exit 1 if so)."""
    config = running.load_settings()
    store = _open(config)
    with store:
        found = _guarded(config, lambda: schema.status(store))
    if output_format is OutputFormat.TABLE:
        running.announce_store(config)
        typer.echo(found.describe())
        if found.state is schema.SchemaState.AHEAD:
            _err.print(str(schema.SchemaTooNew(found)), markup=False)
        elif not found.ok:
            typer.echo(f"run `{schema.UPGRADE_COMMAND}` to migrate it to {found.head}")
    else:
        data = {
            "url": found.url,
            "current": found.current,
            "head": found.head,
            "state": found.state.value,
            "ok": found.ok,
            "pending": list(found.pending),
        }
        output.emit(output.dump(data, output_format), None)
    if found.state is schema.SchemaState.AHEAD:
        raise typer.Exit(engine.ExitCode.INVALID)
    if not found.ok:
        raise typer.Exit(1)


@app.command("upgrade")
def upgrade_command() -> None:
    """Migrate the store to this Stormdrill's schema (safe to run again; one transaction)."""
    config = running.load_settings()
    store = _open(config)
    with store:
        before, after = _guarded(config, lambda: schema.upgrade(store))
    running.announce_store(config)
    if before.ok:
        typer.echo(f"already current: revision {after.current}")
        return
    applied = ", ".join(before.pending) or "-"
    start = before.current or f"no revision ({before.state.value})"
    typer.echo(f"upgraded from {start} to {after.current} (applied {applied})")


def _open(config: settings.Settings) -> journal.Journal:
    return _guarded(config, lambda: store_mod.open_unprepared(config))


_guarded = running.store_guarded
