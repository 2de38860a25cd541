"""Run facts: what happened in one run, distilled once from its evidence for the post-mortem.

`Facts.of(evidence, scenario)` reads the run record, timeline and journal once: probe
behaviour after the first fault (`ProbeRun`), aborts, errors, findings, manual steps and
acknowledgements, changes by journal state, and the RTO/RPO objectives. Also the small
readers every post-mortem section shares: elapsed `seconds`, `fmt_seconds` for people,
`short_name` of a ref, `event_text` of event data, and `FAILURE_MODE_TEXT`.

Invariants: nothing reads a clock (times come from the evidence); `Facts` is internal to
the post-mortem modules and never leaves `reports`.
"""

from __future__ import annotations

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


class ProbeRun:
    """How one probe behaved after the first fault."""

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
        self.t0 = ev.record_time(self.objectives, "t0") or _first_applied(run.events)
        self.probes: dict[str, ProbeRun] = {}
        for event in run.of_kind("probe"):
            name, ok = event.data.get("probe"), event.data.get("ok")
            if not isinstance(name, str) or not isinstance(ok, bool):
                continue
            if self.t0 is None or event.at < self.t0 or event.data.get("phase") == "before":
                continue
            probe = self.probes.setdefault(name, ProbeRun(name))
            probe.samples += 1
            if not ok:
                probe.failures.append(event)
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
