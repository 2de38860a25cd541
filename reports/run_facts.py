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

from orchestrator import events as event_kinds
from orchestrator import journal, mutations, records, states
from orchestrator import objectives as rto_objectives
from reports import evidence as ev
from scenarios import models

_K = event_kinds.EventKind

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
    record: records.RunRecord, events: Sequence[journal.Event]
) -> dt.datetime | None:
    """T0: the recorded first fault, else the first applied mutation in the timeline."""
    return record.t0 or _first_applied(events)


def probe_samples(events: Sequence[journal.Event], *, t0: dt.datetime | None) -> list[ProbeSamples]:
    """Every probe's samples per phase, in the order first seen (see `ProbeSamples`).

    A sample is a `probe` event with a probe name and a boolean `ok`: timed-out and hung
    checks are journaled as failed samples and count like any other.
    """
    grouped: dict[tuple[str, str], list[journal.Event]] = {}
    for event in events:
        name, ok = event.data.get("probe"), event.data.get("ok")
        if event.kind != _K.PROBE or not isinstance(name, str) or not isinstance(ok, bool):
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
        objectives = record.objectives or records.Objectives()
        facts = ev.facts(run)
        mode = facts.get("failure_mode") if facts else None
        self.failure_mode = (
            scenario.spec.failure_mode.value
            if scenario is not None
            else (mode if isinstance(mode, str) else "custom")
        )
        self.time_scale = record.time_scale or 1.0
        self.t0 = first_fault_at(record, run.events)
        self.probes: dict[str, ProbeRun] = {}
        for counted in probe_samples(run.events, t0=self.t0):
            if self.t0 is None or counted.phase != models.Phase.DURING.value:
                continue
            probe = self.probes.setdefault(counted.probe, ProbeRun(counted.probe))
            probe.samples = len(counted.samples)
            probe.failures = list(counted.failures)
        self.failing = [p for p in self.probes.values() if p.failures]
        self.aborts = run.of_kind(_K.ABORT)
        self.abort_requests = run.of_kind(_K.ABORT_REQUEST)
        self.errors = run.of_kind(_K.ERROR)
        self.deviations = run.of_kind(_K.DEVIATION)
        self.findings = run.of_kind(_K.FINDING)
        self.manual = run.of_kind(_K.MANUAL)
        self.acks = run.of_kind(_K.ACK)
        self.refusals = [
            e
            for e in run.of_kind(_K.GUARDRAIL)
            if e.data.get("ok") is False and "subject" in e.data
        ]
        self.reverts = [
            e
            for e in run.events
            if e.kind == _K.REVERT or (e.kind == _K.MUTATION and e.data.get("state") == "reverted")
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
        self.refused = record.refused
        self.achieved = objectives.achieved_rto_s
        self.manual_wait = objectives.manual_wait_s or 0.0
        self.real_world = objectives.real_world_rto_s
        if self.real_world is None and self.achieved is not None:
            self.real_world = self.achieved / self.time_scale  # records before manual waits
        self.target = objectives.target_rto_s
        self.scaled_target = objectives.scaled_target_rto_s
        self.rto_met = objectives.rto_met
        self.target_rpo = objectives.target_rpo_s
        if self.target_rpo is None and scenario is not None and scenario.spec.objectives.rpo:
            self.target_rpo = scenario.spec.objectives.rpo.seconds
        self.scaled_target_rpo = objectives.scaled_target_rpo_s
        if self.scaled_target_rpo is None and self.target_rpo is not None:
            self.scaled_target_rpo = self.target_rpo * self.time_scale
        self.achieved_rpo = objectives.achieved_rpo_s
        self.rpo_met = objectives.rpo_met
        canary = objectives.rpo_canary or records.RpoCanary()
        self.rpo_canary = canary.probe
        self.rpo_all_lost = canary.all_lost

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
        if event.kind == _K.MUTATION and event.data.get("state") == "applied":
            return event.at
    return None


def seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)


def fmt_duration(value: float | None) -> str:
    """`1.4 s`, `2 min 5 s` (rounded for people; see `objectives.human_duration`)."""
    return rto_objectives.human_duration(value)


def recovery_text(facts: Facts) -> str:
    """`30 s (29 s waiting for people, never scaled; 1.2 s of machine time at time scale
    0.02), about 1 min 29 s in a real outage`: real seconds with the scaled equivalent."""
    if facts.achieved is None:
        return "not measured"
    took = fmt_duration(facts.achieved)
    if facts.time_scale == 1:
        return took
    machine = max(facts.achieved - facts.manual_wait, 0.0)
    scale = f"time scale {facts.time_scale:g}"
    if facts.manual_wait > 0:
        split = (
            f" ({fmt_duration(facts.manual_wait)} waiting for people, never scaled;"
            f" {fmt_duration(machine)} of machine time at {scale})"
        )
    else:
        split = f" (machine time at {scale})"
    return f"{took}{split}, about {fmt_duration(facts.real_world)} in a real outage"


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
