"""Durability and sharing: what one process journals survives its death and is seen by others."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from orchestrator import journal as journaling
from orchestrator import mutations, states
from tests.engine_core import crash_marker, factories
from tests.fixtures import stores

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_an_intent_written_by_a_process_killed_mid_mutation_is_in_the_undo_plan(
    store_url: str,
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.engine_core.crash_writer", store_url, "run-crash"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("intent "), f"child said {line!r}"
        seq = int(line.split()[1])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    with journaling.open_store(store_url) as survivor:
        (entry,) = survivor.undo_plan(states.RunId("run-crash"))
        assert entry.seq == seq
        assert entry.state is mutations.EntryState.INTENDED
        assert entry.undo.data == {"value": 3}
        assert [r.id for r in survivor.runs_in_flight()] == ["run-crash"]


def _killed_marker(store_url: str, run_id: str, moment: str) -> list[str]:
    """Run `crash_marker` until it has said everything for `moment`, SIGKILL it, its lines."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.engine_core.crash_marker", store_url, run_id, moment],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert child.stdout is not None
        for _ in range(2):
            lines.append(child.stdout.readline().strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return lines


def test_a_writer_killed_between_a_revert_mark_and_its_events_leaves_neither(
    store_url: str,
) -> None:
    applied, inside = _killed_marker(store_url, "run-cut", "inside")

    assert applied.startswith("applied ") and inside == "inside", (applied, inside)
    with journaling.open_store(store_url) as survivor:
        (entry,) = survivor.entries(states.RunId("run-cut"))
        assert entry.seq == int(applied.split()[1])
        assert entry.state is mutations.EntryState.APPLIED
        assert [e.seq for e in survivor.undo_plan(states.RunId("run-cut"))] == [entry.seq]
        assert survivor.events(states.RunId("run-cut")) == []


def test_a_revert_mark_reported_done_survives_its_writer_with_its_events(
    store_url: str,
) -> None:
    applied, marked = _killed_marker(store_url, "run-done", "after")

    seq = int(applied.split()[1])
    assert marked == f"marked {seq}"
    with journaling.open_store(store_url) as survivor:
        entry = survivor.entry(seq)
        assert (entry.state, entry.attempts) == (mutations.EntryState.REVERTED, 1)
        assert survivor.undo_plan(states.RunId("run-done")) == []
        lines = survivor.events(states.RunId("run-done"))
        assert [(e.kind, e.message) for e in lines] == [
            ("revert", f"reverting #{seq}"),
            ("mutation", f"reverted #{seq}"),
        ]
        assert lines[0].at == crash_marker.STARTED
        assert lines[1].at == entry.updated_at


def test_exactly_one_of_many_concurrent_runs_gets_an_overlapping_target_set(
    store_url: str,
) -> None:
    contenders = 8
    stores = [journaling.open_store(store_url) for _ in range(2)]
    try:
        for i in range(contenders):
            stores[0].create_run(factories.make_run(run_id=f"run-{i}"))
        start = threading.Barrier(contenders)
        won: list[str] = []
        lock = threading.Lock()

        def contend(i: int) -> None:
            store = stores[i % 2]
            keys = ["node-a", f"node-private-{i}", "node-z"]
            start.wait(timeout=30)
            if not store.acquire_targets(states.RunId(f"run-{i}"), keys):
                with lock:
                    won.append(f"run-{i}")

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(won) == 1
        winner = states.RunId(won[0])
        assert stores[1].held_targets(winner) == sorted(
            ["node-a", f"node-private-{winner.removeprefix('run-')}", "node-z"]
        )
        for i in range(contenders):
            if f"run-{i}" != winner:
                assert stores[0].held_targets(states.RunId(f"run-{i}")) == []
    finally:
        for store in stores:
            store.close()


def test_two_processes_opening_a_fresh_store_at_once_both_succeed(store_url: str) -> None:
    code = (
        "import sys; from orchestrator import journal; "
        "journal.open_store(sys.argv[1]).close(); print('ok')"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [child.communicate()[0] for child in children]
    assert [child.returncode for child in children] == [0, 0, 0]
    assert outputs == ["ok\n"] * 3


@pytest.mark.postgres
def test_a_revert_mark_whose_connection_is_terminated_is_written_again_on_a_fresh_one(
    postgres_url: str,
) -> None:
    # The server ends the backend (pg_terminate_backend) right as the "reverted" UPDATE is
    # sent: the mark must still land, once, instead of reporting a done revert as failed.
    store = journaling.open_store(postgres_url)
    store.create_run(factories.make_run())
    entry = store.record_intent(
        states.RunId("run-1"), factories.set_value(name="web", previous=3, value=0)
    )
    store.mark_applied(entry.seq)
    admin = stores.postgres_dsn_of(postgres_url).split("?")[0]
    terminated: list[int] = []

    def cut(conn: sa.Connection, _c: object, statement: str, *_a: object) -> None:
        if not terminated and statement.lstrip().upper().startswith("UPDATE JOURNAL"):
            pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
            with psycopg.connect(admin, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (pid,))
            terminated.append(pid)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", cut)
    try:
        marked = store.mark_reverted(entry.seq)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", cut)

    assert len(terminated) == 1
    assert marked.state is mutations.EntryState.REVERTED
    assert store.entry(entry.seq).state is mutations.EntryState.REVERTED
    store.close()
