"""`stormdrill gamedays create|list|show|start|note|gate|run|result|close|report`: game days
from the terminal.

`create FILE [--cmdb PATH]` stores the game day of a `kind: GameDay` document (created by
the local user, `audit.local_user`; its services canonical CMDB refs, checked against the
catalog when one is named: `--cmdb`, else `STORMDRILL_CMDB`); `start NAME [--force]`
starts it from an hour before its window until the window ends (`--force` at any other
time: its audit entry says `forced: …`); `show NAME --format json` prints
`gamedays.GameDayView` (the JSON contract the API shares). `run NAME POSITION` submits a
slot's drill through the service (`gamedays.run_drill`) and drives it here in the
foreground (`gamedays.drive_drill`, which is `runs.drive`), with `stormdrill run`'s live
timeline, summary and exit codes; the slot's verdict is the run's. `show`, `list` and
`run` sync first (`gamedays.sync_results`: verdicts of runs that ended elsewhere, the
absences key-person drills made). The commands only parse, call `drills.service.gamedays`
and present. Each change is written to the audit trail (principal kind `local`, actions
`gameday.create|start|note|gate|run|result|close`). `report NAME --format md|html|json
[--output FILE]` renders the game-day report (`gameday_reports.render`); its post-mortem
links are the files `stormdrill run` writes, relative to the reports folder. Mistakes exit
3 with one line naming the fix (a document's problems one line each,
`file:line:column: field: message`).
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from pathlib import Path

import rich.box
import rich.console
import rich.markup
import rich.table
import rich.text
import typer

from drills import binding, settings
from drills.commands import output, running
from drills.service import audit, catalogs, gameday_reports, gamedays, runs
from orchestrator import engine, journal, states
from reports import gameday as gameday_report
from reports import redaction
from scenarios import errors

app = typer.Typer(
    help="Game days: planned drills with people, gates, notes and findings.",
    no_args_is_help=True,
)

_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)

OutputFormat = output.Format
_KEY_HELP = "The game day's name (its metadata.name) or id."


def _fail(message: str) -> typer.Exit:
    _err.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(engine.ExitCode.INVALID)


def _audit(store: journal.Journal, *, action: str, day: gamedays.GameDay, detail: str = "") -> None:
    audit.record_cli(
        store,
        action=action,
        target=f"gamedays/{day.id}",
        command=f"stormdrill gamedays {action.removeprefix('gameday.')}",
        detail=detail,
    )


def _when(value: dt.datetime, zone: str) -> str:
    return value.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _fail_problems(exc: errors.ScenarioInvalid) -> typer.Exit:
    """Every problem on its own line (`file:line:column: field: message`), as validate."""
    for problem in exc.problems:
        _err.print(f"error: {problem}", markup=False, soft_wrap=True)
    return typer.Exit(engine.ExitCode.INVALID)


@app.command("create")
def create(
    path: Path = typer.Argument(..., help="A GameDay document (kind: GameDay)."),
    cmdb: list[Path] = typer.Option(
        [],
        "--cmdb",
        help="CMDB catalog file or folder (repeatable) that spec.services must name services"
        f" of; defaults to ${settings.CMDB_ENV_VAR}. Without one, services are only read as"
        " refs.",
    ),
) -> None:
    """Create a game day (planned) from a GameDay document.

    Its services are stored as canonical CMDB refs (`checkout` -> component:default/checkout);
    with a catalog, one it does not have is refused, placed at its line with close names.
    """
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            catalog = catalogs.catalog_for(config, None, cmdb)
            day = gamedays.create(store, path, by=audit.local_user(), catalog=catalog)
        except errors.ScenarioInvalid as exc:
            raise _fail_problems(exc) from None
        except errors.StormdrillError as exc:  # a catalog that cannot be read, a bad file
            raise _fail(str(exc)) from None
        _audit(store, action="gameday.create", day=day)
    typer.echo(
        f"created game day {day.name} ({day.id}): {len(day.drills)} drill(s),"
        f" {_when(day.window_start, day.timezone)} {day.timezone}"
    )


@app.command("list")
def list_command(
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """Every game day: its window, state and drills."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            found = [gamedays.GameDayView.of(d) for d in gamedays.sync_all(store)]
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump([view.dump() for view in found], output_format), output_path)
        return
    table = rich.table.Table(title="Game days", box=rich.box.SIMPLE_HEAD, pad_edge=False)
    for column in ("name", "start", "timezone", "state", "drills", "facilitator"):
        table.add_column(column, overflow="fold")
    for view in found:
        table.add_row(
            view.name,
            _when(view.window_start, view.timezone),
            view.timezone,
            view.state.value,
            str(len(view.drills)),
            next(
                (p.person for p in view.participants if gamedays.Role.FACILITATOR in p.roles),
                "-",
            ),
        )
    output.emit_rich([table], output_path)


@app.command("show")
def show(
    key: str = typer.Argument(..., help=_KEY_HELP),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """One game day: its people, drills with gates and verdicts, and notes."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            view = gamedays.GameDayView.of(gamedays.sync_results(store, key))
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump_view(view, output_format), output_path)
        return
    people = rich.table.Table(title="Participants", box=rich.box.SIMPLE_HEAD, pad_edge=False)
    people.add_column("person")
    people.add_column("roles", overflow="fold")
    for p in view.participants:
        roles = ", ".join(r.value for r in p.roles)
        people.add_row(p.person, roles + (" (absent)" if p.absent else ""))
    drills = rich.table.Table(title="Drills", box=rich.box.SIMPLE_HEAD, pad_edge=False)
    for column in ("#", "drill", "gate", "decision", "run", "verdict"):
        drills.add_column(column, overflow="fold")
    for s in view.drills:
        ref = s.drill or f"{s.scenario} @ {s.environment}"
        decided = "-" if s.decision is None else f"{s.decision.value} ({s.decided_by})"
        verdict = "-" if s.verdict is None else s.verdict.value
        drills.add_row(str(s.position), ref, s.gate.value, decided, s.run_id or "-", verdict)
    notes = rich.table.Table(title="Notes", box=rich.box.SIMPLE_HEAD, pad_edge=False)
    for column in ("at (UTC)", "by", "kind", "text"):
        notes.add_column(column, overflow="fold")
    for n in view.notes:
        action = "" if n.action_owner is None else f" (owner {n.action_owner})"
        shown = rich.markup.escape(n.text + action)
        notes.add_row(f"{n.at:%H:%M:%S}", rich.markup.escape(n.author), n.kind.value, shown)
    head = (
        f"{view.name} ({view.id}): {view.state.value},"
        f" {_when(view.window_start, view.timezone)}-{_when(view.window_end, view.timezone)}"
        f" {view.timezone}"
    )
    if view.verdict:
        head += f"; verdict: {view.verdict}"
    output.emit_rich([rich.text.Text(head), people, drills, notes], output_path)


@app.command("start")
def start(
    key: str = typer.Argument(..., help=_KEY_HELP),
    force: bool = typer.Option(
        False,
        "--force",
        help="Start even more than an hour before the window opens or after it ended"
        " (audited as a forced start).",
    ),
) -> None:
    """Start a planned game day (it runs until closed).

    From an hour before its window opens until the window ends; --force starts it at any
    other time, and the audit entry says it was forced and what it overrode.
    """
    config = running.load_settings()
    at = dt.datetime.now(dt.UTC)
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            day = gamedays.start(store, key, force=force, now=at)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        detail = gamedays.forced_start(day, at, force=force)
        _audit(store, action="gameday.start", day=day, detail=detail)
    typer.echo(f"started game day {day.name} ({day.id})")
    if detail.startswith("forced:"):
        _err.print(f"warning: {detail}", markup=False, soft_wrap=True)


def _due(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(f"--due {value!r}: write a date as YYYY-MM-DD, e.g. 2026-12-31") from None


@app.command("note")
def note(
    key: str = typer.Argument(..., help=_KEY_HELP),
    text: str = typer.Argument(..., help="What happened (one line)."),
    by: str = typer.Option(..., "--by", help="The participant writing it."),
    finding: bool = typer.Option(False, "--finding", help="A finding: an action item."),
    owner: str | None = typer.Option(None, "--owner", help="A finding's action owner."),
    due: str | None = typer.Option(None, "--due", help="A finding's due date (YYYY-MM-DD)."),
    ticket: str | None = typer.Option(None, "--ticket", help="A finding's ticket URL."),
) -> None:
    """Add a timestamped note (or, with --finding, a finding) to a running game day."""
    if not finding and (owner or due or ticket):
        raise _fail("--owner, --due and --ticket belong to a finding; add --finding")
    item = gamedays.Finding(owner=owner, due=_due(due), ticket_url=ticket) if finding else None
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            day = gamedays.get(store, key)
            added = gamedays.note(store, day.id, author=by, text=text, finding=item)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="gameday.note", day=day, detail=added.kind.value)
    typer.echo(f"added {added.kind.value} to {day.name} at {added.at:%H:%M:%S} UTC")


@app.command("gate")
def gate(
    key: str = typer.Argument(..., help=_KEY_HELP),
    position: int = typer.Argument(..., help="The drill whose gate this is (from 1)."),
    decision: gamedays.Decision = typer.Argument(..., help="go or no-go."),
    by: str = typer.Option(..., "--by", help="The participant deciding."),
) -> None:
    """Decide the gate before a drill: go or no-go."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            day = gamedays.gate(store, key, position=position, decision=decision, by=by)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="gameday.gate", day=day, detail=f"{position}: {decision.value}")
    typer.echo(f"gate of drill {position} in {day.name}: {decision.value} (by {by})")


@app.command("run")
def run(
    key: str = typer.Argument(..., help=_KEY_HELP),
    position: int = typer.Argument(..., help="The drill (from 1) to run; its gate said go."),
    by: str | None = typer.Option(
        None, "--by", help="The operator or facilitator running it (default: the OS user)."
    ),
) -> None:
    """Run a drill of a running game day here, in the foreground, as `stormdrill run` does.

    Its gate must have said go and it must not have run. The slot's verdict is the run's;
    the next `auto` gate then decides itself. Exit codes are `stormdrill run`'s (0 held,
    1 deviated, 2 aborted, 3 refused or invalid, 4 rollback failed, 5 unreachable).
    """
    who = by or audit.local_user()
    config = running.load_settings()
    reg = binding.make_registry()
    stop = threading.Event()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            started = gamedays.run_drill(
                store, key, position=position, by=who, config=config, reg=reg
            )
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        day = started.day
        _audit(
            store,
            action="gameday.run",
            day=day,
            detail=f"{position}: run {started.run.id} by {who}",
        )
        typer.echo(f"drill {position} of {day.name}: run {started.run.id} (by {who})")
        with running.user_errors(), running.signals_set(stop), running.live_timeline() as listen:
            done = gamedays.drive_drill(
                config, store, reg, started=started, stop=stop, listener=listen
            )
        running.summarise(done.driven.outcome, store)
        if done.driven.reports is not None:
            running.print_reports(done.driven.reports)
        typer.echo(_result_line(done))
    raise typer.Exit(done.driven.exit_code)


def _result_line(done: gamedays.DrivenDrill) -> str:
    slot, day = done.slot, done.day
    verdict = "no verdict yet" if slot.verdict is None else slot.verdict.value
    line = f"drill {slot.position} of {day.name}: {verdict}"
    following = next((s for s in day.drills if s.position == slot.position + 1), None)
    if following is not None and following.decision is not None:
        line += f"; gate of drill {following.position}: {following.decision.value}"
        line += f" ({following.decided_by})"
    absent = [p.person for p in day.participants if p.absent]
    if absent:
        line += f"; absent in the game day: {', '.join(absent)}"
    return line


@app.command("result")
def result(
    key: str = typer.Argument(..., help=_KEY_HELP),
    position: int = typer.Argument(..., help="The drill (from 1) whose result this is."),
    run_id: str | None = typer.Option(
        None, "--run", help="The drill's run (an id, a unique prefix or `latest`): its verdict."
    ),
    verdict: states.Verdict | None = typer.Option(
        None, "--verdict", help="The verdict without a run (a tabletop drill)."
    ),
) -> None:
    """Record a drill's result: its run's verdict (--run), or a verdict (--verdict).

    The next drill's `auto` gate then decides itself: go when this one held.
    """
    if (run_id is None) == (verdict is None):
        raise _fail("give exactly one of --run RUN (its verdict is used) or --verdict VERDICT")
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            found = runs.resolve_id(store, run_id) if run_id is not None else None
            chosen = store.get_run(found).verdict if found is not None else verdict
            if chosen is None:
                raise _fail(
                    f"run {found} has no verdict yet (it has not ended); record its result"
                    " once it has"
                )
            day = gamedays.set_drill_result(
                store, key, position=position, run_id=found, verdict=chosen
            )
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(
            store,
            action="gameday.result",
            day=day,
            detail=f"{position}: {chosen.value}" + (f" (run {found})" if found else ""),
        )
    typer.echo(f"drill {position} of {day.name}: {chosen.value}")


@app.command("close")
def close(
    key: str = typer.Argument(..., help=_KEY_HELP),
    verdict: str = typer.Option(..., "--verdict", help="The game day's verdict, a sentence."),
) -> None:
    """Close a running game day with its verdict."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            day = gamedays.close(store, key, verdict=verdict)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="gameday.close", day=day)
    typer.echo(f"closed game day {day.name} ({day.id}): {verdict}")


@app.command("report")
def report(
    key: str = typer.Argument(..., help=_KEY_HELP),
    fmt: str = typer.Option("md", "--format", help="md, html or json."),
    output: Path | None = typer.Option(
        None, "--output", help="Write the report to this file (0600) instead of stdout."
    ),
) -> None:
    """The game-day report: drills with their post-mortems and RTOs, findings and action
    items, notes, who took part, and the blameless lint of what people wrote."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        try:
            text = gameday_reports.render(
                store,
                key,
                fmt=fmt,
                links=gameday_report.Links(style=gameday_report.LinkStyle.FILES),
            )
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    redaction.private_folder(output.parent)
    redaction.write_private(output, text)
    _err.print(f"wrote {output}", markup=False)
