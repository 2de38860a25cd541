"""Group commit on SQLite and PostgreSQL: many workers' marks in few transactions, each right.

The first mark's UPDATE is held (a statement hook on the engine) until every other worker's
mark is queued behind it, so the second batch holds all of them: what is asserted is what one
batch does (one UPDATE per group of identical changes, each mark's own outcome, the events of
the marks that were made and of no other).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator import errors, mutations, states
from orchestrator import journal as journaling
from tests.engine_core import factories

E = mutations.EntryState
RUN = states.RunId("run-1")


def _applied(journal: journaling.Journal, count: int) -> list[int]:
    journal.create_run(factories.make_run(run_id=RUN, state=states.RunState.INJECTING))
    seqs = []
    for i in range(count):
        planned = factories.set_value(name=f"web-{i}", previous=1, value=2)
        seq = journal.record_intent(RUN, planned).seq
        journal.mark_applied(seq)
        seqs.append(seq)
    return seqs


def _timeline(seq: int, *, started: datetime) -> journaling.Timeline:
    return journaling.Timeline(
        RUN,
        [
            journaling.NewEvent("revert", f"reverting #{seq}", {"seq": seq}, at=started),
            journaling.NewEvent("mutation", f"reverted #{seq}", {"seq": seq, "state": "reverted"}),
        ],
    )


@contextmanager
def _statements() -> Iterator[list[str]]:
    """Every statement any engine sends meanwhile (upper-cased, first line)."""
    seen: list[str] = []
    lock = threading.Lock()

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        with lock:
            seen.append(statement.lstrip().split("\n", 1)[0].upper())

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


@contextmanager
def _first_update_held_until(ready: Callable[[], bool]) -> Iterator[threading.Event]:
    """Hold the first `UPDATE journal` sent until `ready()`; yields the event set on holding."""
    held = threading.Event()

    def hold(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if held.is_set() or not statement.lstrip().upper().startswith("UPDATE JOURNAL"):
            return
        held.set()
        deadline = time.monotonic() + 30
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.005)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", hold)
    try:
        yield held
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", hold)


def _concurrently(work: list[Callable[[], object]], *, held: threading.Event) -> list[object]:
    """Run `work` in threads, the rest once the first is held; each one's result or error."""
    results: list[object] = [None] * len(work)

    def run(i: int) -> None:
        try:
            results[i] = work[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    threads[0].start()
    assert held.wait(timeout=30), "the first mark never reached the journal"
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_marks_share_one_update_per_group_and_each_gets_its_own_outcome(
    journal: journaling.Journal,
) -> None:
    seqs = _applied(journal, 16)
    first, reverted, failed, refused = seqs[0], seqs[1:13], seqs[13], seqs[14]
    missing = seqs[-1] + 1000
    journal.mark_reverted(refused)  # reverted already: it can no longer be marked applied
    started = datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)

    def revert(seq: int) -> Callable[[], object]:
        return lambda: journal.mark_reverted(seq, timeline=_timeline(seq, started=started))

    work = [revert(first), *(revert(seq) for seq in reverted)]
    work.append(lambda: journal.mark_revert_failed(failed, error="node gone: 404", attempts=3))
    work.append(lambda: journal.mark_applied(refused))
    work.append(revert(missing))
    others = len(work) - 1

    with (
        _statements() as sent,
        _first_update_held_until(lambda: journal.pending_marks == others) as held,
    ):
        results = _concurrently(work, held=held)

    updates = [s for s in sent if s.startswith("UPDATE JOURNAL")]
    # Batch 1: the first mark alone. Batch 2: reverted (12 + the missing one), revert_failed,
    # applied: three groups, three UPDATEs, and one INSERT for all of its events.
    assert len(updates) == 4
    assert len([s for s in sent if s.startswith("INSERT INTO EVENTS")]) == 2
    outcomes = dict(zip([first, *reverted, failed, refused, missing], results, strict=True))
    for seq in (first, *reverted):
        entry = outcomes[seq]
        assert isinstance(entry, mutations.JournalEntry)
        assert (entry.seq, entry.state, entry.attempts) == (seq, E.REVERTED, 1)
    failed_entry = outcomes[failed]
    assert isinstance(failed_entry, mutations.JournalEntry)
    assert (failed_entry.state, failed_entry.error, failed_entry.attempts) == (
        E.REVERT_FAILED,
        "node gone: 404",
        3,
    )
    refusal = outcomes[refused]
    assert isinstance(refusal, errors.JournalError)
    assert f"#{refused}" in str(refusal)
    assert "is reverted; it cannot be marked applied (only from intended)" in str(refusal)
    absent = outcomes[missing]
    assert isinstance(absent, errors.JournalError)
    assert str(absent) == f"no journal entry #{missing} at {journal.url}"
    stored = {e.seq: e for e in journal.entries(RUN)}
    assert {seq for seq, e in stored.items() if e.state is E.REVERTED} == {
        first,
        *reverted,
        refused,
    }
    assert stored[failed].state is E.REVERT_FAILED
    made = (first, *reverted)
    lines = sorted((e.kind, e.message) for e in journal.events(RUN))
    assert lines == sorted(
        [("revert", f"reverting #{seq}") for seq in made]
        + [("mutation", f"reverted #{seq}") for seq in made]
    )
    starts = {e.data["seq"]: e.at for e in journal.events(RUN, kind="revert")}
    assert set(starts.values()) == {started}


def test_two_marks_of_one_entry_in_one_batch_are_both_applied_in_order(
    journal: journaling.Journal,
) -> None:
    seqs = _applied(journal, 2)
    blocker, twice = seqs
    work: list[Callable[[], object]] = [
        lambda: journal.mark_reverted(blocker),
        lambda: journal.mark_reverted(twice, attempts=1),
        lambda: journal.mark_reverted(twice, attempts=2),
    ]

    with _first_update_held_until(lambda: journal.pending_marks == 2) as held:
        results = _concurrently(work, held=held)

    assert all(isinstance(r, mutations.JournalEntry) for r in results), results
    entry = journal.entry(twice)
    assert (entry.state, entry.attempts) == (E.REVERTED, 3)


def test_a_refused_mark_writes_none_of_its_events(journal: journaling.Journal) -> None:
    (seq,) = _applied(journal, 1)
    journal.mark_skipped(seq, reason="not revertible")
    started = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    with pytest.raises(errors.JournalError, match="is skipped; it cannot be marked reverted"):
        journal.mark_reverted(seq, timeline=_timeline(seq, started=started))

    assert journal.events(RUN) == []
    assert journal.entry(seq).state is E.SKIPPED


def test_a_lone_mark_with_its_events_is_one_transaction_and_both_are_read_back(
    journal: journaling.Journal,
) -> None:
    (seq,) = _applied(journal, 1)
    started = datetime(2026, 3, 1, 9, 30, 0, 1, tzinfo=UTC)

    with _statements() as sent:
        entry = journal.mark_reverted(seq, attempts=2, timeline=_timeline(seq, started=started))

    assert (entry.state, entry.attempts) == (E.REVERTED, 2)
    writes = [s.split(" ")[0] for s in sent if s.startswith(("UPDATE", "INSERT", "BEGIN IMM"))]
    assert writes in (["UPDATE", "INSERT"], ["BEGIN", "UPDATE", "INSERT"])  # PostgreSQL, SQLite
    (reverting, reverted) = journal.events(RUN)
    assert (reverting.kind, reverting.message, reverting.at) == (
        "revert",
        f"reverting #{seq}",
        started,
    )
    assert (reverted.kind, reverted.data) == ("mutation", {"seq": seq, "state": "reverted"})
    assert reverted.at == entry.updated_at


def test_an_append_is_one_statement_and_a_mark_needs_no_read_back(
    journal: journaling.Journal,
) -> None:
    journal.create_run(factories.make_run(run_id=RUN, state=states.RunState.INJECTING))
    planned = factories.set_value(name="web", previous=1, value=2)

    with _statements() as sent:
        entry = journal.record_intent(RUN, planned)
        applied = journal.mark_applied(entry.seq)

    assert [s.split(" ")[0] for s in sent] == ["INSERT", "UPDATE"]
    assert applied.state is E.APPLIED
    assert journal.entry(entry.seq) == applied


def test_a_timeline_with_a_naive_time_is_refused_before_anything_is_written(
    journal: journaling.Journal,
) -> None:
    (seq,) = _applied(journal, 1)
    naive = journaling.Timeline(RUN, [journaling.NewEvent("revert", "x", at=datetime(2026, 1, 1))])

    with pytest.raises(errors.JournalError, match="naive datetime"):
        journal.mark_reverted(seq, timeline=naive)

    assert journal.entry(seq).state is E.APPLIED
    assert journal.events(RUN) == []


def test_a_mark_queued_without_waiting_resolves_to_the_entry_as_committed(
    journal: journaling.Journal,
) -> None:
    seqs = _applied(journal, 20)
    started = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    known = {seq: journal.entry(seq) for seq in seqs[::2]}  # half with the entry, half without

    marked = [
        journal.mark_reverted_later(
            seq, attempts=2, timeline=_timeline(seq, started=started), known=known.get(seq)
        )
        for seq in seqs
    ]
    entries = [future.result(timeout=30) for future in marked]

    assert entries == [journal.entry(seq) for seq in seqs]
    assert {(e.state, e.attempts) for e in entries} == {(E.REVERTED, 2)}
    events = journal.events(RUN)
    assert sorted(e.message for e in events) == sorted(
        m for seq in seqs for m in (f"reverting #{seq}", f"reverted #{seq}")
    )


def test_a_mark_queued_without_waiting_that_cannot_be_made_fails_its_future_and_writes_nothing(
    journal: journaling.Journal,
) -> None:
    (seq,) = _applied(journal, 1)
    journal.mark_skipped(seq, reason="not revertible")
    started = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    refused = journal.mark_reverted_later(seq, timeline=_timeline(seq, started=started))
    missing = journal.mark_reverted_later(seq + 1000)

    with pytest.raises(errors.JournalError, match="is skipped; it cannot be marked reverted"):
        refused.result(timeout=30)
    with pytest.raises(errors.JournalError, match=f"no journal entry #{seq + 1000}"):
        missing.result(timeout=30)
    assert journal.events(RUN) == []
    with pytest.raises(ValueError, match="not #"):
        journal.mark_reverted_later(seq, known=dataclasses.replace(journal.entry(seq), seq=seq + 1))


def test_closing_the_journal_writes_every_mark_still_queued_first(
    journal: journaling.Journal,
) -> None:
    seqs = _applied(journal, 50)

    marked = [journal.mark_reverted_later(seq) for seq in seqs]
    journal.close()

    assert all(future.done() and future.exception() is None for future in marked)
    assert {journal.entry(seq).state for seq in seqs} == {E.REVERTED}
    with pytest.raises(errors.JournalError, match="closed"):
        journal.mark_reverted_later(seqs[0])
