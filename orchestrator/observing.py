"""Observing: steady-state probes run while a fault is in place, and the abort they can trigger.

An `Observer` runs, in one background thread, every steady-state probe whose `when` includes
`during` (plus one `aws.cloudwatch-alarm` probe per `abortWhen: {alarm: NAME}`), each at its
own scaled interval, and checks the kill switch and the `maxDuration` deadline every
`control_interval_s`. It also runs probes synchronously for preflight (`check_once`) and for
recovery (`wait_until_stable`, which measures RTO).

Invariants:
- Every sample is journalled (`kind="probe"`) with the probe, phase, ok, value and message.
- A probe's consecutive failures beyond its `tolerance` breach it: a probe named in
  `guardrails.abortWhen` (bare, without a duration) then aborts the run; any other marks the
  hypothesis deviated.
- Duration conditions (`failingFor`, `failingRatio`) are judged on sample timestamps
  (`ProbeResult.at`), never on the observer's own clock, with their durations shrunk by the
  time scale like every machine wait. `failingFor` breaches once the probe has been failing
  (no passing sample) for that long since its first failing sample; `failingRatio` once the
  probe has been observed for a full window and more than `above` of the samples in the
  last window failed. A breach aborts the run and marks the hypothesis deviated.
- An abort is signalled exactly once: `abort_event` is set and `on_abort(reason)` called;
  the observer then stops probing. Anything unexpected in the observer (a crash, a journal
  that cannot be written) aborts too: a drill is never left running unobserved.
- The loop never sleeps past the next thing due (a probe, a check's timeout, a control
  tick), so an abort is signalled within one probe interval (plus a check's duration) of
  the breach. Checks run on a thread pool; a check that outlives its timeout counts as a
  failure, and while it hangs each due check counts as another (none pile up).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import logging
import math
import threading
import time
import typing
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic

from orchestrator import errors, events, guardrails, journal, mutations, registry, states
from scenarios import models, quantities

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.05
"""No probe runs more often than this, however small the time scale."""
MIN_TIMEOUT_S = 0.1
"""No check is given less than this to answer."""
TIMEOUT_GRACE_S = 0.1
"""Extra time past a check's timeout before the observer gives up on it (the probe's own
timeout should fire first, with a better message)."""
CONTROL_INTERVAL_S = 0.2
"""How often the kill switch and the deadline are checked."""

ALARM_PROBE_TYPE = "aws.cloudwatch-alarm"
"""The probe type `abortWhen: {alarm: NAME}` maps to."""
ALARM_PREFIX = "alarm:"
"""Synthetic alarm probes are named `alarm:NAME`."""

_DEFAULT_INTERVAL: quantities.Duration = models.Probe.model_fields["interval"].default
_DEFAULT_TIMEOUT: quantities.Duration = models.Probe.model_fields["timeout"].default

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One probe result as the observer saw it."""

    probe: str
    phase: str
    result: registry.ProbeResult
    streak: int = 0
    """Consecutive failures of the probe including this one (0 when it passed)."""

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def message(self) -> str:
        return self.result.message


@dataclasses.dataclass(frozen=True)
class Deviation:
    """A probe failed beyond its tolerance: the steady-state hypothesis did not hold."""

    probe: str
    at: datetime
    failures: int
    message: str
    aborts: bool
    """True when the probe is in `abortWhen` (the breach aborted the run)."""

    def __str__(self) -> str:
        return f"probe {self.probe} failed {self.failures} times in a row: {self.message}"


@dataclasses.dataclass(frozen=True)
class ProbeSummary:
    """How a probe fared while observed."""

    probe: str
    samples: int
    failures: int
    longest_streak: int


@dataclasses.dataclass(frozen=True)
class StabilityResult:
    """Whether recovery probes passed together and kept passing for the window.

    `first_pass_at`: the first time every probe passed at once; `stable_since`: the start of
    the passing streak that lasted the window (or the current streak when not stable); RTO
    is `stable_since - T0`.
    """

    stable: bool
    first_pass_at: datetime | None
    stable_since: datetime | None
    samples: tuple[Sample, ...]


@dataclasses.dataclass(frozen=True)
class AbortRule:
    """A duration-based abort condition on one probe, in scaled (machine) seconds."""

    text: str
    """The condition as the scenario says it (`probe web failing for 30s`)."""
    failing_for_s: float | None = None
    ratio_above: float | None = None
    """A fraction in [0, 1): more than this share of samples in the window failed."""
    window_s: float | None = None

    def breach(
        self, history: Sequence[tuple[datetime, bool]], *, failing_since: datetime | None
    ) -> str | None:
        """Why the samples in `history` (oldest first, the latest last) breach this rule, or
        None. `failing_since` is the first failing sample of the current failing streak."""
        if not history:
            return None
        latest, ok = history[-1]
        if self.failing_for_s is not None:
            if ok or failing_since is None:
                return None
            failing = (latest - failing_since).total_seconds()
            if failing >= self.failing_for_s:
                return f"failing for {failing:.1f}s (abortWhen: failingFor {self.failing_for_s:g}s)"
            return None
        if self.ratio_above is None or self.window_s is None:
            return None
        if (latest - history[0][0]).total_seconds() < self.window_s:
            return None  # not observed for a full window yet
        since = latest.timestamp() - self.window_s
        recent = [good for at, good in history if at.timestamp() >= since]
        failed = sum(1 for good in recent if not good)
        if failed / len(recent) > self.ratio_above:
            return (
                f"{failed} of {len(recent)} samples failed in the last {self.window_s:g}s "
                f"(abortWhen: failingRatio above {self.ratio_above:.0%})"
            )
        return None


def abort_rules(condition: models.AbortCondition, *, time_scale: float) -> tuple[AbortRule, ...]:
    """The duration rule of a probe condition, scaled (empty for a bare or alarm one)."""
    if condition.failing_for is not None:
        return (
            AbortRule(
                text=condition.describe(), failing_for_s=condition.failing_for.seconds * time_scale
            ),
        )
    if condition.failing_ratio is not None:
        ratio = condition.failing_ratio
        return (
            AbortRule(
                text=condition.describe(),
                ratio_above=ratio.above.fraction,
                window_s=ratio.window.seconds * time_scale,
            ),
        )
    return ()


@dataclasses.dataclass(frozen=True)
class WatchedProbe:
    """A steady-state probe ready to run: its implementation, parsed params and timing."""

    name: str
    type: str
    probe: registry.Probe[Any]
    params: pydantic.BaseModel
    interval_s: float
    timeout_s: float
    tolerance: int
    aborts: bool
    rules: tuple[AbortRule, ...] = ()
    """Duration-based abort conditions on this probe (`failingFor`, `failingRatio`)."""

    @property
    def history_s(self) -> float:
        """How far back samples are kept to judge `rules`."""
        return max((r.window_s or 0.0 for r in self.rules), default=0.0)


def _uses_duration(annotation: object) -> bool:
    return annotation is quantities.Duration or quantities.Duration in typing.get_args(annotation)


def prepare(
    reg: registry.Registry,
    probe: models.Probe,
    *,
    time_scale: float,
    aborts: bool = False,
    where: str = "",
    min_interval_s: float = MIN_INTERVAL_S,
) -> WatchedProbe:
    """Look `probe`'s type up and parse its params (its timeout fills a `timeout` param).

    Raises `UnknownProbe` or `InvalidParams` naming `where` (e.g. `spec.steadyState[0]`).
    """
    place = f"{where} " if where else ""
    cls = reg.get_probe(probe.type)
    raw = dict(probe.params)
    field = cls.params_model.model_fields.get("timeout")
    if field is not None and "timeout" not in raw and _uses_duration(field.annotation):
        raw["timeout"] = str(probe.timeout)
    implementation = cls()
    try:
        params = implementation.parse_params(raw)
    except errors.InvalidParams as exc:
        raise errors.InvalidParams(f"{place}probe {probe.name!r}: {exc}") from exc
    return WatchedProbe(
        name=probe.name,
        type=probe.type,
        probe=implementation,
        params=params,
        interval_s=max(probe.interval.seconds * time_scale, min_interval_s),
        timeout_s=max(probe.timeout.seconds, MIN_TIMEOUT_S),  # answers do not speed up
        tolerance=probe.tolerance,
        aborts=aborts,
    )


def prepare_alarm(
    reg: registry.Registry,
    alarm: str,
    *,
    time_scale: float,
    min_interval_s: float = MIN_INTERVAL_S,
) -> WatchedProbe:
    """The synthetic `aws.cloudwatch-alarm` probe of `abortWhen: {alarm: NAME}`."""
    try:
        cls = reg.get_probe(ALARM_PROBE_TYPE)
    except errors.UnknownProbe:
        raise errors.RegistryError(
            f"spec.guardrails.abortWhen: alarm {alarm!r} needs the probe type "
            f"{ALARM_PROBE_TYPE!r}, which is not registered (register the AWS provider, or "
            "remove the alarm condition)"
        ) from None
    implementation = cls()
    attempts: list[str] = []
    for raw in ({"alarmNames": [alarm]}, {"alarmName": alarm}):
        try:
            params = implementation.parse_params(raw)
        except errors.InvalidParams as exc:
            attempts.append(str(exc))
            continue
        return WatchedProbe(
            name=f"{ALARM_PREFIX}{alarm}",
            type=ALARM_PROBE_TYPE,
            probe=implementation,
            params=params,
            interval_s=max(_DEFAULT_INTERVAL.seconds * time_scale, min_interval_s),
            timeout_s=max(_DEFAULT_TIMEOUT.seconds, MIN_TIMEOUT_S),
            tolerance=0,
            aborts=True,
        )
    raise errors.RegistryError(
        f"spec.guardrails.abortWhen: alarm {alarm!r}: {ALARM_PROBE_TYPE} takes neither "
        f"alarmNames nor alarmName ({'; '.join(attempts)})"
    )


def watched_probes(
    reg: registry.Registry,
    scenario: models.Scenario,
    *,
    time_scale: float,
    min_interval_s: float = MIN_INTERVAL_S,
) -> list[WatchedProbe]:
    """What an observer runs during a drill: `during` probes and the abort alarms."""
    spec = scenario.spec
    names = {probe.name for probe in spec.steady_state}
    abort_probes: set[str] = set()
    rules: dict[str, list[AbortRule]] = {}
    for index, condition in enumerate(spec.guardrails.abort_when):
        if condition.probe is None:
            continue
        if condition.probe not in names:
            raise errors.InvalidParams(
                f"spec.guardrails.abortWhen[{index}].probe: {condition.probe!r} is not a "
                f"spec.steadyState probe ({', '.join(sorted(names)) or 'there are none'})"
            )
        found = abort_rules(condition, time_scale=time_scale)
        if found:
            rules.setdefault(condition.probe, []).extend(found)
        else:
            abort_probes.add(condition.probe)
    watched: list[WatchedProbe] = []
    for index, probe in enumerate(spec.steady_state):
        if models.Phase.DURING not in probe.when:
            if probe.name in abort_probes or probe.name in rules:
                log.warning(
                    "probe %s is in abortWhen but does not run during the drill (when: %s); "
                    "it cannot abort the run",
                    probe.name,
                    ", ".join(p.value for p in probe.when),
                )
            continue
        prepared = prepare(
            reg,
            probe,
            time_scale=time_scale,
            aborts=probe.name in abort_probes,
            where=f"spec.steadyState[{index}]",
            min_interval_s=min_interval_s,
        )
        watched.append(dataclasses.replace(prepared, rules=tuple(rules.get(probe.name, ()))))
    for condition in spec.guardrails.abort_when:
        if condition.alarm is not None:
            watched.append(
                prepare_alarm(
                    reg, condition.alarm, time_scale=time_scale, min_interval_s=min_interval_s
                )
            )
    return watched


def _json_value(value: mutations.JsonValue) -> mutations.JsonValue:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


@dataclasses.dataclass
class _Track:
    """Mutable loop state of one watched probe (owned by the observer thread)."""

    watched: WatchedProbe
    next_due: float = 0.0
    future: concurrent.futures.Future[registry.ProbeResult] | None = None
    started: float = 0.0
    give_up_at: float = math.inf
    abandoned: bool = False
    streak: int = 0
    samples: int = 0
    failures: int = 0
    longest: int = 0
    breached: bool = False
    history: collections.deque[tuple[datetime, bool]] = dataclasses.field(
        default_factory=collections.deque
    )
    failing_since: datetime | None = None

    def wake_at(self) -> float:
        if self.future is not None and not self.abandoned:
            return min(self.next_due, self.give_up_at)
        return self.next_due


class Observer:
    """Runs steady-state probes for one run and signals an abort when a guardrail breaks."""

    def __init__(
        self,
        *,
        ctx: registry.ProviderContext,
        reg: registry.Registry,
        store: journal.Journal,
        scenario: models.Scenario,
        on_abort: Callable[[str], None],
        started_at: datetime | None = None,
        deadline: datetime | None = None,
        killswitch_files: Sequence[Path] = (),
        killswitch_file: Path | None = None,
        clock: Clock = _utcnow,
        control_interval_s: float = CONTROL_INTERVAL_S,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        """Prepare every watched probe now: unknown types and bad params fail here.

        The deadline is `deadline`, or `maxDuration` (scaled) after `started_at`; give one.
        The kill-switch files are `killswitch_files` plus `killswitch_file` (from settings).
        """
        self._ctx = ctx
        self._reg = reg
        self._store = store
        self._scenario = scenario
        self._run_id: states.RunId = ctx.run_id
        self._on_abort = on_abort
        self._clock = clock
        self._control_interval = control_interval_s
        self._min_interval = min_interval_s
        extra = (killswitch_file,) if killswitch_file is not None else ()
        self._killswitch_files = (*killswitch_files, *extra)
        self._max_duration = scenario.spec.guardrails.max_duration
        if deadline is None:
            if started_at is None:
                raise errors.OrchestratorError(
                    f"run {ctx.run_id}: the observer needs started_at or deadline"
                )
            deadline = guardrails.deadline(started_at, self._max_duration, ctx.time_scale)
        self._deadline = deadline
        self._watched = watched_probes(
            reg, scenario, time_scale=ctx.time_scale, min_interval_s=min_interval_s
        )
        self._tracks = [_Track(w) for w in self._watched]
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, 2 * len(self._watched)),
            thread_name_prefix=f"probe-{self._run_id}",
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._aborted = threading.Event()
        self._abort_reason: str | None = None
        self._samples: list[Sample] = []
        self._deviations: list[Deviation] = []
        self._thread: threading.Thread | None = None

    # -- public ---------------------------------------------------------------------------

    @property
    def watched(self) -> tuple[WatchedProbe, ...]:
        return tuple(self._watched)

    @property
    def deadline(self) -> datetime:
        """When the run must be over (`maxDuration` scaled from `started_at`)."""
        return self._deadline

    @property
    def abort_event(self) -> threading.Event:
        """Set (once) when the observer aborts the run; the engine waits on it."""
        return self._aborted

    @property
    def abort_reason(self) -> str | None:
        with self._lock:
            return self._abort_reason

    def start(self) -> None:
        """Start observing in a background thread (once)."""
        if self._thread is not None:
            raise errors.OrchestratorError(f"run {self._run_id}: the observer is already started")
        self._thread = threading.Thread(
            target=self._run, name=f"observer-{self._run_id}", daemon=True
        )
        self._thread.start()
        log.info(
            "observing %d probe(s) for run %s until %s",
            len(self._watched),
            self._run_id,
            self._deadline.isoformat(),
        )

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop observing and join the thread; checks still running are abandoned."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the observer of run %s did not stop within %ss", self._run_id, timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def pause(self) -> None:
        """End background probing (as `stop`); synchronous checks keep working."""
        self.stop()

    def __enter__(self) -> Observer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def samples(self) -> list[Sample]:
        """Every sample taken while observing, in order."""
        with self._lock:
            return list(self._samples)

    def deviations(self) -> list[Deviation]:
        """Each time a probe failed beyond its tolerance (empty: the hypothesis held)."""
        with self._lock:
            return list(self._deviations)

    def summaries(self) -> list[ProbeSummary]:
        with self._lock:
            return [
                ProbeSummary(
                    probe=t.watched.name,
                    samples=t.samples,
                    failures=t.failures,
                    longest_streak=t.longest,
                )
                for t in self._tracks
            ]

    def probes_for(self, phase: models.Phase) -> list[models.Probe]:
        """The scenario's steady-state probes whose `when` includes `phase`."""
        return [probe for probe in self._scenario.spec.steady_state if phase in probe.when]

    def _prepare_all(self, probes: Sequence[models.Probe]) -> list[WatchedProbe]:
        return [
            prepare(
                self._reg,
                probe,
                time_scale=self._ctx.time_scale,
                min_interval_s=self._min_interval,
            )
            for probe in probes
        ]

    def check_once(
        self,
        probes: Sequence[models.Probe] | None = None,
        phase: models.Phase = models.Phase.BEFORE,
    ) -> list[Sample]:
        """Run each probe once, concurrently, and journal the results (preflight, verify).

        `probes` defaults to the scenario's probes for `phase`.
        """
        chosen = self.probes_for(phase) if probes is None else probes
        return self._round(self._prepare_all(chosen), phase.value)

    def check_probe(self, probe: models.Probe, *, phase: models.Phase) -> Sample:
        """Run one probe once (a `probe:` step) and journal the result."""
        [sample] = self._round(self._prepare_all([probe]), phase.value)
        return sample

    def wait_until_stable(
        self,
        probes: Sequence[models.Probe] | None = None,
        *,
        window_s: float,
        timeout_s: float,
        phase: models.Phase = models.Phase.AFTER,
        cancel: threading.Event | None = None,
    ) -> StabilityResult:
        """Probe in rounds until all pass and keep passing for `window_s` (real seconds).

        A failing round resets the window. Gives up (`stable=False`) after `timeout_s` or
        when `cancel` is set. Rounds repeat at the shortest probe interval. `probes` defaults
        to the scenario's probes for `phase`.
        """
        chosen = self.probes_for(phase) if probes is None else probes
        prepared = self._prepare_all(chosen)
        if not prepared:
            now = self._clock()
            return StabilityResult(stable=True, first_pass_at=now, stable_since=now, samples=())
        interval = min(p.interval_s for p in prepared)
        waiter = cancel or threading.Event()
        began = time.monotonic()
        first_pass_at: datetime | None = None
        stable_since: datetime | None = None
        streak_began = 0.0
        taken: list[Sample] = []
        while True:
            round_began = time.monotonic()
            results = self._round(prepared, phase.value)
            taken.extend(results)
            if all(sample.ok for sample in results):
                if stable_since is None:
                    stable_since = self._clock()
                    streak_began = time.monotonic()
                    first_pass_at = first_pass_at or stable_since
                if time.monotonic() - streak_began >= window_s:
                    return StabilityResult(True, first_pass_at, stable_since, tuple(taken))
            else:
                stable_since = None
            if time.monotonic() - began >= timeout_s:
                return StabilityResult(False, first_pass_at, stable_since, tuple(taken))
            pause = max(0.0, interval - (time.monotonic() - round_began))
            if stable_since is not None:
                pause = min(pause, max(0.0, streak_began + window_s - time.monotonic()))
            if waiter.wait(pause):
                return StabilityResult(False, first_pass_at, stable_since, tuple(taken))

    # -- checks ---------------------------------------------------------------------------

    def _check(self, watched: WatchedProbe) -> registry.ProbeResult:
        try:
            return watched.probe.check(self._ctx, params=watched.params)
        except errors.ProviderError as exc:
            message = f"probe {watched.name} could not run: {exc}"
        except Exception as exc:
            log.exception("probe %s (%s) crashed", watched.name, watched.type)
            message = f"probe {watched.name} crashed: {type(exc).__name__}: {exc}"
        return registry.ProbeResult(ok=False, value=None, message=message, at=self._clock())

    def _submit(self, watched: WatchedProbe) -> concurrent.futures.Future[registry.ProbeResult]:
        future = self._pool.submit(self._check, watched)
        future.add_done_callback(lambda _f: self._wake.set())
        return future

    def _round(self, prepared: Sequence[WatchedProbe], phase: str) -> list[Sample]:
        """Run `prepared` concurrently on a pool of their own (usable before start, after stop)."""
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, len(prepared)), thread_name_prefix=f"probe-{self._run_id}-{phase}"
        )
        try:
            futures = [(w, pool.submit(self._check, w)) for w in prepared]
            samples: list[Sample] = []
            for watched, future in futures:
                try:
                    result = future.result(timeout=watched.timeout_s + TIMEOUT_GRACE_S)
                except concurrent.futures.TimeoutError:
                    result = self._timed_out(watched)
                sample = Sample(
                    probe=watched.name, phase=phase, result=result, streak=0 if result.ok else 1
                )
                self._journal(sample, watched)
                samples.append(sample)
            return samples
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _timed_out(self, watched: WatchedProbe) -> registry.ProbeResult:
        return registry.ProbeResult(
            ok=False,
            value=None,
            message=f"probe {watched.name} gave no answer within {watched.timeout_s:.2f}s",
            at=self._clock(),
        )

    def _journal(self, sample: Sample, watched: WatchedProbe) -> None:
        result = sample.result
        verdict = "ok" if result.ok else f"FAILED ({sample.streak}/{watched.tolerance + 1})"
        self._store.append_event(
            self._run_id,
            kind=events.EventKind.PROBE,
            message=f"{sample.probe} {verdict}: {result.message}",
            data={
                "probe": sample.probe,
                "type": watched.type,
                "phase": sample.phase,
                "ok": result.ok,
                "value": _json_value(result.value),
                "message": result.message,
                "streak": sample.streak,
                "tolerance": watched.tolerance,
                "at": result.at.isoformat(),
            },
        )

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            now = time.monotonic()
            for track in self._tracks:
                track.next_due = now
            next_control = now
            while not self._stop.is_set() and not self._aborted.is_set():
                now = time.monotonic()
                if now >= next_control:
                    self._control()
                    next_control = now + self._control_interval
                for track in self._tracks:
                    if self._aborted.is_set():
                        break
                    self._service(track, time.monotonic())
                if self._aborted.is_set():
                    break
                wake_at = min([next_control, *(t.wake_at() for t in self._tracks)])
                self._wake.wait(max(0.0, wake_at - time.monotonic()))
                self._wake.clear()
        except Exception as exc:
            log.exception("the observer of run %s failed", self._run_id)
            self._abort("observer", f"the probe observer failed: {type(exc).__name__}: {exc}")

    def _service(self, track: _Track, now: float) -> None:
        watched = track.watched
        if track.future is not None:
            if track.future.done():
                result = track.future.result()
                track.future = None
                if track.abandoned:
                    track.abandoned = False
                    log.info("probe %s answered late; the answer is ignored", watched.name)
                else:
                    self._record(track, result)
            elif not track.abandoned and now >= track.give_up_at:
                track.abandoned = True
                self._record(track, self._timed_out(watched))
        if self._aborted.is_set() or now < track.next_due:
            return
        track.next_due = now + watched.interval_s
        if track.future is None:
            track.future = self._submit(watched)
            track.started = now
            track.give_up_at = now + watched.timeout_s + TIMEOUT_GRACE_S
        elif track.abandoned:
            hung = now - track.started
            self._record(
                track,
                registry.ProbeResult(
                    ok=False,
                    value=None,
                    message=f"probe {watched.name} is still hung in a check started "
                    f"{hung:.1f}s ago",
                    at=self._clock(),
                ),
            )

    def _record(self, track: _Track, result: registry.ProbeResult) -> None:
        watched = track.watched
        self._remember(track, result)
        if result.ok:
            track.streak = 0
            track.breached = False
        else:
            track.streak += 1
            track.failures += 1
            track.longest = max(track.longest, track.streak)
        track.samples += 1
        sample = Sample(probe=watched.name, phase="during", result=result, streak=track.streak)
        with self._lock:
            self._samples.append(sample)
        try:
            self._journal(sample, watched)
        except Exception as exc:
            log.exception("cannot journal a sample of probe %s", watched.name)
            self._abort("journal", f"the journal cannot record probe samples: {exc}")
            return
        for rule in watched.rules:
            why = rule.breach(track.history, failing_since=track.failing_since)
            if why is None:
                continue
            self._deviate(track, result, aborts=True)
            self._abort("abort-when", f"probe {watched.name} {why}: {result.message}")
            return
        if result.ok or track.streak <= watched.tolerance:
            return
        if not track.breached:
            self._deviate(track, result, aborts=watched.aborts)
            log.warning(
                "probe %s failed %d times in a row (tolerance %d): %s",
                watched.name,
                track.streak,
                watched.tolerance,
                result.message,
            )
        if watched.aborts:
            self._abort(
                "abort-when",
                f"probe {watched.name} failed {track.streak} times in a row: {result.message}",
            )

    def _remember(self, track: _Track, result: registry.ProbeResult) -> None:
        """Keep what `rules` judge: recent samples by their timestamps and the failing streak."""
        if not track.watched.rules:
            return
        if result.ok:
            track.failing_since = None
        elif track.failing_since is None:
            track.failing_since = result.at
        track.history.append((result.at, result.ok))
        keep_from = result.at.timestamp() - track.watched.history_s
        while len(track.history) > 2 and track.history[1][0].timestamp() <= keep_from:
            track.history.popleft()  # the oldest kept sample marks how long we have observed

    def _deviate(self, track: _Track, result: registry.ProbeResult, *, aborts: bool) -> None:
        if track.breached:
            return
        track.breached = True
        with self._lock:
            self._deviations.append(
                Deviation(
                    probe=track.watched.name,
                    at=result.at,
                    failures=track.streak,
                    message=result.message,
                    aborts=aborts,
                )
            )

    def _control(self) -> None:
        try:
            switch = self._store.killswitch()
        except Exception as exc:
            log.exception("cannot read the kill switch")
            self._abort("killswitch", f"the kill switch cannot be read from the journal: {exc}")
            return
        refused = guardrails.refusals(
            guardrails.check_killswitch(switch, files=self._killswitch_files)
        )
        if refused:
            self._abort(refused[0].rule, refused[0].message)
            return
        verdict = guardrails.check_deadline(
            self._deadline, self._clock(), max_duration=self._max_duration
        )
        if not verdict.ok:
            self._abort(verdict.rule, verdict.message)

    def _abort(self, rule: str, reason: str) -> None:
        with self._lock:
            if self._abort_reason is not None:
                return
            self._abort_reason = reason
        self._aborted.set()
        self._wake.set()
        log.warning("run %s aborts: %s; rolling back next", self._run_id, reason)
        try:
            self._store.append_event(
                self._run_id,
                kind=events.EventKind.GUARDRAIL,
                message=f"abort: {reason}",
                data={"rule": rule, "ok": False, "reason": reason, "source": "observer"},
            )
        except Exception:
            log.exception("cannot journal the abort of run %s", self._run_id)
        try:
            self._on_abort(reason)
        except Exception:
            log.exception("the abort callback of run %s failed", self._run_id)
