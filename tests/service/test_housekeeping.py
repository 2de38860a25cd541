"""Housekeeping: jobs run only on the lease holder, recovery at each tenure, failover, close."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from drills import settings as settings_mod
from drills import tables_leases
from drills.service import housekeeping, leases
from orchestrator import errors, journal
from orchestrator.providers import builtin
from tests.fixtures import kube

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SHORT_TTL = timedelta(seconds=0.6)
RENEW_S = 0.05


class Calls:
    """A fake job: records the epoch of every call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.epochs: list[int] = []

    def __call__(self, held: leases.Held) -> None:
        with self._lock:
            self.epochs.append(held.epoch)

    def count(self) -> int:
        with self._lock:
            return len(self.epochs)


class CountingLease:
    """A lease that counts the rounds of its holder (wraps the real one)."""

    def __init__(self, inner: leases.SqlLease) -> None:
        self.inner = inner
        self.rounds = 0

    @property
    def name(self) -> leases.LeaseName:
        return self.inner.name

    @property
    def holder(self) -> leases.HolderId:
        return self.inner.holder

    def try_acquire(self, now: datetime) -> leases.Held | None:
        self.rounds += 1
        return self.inner.try_acquire(now)

    def renew(self, held: leases.Held, now: datetime) -> leases.Held | None:
        self.rounds += 1
        return self.inner.renew(held, now)

    def release(self, held: leases.Held) -> bool:
        return self.inner.release(held)

    def still_holds(self, conn: sa.Connection, held: leases.Held) -> bool:
        return self.inner.still_holds(conn, held)


@pytest.fixture
def store(store_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(store_url) as opened:
        yield opened


def _keeper(
    store: journal.Journal, holder: str, *, ttl: timedelta = SHORT_TTL
) -> tuple[housekeeping.Housekeeper, CountingLease]:
    lease = CountingLease(leases.SqlLease(store, holder=leases.HolderId(holder), ttl=ttl))
    return housekeeping.Housekeeper(lease, renew_s=RENEW_S), lease


def test_recovery_runs_once_when_holding_starts_and_not_again_before_its_interval(
    store: journal.Journal,
) -> None:
    keeper, lease = _keeper(store, "a", ttl=timedelta(seconds=5))
    recovery = Calls()
    keeper.add_job(housekeeping.RECOVERY, 3600, recovery)
    keeper.start()
    try:
        kube.eventually(lambda: recovery.count() == 1, what="recovery at the start of holding")
        rounds = lease.rounds
        kube.eventually(lambda: lease.rounds >= rounds + 5, what="five more renewals")
        assert recovery.epochs == [1]
        assert keeper.tenures == (1,)
    finally:
        keeper.close()


def test_recovery_runs_again_on_its_interval_within_one_tenure(store: journal.Journal) -> None:
    keeper, _ = _keeper(store, "a", ttl=timedelta(seconds=5))
    recovery = Calls()
    keeper.add_job(housekeeping.RECOVERY, 0.1, recovery)
    keeper.start()
    try:
        kube.eventually(lambda: recovery.count() >= 3, what="three recovery passes")
    finally:
        keeper.close()
    assert set(recovery.epochs) == {1}
    assert [run.name for run in keeper.history][:3] == [housekeeping.RECOVERY] * 3


def test_a_job_not_marked_at_start_waits_for_its_first_interval(store: journal.Journal) -> None:
    keeper, lease = _keeper(store, "a", ttl=timedelta(seconds=5))
    later = Calls()
    keeper.add_job("later", 3600, later, at_start=False)
    keeper.start()
    try:
        assert keeper.wait_held(30) is not None
        rounds = lease.rounds
        kube.eventually(lambda: lease.rounds >= rounds + 5, what="five more renewals")
        assert later.count() == 0
    finally:
        keeper.close()


def test_only_the_holder_runs_jobs_and_the_other_waits(store: journal.Journal) -> None:
    a, _ = _keeper(store, "a", ttl=timedelta(seconds=5))
    b, b_lease = _keeper(store, "b", ttl=timedelta(seconds=5))
    a_calls, b_calls = Calls(), Calls()
    a.add_job("work", 0.05, a_calls)
    b.add_job("work", 0.05, b_calls)
    a.start()
    try:
        assert a.wait_held(30) is not None
        b.start()
        rounds = b_lease.rounds
        kube.eventually(lambda: b_lease.rounds >= rounds + 5, what="five attempts by b")
        kube.eventually(lambda: a_calls.count() >= 3, what="a's jobs running")
        assert b_calls.count() == 0
        assert b.held is None
        assert b.tenures == ()
    finally:
        b.close()
        a.close()


def test_losing_the_lease_stops_jobs_before_their_next_run(store: journal.Journal) -> None:
    keeper, lease = _keeper(store, "a", ttl=timedelta(seconds=30))
    calls = Calls()
    keeper.add_job("work", 0.02, calls)
    keeper.start()
    try:
        assert keeper.wait_held(30) is not None
        kube.eventually(lambda: calls.count() >= 2, what="the job running")
        with store.transaction(write=True) as conn:  # its tenure ends (as if paused past it)
            conn.execute(
                tables_leases.leases_table.update().values(
                    expires_at=datetime(2000, 1, 1, tzinfo=UTC)
                )
            )
        thief = leases.SqlLease(store, holder=leases.HolderId("thief"), ttl=timedelta(hours=1))
        stolen = thief.try_acquire(datetime.now(UTC))
        assert stolen is not None
        kube.eventually(lambda: keeper.held is None, what="the loss noticed")
        seen = calls.count()
        rounds = lease.rounds
        kube.eventually(lambda: lease.rounds >= rounds + 5, what="five more attempts")
        assert calls.count() <= seen + 1  # at most the run already under way when it was lost
        assert set(calls.epochs) == {1}
        assert keeper.tenures == (1,)
    finally:
        keeper.close()


def test_a_failing_job_is_logged_and_runs_again(store: journal.Journal) -> None:
    keeper, _ = _keeper(store, "a", ttl=timedelta(seconds=5))
    attempts: list[int] = []

    def flaky(held: leases.Held) -> None:
        attempts.append(held.epoch)
        if len(attempts) == 1:
            raise RuntimeError("the sink is down")

    keeper.add_job("flaky", 0.05, flaky)
    keeper.start()
    try:
        kube.eventually(lambda: len(keeper.history) >= 2, what="a second run")
    finally:
        keeper.close()
    assert [run.ok for run in keeper.history[:2]] == [False, True]


def test_a_job_added_after_start_runs_too(store: journal.Journal) -> None:
    keeper, _ = _keeper(store, "a", ttl=timedelta(seconds=5))
    keeper.start()
    try:
        assert keeper.wait_held(30) is not None
        late = Calls()
        keeper.add_job("notifications", 0.05, late)
        kube.eventually(lambda: late.count() >= 2, what="the late job running")
        with pytest.raises(ValueError, match="registered already"):
            keeper.add_job("notifications", 1, late)
    finally:
        keeper.close()


def test_close_releases_the_lease_so_the_next_replica_takes_it_at_once(
    store: journal.Journal,
) -> None:
    keeper, _ = _keeper(store, "a", ttl=timedelta(hours=1))
    keeper.start()
    held = keeper.wait_held(30)
    assert held is not None
    keeper.close()
    row = leases.SqlLease(store, ttl=timedelta(hours=1)).current()
    assert row is not None
    assert row.released
    other = leases.SqlLease(store, holder=leases.HolderId("b"), ttl=timedelta(hours=1))
    taken = other.try_acquire(datetime.now(UTC))
    assert taken is not None
    assert taken.epoch == held.epoch + 1


def test_after_the_holder_stops_the_other_takes_over_and_recovers_with_a_newer_epoch(
    store: journal.Journal, record_property: Any
) -> None:
    a, _ = _keeper(store, "a")
    b, _ = _keeper(store, "b")
    a_recovery, b_recovery = Calls(), Calls()
    a.add_job(housekeeping.RECOVERY, 3600, a_recovery)
    b.add_job(housekeeping.RECOVERY, 3600, b_recovery)
    a.start()
    held = a.wait_held(30)
    assert held is not None
    b.start()
    try:
        kube.eventually(lambda: a_recovery.count() == 1, what="a's recovery")
        stopped = time.monotonic()
        a.close(release=False)  # stops renewing and leaves the row: as a crashed holder
        taken = b.wait_held(60)
        failover_s = time.monotonic() - stopped
        assert taken is not None
        assert taken.epoch > held.epoch
        kube.eventually(lambda: b_recovery.count() == 1, what="b's recovery on taking over")
        assert b_recovery.epochs == [taken.epoch]
        with store.transaction(write=True) as conn:
            assert not leases.still_holds(conn, held)
    finally:
        b.close()
    record_property("failover_s", round(failover_s, 3))
    sys.stdout.write(
        f"\nfailover ({store.dialect}): {failover_s:.3f}s with TTL {SHORT_TTL.total_seconds()}s,"
        f" renew {RENEW_S}s (bound TTL + renew = {SHORT_TTL.total_seconds() + RENEW_S:.2f}s)\n"
    )


_HOLDER = """
import sys, time
from datetime import timedelta
from drills.service import housekeeping, leases
from orchestrator import journal
store = journal.open_store(sys.argv[1], create_tables=False)
ttl = timedelta(seconds=float(sys.argv[2]))
lease = leases.SqlLease(store, holder=leases.HolderId("killed"), ttl=ttl)
keeper = housekeeping.Housekeeper(lease, renew_s=float(sys.argv[3]))
keeper.start()
held = keeper.wait_held(60)
print(f"held {held.epoch}", flush=True)
time.sleep(600)
"""


@pytest.mark.postgres
def test_when_the_holding_process_is_killed_another_process_takes_over(
    postgres_url: str, record_property: Any
) -> None:
    with journal.open_store(postgres_url) as store:
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _HOLDER,
                postgres_url,
                str(SHORT_TTL.total_seconds()),
                str(RENEW_S),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        try:
            assert holder.stdout is not None
            line = holder.stdout.readline()
            assert line.startswith("held "), line
            epoch = int(line.split()[1])
            b, b_lease = _keeper(store, "b")
            recovery = Calls()
            b.add_job(housekeeping.RECOVERY, 3600, recovery)
            b.start()
            try:
                kube.eventually(lambda: b_lease.rounds >= 3, what="b trying to take the lease")
                assert b.held is None
                killed = time.monotonic()
                holder.send_signal(signal.SIGKILL)
                holder.wait(timeout=30)
                taken = b.wait_held(60)
                failover_s = time.monotonic() - killed
                assert taken is not None
                assert taken.epoch == epoch + 1
                kube.eventually(lambda: recovery.epochs == [epoch + 1], what="b's recovery")
            finally:
                b.close()
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait(timeout=30)
    record_property("failover_after_sigkill_s", round(failover_s, 3))
    sys.stdout.write(
        f"\nfailover after SIGKILL (postgres, two processes): {failover_s:.3f}s with TTL"
        f" {SHORT_TTL.total_seconds()}s, renew {RENEW_S}s\n"
    )


# ---- what serve runs -------------------------------------------------------------------------


def test_start_holds_the_lease_and_runs_the_real_recovery_on_an_empty_store(
    tmp_path: pathlib.Path, store_url: str
) -> None:
    config = settings_mod.Settings.from_env(
        {"STORMDRILL_DATABASE_URL": store_url, "STORMDRILL_DATA_DIR": str(tmp_path)}
    )
    with journal.open_store(store_url) as store:
        settings = housekeeping.HousekeepingSettings.from_env(
            {"STORMDRILL_LEASE_TTL": "5s", "STORMDRILL_LEASE_RENEW": "50ms"}
        )
        keeper = housekeeping.start(config, store, builtin.registry_with_builtins(), settings)
        try:  # it held the lease at once, so it returned after the first recovery pass
            assert keeper.held is not None
            assert [(run.name, run.ok) for run in keeper.history] == [(housekeeping.RECOVERY, True)]
        finally:
            keeper.close()


def test_start_on_a_replica_that_finds_the_lease_held_returns_without_recovering(
    tmp_path: pathlib.Path, store: journal.Journal
) -> None:
    other = leases.SqlLease(store, holder=leases.HolderId("other"), ttl=timedelta(hours=1))
    assert other.try_acquire(datetime.now(UTC)) is not None
    recovery = Calls()
    config = settings_mod.Settings.from_env({"STORMDRILL_DATA_DIR": str(tmp_path)})
    keeper = housekeeping.start(
        config,
        store,
        builtin.registry_with_builtins(),
        housekeeping.HousekeepingSettings(),
        recover=recovery,
    )
    try:
        assert keeper.held is None
        assert keeper.wait_for_run(housekeeping.RECOVERY, timeout_s=0.1) is None
        assert recovery.count() == 0
    finally:
        keeper.close()


def test_a_kubernetes_lease_outside_a_cluster_is_refused_naming_the_setting(
    store: journal.Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = leases.LeaseSettings(backend=leases.LeaseBackend.KUBERNETES, namespace="ops")
    with pytest.raises(errors.ProviderPermanent, match="cannot load Kubernetes access"):
        housekeeping.lease_for(store, config)
    assert isinstance(housekeeping.lease_for(store, leases.LeaseSettings()), leases.SqlLease)


def test_housekeeping_settings_default_to_five_minutes_and_read_the_lease_variables() -> None:
    default = housekeeping.HousekeepingSettings()
    assert (default.recovery_interval, default.lease.ttl, default.lease.renew) == (300, 15, 5)
    found = housekeeping.HousekeepingSettings.from_env(
        {
            "STORMDRILL_RECOVERY_INTERVAL": "30s",
            "STORMDRILL_LEASE_TTL": "2s",
            "STORMDRILL_LEASE_RENEW": "1",
        }
    )
    assert (found.recovery_interval, found.lease.ttl, found.lease.renew) == (30, 2, 1)
    with pytest.raises(ValueError, match="STORMDRILL_RECOVERY_INTERVAL"):
        housekeeping.HousekeepingSettings.from_env({"STORMDRILL_RECOVERY_INTERVAL": "0"})
