"""`stormdrill plan|run|abort|killswitch|recover|ack|actions` and `runs list|show`.

Exit codes of `run` (for CI): 0 completed and the hypothesis held; 1 the hypothesis
deviated (everything rolled back); 2 aborted (guardrail, probe, kill switch, operator);
3 invalid input or refused by guardrails at plan time; 4 rollback failed (faults may
remain — they are printed); 5 a system was unreachable or refused us (Kubernetes or AWS API,
the run store), so the drill could not be planned or run. User mistakes print
`file:line:column: field: message`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TypeVar

import rich.box
import rich.console
import rich.live
import rich.table
import rich.text
import typer

from drills import binding, settings
from drills import store as store_mod
from drills.commands import output
from drills.service import audit, runs, views
from drills.service import reports as run_reports
from orchestrator import engine, events, journal, mutations, planning, records, rollback, states
from orchestrator import errors as orchestrator_errors
from orchestrator import objectives as rto_objectives
from orchestrator.cmdb import errors as cmdb_errors
from reports import coverage
from scenarios import errors, quantities, secrets

app_runs = typer.Typer(help="List and show drill runs (newest first).", no_args_is_help=True)
app_killswitch = typer.Typer(help="Engage or release the global kill switch.", no_args_is_help=True)

_console = rich.console.Console(highlight=False)
_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)


OutputFormat = output.Format
"""`--format`: table, json or yaml (`drills.commands.output`)."""


def _settings() -> settings.Settings:
    return load_settings()


def load_settings() -> settings.Settings:
    """The settings from the environment and the project found upward from here.

    A project `stormdrill.toml` that cannot be used ends the command with one line naming
    it and exit 3 (invalid input).
    """
    try:
        return settings.Settings.from_env(os.environ)
    except settings.SettingsInvalid as exc:
        _err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(engine.ExitCode.INVALID) from None


def announce_store(config: settings.Settings) -> None:
    """Say on stderr which run store a command reads (`store: URL (origin)`, password masked).

    Said once the store is open (an unreachable store is named by its one error line).
    """
    _err.print(config.store_line(), markup=False, soft_wrap=True)


_RUN_ID_HELP = "A run id, a unique prefix of one (or of its random part), or `latest`."


def open_journal(config: settings.Settings) -> journal.Journal:
    """The run store named by settings (a SQLite file by default), for a command.

    A store that cannot be reached ends the command with one line naming it (password
    masked) and why, and exit code 5; a URL that is not usable at all is invalid input
    (exit 3). The opening itself is `drills.store.open_store`.
    """
    return store_guarded(config, lambda: store_mod.open_store(config))


_T = TypeVar("_T")


def store_guarded(config: settings.Settings, action: Callable[[], _T]) -> _T:
    """Run `action` on the store; a store error is one line on stderr (password masked) and
    exit 5 (unreachable) or 3 (any other store error: invalid input)."""
    try:
        return action()
    except orchestrator_errors.StoreUnreachable as exc:
        failure: orchestrator_errors.JournalError = exc
        code = engine.ExitCode.UNREACHABLE
    except orchestrator_errors.JournalError as exc:
        failure, code = exc, engine.ExitCode.INVALID
    message = settings.mask_url_password(config.database_url, " ".join(str(failure).split()))
    _err.print(f"error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _principal() -> str:
    """Who runs the command, as the CLI names them (read when a command runs)."""
    return audit.local_user()


def _audit(
    store: journal.Journal, *, action: str, target: str, command: str, **more: object
) -> None:
    """The audit entry of a CLI action that was done (as the API's, method `CLI`)."""
    detail = ", ".join(f"{key}={value}" for key, value in more.items() if value)
    audit.record_cli(
        store, action=action, target=target, command=f"stormdrill {command}", detail=detail
    )


def _trigger() -> engine.Trigger:
    """A CLI run is manual, or `ci` when the CI variable says it runs in CI."""
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    kind = engine.TriggerKind.CI if in_ci else engine.TriggerKind.MANUAL
    return engine.Trigger(kind=kind, principal=_principal())


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a user mistake plainly and exit 3 (invalid input), never with a traceback.

    A system that could not be reached or refused us (Kubernetes, AWS, the store) exits 5.
    """
    try:
        yield
    except errors.ScenarioInvalid as exc:
        for problem in exc.problems:
            _err.print(str(problem), markup=False, soft_wrap=True)
        raise typer.Exit(engine.ExitCode.INVALID) from None
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        _err.print(f"error: {secrets.redact(str(exc))}", markup=False, soft_wrap=True)
        if orchestrator_errors.is_infrastructure(exc):
            raise typer.Exit(engine.ExitCode.UNREACHABLE) from None
        raise typer.Exit(engine.ExitCode.INVALID) from None


_ENV_HELP = "Environment name or file (e.g. staging, ./sandbox/environment.yaml)."
_STRICT_HELP = "Refuse (exit 3) if any CMDB catalog entity has an error, instead of leaving it out."


def _print_notes(prepared: runs.Prepared) -> None:
    """Say on stderr what the CMDB refused (with `--strict`, `prepare` raised instead)."""
    for line in prepared.notes:
        _err.print(line, markup=False, soft_wrap=True)


_SET_HELP = "Set a scenario parameter: --set zone=us-east-1b (repeatable)."
_KUBECONFIG_HELP = "Kubeconfig file, over the Environment's (default: $KUBECONFIG, ~/.kube/config)."
_CONTEXT_HELP = "Kubeconfig context, over the Environment's (default: the current context)."
_PROFILE_HELP = "AWS profile, over the Environment's profile or role."


def _request(
    target: str,
    *,
    env: str | None,
    sets: list[str],
    approved_by: list[str],
    cmdb: list[Path],
    strict: bool,
    access: runs.AccessOverrides,
) -> runs.DrillRequest:
    """What `plan` and `run` ask the service for, from their shared options."""
    return runs.DrillRequest(
        target=target,
        environment=env,
        sets=tuple(sets),
        approvals=tuple(approved_by),
        cmdb=tuple(cmdb),
        strict=strict,
        access=access,
    )


def plan(
    target: str = typer.Argument(
        ..., help="A Drill file, a Scenario file or a bundled scenario name."
    ),
    env: str | None = typer.Option(None, "--env", help=_ENV_HELP),
    sets: list[str] = typer.Option([], "--set", help=_SET_HELP),
    approved_by: list[str] = typer.Option([], "--approved-by", help="An approver (user ref)."),
    cmdb: list[Path] = typer.Option([], "--cmdb", help="CMDB catalog file or folder."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    kubeconfig: Path | None = typer.Option(None, "--kubeconfig", help=_KUBECONFIG_HELP),
    context: str | None = typer.Option(None, "--context", help=_CONTEXT_HELP),
    profile: str | None = typer.Option(None, "--profile", help=_PROFILE_HELP),
) -> None:
    """Dry run: targets, counts vs limits, affected services, guardrail verdicts, rollback plan.

    Touches nothing. Exits 0 when the drill may run, 3 when guardrails refuse it, 5 when a
    system it must read (Kubernetes, AWS) is unreachable or refuses us.
    """
    config = _settings()
    request = _request(
        target,
        env=env,
        sets=sets,
        approved_by=approved_by,
        cmdb=cmdb,
        strict=strict,
        access=runs.AccessOverrides(kubeconfig=kubeconfig, context=context, profile=profile),
    )
    raise typer.Exit(
        show_planned(config, request, output_format=output_format, output_path=output_path)
    )


def show_planned(
    config: settings.Settings,
    request: runs.DrillRequest,
    *,
    output_format: OutputFormat,
    output_path: Path | None,
) -> int:
    """Plan `request` and present it (`plan`, `run --dry-run`); the exit code: 0 or 3 refused."""
    with user_errors():
        prepared = runs.prepare(config, request)
        _print_notes(prepared)
        with open_journal(config) as store:
            planned = runs.plan(config, store, binding.make_registry(), prepared)
    if planned.warning is not None:
        _err.print(f"warning: {planned.warning}", markup=False)
    if output_format is not OutputFormat.TABLE:
        shown_data = planned.masking.json(planned.view().dump())
        output.emit(output.dump(shown_data, output_format), output_path)
    else:
        with _console.capture() as shown:
            _show_touches(planned.touches)
            show_plan(planned.plan)
            _show_cells(planned.cells)
        output.emit(planned.masking.text(shown.get()), output_path)
    return engine.ExitCode.INVALID if planned.plan.refused else 0


def _show_touches(touched: runs.Touches | None) -> None:
    """The cluster and AWS account the drill will touch: the plan's first lines."""
    if touched is None:
        return
    if touched.kubernetes is not None:
        kube = touched.kubernetes
        _console.print(
            f"Kubernetes: {kube.server} (context {kube.context}, from {kube.source.describe()})",
            markup=False,
            soft_wrap=True,
        )
    if touched.aws is not None:
        aws = touched.aws
        _console.print(
            f"AWS: account {aws.account} as {aws.arn} (region {aws.region})",
            markup=False,
            soft_wrap=True,
        )


def _show_cells(cells: tuple[coverage.CountedCell, ...] | None) -> None:
    """Which coverage cells (service and failure mode) a run of this plan will count for."""
    if cells is None:
        return
    if not cells:
        _console.print("[bold]Coverage[/bold]: a run of this plan counts for no cell.")
        return
    table = rich.table.Table(title="Coverage cells a run will count for (service, mode)")
    for column in ("service", "mode", "distance"):
        table.add_column(column)
    for cell in cells:
        table.add_row(cell.service, cell.mode, str(cell.distance))
    _console.print(table)


def _show_abort_when(drill_plan: planning.Plan) -> None:
    """The `guardrails.abortWhen` conditions the run will watch (none: say so)."""
    spec = drill_plan.drill.scenario.spec.guardrails
    if not spec.abort_when:
        _console.print("[bold]Abort when[/bold]: no abortWhen condition (probes only deviate).")
        return
    _console.print("[bold]Abort when[/bold] (any of):")
    for condition in spec.abort_when:
        shown = views.AbortConditionView.from_condition(
            condition, time_scale=drill_plan.drill.time_scale
        )
        scaled = f" ({shown.scaled})" if shown.scaled else ""
        _console.print(f"  {shown.condition}{scaled}", markup=False)


def show_plan(drill_plan: planning.Plan) -> None:
    drill = drill_plan.drill
    _console.print(
        f"[bold]Plan[/bold] {drill.scenario.metadata.name} on {drill.environment.metadata.name}"
        f" (time scale {drill.time_scale:g})"
    )
    targets = rich.table.Table(title="Targets (resolved once, frozen)")
    for column in ("target", "kind", "selected", "limit", "refs"):
        targets.add_column(column, overflow="fold")
    for name, sel in drill_plan.selections.items():
        spec = drill.scenario.spec.targets[name]
        limit = str(spec.blast_radius.max) if spec.blast_radius else "-"
        targets.add_row(
            name,
            sel.kind,
            f"{sel.count} of {sel.population}",
            limit,
            ", ".join(r.name for r in sel.refs),
        )
    _console.print(targets)
    if drill_plan.impact is not None:
        services = rich.table.Table(title="Affected CMDB services (targeted and downstream)")
        shown = [item.service.ref.display for item in drill_plan.impact.services]
        # refs are copied into `cmdb show`: never cut or folded, shortest unambiguous form
        services.add_column("service", no_wrap=True, min_width=max(map(len, shown), default=7))
        for column in ("tier", "owner", "distance"):
            services.add_column(column, overflow="fold")
        for item, ref in zip(drill_plan.impact.services, shown, strict=True):
            owner = item.service.owner.display if item.service.owner else "-"
            services.add_row(ref, str(item.service.tier), owner, str(item.distance))
        _console.print(services)
    verdicts = rich.table.Table(title="Guardrails")
    verdicts.add_column("rule")
    verdicts.add_column("verdict")
    verdicts.add_column("message", overflow="fold")
    for v in drill_plan.verdicts:
        verdicts.add_row(v.rule, "[green]ok[/green]" if v.ok else "[red]REFUSED[/red]", v.message)
    _console.print(verdicts)
    _show_abort_when(drill_plan)
    steps = rich.table.Table(title="Steps and planned mutations")
    steps.add_column("step")
    steps.add_column("kind")
    steps.add_column("mutations", overflow="fold")
    for sp in drill_plan.steps:
        steps.add_row(
            sp.step.name,
            sp.step.kind.value,
            "; ".join(planning.describe_mutation(m) for m in sp.mutations),
        )
    _console.print(steps)
    rollback = drill_plan.rollback_plan()
    _console.print(f"[bold]Rollback plan[/bold] ({len(rollback)} undo(s), newest first):")
    for m in rollback:
        _console.print(f"  undo {m.action} on {m.target}", markup=False)
    _console.print("[red]REFUSED[/red]" if drill_plan.refused else "[green]May run.[/green]")


def run(
    target: str = typer.Argument(
        ..., help="A Drill file, a Scenario file or a bundled scenario name."
    ),
    env: str | None = typer.Option(None, "--env", help=_ENV_HELP),
    sets: list[str] = typer.Option([], "--set", help=_SET_HELP),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only plan it: the same as `stormdrill plan` (output, exit code)."
    ),
    approved_by: list[str] = typer.Option([], "--approved-by", help="An approver (user ref)."),
    cmdb: list[Path] = typer.Option([], "--cmdb", help="CMDB catalog file or folder."),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    kubeconfig: Path | None = typer.Option(None, "--kubeconfig", help=_KUBECONFIG_HELP),
    context: str | None = typer.Option(None, "--context", help=_CONTEXT_HELP),
    profile: str | None = typer.Option(None, "--profile", help=_PROFILE_HELP),
    junit_path: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
    auto_ack: str | None = typer.Option(
        None, "--auto-ack", help="Acknowledge manual steps automatically after DURATION (e.g. 2s)."
    ),
    stability: str | None = typer.Option(
        None,
        "--stability-window",
        help="How long probes must pass to call it recovered (real-world).",
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE,
        "--format",
        help="table: the live view; json or yaml: the finished run (as `runs show`) on stdout,"
        " the timeline on stderr.",
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """Run a drill: live view of steps, probes and mutations; Ctrl-C aborts and rolls back."""
    config = _settings()
    request = _request(
        target,
        env=env,
        sets=sets,
        approved_by=approved_by,
        cmdb=cmdb,
        strict=strict,
        access=runs.AccessOverrides(kubeconfig=kubeconfig, context=context, profile=profile),
    )
    if dry_run:
        plan_exit = show_planned(
            config, request, output_format=output_format, output_path=output_path
        )
        raise typer.Exit(plan_exit)
    machine = output_format is not OutputFormat.TABLE
    with user_errors():
        prepared = runs.prepare(config, request)
        _print_notes(prepared)
        engine_config = engine.EngineConfig(auto_ack_s=_seconds(auto_ack, "--auto-ack"))
        if stability is not None:
            engine_config = dataclasses.replace(
                engine_config,
                stability_window_s=_seconds_required(stability, "--stability-window"),
            )
    if not yes:
        _confirm(prepared.drill)
    stop = threading.Event()
    with open_journal(config) as store, signals_set(stop), _full_width():
        with live_timeline(to_stderr=machine) as listen:
            driven = runs.start(
                config,
                store,
                binding.make_registry(),
                prepared,
                trigger=_trigger(),
                engine_config=engine_config,
                stop=stop,
                listener=listen,
                junit_path=junit_path,
            )
        _audit(
            store,
            action="run.start",
            target=f"runs/{driven.run.id}",
            command="run",
            environment=driven.run.environment,
            state=driven.run.state.value,
        )
        shown = _err if machine else _console
        summarise(driven.outcome, store, console=shown)
        if driven.reports is not None:
            print_reports(driven.reports, console=shown)
        if machine:
            detail = runs.show(store, driven.run.id)
            output.emit(output.dump_view(detail.view(), output_format), output_path)
    raise typer.Exit(driven.exit_code)


def _confirm(drill: planning.DrillInput) -> None:
    """Ask before a run; without a terminal on stdin, never ask: exit 3, asking for `--yes`.

    An explicit "no" at the prompt exits 2 (aborted by the operator), as before.
    """
    if sys.stdin is None or not sys.stdin.isatty():
        _err.print("confirmation needed: pass --yes", markup=False)
        raise typer.Exit(engine.ExitCode.INVALID)
    if not typer.confirm(
        f"Run {drill.scenario.metadata.name} against {drill.environment.metadata.name}?"
    ):
        raise typer.Exit(engine.ExitCode.ABORTED)


@contextlib.contextmanager
def live_timeline(*, to_stderr: bool = False) -> Iterator[engine.Listener]:
    """Where a run's events go as they happen.

    On a terminal, today's live view (`_LiveView`, the last lines, styled). Elsewhere (CI,
    `tee`, a file) — and on stderr whenever stdout carries `--format json|yaml` — one plain
    line per event, written and flushed at once, never wrapped, without markup, so nothing
    is held back while a manual step waits.
    """
    if to_stderr or not _console.is_terminal:

        def plain(kind: str, message: str, _data: Mapping[str, mutations.JsonValue]) -> None:
            typer.echo(plain_line(kind, message), err=to_stderr)  # click.echo flushes

        yield plain
        return
    view = _LiveView()
    with rich.live.Live(
        view.render(), console=_console, refresh_per_second=8, transient=False
    ) as live:

        def listen(kind: str, message: str, _data: Mapping[str, mutations.JsonValue]) -> None:
            view.add(kind, message)
            live.update(view.render())

        yield listen


def plain_line(kind: str, message: str) -> str:
    """One timeline event as a plain line: the kind right-aligned, as the live view shows it."""
    return f"{kind:>9} {message}"


@contextlib.contextmanager
def _full_width() -> Iterator[None]:
    """Off a terminal, lines the console prints are not wrapped (a file has no width)."""
    if _console.is_terminal:
        yield
        return
    before = _console.soft_wrap
    _console.soft_wrap = True
    try:
        yield
    finally:
        _console.soft_wrap = before


def _seconds(raw: str | None, flag: str) -> float | None:
    return None if raw is None else _seconds_required(raw, flag)


def _seconds_required(raw: str, flag: str) -> float:
    try:
        return quantities.Duration.parse(raw).seconds
    except ValueError as exc:
        raise binding.BindingError(f"{flag} {raw!r}: {exc}") from None


@contextlib.contextmanager
def signals_set(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop` (the engine aborts and rolls back); restored afterwards."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


LIVE_STYLES: Mapping[str, str] = {
    events.EventKind.STATE: "bold cyan",
    events.EventKind.MUTATION: "yellow",
    events.EventKind.REVERT: "magenta",
    events.EventKind.PROBE: "dim",
    events.EventKind.GUARDRAIL: "blue",
    events.EventKind.ABORT: "bold red",
    events.EventKind.ERROR: "red",
    events.EventKind.DEVIATION: "red",
    events.EventKind.MANUAL: "bold green",
    events.EventKind.ACK: "green",
}


class _LiveView:
    """The last lines of the run's timeline, styled by kind."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def add(self, kind: str, message: str) -> None:
        self.lines.append((kind, message))

    def render(self) -> rich.text.Text:
        text = rich.text.Text()
        for kind, message in self.lines[-24:]:
            text.append(f"{kind:>9} ", style="dim")
            text.append(message + "\n", style=LIVE_STYLES.get(kind, ""))
        return text


def summarise(
    outcome: engine.RunOutcome,
    store: journal.Journal,
    *,
    console: rich.console.Console = _console,
) -> None:
    run_ = outcome.run
    colour = (
        "green" if outcome.exit_code == 0 else "yellow" if outcome.exit_code in (1, 2) else "red"
    )
    verdict = run_.verdict.value if run_.verdict else "-"
    console.print(
        f"[bold {colour}]{run_.state.value.upper()}[/bold {colour}] verdict={verdict}"
        f" run={run_.id} exit={outcome.exit_code}"
    )
    console.print(f"reason: {run_.reason}", markup=False)
    objectives = run_.record.objectives
    if objectives is not None:
        console.print(f"achieved RTO: {_rto_line(objectives)}", markup=False)
    for entry, error in outcome.leftovers:
        _err.print(
            f"LEFTOVER: {rollback.describe_leftover(entry, error)}", markup=False, soft_wrap=True
        )
    if outcome.leftovers:
        _err.print(
            f"{len(outcome.leftovers)} fault(s) may still be in effect; they stay in the journal."
            f" Fix the cause, then run `stormdrill recover --run {run_.id}`.",
            markup=False,
            soft_wrap=True,
        )
    console.print(f"run record: {store.url} (stormdrill runs show {run_.id})", markup=False)


def _rto_line(objectives: records.Objectives) -> str:
    """`12 s (target 6 s at time scale 0.02; about 10 min in a real outage, objective 5 min)`.

    Rounded for people (`objectives.human_duration`); the real-world figure beside the scaled
    one when the run was scaled.
    """
    human = rto_objectives.human_duration
    achieved = objectives.achieved_rto_s
    if achieved is None:
        return f"not observed (target {human(objectives.scaled_target_rto_s)})"
    line = f"{human(achieved)} (target {human(objectives.scaled_target_rto_s)}"
    if objectives.time_scale in (None, 1):
        return line + ")"
    line += f" at time scale {objectives.time_scale:g}"
    if objectives.real_world_rto_s is not None:
        line += f"; about {human(objectives.real_world_rto_s)} in a real outage"
        if objectives.target_rto_s is not None:
            line += f", objective {human(objectives.target_rto_s)}"
    return line + ")"


def print_reports(
    written: run_reports.RunReports, *, console: rich.console.Console = _console
) -> None:
    """Say where a run's reports went (and, on stderr, what they lack)."""
    if written.warning is not None:
        _err.print(written.warning, markup=False, soft_wrap=True)
    console.print(f"post-mortem: {written.postmortem}", markup=False)
    if written.junit is not None:
        console.print(f"JUnit XML: {written.junit}")


def abort(run_id: str = typer.Argument(..., help="The run to abort. " + _RUN_ID_HELP)) -> None:
    """Ask a running drill to abort (it stops injecting, rolls back and verifies)."""
    with open_journal(_settings()) as store, user_errors():
        resolved = runs.resolve_id(store, run_id)
        try:
            runs.abort(store, resolved, source="the CLI")
        except runs.RunEnded as exc:
            _err.print(f"run {resolved} already ended ({exc.run.state.value})")
            raise typer.Exit(1) from None
        _audit(store, action="run.abort", target=f"runs/{resolved}", command="abort")
    _console.print(f"abort requested for {resolved}")


@app_killswitch.command("on")
def killswitch_on(reason: str = typer.Option("engaged from the CLI", "--reason")) -> None:
    """Engage: running drills abort and roll back; no drill may start."""
    with open_journal(_settings()) as store:
        runs.killswitch(store, engaged=True, by=_principal(), reason=reason)
        _audit(
            store,
            action="killswitch.engage",
            target="killswitch",
            command="killswitch on",
            reason=reason,
        )
    _console.print("[bold red]kill switch ENGAGED[/bold red]")


@app_killswitch.command("off")
def killswitch_off() -> None:
    """Release the kill switch."""
    with open_journal(_settings()) as store:
        runs.killswitch(store, engaged=False, by=_principal(), reason="released")
        _audit(store, action="killswitch.release", target="killswitch", command="killswitch off")
    _console.print("kill switch released")


def recover(
    env: str | None = typer.Option(None, "--env", help="Also sweep this environment's markers."),
    run_id: str | None = typer.Option(None, "--run", help="Recover only this run. " + _RUN_ID_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Sweep: report, do not heal."),
    kubeconfig: Path | None = typer.Option(None, "--kubeconfig", help=_KUBECONFIG_HELP),
    context: str | None = typer.Option(None, "--context", help=_CONTEXT_HELP),
    profile: str | None = typer.Option(None, "--profile", help=_PROFILE_HELP),
) -> None:
    """Roll back every unfinished run whose orchestrator died; with --env, sweep markers too."""
    config = _settings()
    reg = binding.make_registry()
    exit_code = 0
    with open_journal(config) as store, user_errors():
        only = runs.resolve_id(store, run_id) if run_id else None
        recovered = runs.recover(config, store, reg, run_id=only)
        for done in recovered:
            item = done.item
            _console.print(
                f"run {item.run_id}: {item.found_state.value} -> {item.final_state.value};"
                f" reverted {item.reverted}; {item.message}",
                markup=False,
            )
            for failure in item.failed:
                _err.print(f"LEFTOVER: {failure}", markup=False, soft_wrap=True)
            if item.failed:
                exit_code = engine.ExitCode.ROLLBACK_FAILED
            if done.reports is not None:
                print_reports(done.reports)
        if not recovered:
            _console.print("no unfinished runs to recover")
        if env is not None:
            findings = runs.sweep(
                store,
                reg,
                environment=env,
                dry_run=dry_run,
                access=runs.AccessOverrides(
                    kubeconfig=kubeconfig, context=context, profile=profile
                ),
            )
            for finding in findings:
                verb = "healed" if finding.healed else "left"
                _console.print(
                    f"marker on {finding.target} (run {finding.run_id}): {verb}: {finding.message}",
                    markup=False,
                )
            _console.print(f"sweep: {len(findings)} marker(s) found")
    raise typer.Exit(exit_code)


def ack(
    run_id: str = typer.Argument(..., help=_RUN_ID_HELP),
    step: str = typer.Argument(...),
    evidence: str = typer.Option(..., "--evidence", help="What was done (text, URL or choice)."),
    by: str | None = typer.Option(None, "--by", help="Who acknowledges (default: $USER)."),
) -> None:
    """Acknowledge a manual step with evidence (the drill continues).

    Refused (exit 3) when `--by` is absent for the drill or not among the people the step
    is assigned to (its team, or its on-call at the time), as recorded when it started.
    """
    with open_journal(_settings()) as store, user_errors():
        resolved = runs.resolve_id(store, run_id)
        runs.ack(store, resolved, step, by=by or _principal(), evidence=evidence)
        _audit(
            store,
            action="run.ack",
            target=f"runs/{resolved}/steps/{step}",
            command="ack",
            by=by,
        )
    _console.print(f"acknowledged {step} of {resolved}")


def actions(
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """List every action and probe with its parameters (`--format json` for machines)."""
    reg = binding.make_registry()
    if output_format is not OutputFormat.TABLE:
        output.emit(
            output.dump(
                {
                    "actions": [
                        {
                            "name": a.name,
                            "description": a.description,
                            "targetKinds": sorted(a.target_kinds),
                            "revertible": a.revertible,
                            "destructive": a.destructive,
                            "params": a.params_schema,
                        }
                        for a in reg.describe_actions()
                    ],
                    "probes": [
                        {"name": p.name, "description": p.description, "params": p.params_schema}
                        for p in reg.describe_probes()
                    ],
                },
                output_format,
            ),
            output_path,
        )
        return
    table = rich.table.Table(title="Actions")
    for column in ("name", "targets", "revertible", "destructive", "parameters"):
        table.add_column(column, overflow="fold")
    for action in reg.describe_actions():
        props = action.params_schema.get("properties", {})
        table.add_row(
            action.name,
            ", ".join(sorted(action.target_kinds)) or "-",
            "yes" if action.revertible else "no",
            "yes" if action.destructive else "no",
            ", ".join(sorted(props)) if isinstance(props, Mapping) else "",
        )
    _console.print(table)
    probes_table = rich.table.Table(title="Probes")
    probes_table.add_column("name")
    probes_table.add_column("parameters", overflow="fold")
    for probe in reg.describe_probes():
        props = probe.params_schema.get("properties", {})
        probes_table.add_row(
            probe.name, ", ".join(sorted(props)) if isinstance(props, Mapping) else ""
        )
    output.emit_rich((table, probes_table), output_path)


@app_runs.command("list")
def runs_list(
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many runs."),
    state: list[states.RunState] = typer.Option(
        [], "--state", help="Only runs in this state (repeatable)."
    ),
    scenario: str | None = typer.Option(None, "--scenario", help="Only runs of this scenario."),
    env: str | None = typer.Option(None, "--env", help="Only runs on this Environment (name)."),
    since: str | None = typer.Option(
        None, "--since", help="Only runs started since: a duration back (2h, 7d) or an ISO date."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """Runs, newest first (full ids: `ack`, `abort`, `report` take them, a prefix or `latest`)."""
    config = _settings()
    with user_errors():
        where = runs.RunFilter(
            state=frozenset(state) or None,
            scenario=scenario,
            environment=env,
            since=runs.parse_since(since, now=datetime.now(UTC)) if since else None,
        )
    with open_journal(config) as store:
        announce_store(config)
        found = runs.list_runs(store, where=where, limit=limit).runs
        short = runs.short_ids(store, found)
    if output_format is not OutputFormat.TABLE:
        listed = [views.RunView.from_run(r).dump() for r in found]
        output.emit(output.dump(listed, output_format), output_path)
        return
    table = rich.table.Table(
        title="Runs (newest first; run: a short id every command takes)",
        box=rich.box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("run", no_wrap=True, min_width=max(map(len, short.values()), default=3))
    # names people type back into `--scenario`/`--env`: never folded or cut
    table.add_column(
        "scenario", no_wrap=True, min_width=max((len(r.scenario) for r in found), default=8)
    )
    table.add_column(
        "env", no_wrap=True, min_width=max((len(r.environment) for r in found), default=3)
    )
    table.add_column("state", no_wrap=True)
    table.add_column("verdict", overflow="fold")
    table.add_column("started (UTC)", overflow="fold")
    for r in found:
        table.add_row(
            short[r.id],
            r.scenario,
            r.environment,
            r.state.value,
            r.verdict.value if r.verdict else "-",
            r.started_at.strftime("%Y-%m-%d %H:%M"),
        )
    output.emit_rich([table], output_path)


@app_runs.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help=_RUN_ID_HELP),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """One run: its record, timeline and journal."""
    config = _settings()
    with open_journal(config) as store, user_errors():
        announce_store(config)
        detail = runs.show(store, runs.resolve_id(store, run_id))
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump_view(detail.view(), output_format), output_path)
        return
    r = detail.run
    lines = [
        rich.text.Text.assemble(
            (r.id, "bold"), f" {r.scenario} on {r.environment}: {r.state.value} ({r.reason})"
        ),
        *(rich.text.Text(f"{e.at:%H:%M:%S.%f} {e.kind:>10} {e.message}") for e in detail.events),
        *(
            rich.text.Text(f"#{entry.seq} {entry.action} on {entry.target}: {entry.state.value}")
            for entry in detail.entries
        ),
    ]
    output.emit_rich(lines, output_path)
