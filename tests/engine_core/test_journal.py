"""The journal on SQLite and PostgreSQL: runs, write-ahead entries, undo plans, events."""

from __future__ import annotations

import dataclasses
import socket
import threading
from datetime import UTC, datetime

import pytest

from orchestrator import errors, mutations, records, states
from orchestrator import journal as journaling
from tests.engine_core import factories

S = states.RunState
E = mutations.EntryState


def _started(journal: journaling.Journal, run_id: str = "run-1") -> states.Run:
    return journal.create_run(factories.make_run(run_id=run_id, state=S.INJECTING))


def test_a_created_run_reads_back_equal(journal: journaling.Journal) -> None:
    run = journal.create_run(factories.make_run())
    assert journal.get_run(run.id) == run
    assert journal.get_run(run.id).started_at.tzinfo is not None


def test_reading_an_unknown_run_names_it(journal: journaling.Journal) -> None:
    with pytest.raises(errors.JournalError, match="no-such-run"):
        journal.get_run(states.RunId("no-such-run"))


def test_creating_a_run_twice_is_refused(journal: journaling.Journal) -> None:
    journal.create_run(factories.make_run())
    with pytest.raises(errors.JournalError, match="already exists"):
        journal.create_run(factories.make_run())


def test_save_run_writes_a_transition_from_the_expected_state(
    journal: journaling.Journal,
) -> None:
    run = journal.create_run(factories.make_run())
    moved = states.transition(run, S.PLANNING, reason="planning", at=factories.later(1))
    moved = dataclasses.replace(moved, record=records.RunRecord(parameters={"zone": "us-east-1b"}))
    journal.save_run(moved, expected_state=run.state)
    assert journal.get_run(run.id) == moved


def test_save_run_refuses_when_another_process_moved_the_run(
    journal: journaling.Journal,
) -> None:
    run = journal.create_run(factories.make_run(state=S.INJECTING))
    crashed = states.transition(run, S.CRASHED, reason="owner gone", at=factories.later(1))
    journal.save_run(crashed, expected_state=S.INJECTING)
    observing = states.transition(run, S.OBSERVING, reason="late engine", at=factories.later(2))
    with pytest.raises(errors.StaleRun, match="crashed"):
        journal.save_run(observing, expected_state=S.INJECTING)
    assert journal.get_run(run.id).state is S.CRASHED


def test_list_runs_is_newest_first_and_filters(journal: journaling.Journal) -> None:
    for minute, (run_id, scenario, state) in enumerate(
        [
            ("a", "zone-outage", S.COMPLETED),
            ("b", "vendor-down", S.OBSERVING),
            ("c", "zone-outage", S.CRASHED),
        ]
    ):
        journal.create_run(
            factories.make_run(
                run_id=run_id, scenario=scenario, state=state, at=factories.later(minute)
            )
        )
    assert [r.id for r in journal.list_runs()] == ["c", "b", "a"]
    assert [r.id for r in journal.list_runs(scenario="zone-outage")] == ["c", "a"]
    assert [r.id for r in journal.list_runs(states_in={S.COMPLETED})] == ["a"]
    assert [r.id for r in journal.list_runs(limit=1)] == ["c"]
    assert [r.id for r in journal.runs_in_flight()] == ["c", "b"]


def test_heartbeat_only_counts_for_the_current_owner(journal: journaling.Journal) -> None:
    owner = factories.make_owner(token="boot:1")
    run = journal.create_run(factories.make_run(owner=owner))
    assert journal.heartbeat(run.id, owner=owner) is True
    assert journal.get_run(run.id).heartbeat_at is not None
    reused_pid = dataclasses.replace(owner, token="boot:2")
    assert journal.heartbeat(run.id, owner=reused_pid) is False


def test_an_intent_is_readable_as_written(journal: journaling.Journal) -> None:
    run = _started(journal)
    planned = factories.set_value(name="web", previous=3, value=0)
    entry = journal.record_intent(run.id, planned)
    assert entry.state is E.INTENDED
    (stored,) = journal.entries(run.id)
    assert stored == entry
    assert stored.target == planned.target
    assert stored.undo == planned.undo
    assert stored.pre_state == {"value": 3}


def test_an_intent_for_an_unknown_run_is_refused(journal: journaling.Journal) -> None:
    with pytest.raises(errors.JournalError, match="ghost"):
        journal.record_intent(
            states.RunId("ghost"), factories.set_value(name="web", previous=1, value=2)
        )


def test_an_intent_is_visible_to_a_second_journal_instance(store_url: str) -> None:
    with journaling.open_store(store_url) as writer, journaling.open_store(store_url) as reader:
        run = _started(writer)
        entry = writer.record_intent(run.id, factories.set_value(name="web", previous=1, value=2))
        assert [e.seq for e in reader.undo_plan(run.id)] == [entry.seq]


def test_apply_may_refine_the_undo_token(journal: journaling.Journal) -> None:
    run = _started(journal)
    entry = journal.record_intent(run.id, factories.set_value(name="web", previous=1, value=2))
    refined = mutations.UndoToken(action="test.set-value", data={"value": 1, "uid": "abc"})
    applied = journal.mark_applied(entry.seq, undo=refined)
    assert applied.state is E.APPLIED
    assert journal.entries(run.id)[0].undo == refined


def test_undo_plan_is_newest_first_and_includes_intended_but_unknown(
    journal: journaling.Journal,
) -> None:
    run = _started(journal)
    other = _started(journal, "run-2")
    seqs = {}
    for name in ("applied", "apply-failed", "reverted", "revert-failed", "skipped", "intended"):
        seqs[name] = journal.record_intent(
            run.id, factories.set_value(name=name, previous=0, value=1)
        ).seq
    journal.record_intent(other.id, factories.set_value(name="other", previous=0, value=1))
    journal.mark_applied(seqs["applied"])
    journal.mark_apply_failed(seqs["apply-failed"], error="403 forbidden")
    journal.mark_applied(seqs["reverted"])
    journal.mark_reverted(seqs["reverted"])
    journal.mark_applied(seqs["revert-failed"])
    journal.mark_revert_failed(seqs["revert-failed"], error="timeout")
    journal.mark_skipped(seqs["skipped"], reason="dry run")

    plan = journal.undo_plan(run.id)

    assert [e.seq for e in plan] == [seqs["intended"], seqs["revert-failed"], seqs["applied"]]
    assert [e.state for e in plan] == [E.INTENDED, E.REVERT_FAILED, E.APPLIED]


def test_entry_states_only_move_forward(journal: journaling.Journal) -> None:
    run = _started(journal)
    entry = journal.record_intent(run.id, factories.set_value(name="web", previous=1, value=2))
    journal.mark_applied(entry.seq)
    journal.mark_reverted(entry.seq)
    with pytest.raises(errors.JournalError, match="reverted; it cannot be marked applied"):
        journal.mark_applied(entry.seq)
    with pytest.raises(errors.JournalError, match="cannot be marked revert_failed"):
        journal.mark_revert_failed(entry.seq, error="late")
    assert journal.entries(run.id)[0].state is E.REVERTED


def test_marking_reverted_twice_is_harmless_and_attempts_add_up(
    journal: journaling.Journal,
) -> None:
    run = _started(journal)
    entry = journal.record_intent(run.id, factories.set_value(name="web", previous=1, value=2))
    journal.mark_applied(entry.seq)
    journal.mark_revert_failed(entry.seq, error="throttled", attempts=3)
    journal.mark_reverted(entry.seq, attempts=2)
    again = journal.mark_reverted(entry.seq)
    assert again.state is E.REVERTED
    assert again.attempts == 6
    assert again.error is None


def test_marking_an_unknown_entry_names_it(journal: journaling.Journal) -> None:
    with pytest.raises(errors.JournalError, match="#999"):
        journal.mark_applied(999)


def test_events_form_an_ordered_timeline(journal: journaling.Journal) -> None:
    run = _started(journal)
    journal.append_event(run.id, kind="probe", message="web ok", data={"latency_ms": 12})
    journal.append_event(run.id, kind="guardrail", message="error rate 2%")
    journal.append_event(run.id, kind="probe", message="web slow", data={"latency_ms": 900})
    timeline = journal.events(run.id)
    assert [e.message for e in timeline] == ["web ok", "error rate 2%", "web slow"]
    assert [e.data for e in journal.events(run.id, kind="probe")] == [
        {"latency_ms": 12},
        {"latency_ms": 900},
    ]


def test_concurrent_marks_are_each_recorded_and_a_refused_one_fails_alone(
    journal: journaling.Journal,
) -> None:
    run = _started(journal)
    seqs = [
        journal.record_intent(run.id, factories.set_value(name=f"web-{i}", previous=1, value=2)).seq
        for i in range(24)
    ]
    for seq in seqs[:-1]:
        journal.mark_applied(seq)
    journal.mark_reverted(seqs[-1])  # reverted already: it can no longer be marked applied
    start = threading.Barrier(len(seqs))
    outcomes: dict[int, str] = {}

    def mark(seq: int) -> None:
        start.wait(timeout=30)
        try:
            if seq == seqs[-1]:
                journal.mark_applied(seq)
            else:
                journal.mark_reverted(seq)
            outcomes[seq] = "ok"
        except errors.JournalError as exc:
            outcomes[seq] = str(exc)

    threads = [threading.Thread(target=mark, args=(seq,)) for seq in seqs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [outcomes[seq] for seq in seqs[:-1]] == ["ok"] * (len(seqs) - 1)
    assert "cannot be marked applied" in outcomes[seqs[-1]]
    assert {e.state for e in journal.entries(run.id)} == {E.REVERTED}
    assert journal.undo_plan(run.id) == []


def test_a_batch_of_events_is_appended_in_order_keeping_the_times_it_was_given(
    journal: journaling.Journal,
) -> None:
    run = _started(journal)
    journal.append_event(run.id, kind="state", message="rolling_back")
    started = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    written = journal.append_events(
        run.id,
        [
            journaling.NewEvent("revert", "reverting #2", {"seq": 2}, at=started),
            journaling.NewEvent("revert", "reverting #1", {"seq": 1}, at=started),
            journaling.NewEvent("mutation", "reverted #2", {"seq": 2, "state": "reverted"}),
        ],
    )
    timeline = journal.events(run.id)
    assert [e.message for e in timeline] == [
        "rolling_back",
        "reverting #2",
        "reverting #1",
        "reverted #2",
    ]
    assert timeline[1:] == written
    assert [e.at for e in written[:2]] == [started, started]
    assert written[2].at > started  # no time given: the moment it was written
    assert [e.data for e in journal.events(run.id, kind="revert")] == [{"seq": 2}, {"seq": 1}]


def test_a_batch_with_one_bad_event_writes_none_of_it(journal: journaling.Journal) -> None:
    run = _started(journal)
    with pytest.raises(errors.JournalError, match="naive"):
        journal.append_events(
            run.id,
            [
                journaling.NewEvent("mutation", "reverted #1", {"seq": 1}),
                journaling.NewEvent("revert", "reverting #2", at=datetime(2025, 1, 1)),
            ],
        )
    assert journal.events(run.id) == []
    assert journal.append_events(run.id, []) == []


def test_the_killswitch_is_shared_by_every_journal_on_the_store(store_url: str) -> None:
    with journaling.open_store(store_url) as one, journaling.open_store(store_url) as two:
        assert one.killswitch().engaged is False
        two.set_killswitch(engaged=True, by="alice", reason="incident in progress")
        seen = one.killswitch()
        assert (seen.engaged, seen.by, seen.reason) == (True, "alice", "incident in progress")
        one.set_killswitch(engaged=False, by="bob", reason="incident over")
        assert two.killswitch().engaged is False


def test_overlapping_target_sets_cannot_be_held_by_two_runs(store_url: str) -> None:
    with journaling.open_store(store_url) as one, journaling.open_store(store_url) as two:
        first = _started(one, "run-1")
        second = _started(one, "run-2")
        assert one.acquire_targets(first.id, ["node-a", "node-b"]) == []
        conflicts = two.acquire_targets(second.id, ["node-c", "node-b"])
        assert conflicts == [journaling.TargetConflict(key="node-b", run_id=first.id)]
        assert two.held_targets(second.id) == []  # all or nothing: node-c not taken either
        assert one.acquire_targets(first.id, ["node-a"]) == []  # re-acquiring is fine
        assert one.release_targets(first.id) == 2
        assert two.acquire_targets(second.id, ["node-c", "node-b"]) == []
        assert one.held_targets(second.id) == ["node-b", "node-c"]


def test_lock_holders_lists_each_run_holding_a_lock_once(store_url: str) -> None:
    with journaling.open_store(store_url) as store:
        first = _started(store, "run-1")
        second = _started(store, "run-2")
        _started(store, "run-3")
        assert store.lock_holders() == []
        assert store.acquire_targets(first.id, ["node-a", "node-b"]) == []
        assert store.acquire_targets(second.id, ["node-c"]) == []
        assert store.lock_holders() == [first.id, second.id]
        store.release_targets(first.id)
        assert store.lock_holders() == [second.id]


def test_naive_timestamps_are_refused(store_url: str) -> None:
    with journaling.open_store(store_url, clock=lambda: datetime(2025, 1, 1)) as store:
        run = _started(store)
        with pytest.raises(errors.JournalError, match="naive"):
            store.append_event(run.id, kind="probe", message="x")


def test_an_unreachable_database_is_reported_with_its_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(errors.JournalError, match="cannot open the journal"):
        journaling.open_store(f"postgresql://postgres@127.0.0.1:{port}/test")


def test_an_in_memory_sqlite_journal_is_refused_as_not_durable() -> None:
    with pytest.raises(errors.JournalError, match="not durable"):
        journaling.open_store("sqlite://")
