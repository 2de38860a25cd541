"""Housekeeping: the once-per-deployment work of `serve`, run only by the holder of a lease.

A `Housekeeper` keeps one singleton lease (`drills.service.leases`) and, while it holds it,
runs the registered jobs, each on its own interval: recovery (`drills.service.runs.recover`)
at the start of every tenure and every `STORMDRILL_RECOVERY_INTERVAL`, and whatever else is
registered with `add_job(name, interval_s, fn)` (notification dispatch, reaping, and
`blackout_abort_job`: drills still running when a blackout with `abortRunning` begins are
asked to abort, every `STORMDRILL_BLACKOUT_ABORT_INTERVAL`, default 5 s).

Invariants:
- One thread acquires or renews the lease every renew interval; it never runs a job, so a
  long job cannot make the lease lapse. Each job has a thread of its own.
- A job runs only while this process holds a tenure that has not expired by its clock; it
  is handed that tenure (`leases.Held`, with its epoch) so its store writes can be fenced
  (`leases.fence(conn, held)` inside the write transaction). A job already running when the
  lease is lost finishes (its fenced writes are refused); no job starts again until this
  process holds the lease again.
- A new tenure (a new epoch) starts every job marked `at_start` at once; recovery is.
- Failover: a holder that dies stops renewing, its tenure expires after the TTL, and another
  replica's next attempt (at most one renew interval later) takes it: within TTL + renew.
- `Housekeeper.start()` makes the first attempt on the caller's thread, so `held` answers
  at once; the module's `start(...)` (what `serve` calls) then waits for the first recovery
  pass when this process holds the lease, so on the holder recovery still finishes before
  runs are driven. A process restarted after a crash under a new holder name (the module's
  `default_holder()`) waits for its predecessor's tenure to expire (one TTL) like any other
  replica; `serve` names its holder by host and port, so a `serve` restarted on its port
  takes its own lease back at once, at a new epoch (the fence refuses its predecessor).
- `close()` stops the jobs (the running ones finish), then releases the lease, so another
  replica takes over at its next attempt instead of after the TTL.
- Recovery is safe in several processes anyway (each run is claimed by exactly one); the
  lease keeps it, and the other jobs, to one replica at a time.

Settings: `HousekeepingSettings` (`STORMDRILL_RECOVERY_INTERVAL`, default 5 min,
`STORMDRILL_BLACKOUT_ABORT_INTERVAL`, default 5 s, plus the lease's `STORMDRILL_LEASE_*`).
No fastapi here: the API's lifespan starts a Housekeeper (`start`) and closes it at
shutdown.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import pydantic
import pydantic_settings

from drills import settings as settings_mod
from drills import settings_sources
from drills.service import leases
from drills.service import runs as run_service
from drills.service import schedules as schedule_service
from orchestrator import journal, registry
from orchestrator.providers.kubernetes import connection as kube_connection
from scenarios import models

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Job = Callable[[leases.Held], None]
"""A job: called with the current tenure (fence store writes with `leases.fence`)."""

RECOVERY = "recovery"
BLACKOUT_ABORTS = "blackout-aborts"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HousekeepingSettings(settings_sources.PassedIn):
    """`STORMDRILL_RECOVERY_INTERVAL` (default 5m: how often the lease holder runs recovery,
    besides at the start of each tenure; seconds or `30s`, `5m`), and the lease
    (`leases.LeaseSettings`: `STORMDRILL_LEASE_TTL`, `_RENEW`, `_BACKEND`, `_NAME`,
    `_NAMESPACE`). Built by `from_env(env)`; `HousekeepingSettings()` reads nothing."""

    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="STORMDRILL_", extra="forbid", frozen=True
    )

    recovery_interval: float = pydantic.Field(default=300.0, gt=0)
    blackout_abort_interval: float = pydantic.Field(default=5.0, gt=0)
    lease: leases.LeaseSettings = pydantic.Field(default_factory=leases.LeaseSettings)

    @pydantic.field_validator("recovery_interval", "blackout_abort_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return leases.parse_seconds(value)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HousekeepingSettings:
        """From `env`'s variables; `ValueError` naming the variable when one is unusable."""
        lease = leases.LeaseSettings.from_env(env)
        given: dict[str, str] = {}
        for field, variable in (
            ("recovery_interval", "STORMDRILL_RECOVERY_INTERVAL"),
            ("blackout_abort_interval", "STORMDRILL_BLACKOUT_ABORT_INTERVAL"),
        ):
            raw = env.get(variable, "").strip()
            if not raw:
                continue
            try:  # each variable alone, so the error names the one that is wrong
                cls(lease=lease, **{field: raw})  # type: ignore[arg-type]
            except pydantic.ValidationError as exc:
                problems = "; ".join(err["msg"] for err in exc.errors())
                raise ValueError(f"{variable}: {problems}") from None
            given[field] = raw
        return cls(lease=lease, **given)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A registered job: run every `interval_s` while holding (and at once on a new tenure
    when `at_start`)."""

    name: str
    interval_s: float
    fn: Job
    at_start: bool = True


@dataclasses.dataclass(frozen=True)
class JobRun:
    """One finished run of a job (kept, the latest few, for status and tests)."""

    name: str
    epoch: int
    started_at: datetime
    ok: bool


class Housekeeper:
    """Holds the lease and runs the jobs while it does (see the module doc). Thread-safe."""

    def __init__(
        self,
        lease: leases.Lease,
        *,
        renew_s: float,
        clock: Clock | None = None,
        history: int = 100,
    ) -> None:
        if renew_s <= 0:
            raise ValueError(f"the renew interval must be positive, not {renew_s}")
        self.lease = lease
        self.renew_s = renew_s
        self._clock = clock or _utcnow
        self._jobs: list[JobSpec] = []
        self._threads: list[threading.Thread] = []
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition(threading.Lock())
        self._held: leases.Held | None = None
        self._generation = 0  # bumped on every change of `_held` (and at stop)
        self._history: list[JobRun] = []
        self._history_size = history
        self._tenures: list[int] = []

    # ---- registration and lifecycle ----------------------------------------------------

    def add_job(self, name: str, interval_s: float, fn: Job, *, at_start: bool = True) -> None:
        """Run `fn(held)` every `interval_s` while holding the lease (before or after start)."""
        if interval_s <= 0:
            raise ValueError(f"job {name}: the interval must be positive, not {interval_s}")
        job = JobSpec(name=name, interval_s=interval_s, fn=fn, at_start=at_start)
        with self._changed:
            if any(found.name == name for found in self._jobs):
                raise ValueError(f"a housekeeping job named {name!r} is registered already")
            self._jobs.append(job)
            started = self._renewer is not None
        if started:
            self._start_job(job)

    def start(self) -> None:
        """Start renewing (and the jobs' threads); idempotent."""
        with self._changed:
            if self._renewer is not None:
                return
            self._renewer = threading.Thread(
                target=self._renew_loop, name="stormdrill-lease", daemon=True
            )
            jobs = list(self._jobs)
        try:  # the first round here: on return `held` says whether this process holds it
            self.renew_once()
        except Exception as exc:
            log.warning("lease %s: cannot reach the store (%s); trying again", self.lease.name, exc)
        self._renewer.start()
        for job in jobs:
            self._start_job(job)
        log.info(
            "housekeeping started: lease %s as %s, renewing every %.1fs; jobs: %s",
            self.lease.name,
            self.lease.holder,
            self.renew_s,
            ", ".join(job.name for job in jobs) or "none yet",
        )

    def close(self, *, release: bool = True, timeout_s: float | None = None) -> None:
        """Stop the jobs (a running one finishes), stop renewing, release the lease.

        `release=False` leaves the lease to expire (what a crashed holder does; for tests).
        """
        self._stop.set()
        with self._changed:
            self._generation += 1
            self._changed.notify_all()
            threads = [*self._threads, *([self._renewer] if self._renewer else [])]
        for thread in threads:
            thread.join(timeout=timeout_s)
        with self._changed:
            held, self._held = self._held, None
        if held is not None and release:
            try:
                if self.lease.release(held):
                    log.info("lease %s released (epoch %d)", held.name, held.epoch)
            except Exception as exc:  # the store is gone: the lease expires after its TTL
                log.warning(
                    "lease %s: cannot release it (%s); it expires on its own", held.name, exc
                )
        log.info("housekeeping stopped")

    # ---- what it holds -----------------------------------------------------------------

    @property
    def held(self) -> leases.Held | None:
        """The current tenure, if this process holds one that has not expired by its clock."""
        with self._changed:
            held = self._held
        return held if held is not None and held.valid_at(self._clock()) else None

    def wait_held(self, timeout_s: float) -> leases.Held | None:
        """Block until this process holds the lease (or `timeout_s` passes)."""
        deadline = time.monotonic() + timeout_s
        while (held := self.held) is None and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with self._changed:
                self._changed.wait(min(left, self.renew_s))
        return held

    def wait_for_run(self, name: str, *, timeout_s: float | None = None) -> JobRun | None:
        """Block until job `name` has finished a run in the tenure held now (None at once if
        this process holds none, or when `timeout_s` passes or the keeper stops first)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._stop.is_set():
            held = self.held
            if held is None:
                return None
            with self._changed:
                for run in reversed(self._history):
                    if run.name == name and run.epoch == held.epoch:
                        return run
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._changed.wait(self.renew_s if left is None else min(left, self.renew_s))
        return None

    @property
    def tenures(self) -> tuple[int, ...]:
        """The epochs of the tenures this process has held, in order."""
        with self._changed:
            return tuple(self._tenures)

    @property
    def history(self) -> tuple[JobRun, ...]:
        """The latest job runs, oldest first."""
        with self._changed:
            return tuple(self._history)

    # ---- renewing ----------------------------------------------------------------------

    def _renew_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.renew_once()
            except Exception as exc:  # keep renewing: a store that is back is used again
                log.warning(
                    "lease %s: cannot reach the store to renew (%s); trying again in %.1fs",
                    self.lease.name,
                    exc,
                    self.renew_s,
                )
            self._stop.wait(self.renew_s)

    def renew_once(self) -> leases.Held | None:
        """One round: renew the tenure held, else try to take the lease; what is held now."""
        now = self._clock()
        with self._changed:
            held = self._held
        if held is not None:
            renewed = self.lease.renew(held, now)
            if renewed is not None:
                self._set(renewed)
                return renewed
            log.warning(
                "lease %s: lost epoch %d (it expired or another replica took it); its jobs stop",
                held.name,
                held.epoch,
            )
            self._set(None)
        got = self.lease.try_acquire(now)
        self._set(got)
        return got

    def _set(self, held: leases.Held | None) -> None:
        with self._changed:
            before = self._held
            self._held = held
            if held is not None and (before is None or before.epoch != held.epoch):
                self._tenures.append(held.epoch)
                log.info(
                    "lease %s: holding it as %s (epoch %d); running housekeeping",
                    held.name,
                    held.holder,
                    held.epoch,
                )
            if (before is None) != (held is None) or (
                before is not None and held is not None and before.epoch != held.epoch
            ):
                self._generation += 1
                self._changed.notify_all()

    # ---- the jobs ----------------------------------------------------------------------

    def _start_job(self, job: JobSpec) -> None:
        thread = threading.Thread(
            target=self._job_loop, args=(job,), name=f"stormdrill-job-{job.name}", daemon=True
        )
        with self._changed:
            self._threads.append(thread)
        thread.start()

    def _job_loop(self, job: JobSpec) -> None:
        epoch: int | None = None
        due = 0.0  # time.monotonic() of the next run within the tenure `epoch`
        while not self._stop.is_set():
            held = self.held
            if held is None:
                self._wait(self.renew_s)
                continue
            if held.epoch != epoch:  # a new tenure
                epoch = held.epoch
                due = time.monotonic() + (0.0 if job.at_start else job.interval_s)
            left = due - time.monotonic()
            if left > 0:
                self._wait(min(left, self.renew_s))
                continue
            self._run(job, held)
            due = time.monotonic() + job.interval_s

    def _wait(self, timeout_s: float) -> None:
        with self._changed:
            seen = self._generation
            self._changed.wait_for(
                lambda: self._generation != seen or self._stop.is_set(), timeout=timeout_s
            )

    def _run(self, job: JobSpec, held: leases.Held) -> None:
        started = self._clock()
        ok = False
        try:
            job.fn(held)
            ok = True
        except leases.LeaseLost as exc:
            log.warning("housekeeping job %s stopped: %s", job.name, exc)
        except Exception:
            log.exception(
                "housekeeping job %s failed (epoch %d); it runs again in %.0fs",
                job.name,
                held.epoch,
                job.interval_s,
            )
        with self._changed:
            self._history.append(JobRun(name=job.name, epoch=held.epoch, started_at=started, ok=ok))
            del self._history[: -self._history_size]
            self._changed.notify_all()


# ---- what `serve` runs ---------------------------------------------------------------------


def recovery_job(
    config: settings_mod.Settings, store: journal.Journal, reg: registry.Registry
) -> Job:
    """The recovery `serve` runs (the same `runs.recover` as at start-up), as a job."""

    def recover(held: leases.Held) -> None:
        for item in run_service.recover(config, store, reg):
            found = item.item
            log.warning(
                "recovered run %s (lease epoch %d): %s -> %s (%s)",
                found.run_id,
                held.epoch,
                found.found_state.value,
                found.final_state.value,
                found.message,
            )

    return recover


def blackout_abort_job(store: journal.Journal, *, clock: Clock | None = None) -> Job:
    """The blackout abort pass as a job: running drills inside a begun blackout with
    `abortRunning` are asked to abort, each once (`schedules.abort_in_blackouts`), its
    writes fenced by the tenure. Register it with `add_job(BLACKOUT_ABORTS,
    settings.blackout_abort_interval, blackout_abort_job(store))`."""
    now = clock or _utcnow

    def abort_in_blackouts(held: leases.Held) -> None:
        for asked in schedule_service.abort_in_blackouts(
            store, now=now(), fence=leases.fencer(held)
        ):
            log.warning(
                "blackout %s began: asked run %s to abort (lease epoch %d)",
                asked.blackout_id,
                asked.run_id,
                held.epoch,
            )

    return abort_in_blackouts


def lease_for(
    store: journal.Journal,
    config: leases.LeaseSettings,
    *,
    holder: leases.HolderId | None = None,
) -> leases.Lease:
    """The lease `config` names: a row in `store`, or a Kubernetes Lease (in-cluster access).

    `holder`: who this process is (default unique per process). A replica that names
    itself the same across restarts (`serve`: host and port) takes its own unexpired lease
    back at once after a crash, so its start-up recovery runs before it drives new runs.
    """
    ttl = timedelta(seconds=config.ttl)
    name = leases.LeaseName(config.name)
    if config.backend is leases.LeaseBackend.DATABASE:
        return leases.SqlLease(store, name=name, ttl=ttl, holder=holder)
    environment = models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "stormdrill-serve"},
            "spec": {"kubernetes": {"inCluster": True}},
        }
    )
    namespace = config.namespace or leases.in_cluster_namespace()
    return leases.KubernetesLease(
        kube_connection.connect(environment),
        namespace=namespace,
        name=name,
        ttl=ttl,
        holder=holder,
    )


def start(
    config: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    housekeeping: HousekeepingSettings,
    *,
    recover: Job | None = None,
    wait_for_recovery: bool = True,
) -> Housekeeper:
    """A started Housekeeper for `serve`: the lease `housekeeping` names, with recovery
    registered (`recover`, default `recovery_job`); others may `add_job` on it afterwards
    (`serve` adds notification dispatch; `blackout_abort_job` belongs beside it).

    When this process takes the lease at its first attempt and `wait_for_recovery`, it
    returns only once that first recovery pass has finished (as `serve` did before it
    started driving runs); a replica that finds the lease held returns at once.
    """
    keeper = Housekeeper(lease_for(store, housekeeping.lease), renew_s=housekeeping.lease.renew)
    keeper.add_job(
        RECOVERY,
        housekeeping.recovery_interval,
        recover or recovery_job(config, store, reg),
    )
    keeper.start()
    if wait_for_recovery and keeper.held is not None:
        keeper.wait_for_run(RECOVERY)
    return keeper
