"""Run facts: what happened in one run, distilled once from its evidence for the post-mortem.

`Facts.of(evidence, scenario)` reads the run record, timeline and journal once: probe
behaviour while the fault was in place (`ProbeRun`, from `probe_samples`), aborts,
errors, findings, manual steps and acknowledgements, changes by journal state, and the
RTO/RPO objectives. Also the small readers every post-mortem section shares: elapsed
`seconds`, `fmt_seconds` for people, `short_name` of a ref, `event_text` of event data,
and `FAILURE_MODE_TEXT`.

Invariants: nothing reads a clock (times come from the evidence); `Facts` is internal to
the post-mortem modules and never leaves `reports`. `probe_samples` is the one count of
probe samples: the post-mortem and the JUnit XML both quote it, so they never disagree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from orchestrator import journal, mutations, states
from reports import evidence as ev
from scenarios import models

FAILURE_MODE_TEXT: Mapping[str, str] = {
    "availability-zone": "the loss of an availability zone",
    "region": "the loss of a region",
    "third-party": "an outage of a third-party provider",
    "dependency": "the loss of a dependency",
    "key-person": "the absence of a key person",
    "data-loss": "the loss of data",
}


@dataclasses.dataclass(frozen=True)
class ProbeSamples:
    """The samples of one probe in one phase (`before`, `during`, `after`), as counted.

    `during` counts only the samples taken at or after the first fault (all of them when
    no fault was applied); the ones taken earlier are `before_fault`, listed apart.
    """

    probe: str
    phase: str
    samples: tuple[journal.Event, ...]
    failures: tuple[journal.Event, ...]
    before_fault: tuple[journal.Event, ...] = ()


def first_fault_at(
    record: Mapping[str, mutations.JsonValue], events: Sequence[journal.Event]
) -> dt.datetime | None:
    """T0: the recorded first fault, else the first applied mutation in the timeline."""
    return ev.record_time(ev.record_object(record, "objectives"), "t0") or _first_applied(events)


def probe_samples(events: Sequence[journal.Event], *, t0: dt.datetime | None) -> list[ProbeSamples]:
    """Every probe's samples per phase, in the order first seen (see `ProbeSamples`).

    A sample is a `probe` event with a probe name and a boolean `ok`: timed-out and hung
    checks are journaled as failed samples and count like any other.
    """
    grouped: dict[tuple[str, str], list[journal.Event]] = {}
    for event in events:
        name, ok = event.data.get("probe"), event.data.get("ok")
        if event.kind != "probe" or not isinstance(name, str) or not isinstance(ok, bool):
            continue
        grouped.setdefault((name, str(event.data.get("phase", ""))), []).append(event)
    found = []
    for (name, phase), taken in grouped.items():
        early: list[journal.Event] = []
        if phase == models.Phase.DURING.value and t0 is not None:
            early = [e for e in taken if e.at < t0]
            taken = [e for e in taken if e.at >= t0]
        found.append(
            ProbeSamples(
                probe=name,
                phase=phase,
                samples=tuple(taken),
                failures=tuple(e for e in taken if e.data.get("ok") is False),
                before_fault=tuple(early),
            )
        )
    return found


class ProbeRun:
    """How one probe behaved while the fault was in place (its counted `during` samples)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[journal.Event] = []
        self.samples = 0

    @property
    def first_failure(self) -> journal.Event | None:
        return self.failures[0] if self.failures else None


class Facts:
    """What happened, distilled from the evidence once (internal to the post-mortem modules)."""

    def __init__(self, run: ev.RunEvidence, scenario: models.Scenario | None) -> None:
        self.evidence = run
        self.run = run.run
        record = run.run.record
        self.objectives = ev.record_object(record, "objectives")
        facts = ev.facts(run)
        mode = facts.get("failure_mode") if facts else None
        self.failure_mode = (
            scenario.spec.failure_mode.value
            if scenario is not None
            else (mode if isinstance(mode, str) else "custom")
        )
        self.time_scale = ev.record_number(record, "time_scale") or 1.0
        self.t0 = first_fault_at(record, run.events)
        self.probes: dict[str, ProbeRun] = {}
        for counted in probe_samples(run.events, t0=self.t0):
            if self.t0 is None or counted.phase != models.Phase.DURING.value:
                continue
            probe = self.probes.setdefault(counted.probe, ProbeRun(counted.probe))
            probe.samples = len(counted.samples)
            probe.failures = list(counted.failures)
        self.failing = [p for p in self.probes.values() if p.failures]
        self.aborts = run.of_kind("abort")
        self.abort_requests = run.of_kind("abort-request")
        self.errors = run.of_kind("error")
        self.deviations = run.of_kind("deviation")
        self.findings = run.of_kind("finding")
        self.manual = run.of_kind("manual")
        self.acks = run.of_kind("ack")
        self.refusals = [
            e for e in run.of_kind("guardrail") if e.data.get("ok") is False and "subject" in e.data
        ]
        self.reverts = [
            e
            for e in run.events
            if e.kind == "revert" or (e.kind == "mutation" and e.data.get("state") == "reverted")
        ]
        self.applied = [e for e in run.entries if e.state is not mutations.EntryState.INTENDED]
        self.revert_failed = [
            e for e in run.entries if e.state is mutations.EntryState.REVERT_FAILED
        ]
        self.left_applied = [
            e
            for e in run.entries
            if e.state in (mutations.EntryState.APPLIED, mutations.EntryState.INTENDED)
        ]
        self.skipped = [e for e in run.entries if e.state is mutations.EntryState.SKIPPED]
        self.reverted = [e for e in run.entries if e.state is mutations.EntryState.REVERTED]
        self.refused = record.get("refused") is True
        self.achieved = ev.record_number(self.objectives, "achieved_rto_s")
        self.target = ev.record_number(self.objectives, "target_rto_s")
        self.scaled_target = ev.record_number(self.objectives, "scaled_target_rto_s")
        met = self.objectives.get("rto_met")
        self.rto_met = met if isinstance(met, bool) else None
        self.target_rpo = ev.record_number(self.objectives, "target_rpo_s")
        if self.target_rpo is None and scenario is not None and scenario.spec.objectives.rpo:
            self.target_rpo = scenario.spec.objectives.rpo.seconds
        self.scaled_target_rpo = ev.record_number(self.objectives, "scaled_target_rpo_s")
        if self.scaled_target_rpo is None and self.target_rpo is not None:
            self.scaled_target_rpo = self.target_rpo * self.time_scale
        self.achieved_rpo = ev.record_number(self.objectives, "achieved_rpo_s")
        rpo_met = self.objectives.get("rpo_met")
        self.rpo_met = rpo_met if isinstance(rpo_met, bool) else None
        canary = ev.record_object(self.objectives, "rpo_canary")
        self.rpo_canary = ev.record_text(canary, "probe")
        self.rpo_all_lost = canary.get("all_lost") is True

    @classmethod
    def of(cls, run: ev.RunEvidence, scenario: models.Scenario | None) -> Facts:
        return cls(run, scenario)

    @property
    def held(self) -> bool:
        return self.run.verdict is states.Verdict.HELD

    @property
    def abort_event(self) -> journal.Event | None:
        return self.aborts[0] if self.aborts else None

    @property
    def first_revert(self) -> journal.Event | None:
        return min(self.reverts, key=lambda e: (e.at, e.seq)) if self.reverts else None


def _first_applied(events: Sequence[journal.Event]) -> dt.datetime | None:
    for event in events:
        if event.kind == "mutation" and event.data.get("state") == "applied":
            return event.at
    return None


def seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)


def fmt_seconds(value: float | None) -> str:
    """`0.812 s`, `12 s`, `10 min` (for people)."""
    if value is None:
        return "not measured"
    if value >= 120 and value % 60 == 0:
        return f"{value / 60:g} min"
    return f"{value:.3f} s".replace(".000 s", " s")


def short_name(ref: str) -> str:
    return ref.rpartition("/")[2].rpartition(":")[2]


def event_text(data: Mapping[str, mutations.JsonValue], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None
