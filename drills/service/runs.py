"""Runs: plan, submit, drive, start, abort, acknowledge, recover, list and show drill runs.

Plain typed functions under every entry point (the CLI today; the API, schedules, game
days and Kubernetes Job runners next). Each takes the `Settings`, the store and the
registry explicitly and returns frozen dataclasses (or `views` for JSON); none prints.

Invariants:
- A run is submitted (PENDING, with its `Trigger`) and then driven by whoever claims it
  (`Engine.claim`: exactly one process). `start` is `submit` + `drive` in this process.
- `drive` in the process that submitted gets the `DrillInput` it submitted; in another
  process it rebinds the drill from the run's record (scenario and environment files,
  parameters). A secret parameter the record holds only masked is refused
  (`SecretUnavailable`) unless the value rebinding derives (its default, the Environment)
  matches the record's fingerprint of it: a drill never runs with `***`.
- `recover` finishes every run whose orchestrator died, each exactly once across
  concurrent passes, and writes the reports of the runs it finishes (`reports`).
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from drills import binding
from drills import settings as settings_mod
from drills.service import catalogs, killswitches, views
from drills.service import reports as run_reports
from orchestrator import (
    engine,
    events,
    journal,
    manual,
    mutations,
    planning,
    recovery,
    registry,
    states,
)
from orchestrator import errors as orchestrator_errors
from orchestrator.cmdb import backstage
from orchestrator.cmdb import models as cmdb_models
from orchestrator.providers.aws import connecting as aws_connecting
from orchestrator.providers.kubernetes import connection as kube_connection
from reports import coverage, junit
from reports import evidence as reports_evidence
from reports import pictures as reports_pictures
from reports import postmortem as reports_postmortem
from reports import rendering as reports_rendering
from scenarios import errors, loading, models, parameters, quantities, secrets, substituting

_S = states.RunState


class RunEnded(orchestrator_errors.OrchestratorError):
    """The run already reached a final state (nothing to abort)."""

    def __init__(self, run: states.Run) -> None:
        self.run = run
        super().__init__(f"run {run.id} already ended ({run.state.value})")


class SecretUnavailable(orchestrator_errors.OrchestratorError):
    """The run needs a secret parameter whose value only the submitting process knew."""


class BadCursor(errors.StormdrillError):
    """A `list` cursor that this service did not hand out."""


class UnknownRun(orchestrator_errors.OrchestratorError):
    """No run in the store has the id (or id prefix) a person typed."""


class AmbiguousRunId(orchestrator_errors.OrchestratorError):
    """A typed id prefix matches several runs; `candidates` are their ids, newest first."""

    def __init__(self, message: str, *, candidates: tuple[states.RunId, ...]) -> None:
        self.candidates = candidates
        super().__init__(message)


class BadSince(errors.StormdrillError):
    """A `--since` that is neither a duration (`2h`, `7d`) nor an ISO date or time."""


# ---- preparing a drill -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AccessOverrides:
    """Cluster and AWS access given on the command line, over the Environment's own."""

    kubeconfig: Path | None = None
    """Replaces the Environment's kubeconfig (and its context)."""
    context: str | None = None
    """A context of the kubeconfig that applies (the Environment's, $KUBECONFIG, ~/.kube)."""
    profile: str | None = None
    """An AWS profile, in place of the Environment's profile or role."""

    def apply(self, environment: models.Environment) -> models.Environment:
        """`environment` with these overrides in place (unchanged when none is given)."""
        changed = kube_connection.overridden(
            environment, kubeconfig=self.kubeconfig, context=self.context
        )
        return aws_connecting.overridden(changed, profile=self.profile)


@dataclasses.dataclass(frozen=True)
class DrillRequest:
    """What an entry point asks to plan or run: a drill and where it runs."""

    target: str
    """A Drill file, a Scenario file or a bundled scenario name."""
    environment: str | None = None
    """An Environment name or file (a Drill file names its own)."""
    sets: tuple[str, ...] = ()
    """`NAME=VALUE` parameter values."""
    approvals: tuple[str, ...] = ()
    cmdb: tuple[Path, ...] = ()
    """Explicit CMDB catalog files or folders (else the Environment's, else the settings')."""
    strict: bool = False
    """Refuse (`CatalogInvalid`) a CMDB with any refused entity instead of leaving it out."""
    access: AccessOverrides = AccessOverrides()
    """`--kubeconfig`, `--context`, `--profile`: they win over the Environment's access."""
    drill: str | None = None
    """The Drill document `target` comes from when an entry point resolved its scenario
    itself (the API looks its references up in its folders): recorded as the run's drill."""


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A drill bound and its CMDB loaded: ready to plan, submit or start."""

    drill: planning.DrillInput
    catalog: cmdb_models.Catalog | None
    notes: tuple[str, ...] = ()
    """What a person should know about the CMDB (refused entries), one line each."""
    found_access: models.Environment | None = None
    """The Environment before the kubeconfig kubectl's rules found was pinned into
    `drill.environment`: `touches` says where the access came from ($KUBECONFIG, …)."""


def _pinned(environment: models.Environment) -> models.Environment:
    """`environment` with the kubeconfig file and context kubectl's rules chose written in.

    An Environment that names no kubeconfig follows `$KUBECONFIG` / `~/.kube/config`; the
    run records what they resolved to, so recovery from another shell (another
    `$KUBECONFIG`) reaches the same cluster. A path list keeps only the context pinned.
    """
    access = environment.spec.kubernetes
    if access is None or access.in_cluster or access.kubeconfig is not None:
        return environment
    try:
        found = kube_connection.target(environment)
    except errors.StormdrillError:
        return environment  # planning reports it, with the contexts there are
    files = found.source.files
    return kube_connection.overridden(
        environment, kubeconfig=files[0] if len(files) == 1 else None, context=found.context
    )


def prepare(config: settings_mod.Settings, request: DrillRequest) -> Prepared:
    """Bind `request` to a DrillInput and load its CMDB (touches nothing, opens no store)."""
    bound = binding.bind(
        request.target, env=request.environment, sets=request.sets, approvals=request.approvals
    )
    found = request.access.apply(bound.drill.environment)
    drill = dataclasses.replace(bound.drill, environment=_pinned(found))
    if request.drill is not None:
        drill = dataclasses.replace(drill, drill=request.drill)
    catalog = catalogs.catalog_for(config, drill.environment, request.cmdb)
    notes = backstage.refusal_lines(catalog, strict=request.strict)
    return Prepared(drill=drill, catalog=catalog, notes=tuple(notes), found_access=found)


def make_engine(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    *,
    catalog: cmdb_models.Catalog | None,
    engine_config: engine.EngineConfig | None = None,
) -> engine.Engine:
    """The engine every service function drives runs with (the settings' kill switch file)."""
    return engine.Engine(
        store=store,
        reg=reg,
        config=engine_config or engine.EngineConfig(),
        catalog=catalog,
        killswitch_file=config.killswitch_file,
    )


# ---- plan ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Planned:
    """A dry run's plan, the coverage cells it will count for, and how to mask its secrets."""

    plan: planning.Plan
    cells: tuple[coverage.CountedCell, ...] | None
    warning: str | None
    """Why a run of it will count for no coverage cell (it reaches no CMDB service)."""
    masking: secrets.Redactor
    """Masks the drill's secret values in anything shown of the plan."""

    touches: Touches | None = None
    """The cluster and AWS account the drill will touch (read before planning)."""

    def view(self) -> views.PlanView:
        planned = views.PlanView.from_plan(self.plan, cells=self.cells)
        if self.touches is None:
            return planned
        return planned.model_copy(update={"touches": self.touches.view()})


@dataclasses.dataclass(frozen=True)
class Touches:
    """Which cluster and AWS account a drill will touch; None for a provider it does not use."""

    kubernetes: kube_connection.KubeTarget | None
    aws: aws_connecting.AwsIdentity | None

    def view(self) -> views.TouchesView:
        kube, aws = self.kubernetes, self.aws
        return views.TouchesView(
            kubernetes=None
            if kube is None
            else views.KubeTouchView(server=kube.server, context=kube.context),
            aws=None
            if aws is None
            else views.AwsTouchView(account=aws.account, arn=aws.arn, region=aws.region),
        )


def _uses(drill: planning.DrillInput, provider: models.Provider) -> bool:
    """Whether the drill's targets, steps or probes use `provider`."""
    spec = drill.scenario.spec
    prefix = f"{provider.value}."
    return (
        any(t.provider is provider for t in spec.targets.values())
        or any(s.action is not None and s.action.startswith(prefix) for s in spec.steps)
        or any(p.type.startswith(prefix) for p in spec.steady_state)
    )


def touches(prepared: Prepared) -> Touches:
    """The cluster (server, context) and AWS account the drill will touch.

    Reads the kubeconfig (kubectl's conventions, with the request's overrides already in
    the Environment) and asks STS who we are: a wrong context or profile fails here, before
    anything is planned. A provider the drill does not use is not asked.
    """
    drill = prepared.drill
    kube = (
        kube_connection.target(prepared.found_access or drill.environment)
        if _uses(drill, models.Provider.KUBERNETES)
        else None
    )
    aws = (
        aws_connecting.identity(drill.environment)
        if drill.environment.spec.aws is not None and _uses(drill, models.Provider.AWS)
        else None
    )
    return Touches(kubernetes=kube, aws=aws)


def plan(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    prepared: Prepared,
    *,
    touched: Touches | None = None,
) -> Planned:
    """Resolve, plan and judge the drill; nothing is written and nothing is touched.

    First says what it will touch (`touches`, unless the caller already asked: `touched`).
    """
    touched = touches(prepared) if touched is None else touched
    eng = make_engine(config, store, reg, catalog=prepared.catalog)
    drill_plan = eng.plan(prepared.drill)
    cells = coverage.plan_cells(drill_plan, prepared.catalog)
    values, keys = engine.secret_values(prepared.drill)
    return Planned(
        plan=drill_plan,
        cells=None if cells is None else tuple(cells),
        warning=coverage.reach_warning(drill_plan, prepared.catalog),
        masking=secrets.Redactor().with_secrets(values, keys=keys),
        touches=touched,
    )


# ---- submit, drive, start ---------------------------------------------------------------


def submit(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    prepared: Prepared,
    *,
    trigger: engine.Trigger,
    run_id: states.RunId | None = None,
) -> states.Run:
    """Queue the drill: a PENDING run with its trigger, driven later by whoever claims it.

    Raises `killswitches.Engaged` while the Environment's kill switch is engaged (the
    global one is the engine's to enforce: a run submitted under it is refused at planning).
    """
    killswitches.refuse_if_engaged(
        store, prepared.drill.environment.metadata.name, include_global=False
    )
    eng = make_engine(config, store, reg, catalog=prepared.catalog)
    return eng.submit(prepared.drill, run_id=run_id, trigger=trigger)


@dataclasses.dataclass(frozen=True)
class Driven:
    """How a driven run ended, and where its reports went."""

    outcome: engine.RunOutcome
    reports: run_reports.RunReports | None
    """None for a crashed run recovery could not finish yet (no reports until it does)."""

    @property
    def run(self) -> states.Run:
        return self.outcome.run

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code


def drive(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    run_id: states.RunId,
    *,
    drill: planning.DrillInput | None = None,
    catalog: cmdb_models.Catalog | None = None,
    engine_config: engine.EngineConfig | None = None,
    stop: threading.Event | None = None,
    listener: engine.Listener | None = None,
    junit_path: Path | None = None,
) -> Driven:
    """Claim the PENDING or CRASHED run `run_id` and drive it to the end; write its reports.

    A PENDING run is driven by the engine: with `drill` and `catalog` as submitted when this
    process submitted it, else rebound from its record (`rebind`) with its Environment's
    CMDB. A CRASHED run is finished by recovery (rolled back, then FAILED). Raises
    `engine.NotClaimable` when the run is in another state or another process drives it.
    """
    run = store.get_run(run_id)
    if run.state is _S.CRASHED:
        return _finish_crashed(config, store, reg, run, engine_config=engine_config)
    if drill is None:
        drill = rebind(run)
        catalog = catalogs.catalog_for(config, drill.environment, ())
    eng = make_engine(config, store, reg, catalog=catalog, engine_config=engine_config)
    outcome = eng.drive(
        run_id, drill, stop=stop, listener=listener if listener is not None else _ignore
    )
    written = run_reports.write(
        config,
        store,
        outcome.run,
        catalog=catalog,
        junit_path=junit_path,
        scenario=drill.scenario,
    )
    return Driven(outcome=outcome, reports=written)


def _ignore(_kind: str, _message: str, _data: object) -> None:
    return None


def _finish_crashed(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    run: states.Run,
    *,
    engine_config: engine.EngineConfig | None,
) -> Driven:
    done = recovery.recover_runs(
        store=store,
        reg=reg,
        environment_for=_recorded_environment,
        config=engine_config,
        only=run.id,
    )
    if not done:
        raise engine.NotClaimable(f"run {run.id} is being recovered by another process")
    final = store.get_run(run.id)
    leftovers = tuple(
        (entry, entry.error or "revert failed")
        for entry in store.entries(run.id)
        if entry.state is mutations.EntryState.REVERT_FAILED
    )
    outcome = engine.RunOutcome(run=final, plan=None, leftovers=leftovers)
    return Driven(outcome=outcome, reports=run_reports.write_recovered(config, store, run.id))


def start(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    prepared: Prepared,
    *,
    trigger: engine.Trigger,
    engine_config: engine.EngineConfig | None = None,
    stop: threading.Event | None = None,
    listener: engine.Listener | None = None,
    junit_path: Path | None = None,
) -> Driven:
    """Submit the drill and drive it here to the end (`submit` + `drive`)."""
    run = submit(config, store, reg, prepared, trigger=trigger)
    return drive(
        config,
        store,
        reg,
        run.id,
        drill=prepared.drill,
        catalog=prepared.catalog,
        engine_config=engine_config,
        stop=stop,
        listener=listener,
        junit_path=junit_path,
    )


def rebind(run: states.Run) -> planning.DrillInput:
    """The run's drill rebuilt from its record: scenario and environment files, parameters.

    Raises `SecretUnavailable` for a secret parameter the record holds only masked whose
    value rebinding cannot prove (its default or the Environment's value must match the
    record's fingerprint), and `ScenarioInvalid` / `StormdrillError` for files that went.
    """
    record = run.record
    if record.scenario_source is None:
        raise SecretUnavailable(f"run {run.id}: its record names no scenario file to rebind")
    scenario_doc = loading.load_scenario(Path(record.scenario_source))
    environment = loading.load_environment(Path(run.environment_source))
    masked = {name for name, value in record.parameters.items() if _masked(value)}
    values: dict[str, parameters.ParamInput] = {
        name: _param_input(value)
        for name, value in record.parameters.items()
        if name not in masked and value is not None
    }
    env_values: dict[str, parameters.ParamInput] = dict(environment.model.spec.parameters)
    bound = substituting.bind(scenario_doc, values, environment=env_values)
    for name in sorted(masked):
        if not _proven(record.redaction, bound.get(name)):
            raise SecretUnavailable(
                f"run {run.id}: parameter {name!r} is secret and its record holds only its"
                " mask; drive the run in the process that submitted it, or submit it again"
                " with the value"
            )
    return planning.DrillInput(
        scenario=substituting.render_bound(scenario_doc, bound),
        scenario_source=record.scenario_source,
        environment=environment.model,
        environment_source=run.environment_source,
        parameters={name: _json(value) for name, value in bound.items()},
        approvals=tuple(record.approvals),
        drill=record.drill,
    )


def _masked(value: mutations.JsonValue) -> bool:
    if isinstance(value, str):
        return secrets.MASK in value
    if isinstance(value, list | tuple):
        return any(_masked(item) for item in value)
    return False


def _param_input(value: mutations.JsonValue) -> parameters.ParamInput:
    if isinstance(value, list | tuple):
        return tuple(item for item in value if isinstance(item, str | int | float | bool))
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _proven(prints: secrets.Fingerprints | None, value: parameters.ParamValue | None) -> bool:
    """Whether every text of `value` is one of the run's fingerprinted secrets."""
    if prints is None or value is None:
        return False
    texts = [str(item) for item in value] if isinstance(value, tuple) else [str(value)]
    return all(prints.mask(text) == secrets.MASK for text in texts if text)


def _json(value: parameters.ParamValue) -> mutations.JsonValue:
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


# ---- operator actions -------------------------------------------------------------------


def abort(store: journal.Journal, run_id: states.RunId, *, source: str = "the CLI") -> states.Run:
    """Ask the run's driver to abort (it stops injecting, rolls back and verifies).

    Raises `RunEnded` when the run already reached a final state.
    """
    run = store.get_run(run_id)
    if run.terminal:
        raise RunEnded(run)
    store.append_event(
        run.id,
        kind=events.EventKind.ABORT_REQUEST,
        message=f"abort requested from {source}",
        data=events.AbortRequest().to_data(),
    )
    return run


def ack(
    store: journal.Journal, run_id: states.RunId, step: str, *, by: str, evidence: str
) -> events.Ack:
    """Acknowledge manual step `step` of the run with evidence (the drill continues).

    Raises `AckRejected` when `by` is absent for the drill or not among the people the
    step is assigned to (its team, or its on-call at the time), as recorded when it started.
    """
    run = store.get_run(run_id)
    manual.check_ack(store.events(run.id), run_id=run.id, step=step, by=by)
    acknowledged = events.Ack(step=step, by=by, evidence=evidence, automated=False)
    store.append_event(
        run.id,
        kind=events.EventKind.ACK,
        message=f"step {step} acknowledged by {by}: {evidence}",
        data=acknowledged.to_data(),
    )
    return acknowledged


def killswitch(
    store: journal.Journal, *, engaged: bool, by: str, reason: str
) -> journal.Killswitch:
    """Engage (running drills abort and roll back; none may start) or release the switch."""
    return store.set_killswitch(engaged=engaged, by=by, reason=reason)


# ---- recovery ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recovered:
    """One run a recovery pass finished (or could not), and its reports."""

    item: recovery.RecoveredRun
    reports: run_reports.RunReports | None
    """None while the run is not finished (its environment could not be read)."""


def recover(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    *,
    run_id: states.RunId | None = None,
    engine_config: engine.EngineConfig | None = None,
    stale_after_s: float = 30.0,
) -> list[Recovered]:
    """Roll back every run whose orchestrator died (or only `run_id`); write their reports.

    Safe to run in several processes at once: each run is recovered by exactly one.
    """
    return list(
        _recovered(
            config,
            store,
            recovery.recover_runs(
                store=store,
                reg=reg,
                environment_for=_recorded_environment,
                config=engine_config,
                stale_after_s=stale_after_s,
                only=run_id,
            ),
        )
    )


def _recovered(
    config: settings_mod.Settings,
    store: journal.Journal,
    items: Sequence[recovery.RecoveredRun],
) -> Iterator[Recovered]:
    for item in items:
        yield Recovered(item=item, reports=run_reports.write_recovered(config, store, item.run_id))


def _recorded_environment(run: states.Run) -> models.Environment:
    """The run's Environment file, with the cluster and AWS access the run recorded."""
    environment = loading.load_environment(Path(run.environment_source)).model
    return engine.with_access(environment, run.record.access)


def sweep(
    store: journal.Journal,
    reg: registry.Registry,
    *,
    environment: str,
    dry_run: bool = False,
    access: AccessOverrides = AccessOverrides(),
) -> list[registry.SweepFinding]:
    """Heal every marked fault in the Environment `environment` that no live run owns.

    `access` (`--kubeconfig`, `--context`, `--profile`) applies over the Environment's own.
    """
    env_path = binding.find_environment(environment, search=[])
    loaded = access.apply(loading.load_environment(env_path).model)
    return recovery.sweep_markers(store=store, reg=reg, environment=loaded, dry_run=dry_run)


# ---- list and show -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunFilter:
    """Which runs `list` returns; every field left None matches everything."""

    state: frozenset[states.RunState] | None = None
    verdict: frozenset[states.Verdict] | None = None
    scenario: str | None = None
    environment: str | None = None
    service: str | None = None
    """A CMDB service ref the run's plan reached (targeted or downstream)."""
    trigger: engine.TriggerKind | None = None
    since: datetime | None = None
    """Started at or after."""
    until: datetime | None = None
    """Started before."""

    def matches(self, run: states.Run) -> bool:
        if self.verdict is not None and run.verdict not in self.verdict:
            return False
        if self.since is not None and run.started_at < self.since:
            return False
        if self.until is not None and run.started_at >= self.until:
            return False
        if self.trigger is not None:
            trigger = run.record.trigger
            if (trigger.kind if trigger is not None else None) is not self.trigger:
                return False
        if self.service is not None:
            return any(row.ref == self.service for row in run.record.impact_rows)
        return True


@dataclasses.dataclass(frozen=True)
class RunPage:
    """One page of runs, newest first; `next_cursor` fetches the next (None: last page)."""

    runs: tuple[states.Run, ...]
    next_cursor: str | None = None


def list_runs(
    store: journal.Journal,
    *,
    where: RunFilter | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> RunPage:
    """Runs matching `where`, newest first, `limit` at a time from `cursor` on.

    State, verdict, scenario, environment, time and the cursor are filtered in SQL (one
    query of `limit + 1` rows); the trigger and the services reached live in the run
    record, so with those the store is read in batches until the page is full.
    """
    where = where or RunFilter()
    after = _decode(cursor) if cursor is not None else None
    in_record = where.trigger is not None or where.service is not None
    batch = limit + 1 if not in_record else max(4 * (limit + 1), 200)
    found: list[states.Run] = []
    while True:
        rows = store.list_runs(
            states_in=where.state,
            scenario=where.scenario,
            environment=where.environment,
            verdicts=where.verdict,
            started_from=where.since,
            started_before=where.until,
            older_than=after,
            limit=batch,
        )
        found.extend(run for run in rows if where.matches(run))
        if len(found) > limit or len(rows) < batch:
            break
        after = (rows[-1].started_at, rows[-1].id)
    page, more = found[:limit], len(found) > limit
    next_cursor = _encode(page[-1]) if more and page else None
    return RunPage(runs=tuple(page), next_cursor=next_cursor)


def _encode(run: states.Run) -> str:
    raw = f"{run.started_at.isoformat()}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, run_id = raw.partition("|")
        return datetime.fromisoformat(at), run_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor(f"cursor {cursor!r}: not one `runs list` handed out") from None


LATEST = "latest"
"""The run id word that names the newest run in the store."""
_CANDIDATES_SHOWN = 10


def resolve_id(store: journal.Journal, text: str) -> states.RunId:
    """The id of the one run `text` names: a full id, `latest` (the newest run), or a
    unique prefix of an id or of its random part (`3f9a` for `20250101T120000Z-3f9a1c2b`).

    Raises `UnknownRun` when no run matches and `AmbiguousRunId` (listing the candidates,
    newest first) when several do; both name the store.
    """
    typed = text.strip()
    if not typed:
        raise UnknownRun(f"an empty run id names no run in the store at {store.url}")
    if typed.lower() == LATEST:
        newest = store.run_ids(limit=1)
        if not newest:
            raise UnknownRun(f"`latest`: the store at {store.url} has no runs yet")
        return newest[0]
    if store.find_run(typed) is not None:  # the common case: one indexed lookup
        return states.RunId(typed)
    ids = [run_id for run_id in store.run_ids(prefix=typed) if _id_matches(run_id, typed)]
    if len(ids) == 1:
        return ids[0]
    matches = [run for run_id in ids[:_CANDIDATES_SHOWN] if (run := store.find_run(run_id))]
    if not ids:
        raise UnknownRun(
            f"no run {typed!r} in the store at {store.url}"
            " (see `stormdrill runs list`; a unique prefix of an id or `latest` also works)"
        )
    shown = "; ".join(
        f"{run.id} ({run.scenario} on {run.environment}, {run.state.value},"
        f" {run.started_at:%Y-%m-%d %H:%M})"
        for run in matches[:_CANDIDATES_SHOWN]
    )
    more = len(ids) - _CANDIDATES_SHOWN
    raise AmbiguousRunId(
        f"run id {typed!r} is ambiguous: it matches {len(ids)} runs in the store at"
        f" {store.url}: {shown}{f'; and {more} more' if more > 0 else ''}."
        " Type more of the id",
        candidates=tuple(ids),
    )


def _id_matches(run_id: str, typed: str) -> bool:
    random_part = _random_part(run_id)
    return run_id.startswith(typed) or bool(random_part and random_part.startswith(typed))


def short_ids(store: journal.Journal, shown: Sequence[states.Run]) -> dict[states.RunId, str]:
    """The shortest form of each run's id that `resolve_id` maps back to it alone, as git
    abbreviates commits: the random part (`3f9a1c2b` of `20250101T120000Z-3f9a1c2b`) when
    no other run in the store has that random part or an id starting with it, else the
    full id. Uniqueness is checked against every run in the store, not only `shown`.
    """
    every_id = store.run_ids()
    parts = collections.Counter(_random_part(run_id) for run_id in every_id)
    short: dict[states.RunId, str] = {}
    for run in shown:
        part = _random_part(run.id)
        unique = (
            len(part) >= _SHORT_MIN
            and parts[part] == 1
            and not any(other.startswith(part) for other in every_id)
        )
        short[run.id] = part if unique else run.id
    return short


_SHORT_MIN = 6


def _random_part(run_id: str) -> str:
    _, dash, part = run_id.rpartition("-")
    return part if dash else ""


def parse_since(text: str, *, now: datetime) -> datetime:
    """When `--since TEXT` starts: `now` minus a duration (`2h`, `7d`, `1h30m`), or an ISO
    date or time (`2025-01-31`, `2025-01-31T12:00`; UTC unless it names its offset).

    Raises `BadSince` naming both accepted forms.
    """
    raw = text.strip()
    try:
        return now - quantities.Duration.parse(raw).timedelta
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise BadSince(
            f"--since {text!r}: write a duration back from now (e.g. 2h, 7d)"
            " or an ISO date or time (e.g. 2025-01-31, 2025-01-31T12:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class RunDetail:
    """One run with its timeline and its journal."""

    run: states.Run
    events: tuple[journal.Event, ...]
    entries: tuple[mutations.JournalEntry, ...]

    def view(self) -> views.RunDetailView:
        return views.RunDetailView.from_parts(self.run, events=self.events, entries=self.entries)


def show_named(store: journal.Journal, text: str) -> RunDetail:
    """`show(store, resolve_id(store, text))`, reading a run named by its full id once."""
    typed = text.strip()
    run = store.find_run(typed) if typed and typed.lower() != LATEST else None
    if run is None:
        run = store.get_run(resolve_id(store, text))
    return RunDetail(
        run=run, events=tuple(store.events(run.id)), entries=tuple(store.entries(run.id))
    )


def show(store: journal.Journal, run_id: states.RunId) -> RunDetail:
    """The run `run_id`, its timeline and its journal; `JournalError` if there is none."""
    run = store.get_run(run_id)
    return RunDetail(
        run=run, events=tuple(store.events(run.id)), entries=tuple(store.entries(run.id))
    )


# ---- cancelling, kill switches per environment, reports (the API's additions) ------------


def cancel(
    store: journal.Journal, run_id: states.RunId, *, reason: str, source: str = "the API"
) -> states.Run:
    """Stop the run: a queued run nobody drives yet ends ABORTED now; a driven one is asked
    to abort (`abort`: it stops injecting, rolls back and verifies). The run as it is now.

    Raises `RunEnded` when the run already reached a final state.
    """
    run = store.get_run(run_id)
    if run.terminal:
        raise RunEnded(run)
    if run.state is _S.PENDING and run.owner == journal.UNCLAIMED:
        try:
            return engine.move_run(
                store,
                run,
                _S.ABORTED,
                reason=f"cancelled before it started: {reason}",
                abort_reason=reason,
            )
        except orchestrator_errors.StaleRun:
            run = store.get_run(run_id)  # claimed meanwhile: ask its driver instead
            if run.terminal:
                raise RunEnded(run) from None
    abort(store, run.id, source=source)
    return store.get_run(run.id)


_LIVE = frozenset(states.IN_FLIGHT) - {_S.CRASHED}
"""Runs a kill switch stops: queued or being driven (recovery owns the crashed ones)."""


def engage_killswitch(
    store: journal.Journal, *, environment: str | None, by: str, reason: str
) -> tuple[journal.Killswitch, list[states.RunId]]:
    """Engage the global switch, or the switch of the Environment named `environment`; the
    runs it stops (each asked to abort, or cancelled while still queued).

    The global switch is also enforced by the engine itself (its observer aborts every
    running drill, planning refuses); an Environment's only by this and by `submit`.
    """
    if environment is None:
        switch = killswitch(store, engaged=True, by=by, reason=reason)
        live = store.list_runs(states_in=_LIVE, limit=None)
    else:
        switch = killswitches.set_environment(
            store, environment=environment, engaged=True, by=by, reason=reason
        )
        live = store.list_runs(states_in=_LIVE, environment=environment, limit=None)
    scope = "the global kill switch" if environment is None else f"the kill switch of {environment}"
    stopped: list[states.RunId] = []
    for run in live:
        try:
            cancel(store, run.id, reason=f"{scope}: {reason}", source=f"{scope} ({by})")
        except RunEnded:
            continue
        stopped.append(run.id)
    return switch, stopped


def release_killswitch(
    store: journal.Journal, *, environment: str | None, by: str
) -> journal.Killswitch:
    """Release the global switch or `environment`'s (runs may start again)."""
    if environment is None:
        return killswitch(store, engaged=False, by=by, reason="")
    return killswitches.set_environment(
        store, environment=environment, engaged=False, by=by, reason=""
    )


class ReportUnavailable(errors.StormdrillError):
    """A run's report cannot be built (its scenario file is gone, or it has not started)."""


def postmortem(
    config: settings_mod.Settings, store: journal.Journal, run_id: states.RunId
) -> reports_postmortem.PostMortem:
    """The run's blameless post-mortem, with the CMDB of the Environment it recorded."""
    run_evidence = reports_evidence.load(store, run_id)
    environment = catalogs.recorded_environment(run_evidence.run)
    catalog = catalogs.catalog_for(config, environment, ())
    scenario = reports_evidence.scenario_for(run_evidence.run)
    return reports_postmortem.build_postmortem(run_evidence, scenario, cmdb=catalog)


def postmortem_text(
    config: settings_mod.Settings,
    store: journal.Journal,
    run_id: states.RunId,
    fmt: reports_rendering.Format,
) -> str:
    """The run's post-mortem rendered as `fmt`; HTML shows the timeline and probe pictures
    above the tables (drawn from the redacted report, as the written HTML file does)."""
    run_evidence = reports_evidence.load(store, run_id)
    environment = catalogs.recorded_environment(run_evidence.run)
    catalog = catalogs.catalog_for(config, environment, ())
    scenario = reports_evidence.scenario_for(run_evidence.run)
    built = reports_postmortem.build_postmortem(run_evidence, scenario, cmdb=catalog)
    figures = (
        reports_pictures.pictures_of(run_evidence, built, redactor=store.redactor)
        if fmt is reports_rendering.Format.HTML
        else None
    )
    return reports_rendering.render(built, fmt, figures=figures)


def junit_xml(store: journal.Journal, run_id: states.RunId) -> str:
    """The run's JUnit XML (a case per step, probe check, guardrail and objective).

    Raises `ReportUnavailable` when the run's scenario can no longer be read.
    """
    run = store.get_run(run_id)
    scenario = reports_evidence.scenario_for(run)
    if scenario is None:
        raise ReportUnavailable(
            f"run {run.id}: its scenario ({run.record.scenario_source or 'unrecorded'})"
            " cannot be read, so it has no JUnit report"
        )
    return junit.render(run=run, events=store.events(run.id), scenario=scenario)
