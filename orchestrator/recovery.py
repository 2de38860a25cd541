"""Recovery: finish what a dead orchestrator left behind, from the journal and from markers.

Invariants:
- A run is recovered only when its owner is known dead (same host: the process with that
  pid and start token is gone) or, across hosts, its heartbeat is stale.
- Exactly one process recovers a run: it claims the run (`Journal.claim_run`, a
  conditional owner update) before undoing anything, and every state move expects the
  state it read. A run another process claimed or moved first (`StaleRun`) is skipped, and
  the pass goes on with the next one.
- PENDING runs are the queue's, not recovery's: they touched nothing and hold no locks; a
  queued run whose claimant died is claimed again by whoever drives it (`Engine.claim`).
- A recovered run becomes CRASHED, then ROLLING_BACK, and is reverted from its journal
  (applied and intended-but-unknown entries, newest first, idempotently).
- A finished run holds no target locks after recovery (its owner may have died between
  saving the final state and releasing them).
- The marker sweep heals faults whose run is unknown (journal lost), finished, dead or
  expired — never those of a live, unexpired run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from orchestrator import (
    context,
    engine,
    errors,
    events,
    journal,
    mutations,
    records,
    registry,
    rollback,
    states,
)
from scenarios import models

log = logging.getLogger(__name__)

_S = states.RunState

EnvironmentFor = Callable[[states.Run], models.Environment]
"""Loads the Environment a run was started against (raises StormdrillError if it cannot)."""


@dataclasses.dataclass(frozen=True)
class RecoveredRun:
    """One run recovery took over, and how it ended."""

    run_id: states.RunId
    found_state: states.RunState
    final_state: states.RunState
    reverted: int
    failed: tuple[str, ...]
    message: str


def owner_dead(run: states.Run, *, now: datetime, stale_after_s: float) -> bool:
    """Whether the process driving `run` is gone (see `engine.owner_dead`)."""
    return engine.owner_dead(run, now=now, stale_after_s=stale_after_s)


def recover_runs(
    *,
    store: journal.Journal,
    reg: registry.Registry,
    environment_for: EnvironmentFor,
    config: engine.EngineConfig | None = None,
    stale_after_s: float = 30.0,
    only: states.RunId | None = None,
) -> list[RecoveredRun]:
    """Roll back every unfinished run whose owner is dead, and retry ROLLBACK_FAILED runs."""
    config = config or engine.EngineConfig()
    now = datetime.now(UTC)
    candidates = store.runs_in_flight() + store.list_runs(states_in=[_S.ROLLBACK_FAILED])
    recovered: list[RecoveredRun] = []
    for run in candidates:
        if only is not None and run.id != only:
            continue
        if run.state is _S.PENDING:
            continue  # queued: nothing touched, no locks; its driver claims it (Engine.claim)
        free = run.state is _S.ROLLBACK_FAILED or run.owner == journal.UNCLAIMED
        if not free and owner_dead(run, now=now, stale_after_s=stale_after_s):
            free = True
        if not free:
            log.info("run %s is alive (owner %s); leaving it alone", run.id, run.owner.pid)
            continue
        try:
            done = _recover_one(
                store=store, reg=reg, run=run, env_for=environment_for, config=config
            )
        except errors.StaleRun as exc:
            log.info("run %s: another process recovers it; skipped (%s)", run.id, exc)
            continue
        if done is not None:
            recovered.append(done)
    if only is None:
        release_finished_locks(store)
    return recovered


def release_finished_locks(store: journal.Journal) -> list[states.RunId]:
    """Release target locks still held by finished runs; the runs that held some.

    The engine releases a run's locks after saving its final state; an orchestrator killed
    between the two leaves a finished run holding its targets, and every later drill on them
    is refused (overlap) forever. A finished run changes nothing any more, so its locks go.
    """
    released: list[states.RunId] = []
    for run_id in store.lock_holders():
        run = store.get_run(run_id)
        if run.terminal and store.release_targets(run.id):
            log.warning("run %s is %s but still held target locks; released", run.id, run.state)
            released.append(run.id)
    return released


def _recover_one(
    *,
    store: journal.Journal,
    reg: registry.Registry,
    run: states.Run,
    env_for: EnvironmentFor,
    config: engine.EngineConfig,
) -> RecoveredRun | None:
    """Claim `run`, roll it back and finish it; None if another process claimed it first.

    Raises `errors.StaleRun` when another process moves it between our reads and writes.
    """
    found = run.state

    def move(
        current: states.Run,
        to: states.RunState,
        reason: str,
        *,
        leftovers: tuple[records.Leftover, ...] | None = None,
    ) -> states.Run:
        record = (
            None if leftovers is None else dataclasses.replace(current.record, leftovers=leftovers)
        )
        return engine.move_run(store, current, to, reason=reason, record=record)

    if run.state in states.IN_FLIGHT and run.state is not _S.CRASHED:
        run = move(run, _S.CRASHED, f"owner process {run.owner.pid} on {run.owner.host} is gone")
    me = states.Owner.current()
    claimed = store.claim_run(run.id, me, previous=run.owner)
    if claimed is None:
        log.info("run %s: claimed by another process first; skipped", run.id)
        return None
    run = claimed
    try:
        environment = env_for(run)
    except errors.StormdrillError as exc:
        message = f"cannot load environment {run.environment_source!r}: {exc}"
        log.error("recovery of run %s blocked: %s", run.id, message)
        # Hand it back: the next recovery pass (this process's too) may claim it again.
        store.claim_run(run.id, journal.UNCLAIMED, previous=me)
        return RecoveredRun(run.id, found, run.state, 0, (message,), message)
    run = move(run, _S.ROLLING_BACK, "recovery: undoing every journaled fault")
    ctx = context.RunContext(
        run_id=run.id,
        environment=environment,
        connections=context.Connections(environment, reg.connectors()),
        expires_at=datetime.now(UTC),
        time_scale=environment.spec.time_scale,
    )
    limits = rollback.Limits.of_environment(environment, default=config.rollback_concurrency)
    outcome = rollback.revert_run(
        store=store,
        reg=reg,
        ctx=ctx,
        run_id=run.id,
        retry=config.retry,
        concurrency=limits.total,
        per_provider=limits.per_provider,
    )
    store.release_targets(run.id)
    if not outcome.ok:
        failed = tuple(rollback.describe_leftover(e, why) for e, why in outcome.failed)
        described: list[mutations.JsonValue] = [
            rollback.leftover_json(e, why) for e, why in outcome.failed
        ]
        run = move(
            run,
            _S.ROLLBACK_FAILED,
            "recovery could not undo: " + "; ".join(failed),
            leftovers=tuple(
                records.Leftover.of(e, why, summary=rollback.describe_leftover(e, why))
                for e, why in outcome.failed
            ),
        )
        store.append_event(
            run.id,
            kind=events.EventKind.ROLLBACK_FAILED,
            message=f"recovery could not undo {len(failed)} fault(s); they may remain",
            data={"leftovers": described, "by": "recovery"},
        )
        return RecoveredRun(run.id, found, run.state, len(outcome.reverted), failed, run.reason)
    run = move(run, _S.VERIFYING, "recovery: every journaled fault undone", leftovers=())
    # A retried ROLLBACK_FAILED run ends as it meant to; a crashed run did not finish: FAILED.
    retried = found is _S.ROLLBACK_FAILED and run.ending is not None
    final = run.ending.state if retried and run.ending is not None else _S.FAILED
    run = move(run, final, f"recovered after the orchestrator stopped in {found.value}")
    return RecoveredRun(run.id, found, run.state, len(outcome.reverted), (), run.reason)


def orphan_test(
    store: journal.Journal, *, now: datetime, stale_after_s: float = 30.0
) -> Callable[[str, datetime], bool]:
    """Whether a marker with (run id, expires-at) belongs to nobody alive."""

    def is_orphan(run_id: str, expires_at: datetime) -> bool:
        if expires_at <= now:
            return True
        try:
            run = store.get_run(states.RunId(run_id))
        except errors.StormdrillError:
            return True  # the journal does not know it: lost, or another store's
        if run.state in states.TERMINAL:
            return True
        return owner_dead(run, now=now, stale_after_s=stale_after_s)

    return is_orphan


def sweep_markers(
    *,
    store: journal.Journal,
    reg: registry.Registry,
    environment: models.Environment,
    dry_run: bool = False,
) -> list[registry.SweepFinding]:
    """Heal every marked fault in `environment` that belongs to no live run."""
    now = datetime.now(UTC)
    ctx = context.RunContext(
        run_id=states.RunId("recovery-sweep"),
        environment=environment,
        connections=context.Connections(environment, reg.connectors()),
        expires_at=now + timedelta(seconds=0),
        dry_run=dry_run,
        time_scale=environment.spec.time_scale,
    )
    is_orphan = orphan_test(store, now=now)
    findings: list[registry.SweepFinding] = []
    for sweeper in reg.sweepers():
        try:
            findings.extend(sweeper.sweep(ctx, is_orphan=is_orphan, dry_run=dry_run))
        except errors.ProviderError as exc:
            log.error("sweep of %s markers failed: %s; run recover again", sweeper.provider, exc)
            raise
    return findings
