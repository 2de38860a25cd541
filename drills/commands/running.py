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
import enum
import json
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType

import rich.console
import rich.live
import rich.table
import rich.text
import typer

from drills import binding, settings
from orchestrator import engine, journal, mutations, planning, recovery, rollback, states
from orchestrator import errors as orchestrator_errors
from orchestrator.cmdb import backstage
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from orchestrator.providers.people import assignees
from reports import coverage, junit, writing
from scenarios import errors, loading, quantities, secrets

app_runs = typer.Typer(help="List and show drill runs (newest first).", no_args_is_help=True)
app_killswitch = typer.Typer(help="Engage or release the global kill switch.", no_args_is_help=True)

_console = rich.console.Console(highlight=False)
_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


def _settings() -> settings.Settings:
    return settings.Settings.from_env(os.environ)


def open_journal(config: settings.Settings) -> journal.Journal:
    """The run store named by settings (a SQLite file by default).

    Every command opens the store here. A store that cannot be reached ends the command
    with one line naming it (password masked) and why, and exit code 5; a URL that is not
    usable at all is invalid input (exit 3).
    """
    url = config.database_url
    try:
        if url.startswith("sqlite:///"):
            folder = Path(url.removeprefix("sqlite:///")).parent
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the store is private
        return journal.open_store(url)
    except OSError as exc:
        reason = f"{type(exc).__name__}: {exc.strerror or exc}"
        failure: orchestrator_errors.JournalError = orchestrator_errors.StoreUnreachable(
            url=settings.mask_url_password(url), reason=reason
        )
        code = engine.ExitCode.UNREACHABLE
    except orchestrator_errors.StoreUnreachable as exc:
        failure, code = exc, engine.ExitCode.UNREACHABLE
    except orchestrator_errors.JournalError as exc:
        failure, code = exc, engine.ExitCode.INVALID
    message = settings.mask_url_password(url, " ".join(str(failure).split()))
    _err.print(f"error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
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


def _report_catalog(catalog: cmdb_models.Catalog | None, *, strict: bool) -> None:
    """Say on stderr what the CMDB refused; with `strict`, raise `CatalogInvalid` instead."""
    for line in backstage.refusal_lines(catalog, strict=strict):
        _err.print(line, markup=False, soft_wrap=True)


_SET_HELP = "Set a scenario parameter: --set zone=us-east-1b (repeatable)."


def plan(
    target: str = typer.Argument(
        ..., help="A Drill file, a Scenario file or a bundled scenario name."
    ),
    env: str | None = typer.Option(None, "--env", help=_ENV_HELP),
    sets: list[str] = typer.Option([], "--set", help=_SET_HELP),
    approved_by: list[str] = typer.Option([], "--approved-by", help="An approver (user ref)."),
    cmdb: list[Path] = typer.Option([], "--cmdb", help="CMDB catalog file or folder."),
    output_format: OutputFormat = typer.Option(OutputFormat.TABLE, "--format"),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """Dry run: targets, counts vs limits, affected services, guardrail verdicts, rollback plan.

    Touches nothing. Exits 0 when the drill may run, 3 when guardrails refuse it, 5 when a
    system it must read (Kubernetes, AWS) is unreachable or refuses us.
    """
    config = _settings()
    with _user_errors():
        bound = binding.bind(target, env=env, sets=sets, approvals=approved_by)
        catalog = binding.load_catalog(bound.drill.environment, explicit=cmdb, env_vars=os.environ)
        _report_catalog(catalog, strict=strict)
        with open_journal(config) as store:
            eng = binding.make_engine(
                store=store,
                catalog=catalog,
                config=engine.EngineConfig(),
                killswitch_file=config.killswitch_file,
            )
            drill_plan = eng.plan(bound.drill)
    cells = coverage.plan_cells(drill_plan, catalog)
    warning = coverage.reach_warning(drill_plan, catalog)
    if warning is not None:
        _err.print(f"warning: {warning}", markup=False)
    values, keys = engine.secret_values(bound.drill)
    masking = secrets.Redactor().with_secrets(values, keys=keys)
    if output_format is OutputFormat.JSON:
        body = plan_json(drill_plan)
        body["coverage"] = None if cells is None else [dataclasses.asdict(c) for c in cells]
        typer.echo(json.dumps(masking.json(body), indent=2))
    else:
        with _console.capture() as shown:
            show_plan(drill_plan)
            _show_cells(cells)
        typer.echo(masking.text(shown.get()), nl=False)
    raise typer.Exit(engine.ExitCode.INVALID if drill_plan.refused else 0)


def _show_cells(cells: list[coverage.CountedCell] | None) -> None:
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


def plan_json(drill_plan: planning.Plan) -> dict[str, mutations.JsonValue]:
    """The plan as JSON (for machines and the API)."""
    return {
        "scenario": drill_plan.drill.scenario.metadata.name,
        "environment": drill_plan.drill.environment.metadata.name,
        "refused": drill_plan.refused,
        "targets": {
            name: {
                "kind": sel.kind,
                "count": sel.count,
                "population": sel.population,
                "limit": _limit(drill_plan, name),
                "refs": [str(r) for r in sel.refs],
                "excluded": [f"{r}: {why}" for r, why in sel.excluded],
            }
            for name, sel in drill_plan.selections.items()
        },
        "guardrails": [
            {"rule": v.rule, "ok": v.ok, "message": v.message, "subject": v.subject}
            for v in drill_plan.verdicts
        ],
        "services": [
            {"ref": str(s.service.ref), "tier": s.service.tier, "distance": s.distance}
            for s in (drill_plan.impact.services if drill_plan.impact else ())
        ],
        "rollback": [
            {"step": m.step, "action": m.action, "target": str(m.target)}
            for m in drill_plan.rollback_plan()
        ],
    }


def _limit(drill_plan: planning.Plan, target: str) -> str | None:
    """The target's `blastRadius.max` as written (None: no limit set)."""
    spec = drill_plan.drill.scenario.spec.targets.get(target)
    radius = spec.blast_radius if spec is not None else None
    return str(radius.max) if radius is not None else None


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
        for column in ("service", "tier", "owner", "distance"):
            services.add_column(column)
        for item in drill_plan.impact.services:
            owner = str(item.service.owner) if item.service.owner else "-"
            services.add_row(
                str(item.service.ref), str(item.service.tier), owner, str(item.distance)
            )
        _console.print(services)
    verdicts = rich.table.Table(title="Guardrails")
    verdicts.add_column("rule")
    verdicts.add_column("verdict")
    verdicts.add_column("message", overflow="fold")
    for v in drill_plan.verdicts:
        verdicts.add_row(v.rule, "[green]ok[/green]" if v.ok else "[red]REFUSED[/red]", v.message)
    _console.print(verdicts)
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
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    approved_by: list[str] = typer.Option([], "--approved-by", help="An approver (user ref)."),
    cmdb: list[Path] = typer.Option([], "--cmdb", help="CMDB catalog file or folder."),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    junit_path: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
    auto_ack: str | None = typer.Option(
        None, "--auto-ack", help="Acknowledge manual steps automatically after DURATION (e.g. 2s)."
    ),
    stability: str | None = typer.Option(
        None,
        "--stability-window",
        help="How long probes must pass to call it recovered (real-world).",
    ),
) -> None:
    """Run a drill: live view of steps, probes and mutations; Ctrl-C aborts and rolls back."""
    config = _settings()
    with _user_errors():
        bound = binding.bind(target, env=env, sets=sets, approvals=approved_by)
        catalog = binding.load_catalog(bound.drill.environment, explicit=cmdb, env_vars=os.environ)
        _report_catalog(catalog, strict=strict)
        engine_config = engine.EngineConfig(auto_ack_s=_seconds(auto_ack, "--auto-ack"))
        if stability is not None:
            engine_config = dataclasses.replace(
                engine_config,
                stability_window_s=_seconds_required(stability, "--stability-window"),
            )
    if not yes and not typer.confirm(
        f"Run {bound.drill.scenario.metadata.name} against {bound.drill.environment.metadata.name}?"
    ):
        raise typer.Exit(engine.ExitCode.ABORTED)
    stop = threading.Event()
    with open_journal(config) as store, _signals_set(stop):
        eng = binding.make_engine(
            store=store,
            catalog=catalog,
            config=engine_config,
            killswitch_file=config.killswitch_file,
        )
        view = _LiveView()
        with rich.live.Live(
            view.render(), console=_console, refresh_per_second=8, transient=False
        ) as live:

            def listen(kind: str, message: str, _data: Mapping[str, mutations.JsonValue]) -> None:
                view.add(kind, message)
                live.update(view.render())

            outcome = eng.run(bound.drill, stop=stop, listener=listen)
        summarise(outcome, store)
        write_reports(outcome, store=store, catalog=catalog, reports_dir=config.reports_dir)
        if junit_path is not None:
            junit.write(
                junit_path,
                run=outcome.run,
                events=store.events(outcome.run.id),
                scenario=bound.drill.scenario,
            )
            _console.print(f"JUnit XML: {junit_path}")
    raise typer.Exit(outcome.exit_code)


def _seconds(raw: str | None, flag: str) -> float | None:
    return None if raw is None else _seconds_required(raw, flag)


def _seconds_required(raw: str, flag: str) -> float:
    try:
        return quantities.Duration.parse(raw).seconds
    except ValueError as exc:
        raise binding.BindingError(f"{flag} {raw!r}: {exc}") from None


@contextlib.contextmanager
def _signals_set(stop: threading.Event) -> Iterator[None]:
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
    "state": "bold cyan",
    "mutation": "yellow",
    "revert": "magenta",
    "probe": "dim",
    "guardrail": "blue",
    "abort": "bold red",
    "error": "red",
    "deviation": "red",
    "manual": "bold green",
    "ack": "green",
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


def summarise(outcome: engine.RunOutcome, store: journal.Journal) -> None:
    run_ = outcome.run
    colour = (
        "green" if outcome.exit_code == 0 else "yellow" if outcome.exit_code in (1, 2) else "red"
    )
    verdict = run_.verdict.value if run_.verdict else "-"
    _console.print(
        f"[bold {colour}]{run_.state.value.upper()}[/bold {colour}] verdict={verdict}"
        f" run={run_.id} exit={outcome.exit_code}"
    )
    _console.print(f"reason: {run_.reason}", markup=False)
    objectives = run_.record.get("objectives")
    if isinstance(objectives, Mapping):
        _console.print(
            f"achieved RTO: {objectives.get('achieved_rto_s')} s"
            f" (target {objectives.get('scaled_target_rto_s')} s"
            f" at time scale {objectives.get('time_scale')})",
            markup=False,
        )
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
    _console.print(f"run record: {store.url} (stormdrill runs show {run_.id})", markup=False)


def write_reports(
    outcome: engine.RunOutcome,
    *,
    store: journal.Journal,
    catalog: cmdb_models.Catalog | None,
    reports_dir: Path,
) -> None:
    """Every finished run gets its post-mortem (md, html, json) and JUnit under reports_dir."""
    write_run_reports(outcome.run, store=store, catalog=catalog, reports_dir=reports_dir)


def write_run_reports(
    run_: states.Run,
    *,
    store: journal.Journal,
    catalog: cmdb_models.Catalog | None,
    reports_dir: Path,
) -> None:
    """Write `run_`'s reports (see `write_reports`) and say where the post-mortem went."""
    written = writing.write_for_run(run_, store, catalog, reports_dir)
    _console.print(f"post-mortem: {written.markdown}", markup=False)


def _write_recovered_reports(
    store: journal.Journal, run_id: states.RunId, *, reports_dir: Path
) -> None:
    """Reports for a run `recover` finished; its CMDB comes from its recorded Environment.

    A run recovery could not finish (its environment unreadable) gets none yet: the next
    `recover` that finishes it writes them. An unreadable CMDB only drops the CMDB's part.
    """
    run_ = store.get_run(run_id)
    if not run_.terminal:
        return
    catalog: cmdb_models.Catalog | None = None
    try:
        environment = loading.load_environment(Path(run_.environment_source)).model
        catalog = binding.load_catalog(environment, explicit=[], env_vars=os.environ)
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        _err.print(
            f"run {run_id}: reports without the CMDB ({exc}); "
            "rebuild them with `stormdrill report RUN --cmdb PATH`",
            markup=False,
            soft_wrap=True,
        )
    write_run_reports(run_, store=store, catalog=catalog, reports_dir=reports_dir)


def abort(run_id: str = typer.Argument(..., help="The run to abort.")) -> None:
    """Ask a running drill to abort (it stops injecting, rolls back and verifies)."""
    with open_journal(_settings()) as store, _user_errors():
        run_ = store.get_run(states.RunId(run_id))
        if run_.terminal:
            _err.print(f"run {run_id} already ended ({run_.state.value})")
            raise typer.Exit(1)
        store.append_event(
            run_.id, kind="abort-request", message="abort requested from the CLI", data={}
        )
    _console.print(f"abort requested for {run_id}")


@app_killswitch.command("on")
def killswitch_on(reason: str = typer.Option("engaged from the CLI", "--reason")) -> None:
    """Engage: running drills abort and roll back; no drill may start."""
    with open_journal(_settings()) as store:
        store.set_killswitch(engaged=True, by=os.environ.get("USER", "cli"), reason=reason)
    _console.print("[bold red]kill switch ENGAGED[/bold red]")


@app_killswitch.command("off")
def killswitch_off() -> None:
    """Release the kill switch."""
    with open_journal(_settings()) as store:
        store.set_killswitch(engaged=False, by=os.environ.get("USER", "cli"), reason="released")
    _console.print("kill switch released")


def recover(
    env: str | None = typer.Option(None, "--env", help="Also sweep this environment's markers."),
    run_id: str | None = typer.Option(None, "--run", help="Recover only this run."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Sweep: report, do not heal."),
) -> None:
    """Roll back every unfinished run whose orchestrator died; with --env, sweep markers too."""
    config = _settings()
    reg = binding.make_registry()
    exit_code = 0
    with open_journal(config) as store, _user_errors():

        def environment_for(run_: states.Run) -> object:
            return loading.load_environment(Path(run_.environment_source)).model

        recovered = recovery.recover_runs(
            store=store,
            reg=reg,
            environment_for=environment_for,  # type: ignore[arg-type]
            only=states.RunId(run_id) if run_id else None,
        )
        for item in recovered:
            _console.print(
                f"run {item.run_id}: {item.found_state.value} -> {item.final_state.value};"
                f" reverted {item.reverted}; {item.message}",
                markup=False,
            )
            for failure in item.failed:
                _err.print(f"LEFTOVER: {failure}", markup=False, soft_wrap=True)
            if item.failed:
                exit_code = engine.ExitCode.ROLLBACK_FAILED
            _write_recovered_reports(store, item.run_id, reports_dir=config.reports_dir)
        if not recovered:
            _console.print("no unfinished runs to recover")
        if env is not None:
            env_path = binding.find_environment(env, search=[])
            environment = loading.load_environment(env_path).model
            findings = recovery.sweep_markers(
                store=store, reg=reg, environment=environment, dry_run=dry_run
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
    run_id: str = typer.Argument(...),
    step: str = typer.Argument(...),
    evidence: str = typer.Option(..., "--evidence", help="What was done (text, URL or choice)."),
    by: str = typer.Option(os.environ.get("USER", "cli"), "--by", help="Who acknowledges."),
) -> None:
    """Acknowledge a manual step with evidence (the drill continues).

    Refused (exit 3) when `--by` is absent for the drill or not among the people the step
    is assigned to (its team, or its on-call at the time), as recorded when it started.
    """
    with open_journal(_settings()) as store, _user_errors():
        run_ = store.get_run(states.RunId(run_id))
        assignees.check_ack(store.events(run_.id), run_id=run_.id, step=step, by=by)
        store.append_event(
            run_.id,
            kind="ack",
            message=f"step {step} acknowledged by {by}: {evidence}",
            data={"step": step, "by": by, "evidence": evidence, "automated": False},
        )
    _console.print(f"acknowledged {step} of {run_id}")


def actions(
    output_format: OutputFormat = typer.Option(OutputFormat.TABLE, "--format"),
) -> None:
    """List every action and probe with its parameters (`--format json` for machines)."""
    reg = binding.make_registry()
    if output_format is OutputFormat.JSON:
        typer.echo(
            json.dumps(
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
                indent=2,
            )
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
    _console.print(probes_table)


@app_runs.command("list")
def runs_list(
    limit: int = typer.Option(20, "--limit"),
    output_format: OutputFormat = typer.Option(OutputFormat.TABLE, "--format"),
) -> None:
    """Runs, newest first."""
    with open_journal(_settings()) as store:
        found = store.list_runs(limit=limit)
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps([_run_json(r) for r in found], indent=2))
        return
    table = rich.table.Table(title="Runs (newest first)")
    for column in ("run", "scenario", "environment", "state", "verdict", "started"):
        table.add_column(column)
    for r in found:
        table.add_row(
            r.id,
            r.scenario,
            r.environment,
            r.state.value,
            r.verdict.value if r.verdict else "-",
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    _console.print(table)


@app_runs.command("show")
def runs_show(
    run_id: str = typer.Argument(...),
    output_format: OutputFormat = typer.Option(OutputFormat.TABLE, "--format"),
) -> None:
    """One run: its record, timeline and journal."""
    with open_journal(_settings()) as store, _user_errors():
        r = store.get_run(states.RunId(run_id))
        events = store.events(r.id)
        entries = store.entries(r.id)
    if output_format is OutputFormat.JSON:
        body = _run_json(r)
        body["timeline"] = [
            {"at": e.at.isoformat(), "kind": e.kind, "message": e.message, "data": dict(e.data)}
            for e in events
        ]
        body["journal"] = [
            {
                "seq": e.seq,
                "step": e.step,
                "action": e.action,
                "target": str(e.target),
                "state": e.state.value,
                "error": e.error,
            }
            for e in entries
        ]
        typer.echo(json.dumps(body, indent=2, default=str))
        return
    _console.print(
        f"[bold]{r.id}[/bold] {r.scenario} on {r.environment}: {r.state.value} ({r.reason})"
    )
    for e in events:
        _console.print(f"{e.at:%H:%M:%S.%f} {e.kind:>10} {e.message}", markup=False)
    for entry in entries:
        _console.print(
            f"#{entry.seq} {entry.action} on {entry.target}: {entry.state.value}", markup=False
        )


def _run_json(r: states.Run) -> dict[str, mutations.JsonValue]:
    return {
        "id": r.id,
        "scenario": r.scenario,
        "environment": r.environment,
        "state": r.state.value,
        "verdict": r.verdict.value if r.verdict else None,
        "reason": r.reason,
        "abort_reason": r.abort_reason,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "record": dict(r.record),
    }
