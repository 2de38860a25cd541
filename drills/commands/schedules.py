"""`stormdrill schedules list|apply|pause|resume|preview|fires|delete|approve|reject`.

`apply FILE` creates or updates the schedule of a Drill document's `schedule:` (named after
its `metadata.name`, owned by the local user); `preview ID|NAME|FILE` shows the next fire
times in the schedule's zone and in UTC, marking those a blackout will skip; `fires NAME`
lists what became of each nominal fire (`--format json`: a list of objects with exactly
`nominalFireTime`, `outcome`, `runId`, `reason`: a contract other tools read), also of a
deleted schedule (`delete NAME` keeps its fires: `drills.service.schedules.fires` says
which schedule a name shows). The fires themselves are made by the claim loop inside
`stormdrill serve`. A schedule for a protected
Environment awaits approval (its fires are skipped `awaiting-approval`): `approve NAME` by
someone other than who applied it (the local user, `$USER`), `reject NAME --reason …`;
the rules are `drills.service.schedules`'. Each change is written to the audit trail
(principal kind `local`, the API's action names). Mistakes exit 3 with one line naming the
fix.
"""

from __future__ import annotations

from pathlib import Path

import rich.box
import rich.console
import rich.table
import typer

from drills.commands import output, running
from drills.service import audit, schedules
from orchestrator import engine, journal
from scenarios import errors

app = typer.Typer(
    help="Schedules: drills that run by themselves (cron, interval or one-off).",
    no_args_is_help=True,
)

_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)

OutputFormat = output.Format
_KEY_HELP = "The schedule's name (its Drill's metadata.name) or id."


def _fail(message: str) -> typer.Exit:
    _err.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(engine.ExitCode.INVALID)


def _audit(store: journal.Journal, *, action: str, target: str) -> None:
    audit.record_cli(
        store,
        action=action,
        target=target,
        command=f"stormdrill schedules {action.removeprefix('schedule.')}",
    )


def _schedule_table(found: list[schedules.ScheduleView]) -> rich.table.Table:
    table = rich.table.Table(title="Schedules", box=rich.box.SIMPLE_HEAD, pad_edge=False)
    for column in ("name", "trigger", "environment", "next fire (UTC)", "state", "runs", "owner"):
        table.add_column(column, overflow="fold")
    for view in found:
        table.add_row(
            view.name,
            view.trigger,
            view.environment,
            f"{view.next_fire_time:%Y-%m-%d %H:%M:%S}" if view.next_fire_time else "ended",
            _state(view),
            str(view.runs_started),
            view.owner,
        )
    return table


def _state(view: schedules.ScheduleView) -> str:
    approval = view.approval
    if approval is not None and approval.rejected_by is not None:
        return f"rejected by {approval.rejected_by}"
    if approval is not None and view.awaiting_approval:
        return f"awaiting approval ({approval.missing} more)"
    return "paused" if view.paused else "active"


@app.command("list")
def list_command(
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """Every schedule: its trigger, next fire time, state and runs started."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        found = schedules.views_of(store)
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump([view.dump() for view in found], output_format), output_path)
        return
    output.emit_rich([_schedule_table(found)], output_path)


@app.command("apply")
def apply(
    path: Path = typer.Argument(..., help="A Drill document with a `schedule:`."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
) -> None:
    """Create or update the schedule of a Drill document (named after the Drill)."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            schedule = schedules.apply(config, store, path, owner=audit.local_user())
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="schedule.apply", target=f"schedules/{schedule.id}")
        view = schedules.view(store, schedule)
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump_view(view, output_format), None)
        return
    first = f"{view.next_fire_time:%Y-%m-%d %H:%M:%S} UTC" if view.next_fire_time else "never"
    typer.echo(f"applied schedule {view.name} ({view.id}): {view.trigger}; next fire {first}")
    if view.approval is not None and view.awaiting_approval:
        typer.echo(
            f"environment {view.environment} is protected: the schedule awaits"
            f" {view.approval.missing} approval(s) by someone other than"
            f" {view.approval.requester} (stormdrill schedules approve {view.name}); its"
            " fires are skipped until then (a Drill's own approvals: do not count here)"
        )


def _set_paused(key: str, *, paused: bool) -> None:
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            schedule = schedules.set_paused(store, key, paused=paused)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        verb = "pause" if paused else "resume"
        _audit(store, action=f"schedule.{verb}", target=f"schedules/{schedule.id}")
    typer.echo(f"{'paused' if paused else 'resumed'} schedule {schedule.name} ({schedule.id})")


@app.command("pause")
def pause(key: str = typer.Argument(..., help=_KEY_HELP)) -> None:
    """Pause a schedule: each fire is recorded as skipped (`paused`) until it is resumed."""
    _set_paused(key, paused=True)


@app.command("resume")
def resume(key: str = typer.Argument(..., help=_KEY_HELP)) -> None:
    """Resume a paused schedule at its next fire time."""
    _set_paused(key, paused=False)


@app.command("delete")
def delete(key: str = typer.Argument(..., help=_KEY_HELP)) -> None:
    """Delete a schedule (its fires are kept: `fires NAME` still lists them; its runs stay)."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            schedule = schedules.delete(store, key)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="schedule.delete", target=f"schedules/{schedule.id}")
    typer.echo(
        f"deleted schedule {schedule.name} ({schedule.id}); its fires are kept"
        f" (stormdrill schedules fires {schedule.name})"
    )


@app.command("preview")
def preview(
    key: str = typer.Argument(..., help=f"{_KEY_HELP} Or a Drill file not applied yet."),
    count: int = typer.Option(10, "-n", "--count", min=1, max=1000, help="How many fires."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """The next fire times, in the schedule's zone and in UTC, marking blackout skips."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            view = schedules.preview(config, store, key, n=count)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump_view(view, output_format), output_path)
        return
    table = rich.table.Table(
        title=f"Next fires of {view.name} ({view.timezone})", box=rich.box.SIMPLE_HEAD
    )
    table.add_column(view.timezone, no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    table.add_column("runs?", overflow="fold")
    for item in view.fires:
        table.add_row(
            item.local,
            f"{item.utc:%Y-%m-%d %H:%M:%S}",
            "yes" if item.skipped_by is None else f"skipped: {item.skipped_by}",
        )
    output.emit_rich([table], output_path)


@app.command("fires")
def fires(
    key: str = typer.Argument(..., help=_KEY_HELP),
    limit: int = typer.Option(50, "--limit", min=1, help="The newest this many fires."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """What became of each nominal fire: started (its run) or skipped (why), newest first
    (of a deleted schedule too)."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            found = schedules.fires(store, key, limit=limit)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump([fire.dump() for fire in found], output_format), output_path)
        return
    table = rich.table.Table(title=f"Fires of {key}", box=rich.box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("nominal (UTC)", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("run", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for fire in found:
        table.add_row(
            f"{fire.nominal_fire_time:%Y-%m-%d %H:%M:%S}",
            fire.outcome.value,
            fire.run_id or "-",
            fire.reason or "-",
        )
    output.emit_rich([table], output_path)


@app.command("approve")
def approve(
    key: str = typer.Argument(..., help=_KEY_HELP),
    comment: str = typer.Option("", "--comment", help="Why (kept with the approval)."),
    spec_hash: str | None = typer.Option(
        None, "--spec-hash", help="The spec you reviewed (`list --format json`: approval.specHash)."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
) -> None:
    """Approve a schedule for a protected environment (as the local user; not your own)."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            view = schedules.approve(
                store, key, by=audit.local_user(), comment=comment, spec_hash=spec_hash
            )
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="schedule.approve", target=f"schedules/{view.id}")
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump_view(view, output_format), None)
        return
    approval = view.approval
    assert approval is not None  # approve refuses a schedule that needs no approval
    if approval.approved:
        typer.echo(
            f"approved schedule {view.name} ({view.id}): approved by"
            f" {', '.join(approval.approved_by)}; its fires start"
        )
    else:
        typer.echo(
            f"approved schedule {view.name} ({view.id}): {approval.missing} more approval(s)"
            " needed before its fires start"
        )


@app.command("reject")
def reject(
    key: str = typer.Argument(..., help=_KEY_HELP),
    reason: str = typer.Option(..., "--reason", help="Why (shown in each skipped fire)."),
) -> None:
    """Reject a schedule: its fires are skipped until a changed Drill is applied."""
    if not reason.strip():
        raise _fail("--reason: say why the schedule is rejected (it is shown in its fires)")
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            view = schedules.reject(store, key, by=audit.local_user(), reason=reason)
        except errors.StormdrillError as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="schedule.reject", target=f"schedules/{view.id}")
    typer.echo(f"rejected schedule {view.name} ({view.id}); its fires are skipped")
