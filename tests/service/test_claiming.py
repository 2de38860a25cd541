"""Claiming: exactly one process drives a run, and concurrent recoveries never double up."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drills import binding, store
from drills.service import runs
from orchestrator import engine, journal, records, states
from tests.service import world

_S = states.RunState


def _pending(opened: journal.Journal, run_id: str, *, owner: states.Owner) -> states.Run:
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="absence",
        environment="test",
        environment_source="test",
        owner=owner,
        at=world.LONG_AGO,
        record=records.RunRecord(),
    )
    return opened.create_run(run)


def test_of_two_claims_on_the_same_run_exactly_one_wins(store_url: str) -> None:
    with journal.open_store(store_url) as opened:
        run = _pending(opened, "queued", owner=journal.UNCLAIMED)
        first = states.Owner(host="a", pid=1, token="a")
        second = states.Owner(host="b", pid=2, token="b")
        won = opened.claim_run(run.id, first, previous=journal.UNCLAIMED)
        lost = opened.claim_run(run.id, second, previous=journal.UNCLAIMED)
        stored = opened.get_run(run.id)

    assert won is not None and won.owner == first and won.heartbeat_at is not None
    assert lost is None
    assert stored.owner == first


def test_a_run_that_is_not_claimable_is_not_claimed(store_url: str) -> None:
    with journal.open_store(store_url) as opened:
        run = _pending(opened, "queued", owner=journal.UNCLAIMED)
        opened.save_run(
            states.transition(run, _S.ABORTED, reason="cancelled", at=datetime.now(UTC)),
            expected_state=_S.PENDING,
        )
        claimed = opened.claim_run(run.id, states.Owner.current(), previous=journal.UNCLAIMED)

    assert claimed is None


def test_a_pending_run_whose_claimant_went_silent_is_claimable_again(store_url: str) -> None:
    elsewhere = states.Owner(host="other-host", pid=7, token="x")
    with journal.open_store(store_url) as opened:
        stale = _pending(opened, "stale", owner=elsewhere)  # last seen long ago
        fresh = _pending(opened, "fresh", owner=elsewhere)
        opened.heartbeat(fresh.id, owner=elsewhere)  # its claimant beats now
        eng = engine.Engine(store=opened, reg=binding.make_registry())
        claimed = eng.claim(stale.id)
        with pytest.raises(engine.NotClaimable, match="already driven by pid 7"):
            eng.claim(fresh.id, stale_after_s=30.0)

    assert claimed.owner == states.Owner.current()


def test_two_recovery_passes_at_once_recover_every_crashed_run_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    files = world.write(tmp_path, database_url=postgres_url)
    with journal.open_store(postgres_url) as opened:
        crashed = {
            world.crashed_run(opened, f"crashed-{n}", environment_source=str(files.environment))
            for n in range(6)
        }
    results: list[list[runs.Recovered]] = [[], []]
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def recover(slot: int) -> None:
        try:
            with journal.open_store(postgres_url) as own:  # each pass with its own Journal
                barrier.wait(timeout=30)
                results[slot] = runs.recover(files.config, own, binding.make_registry())
        except BaseException as exc:  # reported below
            failures.append(exc)

    passes = [threading.Thread(target=recover, args=(slot,)) for slot in (0, 1)]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join(timeout=120)

    assert failures == []
    recovered = [done.item.run_id for found in results for done in found]
    assert sorted(recovered) == sorted(crashed)  # every run, none twice
    with journal.open_store(postgres_url) as opened:
        for rid in crashed:
            run = opened.get_run(rid)
            assert run.state is _S.FAILED
            moves = [e.data.get("state") for e in opened.events(rid, kind="state")]
            assert moves == ["crashed", "rolling_back", "verifying", "failed"]
            reverts = opened.events(rid, kind="revert")
            assert len(reverts) == 1


def test_a_recovery_pass_leaves_queued_runs_to_their_drivers(tmp_path: Path) -> None:
    files = world.write(tmp_path)
    with store.open_store(files.config) as opened:
        queued = _pending(opened, "queued", owner=journal.UNCLAIMED)
        done = runs.recover(files.config, opened, binding.make_registry())
        assert done == []
        assert opened.get_run(queued.id).state is _S.PENDING


def test_heartbeat_staleness_counts_from_the_last_beat() -> None:
    now = datetime.now(UTC)
    run = states.Run(
        id=states.RunId("r"),
        scenario="s",
        environment="e",
        environment_source="e",
        state=_S.PENDING,
        started_at=now - timedelta(minutes=5),
        updated_at=now - timedelta(minutes=5),
        owner=states.Owner(host="other-host", pid=1, token="t"),
        heartbeat_at=now - timedelta(seconds=5),
    )

    assert not engine.owner_dead(run, now=now, stale_after_s=30.0)
    assert engine.owner_dead(run, now=now + timedelta(seconds=60), stale_after_s=30.0)
