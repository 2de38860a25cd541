"""The runner inside `stormdrill serve`: a thread pool that drives the runs the API queued.

`Driver.start()` starts a poller; every `poll_s` (or at once after `wake()`) it looks at
the PENDING runs nobody drives (or whose claimant died) whose trigger is one this runner
serves (`api`, `schedule`, `gameday` by default: a CLI run is driven by its own process),
and hands each that is ready to a worker, which claims it (`Engine.claim`, inside
`runs.drive`: exactly one process drives a run) and drives it to the end, reports
included. Ready means:
- no kill switch of its Environment is engaged (else it is cancelled: ABORTED, nothing
  touched); the global switch is the engine's to enforce (planning refuses);
- the approvals gate says go (`approvals.gate`, with a fresh plan): a run in a protected
  Environment waits PENDING until enough distinct approvers approved exactly this plan, and
  the preflight hooks may veto any run. A waiting run is gated again when its timeline has
  a new approval line, or after `regate_s`.
`stop()` sets the stop event (every drill being driven aborts and rolls back) and waits
for the workers. A run this process submitted keeps its bound drill (`hand_over`), so its
secret parameters never need rebinding; others are rebound from their record.
No fastapi here: the API's lifespan starts and stops a `Driver`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Collection, Iterator
from datetime import UTC, datetime

from drills import binding
from drills import settings as settings_mod
from drills.service import approvals, catalogs, killswitches
from drills.service import runs as run_service
from orchestrator import engine, events, journal, planning, registry, states
from orchestrator.cmdb import models as cmdb_models
from scenarios import errors

log = logging.getLogger(__name__)

_UNDRIVABLE = (run_service.SecretUnavailable, errors.ScenarioInvalid, binding.BindingError)
"""Why a queued run can never be driven here: it is cancelled, with the reason."""

SERVED_TRIGGERS: frozenset[engine.TriggerKind] = frozenset(
    {engine.TriggerKind.API, engine.TriggerKind.SCHEDULE, engine.TriggerKind.GAMEDAY}
)
"""The triggers whose runs a `serve` replica drives (a CLI run is driven by the CLI)."""


@dataclasses.dataclass(frozen=True)
class _Waiting:
    """A run the gate said to wait for: when, and how many approval lines it had then."""

    at: float
    approval_lines: int


class Driver:
    """Claims and drives queued runs on a thread pool (see the module doc)."""

    def __init__(
        self,
        config: settings_mod.Settings,
        store: journal.Journal,
        reg: registry.Registry,
        *,
        approval_settings: approvals.ApprovalSettings,
        workers: int = 4,
        poll_s: float = 1.0,
        regate_s: float = 30.0,
        triggers: Collection[engine.TriggerKind] = SERVED_TRIGGERS,
        engine_config: engine.EngineConfig | None = None,
        stale_after_s: float = 30.0,
    ) -> None:
        self.config = config
        self.store = store
        self.registry = reg
        self.approval_settings = approval_settings
        self.poll_s = poll_s
        self.regate_s = regate_s
        self.triggers = frozenset(triggers)
        self.engine_config = engine_config
        self.stale_after_s = stale_after_s
        self._workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._active: set[states.RunId] = set()
        self._handed: dict[states.RunId, run_service.Prepared] = {}
        self._waiting: dict[states.RunId, _Waiting] = {}

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the poller and the workers (idempotent)."""
        if self._poller is not None:
            return
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._workers, thread_name_prefix="stormdrill-drive"
        )
        self._poller = threading.Thread(target=self._poll, name="stormdrill-driver", daemon=True)
        self._poller.start()
        log.info("driver started: %d worker(s), polling every %.1fs", self._workers, self.poll_s)

    def stop(self, *, timeout_s: float | None = None) -> None:
        """Abort the drills being driven (they roll back) and wait for the workers."""
        self._stop.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(timeout=timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        log.info("driver stopped")

    def hand_over(self, run_id: states.RunId, prepared: run_service.Prepared) -> None:
        """The drill this process bound for `run_id` (used instead of rebinding it)."""
        with self._lock:
            self._handed[run_id] = prepared
        self._wake.set()

    @contextlib.contextmanager
    def submitting(self, run_id: states.RunId) -> Iterator[None]:
        """Keep `run_id` out of the queue while its submission finishes (its approval
        request opened, its drill handed over), then look at the queue."""
        with self._lock:
            self._active.add(run_id)
        try:
            yield
        finally:
            with self._lock:
                self._active.discard(run_id)
            self._wake.set()

    def wake(self) -> None:
        """Look at the queue now (a run was submitted, approved or released)."""
        self._wake.set()

    @property
    def active(self) -> frozenset[states.RunId]:
        """The runs being gated or driven by this driver now."""
        with self._lock:
            return frozenset(self._active)

    # ---- the queue ---------------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except errors.StormdrillError as exc:
                log.warning(
                    "driver: cannot read the queue: %s; trying again in %.1fs", exc, self.poll_s
                )
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def queued(self) -> list[states.Run]:
        """The PENDING runs this driver may take now, oldest first."""
        now = datetime.now(UTC)
        found = []
        for run in reversed(self.store.list_runs(states_in={states.RunState.PENDING}, limit=None)):
            trigger = run.record.trigger
            if trigger is None or trigger.kind not in self.triggers:
                continue
            if run.owner != journal.UNCLAIMED and not engine.owner_dead(
                run, now=now, stale_after_s=self.stale_after_s
            ):
                continue
            found.append(run)
        return found

    def tick(self) -> list[states.RunId]:
        """One look at the queue: the runs handed to a worker this time."""
        started: list[states.RunId] = []
        for run in self.queued():
            if self._stop.is_set():
                break
            with self._lock:
                if run.id in self._active:
                    continue
                self._active.add(run.id)
            try:
                go = self._admit(run)
            except _UNDRIVABLE as exc:
                self._give_up(run, exc)
                go = None
            except errors.StormdrillError as exc:
                log.warning(
                    "run %s cannot start yet: %s; trying again in %.0fs", run.id, exc, self.regate_s
                )
                self._waiting[run.id] = _Waiting(at=time.monotonic(), approval_lines=-1)
                go = None
            if go is None or self._pool is None:
                with self._lock:
                    self._active.discard(run.id)
                continue
            self._pool.submit(self._drive, run.id, go)
            started.append(run.id)
        return started

    # ---- admission: kill switch, approvals, preflight hooks ----------------------------

    def _prepared(self, run: states.Run) -> tuple[planning.DrillInput, cmdb_models.Catalog | None]:
        with self._lock:
            handed = self._handed.get(run.id)
        if handed is not None:
            return handed.drill, handed.catalog
        drill = run_service.rebind(run)
        return drill, catalogs.catalog_for(self.config, drill.environment, ())

    def _admit(
        self, run: states.Run
    ) -> tuple[planning.DrillInput, cmdb_models.Catalog | None] | None:
        """The drill to drive when `run` may start now; None to leave it (or it ended)."""
        waited = self._waiting.get(run.id)
        if waited is not None and time.monotonic() - waited.at < self.regate_s:
            lines = len(self.store.events(run.id, kind=events.EventKind.APPROVAL))
            if waited.approval_lines in (-1, lines):
                return None  # nothing new since it was told to wait
        switch = killswitches.get(self.store, environment=run.environment)
        if switch.engaged:
            run_service.cancel(
                self.store,
                run.id,
                reason=f"the kill switch of {run.environment} is engaged ({switch.reason})",
                source=f"the kill switch ({switch.by})",
            )
            self._forget(run.id)
            return None
        drill, catalog = self._prepared(run)
        needs_gate = approvals.request(self.store, run.id) is not None or bool(
            self.approval_settings.preflight_hooks
        )
        if not needs_gate:
            return drill, catalog
        eng = run_service.make_engine(
            self.config,
            self.store,
            self.registry,
            catalog=catalog,
            engine_config=self.engine_config,
        )
        decided = approvals.gate(
            self.store, run, plan=eng.plan(drill), config=self.approval_settings
        )
        if decided.outcome is approvals.GateOutcome.WAIT:
            after = len(self.store.events(run.id, kind=events.EventKind.APPROVAL))
            self._waiting[run.id] = _Waiting(at=time.monotonic(), approval_lines=after)
            log.info("run %s waits: %s", run.id, decided.reason)
            return None
        self._waiting.pop(run.id, None)
        if decided.outcome is approvals.GateOutcome.VETOED:
            log.warning("run %s vetoed by a preflight hook: %s", run.id, decided.reason)
            self._forget(run.id)
            return None
        if approvals.request(self.store, run.id) is not None:
            drill = dataclasses.replace(drill, approvals=decided.approvers)
        return drill, catalog

    def _give_up(self, run: states.Run, exc: errors.StormdrillError) -> None:
        """A run this driver can never start (its files went, a secret it cannot know)."""
        log.error("run %s cannot be driven: %s; cancelling it", run.id, exc)
        with contextlib.suppress(run_service.RunEnded):
            run_service.cancel(
                self.store, run.id, reason=f"it cannot be driven: {exc}", source="the API runner"
            )
        self._forget(run.id)

    def _forget(self, run_id: states.RunId) -> None:
        with self._lock:
            self._handed.pop(run_id, None)
        self._waiting.pop(run_id, None)

    # ---- driving -----------------------------------------------------------------------

    def _drive(
        self,
        run_id: states.RunId,
        go: tuple[planning.DrillInput, cmdb_models.Catalog | None],
    ) -> None:
        drill, catalog = go
        try:
            driven = run_service.drive(
                self.config,
                self.store,
                self.registry,
                run_id,
                drill=drill,
                catalog=catalog,
                engine_config=self.engine_config,
                stop=self._stop,
            )
            log.info(
                "run %s ended %s (verdict %s)",
                run_id,
                driven.run.state.value,
                driven.run.verdict.value if driven.run.verdict else "-",
            )
        except engine.NotClaimable as exc:
            log.info("run %s: another process drives it (%s)", run_id, exc)
        except errors.StormdrillError as exc:
            log.error("run %s could not be driven: %s", run_id, exc)
        except Exception:
            log.exception("run %s: unexpected error while driving it", run_id)
        finally:
            self._forget(run_id)
            with self._lock:
                self._active.discard(run_id)
