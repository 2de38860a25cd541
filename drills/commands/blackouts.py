"""`stormdrill blackouts list|add|remove`: calendars in which no scheduled drill starts.

`add` takes the body `POST /api/v1/blackouts` takes, from a YAML or JSON file (`-f FILE`:
`scope`, `value`, `windows`, `timezone`, `reason`, `abortRunning`, and nothing else) or
from flags (`--scope`, `--value`, `--dates START/END`, `--weekly DAYS@HH:MM-HH:MM`,
`--timezone`, `--reason`, `--abort-running`); both are read into the same
`schedules.BlackoutBody` and stored by the same service function as the API's, which
stores a service or team in its canonical form (`checkout` as `component:default/checkout`,
`team-payments` as `group:default/team-payments`; `list` shows that form) and refuses an
Environment no bundled example, stored schedule or run names, and a service or team the
CMDB catalog (`--cmdb`, else `STORMDRILL_CMDB`) does not hold. Each
change is written to the audit trail (principal kind `local`, the API's action names
`blackout.add` and `blackout.remove`). `list --format json` prints the API's list.
Mistakes exit 3 with one line naming the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pydantic
import rich.box
import rich.console
import rich.table
import typer
import yaml

from drills import settings
from drills.commands import output, running
from drills.service import audit, schedules
from orchestrator import engine, journal
from scenarios import errors

app = typer.Typer(
    help="Blackouts: calendars in which no scheduled drill starts (and running ones may abort).",
    no_args_is_help=True,
)

_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)

OutputFormat = output.Format
_WEEKLY_HELP = (
    "A weekly window: DAYS@HH:MM-HH:MM in --timezone, e.g. fri@16:00-23:59 or"
    " sat,sun@00:00-00:00 (an end not after the start runs past midnight). Repeatable."
)
_CMDB_HELP = (
    "Catalog file or folder a service or team value is checked against; repeat for more."
    f" Defaults to ${settings.CMDB_ENV_VAR} (paths separated by '{os.pathsep}'); with"
    " neither, the value is stored in its canonical form unchecked."
)
_DATES_HELP = (
    "A dated window: START/END, ISO times (without an offset: in --timezone), e.g."
    " 2026-12-20T00:00/2027-01-04T00:00. Repeatable."
)


def _fail(message: str) -> typer.Exit:
    _err.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(engine.ExitCode.INVALID)


def _audit(store: journal.Journal, *, action: str, target: str) -> None:
    audit.record_cli(
        store,
        action=action,
        target=target,
        command=f"stormdrill blackouts {action.removeprefix('blackout.')}",
    )


def _problems(exc: pydantic.ValidationError, where: str) -> str:
    found = []
    for item in exc.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(the document)"
        found.append(f"{where}: {field}: {item['msg']}")
    return "; ".join(found)


def body_from_file(path: Path) -> schedules.BlackoutBody:
    """The blackout a YAML or JSON file describes (the API's body); `ScheduleError` names
    the file and the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise schedules.ScheduleError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise schedules.ScheduleError(f"{path}: not valid YAML or JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise schedules.ScheduleError(
            f"{path}: give a mapping such as {{scope: environment, value: staging, windows:"
            " [{days: [fri], start: '16:00', end: '23:59'}]}"
        )
    try:
        return schedules.BlackoutBody.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise schedules.ScheduleError(_problems(exc, str(path))) from None


def _weekly(text: str) -> dict[str, pydantic.JsonValue]:
    days, sep, span = text.partition("@")
    start, dash, end = span.partition("-")
    if not sep or not dash or not days.strip():
        raise schedules.ScheduleError(
            f"--weekly {text!r}: give DAYS@HH:MM-HH:MM, e.g. fri@16:00-23:59 or mon,tue@09:00-12:00"
        )
    return {
        "days": [day.strip() for day in days.split(",") if day.strip()],
        "start": start.strip(),
        "end": end.strip(),
    }


def _dated(text: str) -> dict[str, pydantic.JsonValue]:
    start, sep, end = text.partition("/")
    if not sep or not start.strip() or not end.strip():
        raise schedules.ScheduleError(
            f"--dates {text!r}: give START/END, e.g. 2026-12-20T00:00/2027-01-04T00:00"
        )
    return {"start": start.strip(), "end": end.strip()}


def body_from_flags(
    *,
    scope: str | None,
    value: str,
    dates: list[str],
    weekly: list[str],
    timezone: str,
    reason: str,
    abort_running: bool,
) -> schedules.BlackoutBody:
    """The blackout the flags describe (the API's body); `ScheduleError` names the flag."""
    if scope is None:
        raise schedules.ScheduleError(
            "--scope: give global, environment, service or team (or -f FILE)"
        )
    windows = [*(_dated(item) for item in dates), *(_weekly(item) for item in weekly)]
    if not windows:
        raise schedules.ScheduleError(
            "give at least one window: --dates START/END or --weekly DAYS@HH:MM-HH:MM"
        )
    raw: dict[str, object] = {
        "scope": scope,
        "value": value,
        "windows": windows,
        "timezone": timezone,
        "reason": reason,
        "abortRunning": abort_running,
    }
    try:
        return schedules.BlackoutBody.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise schedules.ScheduleError(
            _problems(exc, "the flags").replace("abortRunning", "--abort-running")
        ) from None


def _table(found: list[schedules.BlackoutView]) -> rich.table.Table:
    table = rich.table.Table(title="Blackouts", box=rich.box.SIMPLE_HEAD, pad_edge=False)
    for column in ("id", "scope", "windows", "zone", "aborts running", "reason", "by"):
        table.add_column(column, overflow="fold")
    for view in found:
        table.add_row(
            view.id,
            view.scope.value if not view.value else f"{view.scope.value} {view.value}",
            "; ".join(_window_text(window) for window in view.windows),
            view.timezone,
            "yes" if view.abort_running else "no",
            view.reason or "-",
            view.created_by or "-",
        )
    return table


def _window_text(window: pydantic.JsonValue) -> str:
    if not isinstance(window, dict):
        return str(window)
    days = window.get("days")
    span = f"{window.get('start')} - {window.get('end')}"
    return f"{','.join(str(d) for d in days)} {span}" if isinstance(days, list) else span


@app.command("list")
def list_command(
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """Every blackout: its scope, windows, time zone, whether it aborts running drills."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        found = schedules.blackout_views(store)
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump([view.dump() for view in found], output_format), output_path)
        return
    output.emit_rich([_table(found)], output_path)


@app.command("add")
def add(
    file: Path | None = typer.Option(
        None, "-f", "--file", help="A YAML or JSON file with the API's blackout body."
    ),
    scope: str | None = typer.Option(None, "--scope", help="global, environment, service or team."),
    value: str = typer.Option(
        "",
        "--value",
        help="The Environment name, CMDB service ref (checkout, component:default/checkout)"
        " or team ref (team-payments, group:default/team-payments).",
    ),
    dates: list[str] = typer.Option([], "--dates", help=_DATES_HELP),
    weekly: list[str] = typer.Option([], "--weekly", help=_WEEKLY_HELP),
    timezone: str = typer.Option("UTC", "--timezone", help="The windows' IANA time zone."),
    reason: str = typer.Option("", "--reason", help="Why (shown in each fire it skips)."),
    abort_running: bool = typer.Option(
        False, "--abort-running", help="Abort drills in its scope still running when it begins."
    ),
    cmdb: list[Path] | None = typer.Option(None, "--cmdb", help=_CMDB_HELP),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
) -> None:
    """Add a blackout, from a file (-f) or from flags."""
    flagged = scope is not None or value or dates or weekly or reason or abort_running
    config = running.load_settings()
    try:
        if file is not None and (flagged or timezone != "UTC"):
            raise schedules.ScheduleError(
                "give either -f FILE or the flags (--scope, --dates, --weekly, …), not both"
            )
        body = (
            body_from_file(file)
            if file is not None
            else body_from_flags(
                scope=scope,
                value=value,
                dates=dates,
                weekly=weekly,
                timezone=timezone,
                reason=reason,
                abort_running=abort_running,
            )
        )
    except errors.StormdrillError as exc:
        raise _fail(str(exc)) from None
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            view = schedules.add_blackout_from(
                store, body, by=audit.local_user(), config=config, cmdb=cmdb or ()
            )
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="blackout.add", target=f"blackouts/{view.id}")
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump_view(view, output_format), None)
        return
    aborts = "; drills running in it when it begins are aborted" if view.abort_running else ""
    typer.echo(f"added blackout {view.id} ({view.scope.value} {view.value}".rstrip() + f"){aborts}")


@app.command("remove")
def remove(blackout_id: str = typer.Argument(..., help="The blackout's id (see list).")) -> None:
    """Remove a blackout (fires it skipped stay recorded)."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            schedules.remove_blackout(store, blackout_id)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="blackout.remove", target=f"blackouts/{blackout_id}")
    typer.echo(f"removed blackout {blackout_id}")
