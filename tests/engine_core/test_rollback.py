"""The rollback executor: newest first per target, bounded, retried, never falsely successful."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future

import pytest

from orchestrator import errors, mutations, retrying, rollback, states
from orchestrator import journal as journaling
from tests.engine_core import factories

E = mutations.EntryState
NO_WAIT = retrying.RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, jitter=0.0)


class FakeTime:
    """A clock that only moves when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def _journalled(
    journal: journaling.Journal,
    world: factories.World,
    changes: Sequence[tuple[str, int]],
    *,
    apply: bool = True,
) -> list[mutations.JournalEntry]:
    """Journal and apply `(target, new value)` changes in order, as an engine would."""
    run_id = states.RunId("run-1")
    try:
        journal.get_run(run_id)
    except errors.JournalError:
        journal.create_run(factories.make_run(run_id=run_id, state=states.RunState.INJECTING))
    entries = []
    for name, value in changes:
        planned = factories.set_value(name=name, previous=world.values[name], value=value)
        entry = journal.record_intent(run_id, planned)
        if apply:
            world.apply(planned)
            entry = journal.mark_applied(entry.seq)
        entries.append(entry)
    return entries


def _run(
    journal: journaling.Journal,
    entries: Sequence[mutations.JournalEntry],
    revert: rollback.Revert,
    *,
    concurrency: int = 16,
    retry: retrying.RetryPolicy = NO_WAIT,
    time: FakeTime | None = None,
) -> rollback.RollbackOutcome:
    fake = time or FakeTime()
    return rollback.rollback(
        entries=entries,
        revert=revert,
        journal=journal,
        retry=retry,
        concurrency=concurrency,
        clock=fake.clock,
        sleep=fake.sleep,
        rand=lambda: 0.5,
    )


def test_reverts_run_newest_first_and_restore_the_original_values(
    journal: journaling.Journal,
) -> None:
    world = factories.World({"web": 3, "checkout": 3})
    entries = _journalled(
        journal, world, [("web", 2), ("checkout", 1), ("web", 1), ("web", 0), ("checkout", 0)]
    )

    outcome = _run(journal, journal.undo_plan(states.RunId("run-1")), world.revert, concurrency=1)

    assert outcome.ok
    assert world.values == {"web": 3, "checkout": 3}
    assert world.revert_log == sorted((e.seq for e in entries), reverse=True)
    assert [e.seq for e in outcome.reverted] == world.revert_log
    assert journal.undo_plan(states.RunId("run-1")) == []


def test_reverts_on_one_target_stay_ordered_while_targets_run_concurrently(
    journal: journaling.Journal,
) -> None:
    names = [f"svc-{i}" for i in range(6)]
    world = factories.World(dict.fromkeys(names, 10))
    changes = [(name, value) for value in (9, 8, 7) for name in names]
    _journalled(journal, world, changes)

    outcome = _run(journal, list(reversed(journal.entries(states.RunId("run-1")))), world.revert)

    assert outcome.ok
    assert world.values == dict.fromkeys(names, 10)
    by_target: dict[str, list[int]] = {}
    seq_to_name = {e.seq: e.target.name for e in journal.entries(states.RunId("run-1"))}
    for seq in world.revert_log:
        by_target.setdefault(seq_to_name[seq], []).append(seq)
    for seqs in by_target.values():
        assert seqs == sorted(seqs, reverse=True)


def test_no_more_reverts_run_at_once_than_the_concurrency_allows(
    journal: journaling.Journal,
) -> None:
    names = [f"node-{i}" for i in range(24)]
    world = factories.World(dict.fromkeys(names, 1))
    entries = _journalled(journal, world, [(name, 0) for name in names])
    limit = 4
    all_in = threading.Barrier(limit)  # the first `limit` reverts must overlap
    lock = threading.Lock()
    active = 0
    peak = 0
    started = 0

    def revert(entry: mutations.JournalEntry) -> None:
        nonlocal active, peak, started
        with lock:
            active += 1
            started += 1
            peak = max(peak, active)
            first_wave = started <= limit
        if first_wave:
            all_in.wait(timeout=30)
        world.revert(entry)
        with lock:
            active -= 1

    outcome = _run(journal, entries, revert, concurrency=limit)

    assert outcome.ok
    assert peak == limit
    assert len(outcome.reverted) == len(names)


def test_a_retryable_failure_is_retried_with_backoff_then_succeeds(
    journal: journaling.Journal, caplog: pytest.LogCaptureFixture
) -> None:
    world = factories.World({"web": 3})
    (entry,) = _journalled(journal, world, [("web", 0)])
    failures = iter([errors.ProviderRetryable("429 throttled"), errors.ProviderRetryable("503")])

    def flaky(e: mutations.JournalEntry) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        world.revert(e)

    fake = FakeTime()
    with caplog.at_level(logging.WARNING, logger="orchestrator.rollback"):
        outcome = _run(journal, [entry], flaky, time=fake)

    assert outcome.ok
    assert fake.sleeps == [0.5, 1.0]
    assert world.values == {"web": 3}
    (stored,) = journal.entries(entry.run_id)
    assert (stored.state, stored.attempts) == (E.REVERTED, 3)
    assert "retrying in 0.5s" in caplog.text


def test_a_retry_waits_as_long_as_the_provider_asks(journal: journaling.Journal) -> None:
    world = factories.World({"web": 3})
    (entry,) = _journalled(journal, world, [("web", 0)])
    calls = 0

    def throttled_once(e: mutations.JournalEntry) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise errors.ProviderRetryable("Retry-After: 7", delay=7.0)
        world.revert(e)

    fake = FakeTime()
    assert _run(journal, [entry], throttled_once, time=fake).ok
    assert fake.sleeps == [7.0]


def test_retries_stop_after_max_attempts_and_the_entry_is_revert_failed(
    journal: journaling.Journal,
) -> None:
    world = factories.World({"web": 3})
    (entry,) = _journalled(journal, world, [("web", 0)])

    def always_throttled(e: mutations.JournalEntry) -> None:
        raise errors.ProviderRetryable("429 throttled")

    outcome = _run(journal, [entry], always_throttled)

    assert not outcome.ok
    assert outcome.reverted == []
    ((failed, error),) = outcome.failed
    assert failed.seq == entry.seq
    assert "gave up after 4 attempt(s)" in error
    (stored,) = journal.entries(entry.run_id)
    assert (stored.state, stored.attempts) == (E.REVERT_FAILED, 4)
    assert world.values == {"web": 0}


def test_retries_stop_when_the_next_wait_would_exceed_the_time_budget(
    journal: journaling.Journal,
) -> None:
    world = factories.World({"web": 3})
    (entry,) = _journalled(journal, world, [("web", 0)])

    def slow_down(e: mutations.JournalEntry) -> None:
        raise errors.ProviderRetryable("slow down", delay=6.0)

    policy = retrying.RetryPolicy(max_attempts=10, max_elapsed=10.0)
    fake = FakeTime()
    outcome = _run(journal, [entry], slow_down, retry=policy, time=fake)

    assert not outcome.ok
    assert fake.sleeps == [6.0]
    assert journal.entries(entry.run_id)[0].attempts == 2


def test_a_permanent_failure_is_recorded_and_reported_never_as_success(
    journal: journaling.Journal,
) -> None:
    world = factories.World({"web": 3, "checkout": 3})
    ok_entry, bad_entry = _journalled(journal, world, [("web", 0), ("checkout", 0)])

    def revert(e: mutations.JournalEntry) -> None:
        if e.target.name == "checkout":
            raise errors.ProviderPermanent("checkout: 403 forbidden (RBAC)")
        world.revert(e)

    outcome = _run(journal, [ok_entry, bad_entry], revert)

    assert [e.seq for e in outcome.reverted] == [ok_entry.seq]
    assert [(e.seq, err) for e, err in outcome.failed] == [
        (bad_entry.seq, "checkout: 403 forbidden (RBAC)")
    ]
    assert {e.seq for e in outcome.reverted}.isdisjoint(e.seq for e, _ in outcome.failed)
    assert [e.seq for e in journal.undo_plan(ok_entry.run_id)] == [bad_entry.seq]
    stored = {e.seq: e for e in journal.entries(ok_entry.run_id)}
    assert stored[bad_entry.seq].state is E.REVERT_FAILED
    assert stored[bad_entry.seq].error == "checkout: 403 forbidden (RBAC)"
    with pytest.raises(errors.RollbackFailed, match="403 forbidden") as caught:
        outcome.raise_for_leftovers(run_id="run-1")
    assert [e.seq for e, _ in caught.value.leftovers] == [bad_entry.seq]


def test_a_bug_in_a_revert_is_revert_failed_with_its_traceback_logged(
    journal: journaling.Journal, caplog: pytest.LogCaptureFixture
) -> None:
    world = factories.World({"web": 3})
    (entry,) = _journalled(journal, world, [("web", 0)])

    def buggy(e: mutations.JournalEntry) -> None:
        raise KeyError("replicas")

    with caplog.at_level(logging.ERROR, logger="orchestrator.rollback"):
        outcome = _run(journal, [entry], buggy)

    ((_, error),) = outcome.failed
    assert error.startswith("bug: KeyError")
    assert journal.entries(entry.run_id)[0].state is E.REVERT_FAILED
    assert any(record.exc_info for record in caplog.records)


def test_older_entries_on_a_target_whose_newer_revert_failed_are_not_attempted(
    journal: journaling.Journal,
) -> None:
    world = factories.World({"web": 3})
    older, newer = _journalled(journal, world, [("web", 2), ("web", 1)])

    def revert(e: mutations.JournalEntry) -> None:
        if e.seq == newer.seq:
            raise errors.ProviderPermanent("conflict")
        world.revert(e)

    outcome = _run(journal, [older, newer], revert)

    assert outcome.reverted == []
    assert [e.seq for e, _ in outcome.failed] == [newer.seq, older.seq]
    assert "not attempted" in outcome.failed[1][1]
    assert world.revert_log == []
    stored = journal.entries(newer.run_id)
    assert [(e.state, e.attempts) for e in stored] == [(E.REVERT_FAILED, 0), (E.REVERT_FAILED, 1)]


def test_reverting_twice_and_reverting_what_never_happened_are_harmless(
    journal: journaling.Journal,
) -> None:
    world = factories.World({"web": 3, "checkout": 2})
    applied = _journalled(journal, world, [("web", 0)])
    intended_only = _journalled(journal, world, [("checkout", 0)], apply=False)
    run_id = states.RunId("run-1")

    first = _run(journal, journal.undo_plan(run_id), world.revert)
    second = _run(journal, applied + intended_only, world.revert)

    assert first.ok
    assert second.ok
    assert world.values == {"web": 3, "checkout": 2}
    assert {e.state for e in journal.entries(run_id)} == {E.REVERTED}
    assert journal.undo_plan(run_id) == []


class _BrokenJournal:
    """A recorder whose writes fail, as when the database goes away mid-rollback."""

    def mark_reverted_later(
        self,
        seq: int,
        *,
        attempts: int = 1,
        timeline: journaling.Timeline | None = None,
        known: mutations.JournalEntry | None = None,
    ) -> Future[mutations.JournalEntry]:
        raise errors.JournalError("database is gone")

    def mark_revert_failed(
        self,
        seq: int,
        *,
        error: str,
        attempts: int = 1,
        timeline: journaling.Timeline | None = None,
    ) -> mutations.JournalEntry:
        raise errors.JournalError("database is gone")

    def append_events(
        self, run_id: states.RunId, events: Sequence[journaling.NewEvent]
    ) -> list[journaling.Event]:
        raise errors.JournalError("database is gone")


def test_a_revert_the_journal_could_not_record_is_not_reported_as_success(
    journal: journaling.Journal,
) -> None:
    world = factories.World({"web": 3})
    (entry,) = _journalled(journal, world, [("web", 0)])

    outcome = rollback.rollback(
        entries=[entry], revert=world.revert, journal=_BrokenJournal(), retry=NO_WAIT
    )

    assert outcome.reverted == []
    ((failed, error),) = outcome.failed
    assert failed.seq == entry.seq
    assert "could not record" in error
    assert [e.seq for e in journal.undo_plan(entry.run_id)] == [entry.seq]


def test_nothing_to_undo_is_an_empty_success(journal: journaling.Journal) -> None:
    outcome = _run(journal, [], factories.World().revert)
    assert outcome.ok
    assert outcome.reverted == []


def test_a_concurrency_below_one_is_refused(journal: journaling.Journal) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        _run(journal, [], factories.World().revert, concurrency=0)


def test_backoff_doubles_is_capped_and_jittered() -> None:
    policy = retrying.RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=0.5)
    assert [policy.delay(n, hint=None, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [
        1.0,
        2.0,
        4.0,
        5.0,
    ]
    assert policy.delay(2, hint=None, rand=lambda: 1.0) == 1.0
    assert policy.delay(2, hint=9.0, rand=lambda: 1.0) == 9.0


def test_reverts_run_with_the_garbage_collector_paused_and_it_runs_again_after(
    journal: journaling.Journal,
) -> None:
    world = factories.World({"web": 3, "checkout": 2})
    _journalled(journal, world, [("web", 0), ("checkout", 0)])
    seen: list[bool] = []

    def revert(entry: mutations.JournalEntry) -> None:
        seen.append(gc.isenabled())
        world.revert(entry)

    assert gc.isenabled()
    outcome = _run(journal, journal.undo_plan(states.RunId("run-1")), revert)

    assert outcome.ok
    assert seen == [False, False]
    assert gc.isenabled()
