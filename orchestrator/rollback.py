"""Rollback: undo journalled mutations, newest first, with bounded concurrency.

Invariants:
- Reverts start in newest-first order among those free to start. Entries on the same target
  are reverted strictly newest first, one after the other; different targets run
  concurrently, at most `Limits.total` at a time and at most `Limits.of(provider)` against
  one API server (with a total of 1, the whole rollback is newest first, pauses included).
- A server that throttles (`errors.ProviderRetryable.retry_after_s`: HTTP 429 with
  Retry-After, AWS throttling) pauses its whole pool: no revert starts or retries on that
  API server until the moment passes; reverts on other servers go on.
- If a revert on a target fails, the older entries on that target are NOT
  attempted (their undo may assume the newer one was undone); they are marked
  revert_failed with the reason and reported.
- A worker's slot takes the next revert as soon as its API call returns; the record is made
  durable meanwhile (`Journal.mark_reverted_later`, the same group commit). The entry's
  target stays busy until its record is durable, so an older entry on the same target
  starts only after the newer undo is on record.
- Nothing is reported reverted unless the provider's revert returned and the
  journal recorded it durably. Every other ending (permanent error, retries exhausted, a
  bug in the provider, a journal write failing) is reported as failed.
- Each revert's timeline lines ("reverting #n" per attempt, stamped when it started, then
  "reverted #n" or "REVERT FAILED #n") are written in the same transaction as its mark
  (`journal.Timeline`), so the timeline never claims more than the entries' states.
- The cyclic garbage collector is paused while reverts run (`collector.paused`: a rollback
  is bounded by its retry policy's deadline); it runs again when the rollback ends.
- Reverts are idempotent by contract: a provider treats "already undone" and
  "never happened" as success, so re-running a rollback is always safe.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from orchestrator import collector, context, errors, events, mutations, registry, retrying, states
from orchestrator import journal as journal_mod
from scenarios import models as scenario_models

log = logging.getLogger(__name__)

Revert = Callable[[mutations.JournalEntry], None]

RevertListener = Callable[[str, str, Mapping[str, mutations.JsonValue]], None]
"""Hears (kind, message, data) as each revert starts (the CLI's live view)."""

ROLLBACK_FAILED_EVENT = events.EventKind.ROLLBACK_FAILED
"""Timeline event kind appended whenever a rollback (the engine's or recovery's) leaves faults
behind; its data holds `leftovers` (see `leftover_json`). The hook point for notifications:
a notifier watches the journal for this kind (none is wired yet)."""

DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True)
class Limits:
    """How many reverts may run at once: `total`, and per API server of each provider."""

    total: int = DEFAULT_CONCURRENCY
    per_provider: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"rollback concurrency must be at least 1, got {self.total}")
        for provider, limit in self.per_provider.items():
            if limit < 1:
                raise ValueError(
                    f"rollback concurrency for {provider} must be at least 1, got {limit}"
                )

    def of(self, provider: str) -> int:
        """The most reverts at once against one API server of `provider`."""
        return min(self.total, self.per_provider.get(provider, self.total))

    @classmethod
    def of_environment(
        cls, environment: scenario_models.Environment, *, default: int = DEFAULT_CONCURRENCY
    ) -> Limits:
        """The Environment's `spec.rollback`, or `default` in all and per server if it has none."""
        spec = environment.spec.rollback
        if spec is None:
            return cls(total=default)
        return cls(
            total=spec.concurrency,
            per_provider={provider.value: n for provider, n in spec.per_provider.items()},
        )


def api_server(target: mutations.TargetRef) -> str:
    """The pool a revert on `target` belongs to: its provider's API server (one per region)."""
    return f"{target.provider}/{target.region}" if target.region else target.provider


def _utcnow() -> datetime:
    return datetime.now(UTC)


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

    def mark_reverted_later(
        self,
        seq: int,
        *,
        attempts: int = 1,
        timeline: journal_mod.Timeline | None = None,
        known: mutations.JournalEntry | None = None,
    ) -> Future[mutations.JournalEntry]: ...

    def mark_revert_failed(
        self,
        seq: int,
        *,
        error: str,
        attempts: int = 1,
        timeline: journal_mod.Timeline | None = None,
    ) -> mutations.JournalEntry: ...

    def append_events(
        self, run_id: states.RunId, events: Sequence[journal_mod.NewEvent]
    ) -> list[journal_mod.Event]: ...


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


@dataclass(frozen=True)
class _Applied:
    """The provider undid `entry`; its record is not durable yet (nor reported)."""

    entry: mutations.JournalEntry
    attempts: int
    starts: tuple[datetime, ...]


def rollback(
    *,
    entries: Sequence[mutations.JournalEntry],
    revert: Revert,
    journal: RevertRecorder,
    retry: retrying.RetryPolicy | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    per_provider: Mapping[str, int] | None = None,
    clock: retrying.Clock = time.monotonic,
    sleep: retrying.Sleep = time.sleep,
    rand: retrying.Random = random.random,
) -> RollbackOutcome:
    """Revert `entries` (any order given; newest first is enforced) and record each result.

    `revert` must be idempotent. It may raise `errors.ProviderRetryable` (retried with
    backoff; with `retry_after_s`, its API server's whole pool pauses), `errors.ProviderPermanent`
    (recorded as revert_failed); anything else is a bug, logged with its traceback and recorded
    as revert_failed. At most `concurrency` reverts run at once, and at most
    `per_provider[p]` against one API server of provider `p` (see `api_server`).
    """
    limits = Limits(total=concurrency, per_provider=dict(per_provider or {}))
    executor = _Executor(
        revert=revert,
        journal=journal,
        retry=retry or retrying.RetryPolicy(),
        clock=clock,
        sleep=sleep,
        rand=rand,
        pauses=retrying.Pauses(clock),
    )
    pending = sorted({e.seq: e for e in entries}.values(), key=lambda e: e.seq, reverse=True)
    results: list[_Result] = []
    if not pending:
        return RollbackOutcome()
    with (
        collector.paused(),
        ThreadPoolExecutor(
            max_workers=min(limits.total, len(pending)), thread_name_prefix="stormdrill-revert"
        ) as pool,
    ):
        _schedule(pending, pool=pool, executor=executor, limits=limits, results=results)
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
    limits: Limits,
    results: list[_Result],
) -> None:
    """Start reverts in newest-first order, one at a time per target, within the limits.

    An entry starts only when every newer entry on its target has finished (its record
    durable), its API server has a free slot and is not paused, and a slot is free in all
    (with one slot in all the whole rollback is strictly newest first: a paused server holds
    everything back). Workers and the journal report to this loop through one queue, so each
    ending costs the loop O(1) however many reverts are running or being recorded.
    """
    done: queue.SimpleQueue[_Ran | _Recorded] = queue.SimpleQueue()
    running = 0
    recording = 0
    busy: set[str] = set()
    per_server: collections.Counter[str] = collections.Counter()
    failed_on: dict[str, mutations.JournalEntry] = {}
    strict = limits.total == 1

    def run(entry: mutations.JournalEntry) -> None:
        try:
            outcome = executor.revert_one(entry)
            if not isinstance(outcome, _Applied):
                done.put(_Ran(entry, outcome))
                return
            # Queue the record here, off the scheduling loop, then free the slot; the
            # journal reports the record after this (a callback added to a done future
            # runs at once, so `_Recorded` never overtakes `_Ran`).
            marked = executor.record(outcome)
            done.put(_Ran(entry, outcome))
            marked.add_done_callback(lambda future: done.put(_Recorded(outcome, future)))
        except BaseException as exc:  # revert_one records every Exception; report the rest
            done.put(_Ran(entry, exc))
            raise

    def finish(result: _Result) -> None:
        busy.discard(result.entry.target.key)
        results.append(result)
        if result.error is not None:
            failed_on.setdefault(result.entry.target.key, result.entry)

    while pending or running or recording:
        wake: float | None = None  # seconds until the first paused server resumes
        if pending and running < limits.total:
            seen: set[str] = set()
            for entry in list(pending):
                if running >= limits.total:
                    break
                key = entry.target.key
                if key in busy and strict:
                    break  # its newer entry's record is not durable yet; nothing may overtake
                if key in seen or key in busy:
                    seen.add(key)
                    continue
                seen.add(key)
                blocker = failed_on.get(key)
                if blocker is not None:
                    pending.remove(entry)
                    results.append(executor.give_up_on(entry, blocker=blocker))
                    continue
                server = api_server(entry.target)
                if per_server[server] >= limits.of(entry.target.provider):
                    continue
                paused = executor.pauses.remaining(server)
                if paused > 0:
                    wake = paused if wake is None else min(wake, paused)
                    if strict:
                        break
                    continue
                pending.remove(entry)
                busy.add(key)
                per_server[server] += 1
                running += 1
                pool.submit(run, entry)
        if not running and not recording:
            if wake is not None:
                executor.sleep(wake)
            continue
        try:
            ended = done.get(timeout=wake)
        except queue.Empty:
            continue  # a paused server resumes: look again
        while True:
            if isinstance(ended, _Recorded):  # a revert's record is durable (or failed)
                recording -= 1
                finish(executor.recorded(ended.applied, ended.marked))
            else:
                running -= 1
                per_server[api_server(ended.entry.target)] -= 1
                if isinstance(ended.outcome, BaseException):
                    raise ended.outcome
                if isinstance(ended.outcome, _Applied):
                    # The API call is done: its slot takes the next revert while the journal
                    # makes this one durable. Its target stays busy until then, so an older
                    # entry on it starts only after this undo is on record.
                    recording += 1
                else:
                    finish(ended.outcome)
            try:
                ended = done.get_nowait()  # take every ending queued before looking again
            except queue.Empty:
                break


@dataclass(frozen=True)
class _Ran:
    """A worker's report to the scheduling loop: its revert's outcome."""

    entry: mutations.JournalEntry
    outcome: _Result | _Applied | BaseException


@dataclass(frozen=True)
class _Recorded:
    """The journal's report to the scheduling loop: an undone entry's record has landed."""

    applied: _Applied
    marked: Future[mutations.JournalEntry]


def _started_event(entry: mutations.JournalEntry, at: datetime) -> journal_mod.NewEvent:
    return journal_mod.NewEvent(
        kind=events.EventKind.REVERT,
        message=f"reverting #{entry.seq}: {entry.action} on {entry.target}",
        data={"seq": entry.seq},
        at=at,
    )


def _reverted_event(entry: mutations.JournalEntry) -> journal_mod.NewEvent:
    return journal_mod.NewEvent(
        kind=events.EventKind.MUTATION,
        message=f"reverted #{entry.seq}: {entry.action} on {entry.target}",
        data={"seq": entry.seq, "state": "reverted"},
    )


def _failed_event(entry: mutations.JournalEntry, error: str) -> journal_mod.NewEvent:
    return journal_mod.NewEvent(
        kind=events.EventKind.MUTATION,
        message=f"REVERT FAILED #{entry.seq}: {entry.action} on {entry.target}: {error}",
        data={"seq": entry.seq, "state": "revert_failed", "error": error},
    )


@dataclass(frozen=True)
class _Executor:
    revert: Revert
    journal: RevertRecorder
    retry: retrying.RetryPolicy
    clock: retrying.Clock
    sleep: retrying.Sleep
    rand: retrying.Random
    pauses: retrying.Pauses
    wall: Callable[[], datetime] = _utcnow
    _rand_lock: threading.Lock = field(default_factory=threading.Lock)

    def revert_one(self, entry: mutations.JournalEntry) -> _Result | _Applied:
        server = api_server(entry.target)
        started = self.clock()
        starts: list[datetime] = []
        attempt = 0
        while True:
            self.pauses.wait(server, self.sleep)
            attempt += 1
            starts.append(self.wall())
            try:
                self.revert(entry)
            except errors.ProviderRetryable as exc:
                if exc.retry_after_s is not None:
                    held = self.pauses.pause(server, exc.retry_after_s)
                    log.warning(
                        "%s is throttling (%s); no revert starts on it for %.1fs",
                        server,
                        exc,
                        held,
                    )
                with self._rand_lock:
                    wait = self.retry.next_delay(
                        attempt,
                        elapsed=self.clock() - started,
                        hint=exc.delay,
                        rand=self.rand,
                        floor=self.pauses.remaining(server),
                    )
                if wait is None:
                    return self._failed(
                        entry, f"{exc} (gave up after {attempt} attempt(s))", attempt, starts
                    )
                log.warning("revert of %s failed: %s; retrying in %.1fs", entry, exc, wait)
                self.sleep(wait)
                continue
            except errors.ProviderError as exc:
                return self._failed(entry, str(exc) or type(exc).__name__, attempt, starts)
            except Exception as exc:
                log.exception(
                    "revert of %s raised %s, a bug in the provider; the mutation may still "
                    "be in effect and is recorded as revert_failed",
                    entry,
                    type(exc).__name__,
                )
                return self._failed(entry, f"bug: {type(exc).__name__}: {exc}", attempt, starts)
            return _Applied(entry, attempt, tuple(starts))

    def record(self, applied: _Applied) -> Future[mutations.JournalEntry]:
        """Queue the record of an undone entry with its timeline (see `recorded`)."""
        entry = applied.entry
        timeline = journal_mod.Timeline(
            entry.run_id,
            [*(_started_event(entry, at) for at in applied.starts), _reverted_event(entry)],
        )
        try:
            return self.journal.mark_reverted_later(
                entry.seq, attempts=applied.attempts, timeline=timeline, known=entry
            )
        except Exception as exc:
            failed: Future[mutations.JournalEntry] = Future()
            failed.set_exception(exc)
            return failed

    def recorded(self, applied: _Applied, marked: Future[mutations.JournalEntry]) -> _Result:
        """The result of an undone entry once its record is durable, or failed to be."""
        entry, attempts, starts = applied.entry, applied.attempts, applied.starts
        exc = marked.exception()
        if exc is not None:
            log.error(
                "revert of %s succeeded but the journal could not record it",
                entry,
                exc_info=exc,
            )
            # Not recorded means recovery will revert it again (harmless); report it as
            # not done rather than claim a success nobody can check later.
            error = f"reverted, but the journal could not record it: {exc}"
            self._write_timeline(
                entry,
                journal_mod.Timeline(
                    entry.run_id,
                    [*(_started_event(entry, at) for at in starts), _failed_event(entry, error)],
                ),
            )
            return _Result(entry, error)
        log.info("reverted %s after %d attempt(s)", entry, attempts)
        return _Result(marked.result(), None)

    def _failed(
        self,
        entry: mutations.JournalEntry,
        error: str,
        attempts: int,
        starts: Sequence[datetime] = (),
    ) -> _Result:
        log.error("revert of %s failed for good: %s; it may still be in effect", entry, error)
        timeline = journal_mod.Timeline(
            entry.run_id,
            [*(_started_event(entry, at) for at in starts), _failed_event(entry, error)],
        )
        try:
            recorded = self.journal.mark_revert_failed(
                entry.seq, error=error, attempts=attempts, timeline=timeline
            )
        except Exception:
            log.exception("could not record the failed revert of %s in the journal", entry)
            self._write_timeline(entry, timeline)
            return _Result(entry, error)
        return _Result(recorded, error)

    def _write_timeline(
        self, entry: mutations.JournalEntry, timeline: journal_mod.Timeline
    ) -> None:
        """The timeline of a revert whose mark was not written: on its own, if it can be."""
        try:
            self.journal.append_events(timeline.run_id, timeline.events)
        except Exception as exc:
            log.warning("the timeline of the revert of %s is not written either: %s", entry, exc)

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
    concurrency: int = DEFAULT_CONCURRENCY,
    per_provider: Mapping[str, int] | None = None,
    listener: RevertListener | None = None,
) -> RollbackOutcome:
    """Undo every journaled mutation of `run_id` that may be in place, newest first.

    The engine's rollback phase and recovery both call this (with `Limits.of_environment`).
    One durable journal write per revert, shared with concurrent reverts (group commit): the
    entry's new state and its timeline lines — each attempt's start ("reverting #n",
    timestamped when it started) and the ending ("reverted" / "REVERT FAILED") — together.
    `listener` (the live view) hears each start as it happens.
    """

    def revert(entry: mutations.JournalEntry) -> None:
        if listener is not None:
            message = f"reverting #{entry.seq}: {entry.action} on {entry.target}"
            listener(events.EventKind.REVERT, message, {"seq": entry.seq})
        action = reg.get_action(entry.action)()
        action.revert(ctx, undo=entry.undo)

    return rollback(
        entries=store.undo_plan(run_id),
        revert=revert,
        journal=store,
        retry=retry,
        concurrency=concurrency,
        per_provider=per_provider,
    )
