"""Singleton leases: acquire, renew, expire, steal, release, fencing, races (SQL and Kubernetes)."""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from drills.service import leases
from orchestrator import journal
from orchestrator.providers.kubernetes import connection as kube_connection
from sandbox.kubernetes import resources
from tests.fixtures import kube

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=15)

fenced_metadata = sa.MetaData()
fenced_log = sa.Table(
    "fenced_log",
    fenced_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
)
"""Writes made under a lease (a table of the tests', not of the product)."""


def _lease(store: journal.Journal, holder: str, *, ttl: timedelta = TTL) -> leases.SqlLease:
    return leases.SqlLease(store, holder=leases.HolderId(holder), ttl=ttl)


def _fenced_write(store: journal.Journal, held: leases.Held) -> bool:
    """Insert a row under the fence; False (and nothing written) when it is refused."""
    try:
        with store.transaction(write=True) as conn:
            leases.fence(conn, held)
            conn.execute(fenced_log.insert().values(holder=held.holder, epoch=held.epoch))
    except leases.LeaseLost:
        return False
    return True


@pytest.fixture
def store(store_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(store_url) as opened:
        fenced_metadata.create_all(opened.engine)
        yield opened


# ---- one process -----------------------------------------------------------------------------


def test_a_free_lease_is_taken_at_epoch_one_and_renewed_by_its_holder(
    store: journal.Journal,
) -> None:
    a = _lease(store, "a")
    held = a.try_acquire(T0)
    assert held is not None
    assert (held.epoch, held.holder, held.expires_at) == (1, "a", T0 + TTL)
    renewed = a.renew(held, T0 + timedelta(seconds=5))
    assert renewed is not None
    assert (renewed.epoch, renewed.expires_at) == (1, T0 + timedelta(seconds=20))
    row = a.current()
    assert row is not None
    assert (row.holder, row.epoch, row.expires_at) == ("a", 1, T0 + timedelta(seconds=20))


def test_a_process_restarted_under_the_same_name_takes_the_lease_at_a_new_epoch(
    store: journal.Journal,
) -> None:
    before_crash = _lease(store, "host:8700")
    old = before_crash.try_acquire(T0)
    assert old is not None
    restarted = _lease(store, "host:8700")  # same name, no tenure in memory

    again = restarted.try_acquire(T0 + timedelta(seconds=6))  # not waiting for the TTL

    assert again is not None
    assert (again.epoch, again.acquired_at) == (2, T0 + timedelta(seconds=6))
    with store.transaction() as conn:  # the fence tells the two processes apart
        assert leases.still_holds(conn, again) and not leases.still_holds(conn, old)
    assert before_crash.renew(old, T0 + timedelta(seconds=7)) is None
    assert before_crash.release(old) is False


def test_a_held_lease_is_refused_to_another_holder_until_it_expires(
    store: journal.Journal,
) -> None:
    a, b = _lease(store, "a"), _lease(store, "b")
    held = a.try_acquire(T0)
    assert held is not None
    assert b.try_acquire(T0 + TTL - timedelta(milliseconds=1)) is None
    stolen = b.try_acquire(T0 + TTL)
    assert stolen is not None
    assert (stolen.holder, stolen.epoch, stolen.acquired_at) == ("b", 2, T0 + TTL)


def test_the_epoch_increases_on_every_change_of_holder(store: journal.Journal) -> None:
    holders = [_lease(store, name) for name in ("a", "b", "c")]
    epochs = []
    now = T0
    for turn in range(7):
        held = holders[turn % 3].try_acquire(now)
        assert held is not None, f"turn {turn}"
        epochs.append(held.epoch)
        if turn % 2:  # alternately released and left to expire
            assert holders[turn % 3].release(held)
            now += timedelta(seconds=1)
        else:
            now = held.expires_at
    assert epochs == [1, 2, 3, 4, 5, 6, 7]


def test_a_former_holder_can_neither_renew_nor_release_once_another_took_over(
    store: journal.Journal,
) -> None:
    a, b = _lease(store, "a"), _lease(store, "b")
    old = a.try_acquire(T0)
    assert old is not None
    new = b.try_acquire(T0 + TTL)
    assert new is not None
    assert a.renew(old, T0 + TTL + timedelta(seconds=1)) is None
    assert a.release(old) is False
    assert a.try_acquire(T0 + TTL + timedelta(seconds=1)) is None
    row = b.current()
    assert row is not None
    assert (row.holder, row.epoch) == ("b", 2)


def test_a_former_holders_fenced_write_is_refused_and_writes_nothing(
    store: journal.Journal,
) -> None:
    a, b = _lease(store, "a"), _lease(store, "b")
    old = a.try_acquire(T0)
    assert old is not None
    assert _fenced_write(store, old)
    new = b.try_acquire(T0 + TTL)
    assert new is not None
    assert not _fenced_write(store, old)
    with pytest.raises(leases.LeaseLost, match="epoch 1 held by a"), store.transaction() as conn:
        leases.fencer(old)(conn)
    assert _fenced_write(store, new)
    with store.transaction() as conn:
        rows = conn.execute(sa.select(fenced_log.c.holder, fenced_log.c.epoch)).all()
    assert [tuple(row) for row in rows] == [("a", 1), ("b", 2)]


def test_an_expired_tenure_cannot_be_renewed_even_if_nobody_took_it(
    store: journal.Journal,
) -> None:
    a = _lease(store, "a")
    held = a.try_acquire(T0)
    assert held is not None
    assert a.renew(held, T0 + TTL) is None
    retaken = a.try_acquire(T0 + TTL)
    assert retaken is not None
    assert retaken.epoch == 2  # a new tenure: its jobs start afresh, its old writes are fenced
    assert not _fenced_write(store, held)


def test_a_released_lease_is_free_at_once_for_any_clock(store: journal.Journal) -> None:
    a, b = _lease(store, "a"), _lease(store, "b")
    held = a.try_acquire(T0)
    assert held is not None
    assert a.release(held)
    row = a.current()
    assert row is not None
    assert row.released
    taken = b.try_acquire(T0 - timedelta(days=1))  # a clock behind the releaser's
    assert taken is not None
    assert taken.epoch == 2
    assert a.release(held) is False


def test_leases_of_different_names_are_independent(store: journal.Journal) -> None:
    first = leases.SqlLease(
        store, name=leases.LeaseName("one"), holder=leases.HolderId("a"), ttl=TTL
    )
    second = leases.SqlLease(
        store, name=leases.LeaseName("two"), holder=leases.HolderId("b"), ttl=TTL
    )
    one, two = first.try_acquire(T0), second.try_acquire(T0)
    assert one is not None
    assert two is not None
    assert (one.epoch, two.epoch) == (1, 1)


def test_naive_times_and_another_objects_tenure_are_refused(store: journal.Journal) -> None:
    a, b = _lease(store, "a"), _lease(store, "b")
    with pytest.raises(ValueError, match="naive"):
        a.try_acquire(T0.replace(tzinfo=None))
    held = a.try_acquire(T0)
    assert held is not None
    with pytest.raises(ValueError, match="another lease object"):
        b.renew(held, T0)


# ---- threads racing in one process ---------------------------------------------------------


@pytest.mark.parametrize("state", ["free", "expired"])
def test_of_threads_racing_for_the_lease_exactly_one_wins(
    store: journal.Journal, state: str
) -> None:
    if state == "expired":
        first = _lease(store, "first").try_acquire(T0)
        assert first is not None
    now = T0 + TTL  # free, or just expired
    contenders = [_lease(store, f"t{i}") for i in range(8)]
    barrier = threading.Barrier(len(contenders))
    won: list[leases.Held] = []
    lock = threading.Lock()

    def race(lease: leases.SqlLease) -> None:
        barrier.wait()
        held = lease.try_acquire(now)
        if held is not None:
            with lock:
                won.append(held)

    threads = [threading.Thread(target=race, args=(lease,)) for lease in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert won[0].epoch == (2 if state == "expired" else 1)
    row = contenders[0].current()
    assert row is not None
    assert (row.holder, row.epoch) == (won[0].holder, won[0].epoch)


@pytest.mark.postgres
def test_on_postgres_a_fenced_transaction_holds_off_a_takeover_until_it_commits(
    postgres_url: str,
) -> None:
    with journal.open_store(postgres_url) as store:
        fenced_metadata.create_all(store.engine)
        a, b = _lease(store, "a"), _lease(store, "b")
        old = a.try_acquire(T0)
        assert old is not None
        taken: list[leases.Held | None] = []
        in_fence = threading.Event()
        may_commit = threading.Event()

        def fenced() -> None:
            with store.transaction(write=True) as conn:
                leases.fence(conn, old)
                in_fence.set()
                may_commit.wait(timeout=30)
                conn.execute(fenced_log.insert().values(holder="a", epoch=old.epoch))

        writer = threading.Thread(target=fenced)
        writer.start()
        assert in_fence.wait(timeout=30)
        taker = threading.Thread(target=lambda: taken.append(b.try_acquire(T0 + TTL)))
        taker.start()
        kube.eventually(lambda: _waiting_on_a_lock(store), what="the takeover waits for the row")
        assert taken == []  # still waiting: the tenure of epoch 1 is not over yet
        may_commit.set()
        writer.join()
        taker.join()
        assert taken[0] is not None
        assert taken[0].epoch == 2
        assert not _fenced_write(store, old)
        with store.transaction() as conn:
            rows = conn.execute(sa.select(fenced_log.c.epoch)).scalars().all()
        assert rows == [1]


def _waiting_on_a_lock(store: journal.Journal) -> bool:
    with store.transaction() as conn:
        waiting = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database() AND query ILIKE '%FROM leases%FOR UPDATE%'"
            )
        ).scalar()
    return bool(waiting)


# ---- processes racing --------------------------------------------------------------------------


def race_worker(url: str, holder: str, seed: str, rounds: str, ttl_s: str, renew_s: str) -> None:
    """One process of the race (run by `python -c`): prints a JSON line per event.

    Each round it renews (or tries to take) the lease and, holding, makes a fenced write;
    at random it releases the lease, or pauses past the TTL and then writes with its stale
    tenure before renewing (a holder that was stopped and woke up). It prints `ready` and
    waits for a line on stdin before the first round, so that the processes race from the
    same moment however slowly each one started; it goes on past `rounds` until it has held
    the lease once (holders release or stall at random, so each gets a turn), so the
    lease changes hands on every run, not only when the timing happens to allow it.
    """
    rng = random.Random(int(seed))
    ttl, renew = timedelta(seconds=float(ttl_s)), float(renew_s)
    out = sys.stdout
    with journal.open_store(url, create_tables=False) as store:
        lease = leases.SqlLease(
            store, name=leases.LeaseName("race"), holder=leases.HolderId(holder), ttl=ttl
        )

        def event(kind: str, held: leases.Held, **extra: Any) -> None:
            line = {"kind": kind, "holder": holder, "epoch": held.epoch, **extra}
            out.write(json.dumps(line) + "\n")
            out.flush()

        out.write("ready\n")
        out.flush()
        sys.stdin.readline()
        held: leases.Held | None = None
        ever_held, done = False, 0
        while done < int(rounds) or (not ever_held and done < 100 * int(rounds)):
            done += 1
            now = datetime.now(UTC)
            if held is not None:
                held = lease.renew(held, now)
            if held is None:
                held = lease.try_acquire(now)
            if held is not None:
                ever_held = True
                event("held", held, since=now.timestamp(), until=held.expires_at.timestamp())
                event("write", held, ok=_fenced_write(store, held))
                dice = rng.random()
                if dice < 0.1:
                    lease.release(held)
                    event("released", held, at=datetime.now(UTC).timestamp())
                    held = None
                elif dice < 0.2:
                    time.sleep(ttl.total_seconds() * 1.5)
                    event("stale-write", held, ok=_fenced_write(store, held))
            time.sleep(renew * rng.uniform(0.5, 1.5))


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_of_processes_racing_over_many_rounds_exactly_one_holds_at_any_time(
    backend: str, request: pytest.FixtureRequest, record_property: Any
) -> None:
    url: str = request.getfixturevalue(f"{backend}_url")
    with journal.open_store(url) as opened:
        fenced_metadata.create_all(opened.engine)
    ttl_s, renew_s, rounds = 0.3, 0.03, 50
    code = "import sys; from tests.service import test_leases as t; t.race_worker(*sys.argv[1:])"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                url,
                f"p{i}",
                str(i),
                str(rounds),
                str(ttl_s),
                str(renew_s),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        for i in range(3)
    ]
    for proc in procs:  # the start barrier: all are ready before any takes a round
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    lines: list[dict[str, Any]] = []
    for proc in procs:
        assert proc.stdout is not None
        out = proc.stdout.read()
        assert proc.wait(timeout=120) == 0
        lines.extend(json.loads(line) for line in out.splitlines())

    held = [line for line in lines if line["kind"] == "held"]
    holder_of: dict[int, set[str]] = {}
    for line in held:
        holder_of.setdefault(line["epoch"], set()).add(line["holder"])
    assert all(len(names) == 1 for names in holder_of.values()), holder_of
    # every process held the lease (each runs until it has), so it changed hands
    assert {h for names in holder_of.values() for h in names} == {"p0", "p1", "p2"}

    # No two tenures overlap in time (one machine, one clock). A tenure runs from its first
    # `since` to its last `until`, or to its release. Epochs are given in commit order, so
    # tenures are taken in epoch order: `since` is the clock a worker read before asking,
    # and a worker that asked while a release was committing may read it before that
    # release, so only a tenure that ended by expiry bounds the next one's `since`.
    released = {line["epoch"]: line["at"] for line in lines if line["kind"] == "released"}
    spans = sorted(
        (
            epoch,
            min(line["since"] for line in held if line["epoch"] == epoch),
            max(line["until"] for line in held if line["epoch"] == epoch),
        )
        for epoch in holder_of
    )
    for (epoch, _, until), (later, since, _) in itertools.pairwise(spans):
        if epoch not in released:  # a release ends a tenure early; else it lasts to `until`
            assert since >= until, f"epoch {later} began before epoch {epoch} expired"

    # Fenced writes: in commit order the epochs never go back, and a stale tenure's write
    # after a takeover was refused.
    with journal.open_store(url, create_tables=False) as opened, opened.transaction() as conn:
        written = (
            conn.execute(sa.select(fenced_log.c.epoch).order_by(fenced_log.c.seq)).scalars().all()
        )
    assert written == sorted(written)
    assert len(written) >= len(held) // 2
    stale = [line for line in lines if line["kind"] == "stale-write"]
    refused = [line for line in stale if not line["ok"]]
    record_property("lease_race", f"{len(holder_of)} tenures, {len(refused)} stale refused")
    sys.stdout.write(
        f"\nlease race ({backend}): {len(holder_of)} tenures over {len(held)} held rounds,"
        f" {len(written)} fenced writes, {len(refused)} of {len(stale)} stale writes refused\n"
    )


# ---- settings ------------------------------------------------------------------------------


def test_lease_settings_default_to_fifteen_and_five_seconds_and_parse_durations() -> None:
    assert (leases.LeaseSettings().ttl, leases.LeaseSettings().renew) == (15.0, 5.0)
    found = leases.LeaseSettings.from_env(
        {"STORMDRILL_LEASE_TTL": "1.5s", "STORMDRILL_LEASE_RENEW": "250ms", "OTHER": "x"}
    )
    assert (found.ttl, found.renew, found.backend) == (1.5, 0.25, leases.LeaseBackend.DATABASE)
    assert leases.LeaseSettings.from_env({"STORMDRILL_LEASE_TTL": "2m"}).ttl == 120.0


def test_a_renew_interval_not_shorter_than_the_ttl_is_refused_naming_both_variables() -> None:
    with pytest.raises(ValueError, match=r"STORMDRILL_LEASE_RENEW .* STORMDRILL_LEASE_TTL"):
        leases.LeaseSettings.from_env(
            {"STORMDRILL_LEASE_TTL": "5s", "STORMDRILL_LEASE_RENEW": "5s"}
        )
    with pytest.raises(ValueError, match="STORMDRILL_LEASE_TTL"):
        leases.LeaseSettings.from_env({"STORMDRILL_LEASE_TTL": "soon"})


# ---- Kubernetes ------------------------------------------------------------------------------


@pytest.fixture
def kube_conn(
    fresh_kube: kube.KubeSandbox, kube_api_client: kube.ApiClientFactory
) -> kube_connection.KubeConnection:
    return kube_connection.KubeConnection(api_client=kube_api_client(fresh_kube))


def _kube_lease(conn: kube_connection.KubeConnection, holder: str) -> leases.KubernetesLease:
    return leases.KubernetesLease(
        conn, namespace="default", holder=leases.HolderId(holder), ttl=timedelta(seconds=15)
    )


def test_a_kubernetes_lease_is_taken_renewed_and_stolen_after_it_expires(
    kube_conn: kube_connection.KubeConnection, fresh_kube: kube.KubeSandbox
) -> None:
    a, b = _kube_lease(kube_conn, "a"), _kube_lease(kube_conn, "b")
    held = a.try_acquire(T0)
    assert held is not None
    assert held.epoch == 0
    assert b.try_acquire(T0 + timedelta(seconds=5)) is None
    renewed = a.renew(held, T0 + timedelta(seconds=10))
    assert renewed is not None
    assert renewed.expires_at == T0 + timedelta(seconds=25)
    assert b.try_acquire(T0 + timedelta(seconds=24)) is None
    stolen = b.try_acquire(T0 + timedelta(seconds=25))
    assert stolen is not None
    assert stolen.epoch == 1
    assert a.renew(renewed, T0 + timedelta(seconds=26)) is None
    with sa.create_engine("sqlite://").connect() as conn:  # the Kubernetes check needs none
        assert not leases.still_holds(conn, renewed)
        assert leases.still_holds(conn, stolen)
    stored: dict[str, Any] = fresh_kube.store.get(
        resource=resources.LEASES, namespace="default", name="housekeeping"
    )
    assert (stored["spec"]["holderIdentity"], stored["spec"]["leaseTransitions"]) == ("b", 1)
    assert b.release(stolen)
    again = a.try_acquire(T0 + timedelta(seconds=27))
    assert again is not None
    assert again.epoch == 2


def test_of_threads_racing_for_a_kubernetes_lease_exactly_one_wins(
    kube_conn: kube_connection.KubeConnection,
) -> None:
    first = _kube_lease(kube_conn, "first").try_acquire(T0)
    assert first is not None
    contenders = [_kube_lease(kube_conn, f"t{i}") for i in range(6)]
    barrier = threading.Barrier(len(contenders))
    won: list[leases.Held] = []
    lock = threading.Lock()

    def race(lease: leases.KubernetesLease) -> None:
        barrier.wait()
        held = lease.try_acquire(T0 + timedelta(seconds=15))
        if held is not None:
            with lock:
                won.append(held)

    threads = [threading.Thread(target=race, args=(lease,)) for lease in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert won[0].epoch == 1
