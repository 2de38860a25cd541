"""Prometheus metrics: a collector that reads the store at scrape time, and its exposition.

`registry_for(store)` builds a `CollectorRegistry` of its own (never prometheus-client's
global one) holding a `StoreCollector`; `exposition(registry)` is the text format. The
collector keeps nothing between scrapes: each scrape is `drills.service.metrics.read`, so
the figures are the store's, the same on every replica and after a restart.

Families (all prefixed `stormdrill_`): `runs{state,verdict}` (gauge), `run_aborts{by}`
(counter: aborted runs by who decided), `rollback_duration_seconds` (histogram),
`probe_latency_seconds{type}` (histogram; probes that report a latency), `recoveries{found}`
(counter), `orphans_swept` (counter: faults recovery reverted), `schedule_fires` (counter;
0 until schedules exist), `killswitch_engaged` (gauge, 0 or 1).
"""

from __future__ import annotations

from collections.abc import Iterator

import prometheus_client
from prometheus_client import core, registry

from drills.service import metrics as store_metrics
from orchestrator import journal

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
PREFIX = "stormdrill"


class StoreCollector(registry.Collector):
    """Every Stormdrill family, computed from the store when Prometheus scrapes."""

    def __init__(self, store: journal.Journal) -> None:
        self._store = store

    def collect(self) -> Iterator[core.Metric]:
        figures = store_metrics.read(self._store)
        yield _runs(figures)
        aborts = core.CounterMetricFamily(
            f"{PREFIX}_run_aborts",
            "Runs that ended aborted, by who decided (guardrail, probe, operator, other).",
            labels=["by"],
        )
        for by, count in figures.aborts.items():
            aborts.add_metric([by], count)
        yield aborts
        yield _histogram(
            core.HistogramMetricFamily(
                f"{PREFIX}_rollback_duration_seconds",
                "Time from entering rolling_back to the next state, per rollback.",
            ),
            figures.rollback_s,
            labels=[],
        )
        latency = core.HistogramMetricFamily(
            f"{PREFIX}_probe_latency_seconds",
            "Probe sample latencies, for probes that report one (http), by probe type.",
            labels=["type"],
        )
        for kind, distribution in figures.probe_latency_s.items():
            _histogram(latency, distribution, labels=[kind])
        yield latency
        recoveries = core.CounterMetricFamily(
            f"{PREFIX}_recoveries",
            "Recovery rollbacks started, by the state recovery found the run in.",
            labels=["found"],
        )
        for state, count in figures.recoveries.items():
            recoveries.add_metric([state.value], count)
        yield recoveries
        yield core.CounterMetricFamily(
            f"{PREFIX}_orphans_swept",
            "Faults of dead runs that recovery reverted (marker sweeps are not recorded).",
            value=figures.orphans_swept,
        )
        yield core.CounterMetricFamily(
            f"{PREFIX}_schedule_fires",
            "Scheduled drill fires (0 until schedules exist).",
            value=figures.schedule_fires,
        )
        yield core.GaugeMetricFamily(
            f"{PREFIX}_killswitch_engaged",
            "1 while the global kill switch is engaged, else 0.",
            value=1 if figures.killswitch_engaged else 0,
        )


def _runs(figures: store_metrics.Figures) -> core.GaugeMetricFamily:
    family = core.GaugeMetricFamily(
        f"{PREFIX}_runs",
        "Runs in the store by state and verdict (verdict `none`: not decided).",
        labels=["state", "verdict"],
    )
    for (state, verdict), count in figures.runs.items():
        family.add_metric([state.value, verdict], count)
    return family


def _histogram(
    family: core.HistogramMetricFamily,
    distribution: store_metrics.Distribution,
    *,
    labels: list[str],
) -> core.HistogramMetricFamily:
    buckets = [(_bound(bound), float(count)) for bound, count in distribution.buckets]
    buckets.append(("+Inf", float(distribution.count)))
    family.add_metric(labels, buckets, sum_value=distribution.total)
    return family


def _bound(bound: float) -> str:
    """A bucket's `le` label as prometheus-client writes it (`0.5`, `1.0`)."""
    return repr(float(bound))


def registry_for(store: journal.Journal) -> registry.CollectorRegistry:
    """A registry of its own holding the store collector (prometheus' global one is unused)."""
    own = registry.CollectorRegistry(auto_describe=False)
    own.register(StoreCollector(store))
    return own


def exposition(source: registry.CollectorRegistry) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of `source`."""
    return prometheus_client.generate_latest(source)
