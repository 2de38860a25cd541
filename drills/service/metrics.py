"""Metrics: the store's figures at one moment (what `/metrics` exposes to Prometheus).

`read(store)` folds the runs table and the store-wide timeline (`Journal.events_of_kinds`)
into a frozen `Figures`; nothing is kept between reads, so every replica reading one store
reports the same figures, and a restart loses nothing. The Prometheus text is the API's
business (`drills.api.metrics`); this module imports no prometheus-client.

What is counted, and from which records:
- runs by state and verdict: the runs table;
- aborts by who decided (`by` of the run's first `abort` event: guardrail, probe,
  operator; `other` for an aborted run with none, e.g. a refused plan or a rejected
  approval): runs that ended ABORTED;
- rollback durations: from the `state` event into ROLLING_BACK to the next `state` event
  (VERIFYING or ROLLBACK_FAILED), engine rollbacks and recovery's alike; a rollback still
  running is not observed yet;
- probe latencies: `value.elapsedMs` of `probe` events, where the probe reports one (http);
- recoveries (moves into ROLLING_BACK from CRASHED or ROLLBACK_FAILED) and orphans swept:
  the faults such a recovery rollback reverted (`mutation` events `reverted` in it). Marker
  sweeps (`stormdrill recover --env`) write nothing to the store, so they are not counted;
- schedule fires: always 0 until schedules exist (the figure is there so dashboards and
  alerts can be written now).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from orchestrator import events as event_kinds
from orchestrator import journal, mutations, states

_K = event_kinds.EventKind
_S = states.RunState
NO_VERDICT = "none"
"""The verdict label of a run that has none (yet)."""
OTHER = "other"
"""The `by` of an aborted run whose timeline names nobody who decided."""
RECOVERED_FROM: frozenset[states.RunState] = frozenset({_S.CRASHED, _S.ROLLBACK_FAILED})

ROLLBACK_BUCKETS_S: tuple[float, ...] = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
PROBE_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
_READ_KINDS = frozenset({_K.STATE, _K.ABORT, _K.PROBE, _K.MUTATION})


@dataclasses.dataclass(frozen=True)
class Distribution:
    """Observations folded into cumulative buckets (Prometheus histogram semantics)."""

    buckets: tuple[tuple[float, int], ...]
    """(upper bound, how many observations were at most that), ascending; +Inf excluded."""
    count: int
    total: float

    @classmethod
    def of(cls, values: Iterable[float], *, bounds: Sequence[float]) -> Distribution:
        observed = sorted(values)
        cumulative = tuple(
            (bound, sum(1 for value in observed if value <= bound)) for bound in bounds
        )
        return cls(buckets=cumulative, count=len(observed), total=float(sum(observed)))


@dataclasses.dataclass(frozen=True)
class Figures:
    """Everything `/metrics` shows, read from one store at one moment."""

    runs: Mapping[tuple[states.RunState, str], int]
    """(state, verdict or `none`) → how many runs; every pair present, zeros included."""
    aborts: Mapping[str, int]
    """Who decided (`guardrail`, `probe`, `operator`, `other`) → aborted runs."""
    rollback_s: Distribution
    probe_latency_s: Mapping[str, Distribution]
    """Probe type → latencies of its samples (types whose samples report none are absent)."""
    recoveries: Mapping[states.RunState, int]
    """State recovery found the run in (CRASHED, ROLLBACK_FAILED) → recoveries started."""
    orphans_swept: int
    schedule_fires: int
    killswitch_engaged: bool


def read(store: journal.Journal) -> Figures:
    """The store's figures now (one read of the runs, one of the timeline)."""
    all_runs = store.list_runs(limit=None)
    timeline = store.events_of_kinds(_READ_KINDS)
    fold = _Fold()
    for event in timeline:
        fold.add(event)
    return Figures(
        runs=_run_counts(all_runs),
        aborts=_aborts(all_runs, fold.abort_by),
        rollback_s=Distribution.of(fold.rollbacks_s, bounds=ROLLBACK_BUCKETS_S),
        probe_latency_s={
            kind: Distribution.of(values, bounds=PROBE_BUCKETS_S)
            for kind, values in sorted(fold.probe_s.items())
        },
        recoveries={state: fold.recoveries[state] for state in sorted(RECOVERED_FROM)},
        orphans_swept=fold.orphans_swept,
        schedule_fires=0,
        killswitch_engaged=store.killswitch().engaged,
    )


def _run_counts(all_runs: Sequence[states.Run]) -> dict[tuple[states.RunState, str], int]:
    labels = [NO_VERDICT, *(v.value for v in states.Verdict)]
    counts = {(state, verdict): 0 for state in states.RunState for verdict in labels}
    for run in all_runs:
        counts[(run.state, run.verdict.value if run.verdict else NO_VERDICT)] += 1
    return counts


def _aborts(all_runs: Sequence[states.Run], abort_by: Mapping[str, str]) -> dict[str, int]:
    counts: Counter[str] = Counter({"guardrail": 0, "probe": 0, "operator": 0, OTHER: 0})
    for run in all_runs:
        if run.state is _S.ABORTED:
            counts[abort_by.get(run.id, OTHER)] += 1
    return dict(sorted(counts.items()))


@dataclasses.dataclass
class _Fold:
    """The timeline walked once in seq order (private mutable state of `read`)."""

    state: dict[str, states.RunState] = dataclasses.field(default_factory=dict)
    rolling_since: dict[str, journal.Event] = dataclasses.field(default_factory=dict)
    recovering: set[str] = dataclasses.field(default_factory=set)
    abort_by: dict[str, str] = dataclasses.field(default_factory=dict)
    rollbacks_s: list[float] = dataclasses.field(default_factory=list)
    probe_s: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    recoveries: Counter[states.RunState] = dataclasses.field(default_factory=Counter)
    orphans_swept: int = 0

    def add(self, event: journal.Event) -> None:
        if event.kind == _K.STATE:
            self._moved(event)
        elif event.kind == _K.ABORT:
            by = event.data.get("by")
            self.abort_by.setdefault(event.run_id, by if isinstance(by, str) and by else OTHER)
        elif event.kind == _K.PROBE:
            self._probed(event)
        elif (
            event.kind == _K.MUTATION
            and event.run_id in self.recovering
            and event.data.get("state") == mutations.EntryState.REVERTED.value
        ):
            self.orphans_swept += 1

    def _moved(self, event: journal.Event) -> None:
        raw = event.data.get("state")
        try:
            to = states.RunState(raw) if isinstance(raw, str) else None
        except ValueError:
            to = None
        if to is None:
            return
        run_id = event.run_id
        before = self.state.get(run_id)
        self.state[run_id] = to
        started = self.rolling_since.pop(run_id, None)
        if started is not None:
            self.rollbacks_s.append(max(0.0, (event.at - started.at).total_seconds()))
        self.recovering.discard(run_id)
        if to is _S.ROLLING_BACK:
            self.rolling_since[run_id] = event
            if before in RECOVERED_FROM:
                self.recoveries[before] += 1
                self.recovering.add(run_id)

    def _probed(self, event: journal.Event) -> None:
        value = event.data.get("value")
        if not isinstance(value, Mapping):
            return
        elapsed = value.get("elapsedMs")
        if isinstance(elapsed, bool) or not isinstance(elapsed, int | float):
            return
        kind = event.data.get("type")
        self.probe_s.setdefault(kind if isinstance(kind, str) else "unknown", []).append(
            float(elapsed) / 1000
        )
