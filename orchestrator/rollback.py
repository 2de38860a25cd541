"""Rollback: undo journalled mutations, newest first, with bounded concurrency.

Invariants:
- Reverts start in newest-first order. Entries on the same target are reverted
  strictly newest first, one after the other; different targets run concurrently,
  at most `concurrency` at a time (with 1, the whole rollback is newest first).
- If a revert on a target fails, the older entries on that target are NOT
  attempted (their undo may assume the newer one was undone); they are marked
  revert_failed with the reason and reported.
- Nothing is reported reverted unless the provider's revert returned and the
  journal recorded it. Every other ending (permanent error, retries exhausted, a
  bug in the provider, a journal write failing) is reported as failed.
- Reverts are idempotent by contract: a provider treats "already undone" and
  "never happened" as success, so re-running a rollback is always safe.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from orchestrator import context, errors, events, mutations, registry, retrying, states
from orchestrator import journal as journal_mod

log = logging.getLogger(__name__)

Revert = Callable[[mutations.JournalEntry], None]

RevertListener = Callable[[str, str, Mapping[str, mutations.JsonValue]], None]
"""Hears (kind, message, data) as each revert starts (the CLI's live view)."""

ROLLBACK_FAILED_EVENT = events.EventKind.ROLLBACK_FAILED
"""Timeline event kind appended whenever a rollback (the engine's or recovery's) leaves faults
behind; its data holds `leftovers` (see `leftover_json`). The hook point for notifications:
a notifier watches the journal for this kind (none is wired yet)."""


def _where(target: mutations.TargetRef) -> str:
    parts = [
        f"namespace {target.namespace}" if target.namespace else "",
        f"region {target.region}" if target.region else "",
    ]
    shown = ", ".join(p for p in parts if p)
    if shown:
        return shown
    return "cluster-scoped" if target.provider == "kubernetes" else "no region recorded"


def _fault(entry: mutations.JournalEntry) -> str:
    pairs = []
    for key, value in sorted(entry.params.items()):
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        pairs.append(f"{key}={shown}")
    text = ", ".join(pairs)
    return text if len(text) <= 160 else text[:157] + "..."


def describe_leftover(entry: mutations.JournalEntry, error: str) -> str:
    """One line for a person: which fault, on what, where, and why it is still there.

    `#3 kubernetes.nodes.taint (effect=NoExecute, key=k) on kubernetes node n1
    [cluster-scoped]: <why the undo failed>`
    """
    fault = _fault(entry)
    return (
        f"#{entry.seq} {entry.action}{f' ({fault})' if fault else ''} on"
        f" {entry.target.provider} {entry.target.kind} {entry.target.name}"
        f" [{_where(entry.target)}] (step {entry.step or '-'}): {error}"
    )


def leftover_json(entry: mutations.JournalEntry, error: str) -> dict[str, mutations.JsonValue]:
    """A leftover for the run record and the `rollback-failed` event."""
    return {
        "seq": entry.seq,
        "step": entry.step,
        "action": entry.action,
        "target": str(entry.target),
        "provider": entry.target.provider,
        "kind": entry.target.kind,
        "name": entry.target.name,
        "namespace": entry.target.namespace,
        "region": entry.target.region,
        "params": dict(entry.params),
        "error": error,
        "summary": describe_leftover(entry, error),
    }


class RevertRecorder(Protocol):
    """The part of `journal.Journal` the executor writes to."""

    def mark_reverted(self, seq: int, *, attempts: int = 1) -> mutations.JournalEntry: ...

    def mark_revert_failed(
        self, seq: int, *, error: str, attempts: int = 1
    ) -> mutations.JournalEntry: ...


@dataclass(frozen=True)
class RollbackOutcome:
    """What was undone and what was not (with why), each newest first."""

    reverted: list[mutations.JournalEntry] = field(default_factory=list)
    failed: list[tuple[mutations.JournalEntry, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def raise_for_leftovers(self, *, run_id: str = "") -> None:
        """Raise `errors.RollbackFailed` naming every leftover, if there are any."""
        if self.failed:
            raise errors.RollbackFailed(self.failed, run_id=run_id)


@dataclass(frozen=True)
class _Result:
    entry: mutations.JournalEntry
    error: str | None  # None: reverted and recorded


def rollback(
    *,
    entries: Sequence[mutations.JournalEntry],
    revert: Revert,
    journal: RevertRecorder,
    retry: retrying.RetryPolicy | None = None,
    concurrency: int = 16,
    clock: retrying.Clock = time.monotonic,
    sleep: retrying.Sleep = time.sleep,
    rand: retrying.Random = random.random,
) -> RollbackOutcome:
    """Revert `entries` (any order given; newest first is enforced) and record each result.

    `revert` must be idempotent. It may raise `errors.ProviderRetryable` (retried with
    backoff), `errors.ProviderPermanent` (recorded as revert_failed); anything else
    is a bug, logged with its traceback and recorded as revert_failed.
    """
    if concurrency < 1:
        raise ValueError(f"rollback concurrency must be at least 1, got {concurrency}")
    executor = _Executor(
        revert=revert,
        journal=journal,
        retry=retry or retrying.RetryPolicy(),
        clock=clock,
        sleep=sleep,
        rand=rand,
    )
    pending = sorted({e.seq: e for e in entries}.values(), key=lambda e: e.seq, reverse=True)
    results: list[_Result] = []
    if not pending:
        return RollbackOutcome()
    with ThreadPoolExecutor(
        max_workers=min(concurrency, len(pending)), thread_name_prefix="stormdrill-revert"
    ) as pool:
        _schedule(pending, pool=pool, executor=executor, slots=concurrency, results=results)
    results.sort(key=lambda r: r.entry.seq, reverse=True)
    return RollbackOutcome(
        reverted=[r.entry for r in results if r.error is None],
        failed=[(r.entry, r.error) for r in results if r.error is not None],
    )


def _schedule(
    pending: list[mutations.JournalEntry],
    *,
    pool: ThreadPoolExecutor,
    executor: _Executor,
    slots: int,
    results: list[_Result],
) -> None:
    """Start reverts in newest-first order, one at a time per target, `slots` at a time.

    An entry starts only when every newer entry on its target has finished, so with
    one slot the whole rollback is strictly newest first.
    """
    running: dict[Future[_Result], mutations.JournalEntry] = {}
    busy: set[str] = set()
    failed_on: dict[str, mutations.JournalEntry] = {}
    while pending or running:
        seen: set[str] = set()
        for entry in list(pending):
            if len(running) >= slots:
                break
            key = entry.target.key
            if key in seen or key in busy:
                seen.add(key)
                continue
            seen.add(key)
            pending.remove(entry)
            blocker = failed_on.get(key)
            if blocker is not None:
                results.append(executor.give_up_on(entry, blocker=blocker))
                continue
            busy.add(key)
            running[pool.submit(executor.revert_one, entry)] = entry
        if not running:
            continue
        done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
        for future in done:
            entry = running.pop(future)
            busy.discard(entry.target.key)
            result = future.result()
            results.append(result)
            if result.error is not None:
                failed_on.setdefault(entry.target.key, entry)


@dataclass(frozen=True)
class _Executor:
    revert: Revert
    journal: RevertRecorder
    retry: retrying.RetryPolicy
    clock: retrying.Clock
    sleep: retrying.Sleep
    rand: retrying.Random
    _rand_lock: threading.Lock = field(default_factory=threading.Lock)

    def revert_one(self, entry: mutations.JournalEntry) -> _Result:
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                self.revert(entry)
            except errors.ProviderRetryable as exc:
                with self._rand_lock:
                    wait = self.retry.next_delay(
                        attempt, elapsed=self.clock() - started, hint=exc.delay, rand=self.rand
                    )
                if wait is None:
                    return self._failed(
                        entry, f"{exc} (gave up after {attempt} attempt(s))", attempt
                    )
                log.warning("revert of %s failed: %s; retrying in %.1fs", entry, exc, wait)
                self.sleep(wait)
                continue
            except errors.ProviderError as exc:
                return self._failed(entry, str(exc) or type(exc).__name__, attempt)
            except Exception as exc:
                log.exception(
                    "revert of %s raised %s, a bug in the provider; the mutation may still "
                    "be in effect and is recorded as revert_failed",
                    entry,
                    type(exc).__name__,
                )
                return self._failed(entry, f"bug: {type(exc).__name__}: {exc}", attempt)
            return self._reverted(entry, attempt)

    def _reverted(self, entry: mutations.JournalEntry, attempts: int) -> _Result:
        try:
            recorded = self.journal.mark_reverted(entry.seq, attempts=attempts)
        except Exception as exc:
            log.exception("revert of %s succeeded but the journal could not record it", entry)
            # Not recorded means recovery will revert it again (harmless); report it as
            # not done rather than claim a success nobody can check later.
            return _Result(entry, f"reverted, but the journal could not record it: {exc}")
        log.info("reverted %s after %d attempt(s)", entry, attempts)
        return _Result(recorded, None)

    def _failed(self, entry: mutations.JournalEntry, error: str, attempts: int) -> _Result:
        log.error("revert of %s failed for good: %s; it may still be in effect", entry, error)
        try:
            recorded = self.journal.mark_revert_failed(entry.seq, error=error, attempts=attempts)
        except Exception:
            log.exception("could not record the failed revert of %s in the journal", entry)
            return _Result(entry, error)
        return _Result(recorded, error)

    def give_up_on(
        self, entry: mutations.JournalEntry, *, blocker: mutations.JournalEntry
    ) -> _Result:
        error = (
            f"not attempted: the newer revert #{blocker.seq} on the same target failed, "
            "and this undo may depend on it"
        )
        return self._failed(entry, error, 0)


def revert_run(
    *,
    store: journal_mod.Journal,
    reg: registry.Registry,
    ctx: context.RunContext,
    run_id: states.RunId,
    retry: retrying.RetryPolicy | None = None,
    concurrency: int = 16,
    listener: RevertListener | None = None,
) -> RollbackOutcome:
    """Undo every journaled mutation of `run_id` that may be in place, newest first.

    The engine's rollback phase and recovery both call this. One durable journal write per
    revert: the entry's new state (`rollback` marks it). The timeline lines — each revert's
    start ("reverting #n", timestamped when it started) and each ending ("reverted" /
    "REVERT FAILED") — are appended afterwards in one transaction; `listener` (the live
    view) hears each start as it happens. A crash before that append loses only timeline
    lines: the entries' states are already on disk.
    """
    started: list[journal_mod.NewEvent] = []
    started_lock = threading.Lock()

    def revert(entry: mutations.JournalEntry) -> None:
        message = f"reverting #{entry.seq}: {entry.action} on {entry.target}"
        with started_lock:
            started.append(
                journal_mod.NewEvent(
                    kind=events.EventKind.REVERT,
                    message=message,
                    data={"seq": entry.seq},
                    at=datetime.now(UTC),
                )
            )
        if listener is not None:
            listener(events.EventKind.REVERT, message, {"seq": entry.seq})
        action = reg.get_action(entry.action)()
        action.revert(ctx, undo=entry.undo)

    outcome = rollback(
        entries=store.undo_plan(run_id),
        revert=revert,
        journal=store,
        retry=retry,
        concurrency=concurrency,
    )
    ended = [
        journal_mod.NewEvent(
            kind=events.EventKind.MUTATION,
            message=f"reverted #{entry.seq}: {entry.action} on {entry.target}",
            data={"seq": entry.seq, "state": "reverted"},
        )
        for entry in outcome.reverted
    ] + [
        journal_mod.NewEvent(
            kind=events.EventKind.MUTATION,
            message=f"REVERT FAILED #{entry.seq}: {entry.action} on {entry.target}: {error}",
            data={"seq": entry.seq, "state": "revert_failed", "error": error},
        )
        for entry, error in outcome.failed
    ]
    store.append_events(run_id, [*started, *ended])
    return outcome
