"""Engine: drives one run through plan → preflight → inject → observe → rollback → verify.

Invariants:
- Every mutation is journaled (intent, with its undo) before the provider makes it.
- Once anything may have been touched, the run always reaches ROLLING_BACK: on a normal
  end, on a guardrail or probe abort, on an operator abort or signal, on a provider error.
- Only `states.transition` changes the run's state; every change is saved with the
  expected previous state, so two writers cannot both move a run.
- Aborts come from one place (`_Abort`): the first reason wins; every waiting phase wakes
  on it at once, so the first revert follows a breach within a probe interval + 0.2 s.
- A run's secret values (parameters declared `secret: true` or named like a secret, and the
  Environment's secret-looking parameters) are named to the store before the run is
  created, so the record, timeline, live view and log lines never carry them.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import pathlib
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from secrets import token_hex

from orchestrator import (
    canary,
    context,
    errors,
    events,
    guardrails,
    journal,
    logcontext,
    mutations,
    objectives,
    observing,
    planning,
    records,
    registry,
    retrying,
    rollback,
    states,
)
from orchestrator import manual as manual_steps
from orchestrator.cmdb import models as cmdb_models
from scenarios import models, secrets

log = logging.getLogger(__name__)

_S = states.RunState
_E = events.EventKind


class ExitCode:
    """Exit codes for CI (`stormdrill run`, `plan`, and every command that opens the store)."""

    HELD = 0
    DEVIATED = 1
    ABORTED = 2
    INVALID = 3
    ROLLBACK_FAILED = 4
    UNREACHABLE = 5
    """Could not plan or run because a system was unreachable or refused us (Kubernetes or
    AWS API: connection refused, timeouts, 5xx, 401/403; the run store)."""


def exit_code(run: states.Run) -> int:
    """The CI exit code of a finished run (a leftover fault outranks everything)."""
    if run.state is _S.ROLLBACK_FAILED or run.state in states.IN_FLIGHT:
        return ExitCode.ROLLBACK_FAILED
    if run.record.infrastructure_error and run.state in (_S.ABORTED, _S.FAILED):
        return ExitCode.UNREACHABLE
    if run.state is _S.ABORTED:
        return ExitCode.INVALID if run.record.refused else ExitCode.ABORTED
    if run.state is _S.COMPLETED and run.verdict is states.Verdict.HELD:
        return ExitCode.HELD
    return ExitCode.DEVIATED


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Tunables of a run; durations are real-world seconds, shrunk by the time scale."""

    rollback_concurrency: int = 16
    """Reverts at once, in all and per API server, when the Environment has no `spec.rollback`."""
    retry: retrying.RetryPolicy = dataclasses.field(default_factory=retrying.RetryPolicy)
    stability_window_s: float = 60.0
    recovery_timeout_s: float = 600.0
    heartbeat_s: float = 1.0
    expiry_grace_s: float = 900.0
    auto_ack_s: float | None = None
    min_interval_s: float = 0.05


Listener = Callable[[str, str, Mapping[str, mutations.JsonValue]], None]
"""Called with (kind, message, data) for every timeline event (the CLI's live view)."""


def _ignore(_kind: str, _message: str, _data: Mapping[str, mutations.JsonValue]) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """How a run ended: its final record, the plan, what rollback left behind."""

    run: states.Run
    plan: planning.Plan | None
    leftovers: tuple[tuple[mutations.JournalEntry, str], ...] = ()

    @property
    def exit_code(self) -> int:
        return exit_code(self.run)


class _Abort:
    """The single source of abort: the first reason wins and wakes every waiter."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.kind: str = ""
        self.at: datetime | None = None

    def trigger(self, reason: str, *, kind: str) -> bool:
        with self._lock:
            if self.reason is not None:
                return False
            self.reason, self.kind, self.at = reason, kind, datetime.now(UTC)
        self.event.set()
        return True

    @property
    def set(self) -> bool:
        return self.event.is_set()


class StepFailed(errors.OrchestratorError):
    """A step could not be carried out (the run rolls back and ends FAILED)."""


class NotClaimable(errors.OrchestratorError):
    """The run cannot be driven by this process: it is not pending, or someone drives it."""


TriggerKind = records.TriggerKind
Trigger = records.Trigger
"""Who or what started a run (its record's `trigger`): see `records.Trigger`."""


def owner_dead(run: states.Run, *, now: datetime, stale_after_s: float) -> bool:
    """Whether the process driving `run` is gone (or, on another host, silent too long).

    A submitted run nobody claimed (`journal.UNCLAIMED`) has no process: it counts as gone
    once it has waited `stale_after_s` without a claim.
    """
    alive = run.owner.is_alive_here()
    if alive is not None:
        return not alive
    last = run.heartbeat_at or run.updated_at
    return (now - last).total_seconds() > stale_after_s


class _Keep(enum.Enum):
    KEEP = "keep"


def move_run(
    store: journal.Journal,
    run: states.Run,
    to: states.RunState,
    *,
    reason: str,
    record: records.RunRecord | None = None,
    abort_reason: str | _Keep | None = _Keep.KEEP,
    ending: states.Ending | None = None,
    verdict: states.Verdict | None = None,
    listener: Listener | None = None,
) -> states.Run:
    """Move `run` to `to` in the store and say so on its timeline; the saved run.

    The one state-move helper of the engine and recovery: `states.transition` (illegal
    moves raise), then `record` / `abort_reason` replaced when given, saved expecting the
    state `run` was read in (`errors.StaleRun` when another process moved it first), then
    the `state` event, which `listener` hears as stored (secrets masked).
    """
    moved = states.transition(
        run, to, reason=reason, at=datetime.now(UTC), ending=ending, verdict=verdict
    )
    if record is not None:
        moved = dataclasses.replace(moved, record=record)
    if not isinstance(abort_reason, _Keep):
        moved = dataclasses.replace(moved, abort_reason=abort_reason)
    saved = store.save_run(moved, expected_state=run.state)
    written = store.append_event(
        run.id,
        kind=events.EventKind.STATE,
        message=f"{to.value}: {reason}",
        data={"state": to.value},
    )
    if listener is not None:
        listener(events.EventKind.STATE, written.message, written.data)
    return saved


class Engine:
    """Plans and runs drills against one journal with one registry of providers."""

    def __init__(
        self,
        *,
        store: journal.Journal,
        reg: registry.Registry,
        config: EngineConfig | None = None,
        catalog: cmdb_models.Catalog | None = None,
        killswitch_file: pathlib.Path | None = None,
    ) -> None:
        self.store = store
        self.registry = reg
        self.config = config or EngineConfig()
        self.catalog = catalog
        self.killswitch_file = killswitch_file

    def context_for(
        self, drill: planning.DrillInput, *, run_id: states.RunId, dry_run: bool
    ) -> context.RunContext:
        """The provider context of a run (connections open lazily)."""
        spec = drill.scenario.spec
        span = spec.guardrails.max_duration.seconds * drill.time_scale
        expires = datetime.now(UTC) + timedelta(seconds=span + self.config.expiry_grace_s)
        return context.RunContext(
            run_id=run_id,
            environment=drill.environment,
            connections=context.Connections(drill.environment, self.registry.connectors()),
            expires_at=expires,
            dry_run=dry_run,
            time_scale=drill.time_scale,
        )

    def runtime_facts(self, ctx: context.RunContext) -> guardrails.RuntimeFacts:
        """What the world says now: the clock, the kill switch, namespace opt-in labels."""
        return guardrails.RuntimeFacts(
            now=datetime.now(UTC),
            killswitch=self.store.killswitch(),
            opted_in=_opted_in(self, ctx),
            extra_killswitch_file=self.killswitch_file,
        )

    def plan(self, drill: planning.DrillInput) -> planning.Plan:
        """A dry run: resolve, plan and judge; nothing is written and nothing is touched."""
        run_id = states.RunId("plan-only")
        ctx = self.context_for(drill, run_id=run_id, dry_run=True)
        return planning.make_plan(
            drill=drill,
            reg=self.registry,
            ctx=ctx,
            catalog=self.catalog,
            facts=self.runtime_facts(ctx),
        )

    def submit(
        self,
        drill: planning.DrillInput,
        *,
        run_id: states.RunId | None = None,
        trigger: Trigger | None = None,
    ) -> states.Run:
        """Queue `drill`: a PENDING run nobody drives yet (`drive` claims it); nothing touched.

        The record holds what another process needs to rebind the drill (scenario and
        environment sources, drill name, parameters, approvals), secrets masked.
        """
        values, keys = secret_values(drill)
        self.store.mask_secrets(values, keys=keys)
        now = datetime.now(UTC)
        run = states.new_run(
            id=run_id or states.new_run_id(now),
            scenario=drill.scenario.metadata.name,
            environment=drill.environment.metadata.name,
            environment_source=drill.environment_source,
            owner=journal.UNCLAIMED,
            at=now,
            record=records.RunRecord(
                scenario_source=drill.scenario_source,
                drill=drill.drill,
                parameters=dict(drill.parameters),
                time_scale=drill.time_scale,
                approvals=tuple(drill.approvals),
                trigger=trigger or records.Trigger(),
                redaction=fingerprints_of(values),
                access=access_of(drill.environment),
            ),
        )
        return self.store.create_run(run)

    def claim(self, run_id: states.RunId, *, stale_after_s: float = 30.0) -> states.Run:
        """Make this process the one that drives the PENDING run `run_id`; the claimed run.

        Claimable: a run nobody claimed, or one whose claimant is gone (dead on this host,
        or its heartbeat older than `stale_after_s`). `NotClaimable` otherwise, or when
        another process claims it first.
        """
        run = self.store.get_run(run_id)
        if run.state is not _S.PENDING:
            raise NotClaimable(
                f"run {run.id} is {run.state.value}: only a pending run can be driven"
                " (a crashed one is finished by `stormdrill recover`)"
            )
        if run.owner != journal.UNCLAIMED and not owner_dead(
            run, now=datetime.now(UTC), stale_after_s=stale_after_s
        ):
            raise NotClaimable(
                f"run {run.id} is already driven by pid {run.owner.pid} on {run.owner.host}"
            )
        claimed = self.store.claim_run(
            run.id, states.Owner.current(), previous=run.owner, claimable={_S.PENDING}
        )
        if claimed is None:
            raise NotClaimable(f"run {run.id} was claimed by another process first")
        return claimed

    def drive(
        self,
        run_id: states.RunId,
        drill: planning.DrillInput,
        *,
        stop: threading.Event | None = None,
        listener: Listener = _ignore,
        stale_after_s: float = 30.0,
    ) -> RunOutcome:
        """Claim the PENDING run `run_id` (see `claim`) and drive `drill` to a final state.

        `drill` is the run's drill: the one submitted (same process) or rebound from the
        run's record. `stop` set from outside (a signal) aborts it.
        """
        values, keys = secret_values(drill)
        self.store.mask_secrets(values, keys=keys)
        run = self.claim(run_id, stale_after_s=stale_after_s)
        driver = _Driver(self, drill=drill, run=run, listener=listener, stop=stop)
        with logcontext.bound(run_id=run.id):
            return driver.execute()

    def run(
        self,
        drill: planning.DrillInput,
        *,
        stop: threading.Event | None = None,
        listener: Listener = _ignore,
        run_id: states.RunId | None = None,
        trigger: Trigger | None = None,
    ) -> RunOutcome:
        """Submit `drill` and drive it here to a final state (`submit` + `drive`)."""
        run = self.submit(drill, run_id=run_id, trigger=trigger)
        return self.drive(run.id, drill, stop=stop, listener=listener)


def fingerprints_of(values: frozenset[str]) -> secrets.Fingerprints | None:
    """The record's `redaction`: salted digests of the run's secrets, never the secrets.

    Another process writing about the run (an `ack` with evidence, an abort reason) masks
    them with it although it never saw them in clear. None for a run without secrets.
    """
    if not values:
        return None
    return secrets.Fingerprints.of(values, salt=token_hex(16))


def access_of(environment: models.Environment) -> dict[str, mutations.JsonValue] | None:
    """The Environment's cluster and AWS access sections as a run records them."""
    found: dict[str, mutations.JsonValue] = {}
    for name in ("kubernetes", "aws"):
        section = getattr(environment.spec, name)
        if section is not None:
            found[name] = section.model_dump(mode="json", by_alias=True, exclude_none=True)
    return found or None


def with_access(
    environment: models.Environment, access: Mapping[str, object] | None
) -> models.Environment:
    """`environment` with the access sections a run recorded in place of its own."""
    if not access:
        return environment
    spec = environment.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec.update({name: access[name] for name in ("kubernetes", "aws") if name in access})
    return environment.model_copy(update={"spec": type(environment.spec).model_validate(spec)})


def secret_values(drill: planning.DrillInput) -> tuple[frozenset[str], frozenset[str]]:
    """The drill's secret values and the names of its parameters declared `secret: true`."""
    return secrets.secret_values(
        declared={name: p.secret for name, p in drill.scenario.spec.parameters.items()},
        bound=drill.parameters,
        environment=drill.environment.spec.parameters,
    )


def _opted_in(engine: Engine, ctx: context.RunContext) -> guardrails.OptedIn | None:
    finder = engine.registry.namespace_opt_in()
    if finder is None:
        return None

    def lookup(namespaces: Sequence[str]) -> Collection[str]:
        return list(finder(ctx, namespaces))

    return lookup


def ack_hint(run_id: str, step: models.Step, who: manual_steps.Eligibility) -> str:
    """The exact command that acknowledges `step` of `run_id` (person and evidence to fill in).

    `--by` names the one person who may act when there is exactly one, else `PERSON`;
    `--evidence` says which kinds of evidence the step asks for (`TEXT|URL`).
    """
    assert step.manual is not None
    people = who.eligible or ()
    by = people[0].short if len(people) == 1 else "PERSON"
    kinds = "|".join(e.value.upper() for e in step.manual.evidence) or "TEXT"
    return f'stormdrill ack {run_id} {step.name} --by {by} --evidence "{kinds}"'


def deadline_text(due: datetime) -> str:
    """`2026-12-02T01:09:18Z (02:09:18 CET local)`: a deadline in UTC and this machine's time."""
    utc = due.astimezone(UTC).replace(microsecond=0)
    local = utc.astimezone()
    return f"{utc.isoformat().replace('+00:00', 'Z')} ({local:%Y-%m-%d %H:%M:%S %Z} local)"


class _Driver:
    """One run in progress: small phase methods around a shared, explicit state."""

    def __init__(
        self,
        engine: Engine,
        *,
        drill: planning.DrillInput,
        run: states.Run,
        listener: Listener,
        stop: threading.Event | None,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.config = engine.config
        self.drill = drill
        self.run = run
        self.listener = listener
        self.external_stop = stop
        self.abort = _Abort()
        self.ctx = engine.context_for(drill, run_id=run.id, dry_run=False)
        self.plan: planning.Plan | None = None
        self.observer: observing.Observer | None = None
        self.t0: datetime | None = None
        self.deviations: list[str] = []
        self.failure: str | None = None
        self.touched = False
        self._watchdog_stop = threading.Event()
        self._record: records.RunRecord = run.record

    # -- plumbing --------------------------------------------------------------------

    def event(self, kind: str, message: str, **data: mutations.JsonValue) -> None:
        written = self.store.append_event(self.run.id, kind=kind, message=message, data=data)
        self.listener(kind, written.message, written.data)  # as stored: secrets masked

    def move(
        self,
        to: states.RunState,
        *,
        reason: str,
        ending: states.Ending | None = None,
        verdict: states.Verdict | None = None,
    ) -> None:
        keep = not (to is _S.ABORTED or (to in states.TERMINAL and self.abort.reason))
        self.run = move_run(
            self.store,
            self.run,
            to,
            reason=reason,
            record=self._record,
            abort_reason=_Keep.KEEP if keep else self.abort.reason,
            ending=ending,
            verdict=verdict,
            listener=self.listener,
        )

    def scaled(self, seconds: float) -> float:
        return max(self.ctx.scaled(seconds), 0.0)

    # -- the run ---------------------------------------------------------------------

    def execute(self) -> RunOutcome:
        with secrets.masking_logs(lambda: self.store.redactor):
            return self._execute()

    def _execute(self) -> RunOutcome:
        watchdog = threading.Thread(target=self._watchdog, name=f"watchdog-{self.run.id}")
        watchdog.daemon = True
        watchdog.start()
        leftovers: tuple[tuple[mutations.JournalEntry, str], ...] = ()
        try:
            if not self._plan_phase() or not self._preflight_phase():
                return RunOutcome(run=self.run, plan=self.plan)
            ending = self._inject_phase()
            leftovers = self._rollback_phase(ending)
            if not leftovers:
                self._verify_phase(ending)
            return RunOutcome(run=self.run, plan=self.plan, leftovers=leftovers)
        finally:
            self._watchdog_stop.set()
            if self.observer is not None:
                self.observer.stop()
            self.store.release_targets(self.run.id)
            watchdog.join(timeout=5)

    def _plan_phase(self) -> bool:
        self.move(_S.PLANNING, reason="resolving targets and planning mutations")
        try:
            self.plan = planning.make_plan(
                drill=self.drill,
                reg=self.engine.registry,
                ctx=self.ctx,
                catalog=self.engine.catalog,
                facts=dataclasses.replace(
                    self.engine.runtime_facts(self.ctx), trigger=self.run.record.trigger
                ),
            )
            if not self.plan.refused:
                locks = guardrails.acquire_targets(self.store, self.run.id, self.plan.target_keys())
                self.plan = dataclasses.replace(self.plan, verdicts=(*self.plan.verdicts, *locks))
        except errors.StormdrillError as exc:
            if errors.is_infrastructure(exc):
                self._record = dataclasses.replace(self._record, infrastructure_error=True)
                self.move(_S.ABORTED, reason=f"planning failed, a system is unreachable: {exc}")
                return False
            self._record = dataclasses.replace(self._record, refused=True)
            self.move(_S.ABORTED, reason=f"planning failed: {exc}")
            return False
        self._record = _with_plan(self._record, self.plan)
        for verdict in self.plan.verdicts:
            self.event(
                events.EventKind.GUARDRAIL,
                f"{verdict.rule}: {'ok' if verdict.ok else 'REFUSED'} {verdict.message}",
                rule=verdict.rule,
                ok=verdict.ok,
                subject=verdict.subject,
            )
        if self.plan.refused:
            self._record = dataclasses.replace(self._record, refused=True)
            reasons = "; ".join(f"{v.rule}: {v.message}" for v in self.plan.refusals)
            self.move(_S.ABORTED, reason=f"refused by guardrails: {reasons}")
            return False
        return True

    def _preflight_phase(self) -> bool:
        assert self.plan is not None
        self.move(_S.PREFLIGHT, reason="checking steady state before touching anything")
        self.observer = observing.Observer(
            ctx=self.ctx,
            reg=self.engine.registry,
            store=self.store,
            scenario=self.drill.scenario,
            on_abort=lambda reason: self._abort_from("guardrail", reason),
            killswitch_file=self.engine.killswitch_file,
            deadline=self._deadline(),
            min_interval_s=self.config.min_interval_s,
        )
        results = self.observer.check_once(phase=models.Phase.BEFORE)
        failing = [r for r in results if not r.ok]
        if failing:
            names = ", ".join(f"{r.probe} ({r.message})" for r in failing)
            self.move(_S.ABORTED, reason=f"steady state does not hold before the drill: {names}")
            return False
        return True

    def _inject_phase(self) -> states.Ending:
        assert self.plan is not None and self.observer is not None
        self.move(_S.INJECTING, reason="injecting faults")
        self.observer.start()
        try:
            for step_plan in self.plan.steps:
                if self.abort.set:
                    break
                self._run_step(step_plan.step)
        except errors.StormdrillError as exc:
            self.failure = str(exc)
            if errors.is_infrastructure(exc):
                self._record = dataclasses.replace(self._record, infrastructure_error=True)
            self.event(events.EventKind.ERROR, f"step failed: {exc}")
            return states.Ending.FAILED
        except KeyboardInterrupt:
            self._abort_from("operator", "interrupted (Ctrl-C)")
        if self.abort.set:
            return states.Ending.ABORTED
        self.move(_S.OBSERVING, reason="all steps done; reading the hypothesis")
        self.deviations.extend(str(d) for d in self.observer.deviations())
        return states.Ending.COMPLETED

    def _rollback_phase(
        self, ending: states.Ending
    ) -> tuple[tuple[mutations.JournalEntry, str], ...]:
        reason = {
            states.Ending.COMPLETED: "drill finished; undoing every fault",
            states.Ending.ABORTED: f"aborted: {self.abort.reason}; undoing every fault",
            states.Ending.FAILED: f"failed: {self.failure}; undoing every fault",
        }[ending]
        self.move(_S.ROLLING_BACK, reason=reason, ending=ending)
        if self.observer is not None:
            self.observer.pause()
        limits = rollback.Limits.of_environment(
            self.ctx.environment, default=self.config.rollback_concurrency
        )
        outcome = rollback.revert_run(
            store=self.store,
            reg=self.engine.registry,
            ctx=self.ctx,
            run_id=self.run.id,
            retry=self.config.retry,
            concurrency=limits.total,
            per_provider=limits.per_provider,
            listener=self.listener,  # live view only: revert_run journals the timeline itself
        )
        explicit_failed = self._explicit_rollback_steps()
        leftovers = tuple(outcome.failed) + explicit_failed
        if leftovers:
            listed = "; ".join(
                f"{entry.action} on {entry.target}: {error}" for entry, error in leftovers
            )
            described: list[mutations.JsonValue] = [
                rollback.leftover_json(entry, error) for entry, error in leftovers
            ]
            self._record = dataclasses.replace(
                self._record,
                leftovers=tuple(
                    records.Leftover.of(
                        entry, error, summary=rollback.describe_leftover(entry, error)
                    )
                    for entry, error in leftovers
                ),
            )
            self.move(_S.ROLLBACK_FAILED, reason=f"faults may remain: {listed}")
            self.event(
                events.EventKind.ROLLBACK_FAILED,
                f"rollback failed: {len(leftovers)} fault(s) may remain; fix the cause, then"
                " run `stormdrill recover`",
                leftovers=described,
                by="engine",
            )
        return leftovers

    def _explicit_rollback_steps(self) -> tuple[tuple[mutations.JournalEntry, str], ...]:
        """The scenario's own `rollback:` steps (e.g. failing a database back): journaled."""
        failed: list[tuple[mutations.JournalEntry, str]] = []
        if not self.touched:
            return ()
        for step in self.drill.scenario.spec.rollback:
            try:
                self._apply_action(step, revertible=False, rolling_back=True)
            except errors.StormdrillError as exc:
                self.event(events.EventKind.ERROR, f"rollback step {step.name} failed: {exc}")
                placeholder = mutations.JournalEntry(
                    seq=0,
                    run_id=self.run.id,
                    step=step.name,
                    target=mutations.TargetRef(provider="scenario", kind="step", name=step.name),
                    action=step.action or "",
                    params={},
                    pre_state={},
                    undo=mutations.UndoToken(action=step.action or "", data={}),
                    state=mutations.EntryState.REVERT_FAILED,
                    error=str(exc),
                    created_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                    attempts=1,
                )
                failed.append((placeholder, str(exc)))
        return tuple(failed)

    def _verify_phase(self, ending: states.Ending) -> None:
        assert self.observer is not None
        self.move(_S.VERIFYING, reason="checking steady state is back")
        stability = self.scaled(self.config.stability_window_s)
        result = self.observer.wait_until_stable(
            window_s=stability,
            timeout_s=max(self.scaled(self.config.recovery_timeout_s), stability * 3),
        )
        self._record_objectives(stability)
        verdict = self._verdict()
        if not result.stable:
            self.move(
                _S.FAILED,
                reason="steady state was not restored after rollback",
                verdict=states.Verdict.DEVIATED,
            )
            return
        final = ending.state if ending is not states.Ending.FAILED else _S.FAILED
        summary = {
            _S.COMPLETED: "drill completed",
            _S.ABORTED: f"drill aborted ({self.abort.reason}) and fully reverted",
            _S.FAILED: f"drill failed ({self.failure}) and fully reverted",
        }[final]
        self.move(final, reason=summary, verdict=verdict)

    def _verdict(self) -> states.Verdict:
        observed = self.observer.deviations() if self.observer is not None else []
        if self.deviations or observed or self.abort.kind == "probe":
            return states.Verdict.DEVIATED
        if self.abort.set or self.failure is not None:
            return states.Verdict.INCONCLUSIVE
        return states.Verdict.HELD

    def _record_objectives(self, stability_s: float) -> None:
        """Achieved RTO (probe samples) and RPO (canary samples) against their targets.

        A target missing from the scenario defaults to the strictest one the CMDB gives the
        scenario's targeted services (distance 0) for its failure mode.
        """
        probed = self.store.events(self.run.id, kind=events.EventKind.PROBE)
        samples = objectives.samples_from_events(probed)
        scale = self.drill.time_scale
        recovered = objectives.recovery(
            samples,
            objectives.manual_waits(self.store.events(self.run.id)),
            t0=self.t0,
            window_s=stability_s,
            time_scale=scale,
        )
        measured = recovered.measured_s if recovered is not None else None
        real_world = recovered.real_world_s if recovered is not None else None
        services = [
            item.service
            for item in (self.plan.impact.services if self.plan and self.plan.impact else ())
            if item.distance == 0
        ]
        mode = self.drill.scenario.spec.failure_mode.value
        rto = objectives.target_of(
            self.drill.scenario.spec.objectives.rto, services=services, mode=mode, kind="rto"
        )
        rpo = objectives.target_of(
            self.drill.scenario.spec.objectives.rpo, services=services, mode=mode, kind="rpo"
        )
        scaled_target = rto.seconds * scale if rto.seconds is not None else None
        loss = canary.achieved_rpo(probed)
        scaled_rpo = rpo.seconds * scale if rpo.seconds is not None else None
        measured_objectives = records.Objectives(
            t0=self.t0,
            achieved_rto_s=measured,
            target_rto_s=rto.seconds,
            target_rto_source=rto.source,
            scaled_target_rto_s=scaled_target,
            time_scale=scale,
            stability_window_s=stability_s,
            rto_met=(
                None if real_world is None or rto.seconds is None else real_world <= rto.seconds
            ),
            manual_wait_s=recovered.manual_s if recovered is not None else None,
            real_world_rto_s=round(real_world, 3) if real_world is not None else None,
            achieved_rpo_s=loss.seconds if loss is not None else None,
            target_rpo_s=rpo.seconds,
            target_rpo_source=rpo.source,
            scaled_target_rpo_s=scaled_rpo,
            rpo_met=None if loss is None or scaled_rpo is None else loss.seconds <= scaled_rpo,
            rpo_canary=records.RpoCanary.from_json(loss.to_json()) if loss is not None else None,
        )
        self._record = dataclasses.replace(self._record, objectives=measured_objectives)

    # -- steps -----------------------------------------------------------------------

    def _run_step(self, step: models.Step) -> None:
        with logcontext.bound(step=step.name):
            self._run_step_bound(step)

    def _run_step_bound(self, step: models.Step) -> None:
        self.event(_E.STEP, f"step {step.name} ({step.kind.value}) started", step=step.name)
        if step.kind is models.StepKind.ACTION:
            self._apply_action(step, revertible=step.rollback is models.RollbackPolicy.AUTO)
        elif step.kind is models.StepKind.WAIT:
            assert step.wait is not None
            self.abort.event.wait(self.scaled(step.wait.seconds))
        elif step.kind is models.StepKind.PROBE:
            self._probe_step(step)
        else:
            self._manual_step(step)
        self.event(_E.STEP, f"step {step.name} finished", step=step.name)

    def _apply_action(
        self, step: models.Step, *, revertible: bool, rolling_back: bool = False
    ) -> None:
        """Journal and apply `step`'s mutations; an abort stops them, except in rollback."""
        assert self.plan is not None and step.action is not None
        action = self.engine.registry.get_action(step.action)()
        planned = planning.plan_action(
            step, reg=self.engine.registry, ctx=self.ctx, selections=self.plan.selections
        )
        keep_undo = revertible and action.revertible
        for mutation in planned:
            if self.abort.set and not rolling_back:
                return
            entry = self.store.record_intent(self.run.id, mutation)
            self.touched = True
            self.event(
                _E.MUTATION,
                f"intent #{entry.seq}: {mutation.action} on {mutation.target}",
                seq=entry.seq,
                step=step.name,
                state="intended",
            )
            try:
                undo = action.apply(self.ctx, mutation=mutation)
            except errors.ProviderError as exc:
                # Left INTENDED on purpose: whether it happened is unknown; undo is idempotent.
                raise StepFailed(
                    f"step {step.name}: {mutation.action} on {mutation.target}: {exc}"
                ) from exc
            self.store.mark_applied(entry.seq, undo=undo)
            if self.t0 is None and action.mutating:  # T0 is the first fault, not an analysis
                self.t0 = datetime.now(UTC)
            if not keep_undo:
                self.store.mark_skipped(
                    entry.seq, reason="not revertible by design (rollback: none)"
                )
            self.event(
                _E.MUTATION,
                f"applied #{entry.seq}: {mutation.action} on {mutation.target}",
                seq=entry.seq,
                step=step.name,
                state="applied",
            )
            for finding in _findings_of(mutation):
                message = str(finding.pop("message", ""))
                self.event(_E.FINDING, message, step=step.name, **finding)

    def _probe_step(self, step: models.Step) -> None:
        assert self.observer is not None and step.probe is not None
        probe = self.drill.scenario.spec.probe(step.probe)
        assert probe is not None
        checked = self.observer.check_probe(probe, phase=models.Phase.DURING)
        if not checked.ok:
            self.deviations.append(f"step {step.name}: probe {probe.name}: {checked.message}")
            self.event(_E.DEVIATION, f"probe step {step.name} failed: {checked.message}")
            self._abort_from("probe", f"probe step {step.name} failed: {checked.message}")

    def _manual_step(self, step: models.Step) -> None:
        """Wait for an eligible person's acknowledgement (or auto-ack) until the timeout.

        Who may act is resolved now (team members, or its on-call at this moment, never a
        person this run marked absent) and recorded in the `manual` event; acks from anyone
        else are ignored (the CLI already refuses them). Nobody eligible is a finding and
        the step times out at once, per `onTimeout`.
        """
        assert step.manual is not None
        manual = step.manual
        timeout = max(manual.timeout.seconds, 0.0)  # people are never scaled
        who = manual_steps.resolve(
            self.engine.catalog,
            assignee=manual.assignee,
            role=manual.role,
            absent=manual_steps.absent_people(self.store.entries(self.run.id)),
            at=datetime.now(UTC),
        )
        record = events.Manual.from_data(
            {
                "step": step.name,
                "assignee": manual.assignee,
                "role": manual.role.value,
                "timeout_s": timeout,
                "evidence": [e.value for e in manual.evidence],
                **who.to_json(),
            }
        ).to_data()
        due = (datetime.now(UTC) + timedelta(seconds=timeout)).replace(microsecond=0)
        ack_command = ack_hint(self.run.id, step, who)
        self.event(
            _E.MANUAL,
            f"waiting for {manual.assignee} ({manual.role.value}; may act: {who.names()}):"
            f" {manual.instructions} | acknowledge with: {ack_command}"
            f" | deadline {deadline_text(due)}",
            **record,
            deadline=due.isoformat().replace("+00:00", "Z"),
            ack_command=ack_command,
        )
        if who.nobody:
            self.event(
                _E.FINDING,
                f"manual step {step.name}: nobody may act on it: {who.problem}",
                step=step.name,
                rule="no-eligible-assignee",
                severity="high",
            )
            self._manual_timed_out(step, timeout)
            return
        started = time.monotonic()
        deadline = started + timeout
        auto_at = started + self.config.auto_ack_s if self.config.auto_ack_s is not None else None
        ignored: set[int] = set()
        while not self.abort.set:
            if self._acknowledged(step, record, ignored):
                return
            now = time.monotonic()
            if auto_at is not None and now >= auto_at:
                automatic = events.Ack(
                    step=step.name,
                    by="stormdrill --auto-ack",
                    automated=True,
                    evidence="automated acknowledgement",
                    waited_s=round(now - started, 3),
                )
                self.event(
                    _E.ACK,
                    f"step {step.name} acknowledged automatically (--auto-ack)",
                    **automatic.to_data(),
                )
                return
            if now >= deadline:
                self._manual_timed_out(step, timeout)
                return
            self.abort.event.wait(0.1)

    def _acknowledged(
        self, step: models.Step, manual: Mapping[str, mutations.JsonValue], ignored: set[int]
    ) -> bool:
        for ack in self.store.events(self.run.id, kind=_E.ACK):
            given = events.Ack.from_data(ack.data)
            if given.step != step.name or ack.seq in ignored:
                continue
            if manual_steps.accepts(manual, ack.data):
                return True
            ignored.add(ack.seq)
            self.event(
                _E.FINDING,
                f"acknowledgement of {step.name} by {given.by} ignored: not among"
                " the people who may act on it",
                step=step.name,
                rule="ack-by-ineligible",
                severity="medium",
            )
        return False

    def _manual_timed_out(self, step: models.Step, timeout: float) -> None:
        self.event(
            _E.FINDING,
            f"manual step {step.name} timed out after {timeout:.1f}s",
            step=step.name,
            rule="manual-timeout",
            severity="high",
        )
        if step.effective_on_timeout is models.OnTimeout.ABORT:
            self._abort_from("guardrail", f"manual step {step.name} timed out")

    # -- aborts and the watchdog -------------------------------------------------------

    def _abort_from(self, kind: str, reason: str) -> None:
        if self.abort.trigger(reason, kind=kind):
            log.warning("run %s aborting: %s; rolling back next", self.run.id, reason)
            self.store.append_event(self.run.id, kind=_E.ABORT, message=reason, data={"by": kind})

    def _deadline(self) -> datetime:
        span = self.drill.scenario.spec.guardrails.max_duration.seconds * self.drill.time_scale
        return self.run.started_at + timedelta(seconds=span)

    def _watchdog(self) -> None:
        """Signals and abort requests every 0.1 s (reads); a heartbeat every `heartbeat_s`."""
        owner = self.run.owner
        next_beat = 0.0
        while not self._watchdog_stop.wait(0.1):
            if self.external_stop is not None and self.external_stop.is_set():
                self._abort_from("operator", "stopped by signal (SIGINT/SIGTERM)")
            if not self.abort.set and (asked := _abort_request(self.store, self.run.id)):
                self._abort_from("operator", asked)
            if time.monotonic() >= next_beat:
                self.store.heartbeat(self.run.id, owner=owner)
                next_beat = time.monotonic() + self.config.heartbeat_s


def _findings_of(mutation: mutations.PlannedMutation) -> list[dict[str, mutations.JsonValue]]:
    """Findings a non-mutating action reports in its `pre_state` (e.g. people.analyse-absence)."""
    raw = mutation.pre_state.get("findings")
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return []
    return [dict(item) for item in raw if isinstance(item, Mapping)]


def _abort_request(store: journal.Journal, run_id: states.RunId) -> str | None:
    """Who asked the run to abort, as the first request says (`abort requested from the web
    pages (alice)`), or None when nobody did."""
    asked = store.events(run_id, kind=_E.ABORT_REQUEST)
    return (asked[0].message or "abort requested") if asked else None


def _with_plan(record: records.RunRecord, plan: planning.Plan) -> records.RunRecord:
    """`record` with what a report needs of the plan: targets, impact, planned mutations."""
    impacted = tuple(
        records.ImpactRow(
            ref=str(item.service.ref),
            tier=item.service.tier,
            owner=str(item.service.owner) if item.service.owner else None,
            distance=item.distance,
            path=tuple(str(ref) for ref in item.path),
        )
        for item in (plan.impact.services if plan.impact is not None else ())
    )
    return dataclasses.replace(
        record,
        targets={
            name: records.TargetRecord(
                provider=sel.provider,
                kind=sel.kind,
                refs=tuple(str(ref) for ref in sel.refs),
                population=sel.population,
                excluded=tuple(f"{ref}: {why}" for ref, why in sel.excluded),
            )
            for name, sel in plan.selections.items()
        },
        impact=impacted,
        planned_mutations=sum(len(step.mutations) for step in plan.steps),
    )
