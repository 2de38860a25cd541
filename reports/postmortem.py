"""Post-mortem: a blameless after-action report built from one run's evidence.

`build_postmortem(evidence, scenario, cmdb=…)` is a pure function: the same run record,
scenario and catalog always give the same `PostMortem` (no clock is read: due dates
count from the run's end). Sections follow Google SRE's post-mortem template,
PagerDuty's and Atlassian's guides and NIST SP 800-84 after-action reports: metadata,
summary, hypothesis and result, impact, timeline (each row linked to its evidence),
detection, response and recovery, what went well / wrong / where we got lucky,
contributing factors (plural, never a single root cause), action items, participants
and an appendix of every mutation with its undo status.

`finding` events (an analysis gap with its rule, severity, service and suggested action,
or a manual step that timed out or that nobody could act on) are listed with their
recorded message under what went wrong, count as contributing factors (high and
medium), and become action items: the suggestion as a verb-first title, owned by the
CMDB owner of the finding's service (or the manual step's team), due by severity (high
P1, medium P2, low P3). Services a finding names but the fault did not reach are added to
the impact as "flagged by analysis". Manual steps show who could act, who was absent
(simulated), who acknowledged (or that --auto-ack did), the evidence and the wait.
Achieved RPO comes from the run record's objectives (a canary probe's measurement).

Invariants: text is written about systems and signals, never about people as the subject
of a failure; anything recorded verbatim (event messages, errors, evidence) is kept apart
as `quoted` text; every string is passed through `redaction.redact` before it is
returned, so no secret reaches any rendering.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from orchestrator import journal, mutations, states
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from orchestrator.providers.people import assignees
from reports import evidence as ev
from reports import redaction
from scenarios import models

# -- the model ---------------------------------------------------------------------------


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class ReportKind(enum.StrEnum):
    DRILL = "drill"
    INCIDENT = "incident"


class ReviewStatus(enum.StrEnum):
    DRAFT = "Draft"
    REVIEWED = "Reviewed"


class Priority(enum.StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class ActionClass(enum.StrEnum):
    PREVENT = "prevent"
    DETECT = "detect"
    MITIGATE = "mitigate"
    PROCESS = "process"


DUE_DAYS: Mapping[Priority, int] = {Priority.P1: 7, Priority.P2: 30, Priority.P3: 90}
"""Days from the end of the run to an action item's due date, by priority."""


class Metadata(_Model):
    title: str
    run_id: str
    kind: ReportKind = ReportKind.DRILL
    status: ReviewStatus = ReviewStatus.DRAFT
    scenario: str
    scenario_source: str | None
    drill: str | None
    failure_mode: str
    environment: str
    state: str
    verdict: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_s: float | None
    time_scale: float
    parameters: dict[str, str]


class ImpactRow(_Model):
    ref: str
    name: str
    title: str | None
    system: str | None
    tier: int | None
    distance: int
    path: list[str]
    targeted: bool
    owner: str | None
    owner_people: list[str]
    on_call: list[str]
    target_rto_s: float | None
    target_rpo_s: float | None
    flagged: bool = False
    """Listed because a finding names it, not because the fault reached it."""
    findings: list[str] = []
    """The findings on this service: `runbook (high)`."""


class TimelineRow(_Model):
    at: dt.datetime
    kind: str
    what: str
    quoted: str
    """The recorded message, verbatim (redacted)."""
    evidence: str
    """Where it is recorded: `event #12`, `probe sample #14`, `journal #3`."""
    event_seq: int | None = None
    journal_seq: int | None = None


class Detection(_Model):
    signal: str | None
    first_signal_at: dt.datetime | None
    time_to_detect_s: float | None
    abort_at: dt.datetime | None
    time_to_abort_s: float | None
    evidence: str | None
    how: str


class Recovery(_Model):
    t0: dt.datetime | None
    first_revert_at: dt.datetime | None
    time_to_first_revert_s: float | None
    achieved_rto_s: float | None
    """Measured in the run (scaled time)."""
    target_rto_s: float | None
    """The objective in real-world seconds."""
    scaled_target_rto_s: float | None
    rto_met: bool | None
    target_rpo_s: float | None
    """The RPO objective in real-world seconds."""
    achieved_rpo_s: float | None = None
    """Data loss a canary probe measured (scaled time); None without a usable canary."""
    scaled_target_rpo_s: float | None = None
    rpo_met: bool | None = None
    rpo_canary: str | None = None
    """The canary probe whose loss was the worst (the one `achieved_rpo_s` comes from)."""
    time_scale: float
    all_reverted: bool
    text: str


class Factor(_Model):
    text: str
    evidence: str


class ActionItem(_Model):
    title: str
    owner: str
    due: dt.date
    priority: Priority
    action_class: ActionClass
    service: str | None
    evidence: str


class MutationRow(_Model):
    seq: int
    step: str
    action: str
    target: str
    state: str
    undo: str
    attempts: int
    error: str | None


class Participant(_Model):
    role: str
    who: str
    detail: str = ""
    quoted: str = ""
    """Recorded text (an acknowledgement's evidence), verbatim (redacted)."""


class FindingRow(_Model):
    """One `finding` event: an analysis gap or a manual-step problem, with what to do."""

    at: dt.datetime
    rule: str
    severity: str
    subject: str
    """What it is about: the service, `Manual step NAME`, `Step NAME` or `The drill`."""
    service: str | None
    """The CMDB service's short name (None for manual-step findings)."""
    service_ref: str | None
    step: str | None
    suggestion: str | None
    text: str
    """Blameless wording built from the rule, severity, service and suggestion."""
    message: str
    """The recorded message, verbatim (redacted)."""
    evidence: str
    event_seq: int


class ManualOutcome(enum.StrEnum):
    ACKNOWLEDGED = "acknowledged"
    AUTOMATED = "acknowledged automatically (--auto-ack)"
    TIMED_OUT = "timed out"
    NOBODY_ELIGIBLE = "nobody eligible"
    UNANSWERED = "no acknowledgement recorded"


class ManualStep(_Model):
    """A manual step: who was asked, who could act, who acknowledged, with what, how fast."""

    step: str
    started_at: dt.datetime
    assignee: str
    role: str
    eligible: list[str] | None
    """Short names of the people who could act; None: no CMDB, anyone could."""
    eligible_from: str
    absent: list[str]
    """People who would have been asked but are absent for the drill (simulated)."""
    problem: str | None
    timeout_s: float | None
    outcome: ManualOutcome
    acknowledged_by: str | None
    automated: bool
    ack_evidence: str | None
    """What the acknowledgement recorded as evidence, verbatim (redacted)."""
    waited_s: float | None
    evidence: str
    manual_seq: int
    ack_seq: int | None = None


class PostMortem(_Model):
    """The whole report; renderers only format it."""

    metadata: Metadata
    summary: list[str]
    hypothesis: str
    result: str
    impact: list[ImpactRow]
    timeline: list[TimelineRow]
    detection: Detection
    recovery: Recovery
    went_well: list[str]
    went_wrong: list[str]
    lucky: list[str]
    contributing_factors: list[Factor]
    action_items: list[ActionItem]
    participants: list[Participant]
    appendix: list[MutationRow]
    findings: list[FindingRow] = []
    manual_steps: list[ManualStep] = []

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def achieved_rto(self) -> float | None:
        """Achieved RTO in seconds, as measured in the run (scaled time)."""
        return self.recovery.achieved_rto_s

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def target_rto(self) -> float | None:
        """The RTO objective in seconds, scaled by the run's time scale (what was judged)."""
        return self.recovery.scaled_target_rto_s

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def achieved_rpo(self) -> float | None:
        """Achieved RPO (data loss) in seconds, as a canary measured it (scaled time)."""
        return self.recovery.achieved_rpo_s

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def target_rpo(self) -> float | None:
        """The RPO objective in seconds, scaled by the run's time scale (what was judged)."""
        return self.recovery.scaled_target_rpo_s


# -- building ----------------------------------------------------------------------------

_FAILURE_MODE_TEXT: Mapping[str, str] = {
    "availability-zone": "the loss of an availability zone",
    "region": "the loss of a region",
    "third-party": "an outage of a third-party provider",
    "dependency": "the loss of a dependency",
    "key-person": "the absence of a key person",
    "data-loss": "the loss of data",
}

_TIMELINE_SKIPPED = frozenset({ev.FACTS_KIND})


def build_postmortem(
    run: ev.RunEvidence,
    scenario: models.Scenario | None,
    *,
    cmdb: cmdb_models.Catalog | None = None,
    kind: ReportKind = ReportKind.DRILL,
    status: ReviewStatus = ReviewStatus.DRAFT,
) -> PostMortem:
    """The post-mortem of `run` (its record, timeline and journal), redacted."""
    facts = _Facts.of(run, scenario)
    manual_steps = _manual_steps(facts)
    findings = _finding_rows(facts, manual_steps)
    impact_rows = _with_findings(
        _impact(run.run, scenario, cmdb, facts.failure_mode), findings, cmdb, facts.failure_mode
    )
    owners = _Owners(impact_rows, cmdb)
    report = PostMortem(
        metadata=_metadata(run.run, scenario, facts, kind=kind, status=status),
        summary=_summary(run.run, scenario, facts),
        hypothesis=scenario.spec.hypothesis.strip() if scenario else "(scenario unavailable)",
        result=_result(run.run, facts),
        impact=impact_rows,
        timeline=_timeline(run, labels=_timeline_labels(findings, manual_steps, facts)),
        detection=_detection(facts),
        recovery=_recovery(facts),
        went_well=_went_well(facts, manual_steps),
        went_wrong=_went_wrong(facts, findings),
        lucky=_lucky(run.run, scenario, facts, impact_rows, manual_steps),
        contributing_factors=_factors(facts, findings),
        action_items=_action_items(run.run, scenario, facts, owners, findings, manual_steps),
        participants=_participants(run, impact_rows, cmdb, manual_steps),
        appendix=_appendix(run.entries),
        findings=findings,
        manual_steps=manual_steps,
    )
    return _redacted(report)


def _redacted(report: PostMortem) -> PostMortem:
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return redaction.redact(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    raw = report.model_dump(
        mode="python", exclude={"achieved_rto", "target_rto", "achieved_rpo", "target_rpo"}
    )
    return PostMortem.model_validate(walk(raw))


class _ProbeRun:
    """How one probe behaved after the first fault."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[journal.Event] = []
        self.samples = 0

    @property
    def first_failure(self) -> journal.Event | None:
        return self.failures[0] if self.failures else None


class _Facts:
    """What happened, distilled from the evidence once (internal to this module)."""

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
        self.probes: dict[str, _ProbeRun] = {}
        for event in run.of_kind("probe"):
            name, ok = event.data.get("probe"), event.data.get("ok")
            if not isinstance(name, str) or not isinstance(ok, bool):
                continue
            if self.t0 is None or event.at < self.t0 or event.data.get("phase") == "before":
                continue
            probe = self.probes.setdefault(name, _ProbeRun(name))
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
    def of(cls, run: ev.RunEvidence, scenario: models.Scenario | None) -> _Facts:
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


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
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


def _metadata(
    run: states.Run,
    scenario: models.Scenario | None,
    facts: _Facts,
    *,
    kind: ReportKind,
    status: ReviewStatus,
) -> Metadata:
    parameters = ev.record_object(run.record, "parameters")
    return Metadata(
        title=f"{kind.value.capitalize()} report: {run.scenario} on {run.environment}",
        run_id=run.id,
        kind=kind,
        status=status,
        scenario=scenario.metadata.name if scenario else run.scenario,
        scenario_source=ev.record_text(run.record, "scenario_source"),
        drill=ev.record_text(run.record, "drill"),
        failure_mode=facts.failure_mode,
        environment=run.environment,
        state=run.state.value,
        verdict=run.verdict.value if run.verdict else None,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_s=_seconds(run.started_at, run.finished_at),
        time_scale=facts.time_scale,
        parameters={k: str(v) for k, v in sorted(parameters.items())},
    )


def _summary(run: states.Run, scenario: models.Scenario | None, facts: _Facts) -> list[str]:
    what = _FAILURE_MODE_TEXT.get(facts.failure_mode, f"a {facts.failure_mode} failure")
    touched = len(facts.applied)
    first = (
        f"This drill rehearsed {what} with scenario {run.scenario} in {run.environment}, "
        f"making {touched} change(s) to the environment."
    )
    if facts.refused:
        verdict = "Guardrails refused the drill before anything was touched."
    elif run.verdict is states.Verdict.HELD:
        verdict = f"The steady-state hypothesis held and the run ended {run.state.value}."
    elif run.verdict is states.Verdict.DEVIATED:
        signals = ", ".join(p.name for p in facts.failing) or "a probe step"
        verdict = (
            f"The hypothesis did not hold ({signals} reported unhealthy) and the run "
            f"ended {run.state.value}."
        )
    else:
        verdict = f"The result is inconclusive: the run ended {run.state.value}."
    sentences = [first, verdict, _recovery_sentence(facts)]
    rpo = _rpo_sentence(facts)
    if rpo:
        sentences.append(rpo)
    if scenario is None:
        sentences.append("The scenario file was not available; details come from the record.")
    return sentences


def _recovery_sentence(facts: _Facts) -> str:
    if facts.achieved is None:
        return "Recovery time was not measured (no fault applied or recovery not observed)."
    target = (
        f"an objective of {fmt_seconds(facts.scaled_target)}"
        f" ({fmt_seconds(facts.target)} at time scale {facts.time_scale:g})"
        if facts.scaled_target is not None
        else "no stated objective"
    )
    verdict = {True: "met", False: "missed", None: "not judged"}[facts.rto_met]
    return f"Recovery took {fmt_seconds(facts.achieved)} against {target}: {verdict}."


def _rpo_sentence(facts: _Facts) -> str:
    """Data loss against its objective ('' when the run has neither)."""
    if facts.scaled_target_rpo is not None:
        objective = (
            f"an objective of {fmt_seconds(facts.scaled_target_rpo)}"
            f" ({fmt_seconds(facts.target_rpo)} at time scale {facts.time_scale:g})"
        )
    else:
        objective = "no stated objective"
    if facts.achieved_rpo is None:
        if facts.target_rpo is None:
            return ""
        return (
            f"Data loss (RPO) was not measured (no canary probe read its records back after "
            f"recovery) against {objective}."
        )
    verdict = {True: "met", False: "missed", None: "not judged"}[facts.rpo_met]
    lost = " (every acknowledged canary write was lost)" if facts.rpo_all_lost else ""
    return (
        f"Data loss (RPO) was {fmt_seconds(facts.achieved_rpo)}{lost} against {objective}: "
        f"{verdict}."
    )


def _result(run: states.Run, facts: _Facts) -> str:
    if facts.refused:
        return "Not tested: guardrails refused the drill, so the hypothesis was not exercised."
    if run.verdict is states.Verdict.HELD:
        return "HELD: every steady-state probe stayed within tolerance after the first fault."
    if run.verdict is states.Verdict.DEVIATED:
        parts = [
            f"{p.name} failed {len(p.failures)} of {p.samples} sample(s)" for p in facts.failing
        ]
        parts += [f"probe step deviation (event #{e.seq})" for e in facts.deviations]
        return "DEVIATED: " + ("; ".join(parts) or "a probe deviated") + "."
    return f"INCONCLUSIVE: the run ended {run.state.value} before the hypothesis could be judged."


# -- impact ------------------------------------------------------------------------------


def _impact(
    run: states.Run,
    scenario: models.Scenario | None,
    catalog: cmdb_models.Catalog | None,
    failure_mode: str,
) -> list[ImpactRow]:
    recorded = [row for row in ev.record_list(run.record, "impact") if isinstance(row, Mapping)]
    targeted: list[str] = [
        str(row.get("ref")) for row in recorded if row.get("distance") == 0 and row.get("ref")
    ]
    if scenario is not None:
        targeted += [str(ref) for ref in scenario.spec.services]
    if catalog is None:
        return [_recorded_row(row) for row in recorded]
    refs = []
    for raw in dict.fromkeys(targeted):
        try:
            refs.append(catalog.lookup(raw))
        except cmdb_errors.CmdbError:
            continue
    refs = [r for r in refs if r in catalog.services or r in catalog.systems or r in catalog.apis]
    if not refs:
        return [_recorded_row(row) for row in recorded]
    reached = cmdb_impact.impact(catalog, refs)
    return [_catalog_row(item, catalog, failure_mode) for item in reached.services]


def _recorded_row(row: Mapping[str, mutations.JsonValue]) -> ImpactRow:
    ref = str(row.get("ref", "?"))
    tier = row.get("tier")
    distance = row.get("distance")
    owner = row.get("owner")
    return ImpactRow(
        ref=ref,
        name=ref.rpartition("/")[2],
        title=None,
        system=None,
        tier=tier if isinstance(tier, int) else None,
        distance=distance if isinstance(distance, int) else 0,
        path=[ref.rpartition("/")[2]],
        targeted=distance == 0,
        owner=str(owner).rpartition("/")[2] if owner else None,
        owner_people=[],
        on_call=[],
        target_rto_s=None,
        target_rpo_s=None,
    )


def _catalog_row(
    item: cmdb_impact.ImpactedService, catalog: cmdb_models.Catalog, failure_mode: str
) -> ImpactRow:
    service = item.service
    rto = service.objectives.rto_for(failure_mode)
    rpo = service.objectives.rpo_for(failure_mode)
    return ImpactRow(
        ref=str(service.ref),
        name=service.ref.short,
        title=service.title,
        system=service.system.short if service.system else None,
        tier=service.tier,
        distance=item.distance,
        path=[ref.short for ref in item.path],
        targeted=item.distance == 0,
        owner=service.owner.short,
        owner_people=[ref.short for ref in service.people.owners],
        on_call=[str(r.name) for r in catalog.rotations_for(service.ref)],
        target_rto_s=rto.total_seconds() if rto is not None else None,
        target_rpo_s=rpo.total_seconds() if rpo is not None else None,
    )


class _Owners:
    """Who owns what a signal speaks of: probe name -> service -> owning team."""

    def __init__(self, rows: Sequence[ImpactRow], catalog: cmdb_models.Catalog | None) -> None:
        self.rows = list(rows)
        self.catalog = catalog

    def service_for(self, signal: str) -> ImpactRow | None:
        matches = [row for row in self.rows if row.name.rpartition("/")[2] in signal]
        if matches:
            return max(matches, key=lambda row: len(row.name))
        targeted = [row for row in self.rows if row.targeted]
        return targeted[0] if targeted else (self.rows[0] if self.rows else None)

    def owner_for(self, signal: str) -> tuple[str, str | None]:
        row = self.service_for(signal)
        if row is None or not row.owner:
            return "drill owner (no CMDB owner recorded)", row.name if row else None
        return row.owner, row.name


# -- timeline ----------------------------------------------------------------------------


def _timeline(run: ev.RunEvidence, *, labels: Mapping[int, str]) -> list[TimelineRow]:
    """Every event worth a row; `labels` word some events (findings, manual steps, acks)."""
    rows: list[TimelineRow] = []
    passed_guardrails: list[journal.Event] = []
    last_ok: dict[tuple[str, str], bool] = {}
    for event in run.events:
        if event.kind in _TIMELINE_SKIPPED:
            continue
        if event.kind == "guardrail" and event.data.get("ok") is True:
            passed_guardrails.append(event)
            continue
        if event.kind == "probe":
            row = _probe_row(event, last_ok)
            if row is not None:
                rows.append(row)
            continue
        rows.append(_event_row(event, labels.get(event.seq)))
    if passed_guardrails:
        first, last = passed_guardrails[0], passed_guardrails[-1]
        rules = sorted({str(e.data.get("rule")) for e in passed_guardrails})
        rows.append(
            TimelineRow(
                at=first.at,
                kind="guardrail",
                what=f"{len(passed_guardrails)} guardrail check(s) passed: {', '.join(rules)}",
                quoted="",
                evidence=f"events #{first.seq} to #{last.seq}",
                event_seq=first.seq,
            )
        )
    return sorted(rows, key=lambda row: (row.at, row.event_seq or 0))


def _probe_row(event: journal.Event, last_ok: dict[tuple[str, str], bool]) -> TimelineRow | None:
    name, ok = event.data.get("probe"), event.data.get("ok")
    if not isinstance(name, str) or not isinstance(ok, bool):
        return None
    phase = str(event.data.get("phase", ""))
    key = (name, phase)
    previous = last_ok.get(key)
    last_ok[key] = ok
    if previous is ok:
        return None
    if previous is None:
        what = f"probe {name} ({phase}) first sample: {'healthy' if ok else 'UNHEALTHY'}"
    else:
        what = f"probe {name} ({phase}) turned {'healthy' if ok else 'UNHEALTHY'}"
    return TimelineRow(
        at=event.at,
        kind="probe",
        what=what,
        quoted=event.message,
        evidence=f"probe sample #{event.seq}",
        event_seq=event.seq,
    )


_KIND_LABEL: Mapping[str, str] = {
    "state": "run state",
    "guardrail": "guardrail",
    "step": "step",
    "mutation": "change",
    "revert": "revert",
    "abort": "abort",
    "abort-request": "abort requested",
    "error": "error",
    "deviation": "deviation",
    "manual": "manual step",
    "ack": "acknowledgement",
    "finding": "finding",
}


def _event_row(event: journal.Event, label: str | None = None) -> TimelineRow:
    seq = event.data.get("seq")
    journal_seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    evidence = f"event #{event.seq}"
    if journal_seq is not None:
        evidence += f", journal #{journal_seq}"
    what = _KIND_LABEL.get(event.kind, event.kind)
    if event.kind == "state":
        what = f"run entered {event.data.get('state', '?')}"
    elif event.kind == "guardrail":
        verb = "refused the drill" if "subject" in event.data else "tripped"
        what = f"guardrail {event.data.get('rule', '?')} {verb}"
    elif event.kind == "step":
        what = f"step {event.data.get('step', '?')}"
    elif event.kind == "mutation":
        what = f"change #{journal_seq} {event.data.get('state', '')}"
    elif event.kind == "ack":
        automated = event.data.get("automated") is True
        what = f"manual step {event.data.get('step', '?')} acknowledged" + (
            " (automatically)" if automated else ""
        )
    quoted = event.message
    proof = event.data.get("evidence")
    if event.kind == "ack" and isinstance(proof, str) and proof and proof not in quoted:
        quoted += f" (evidence: {proof})"
    return TimelineRow(
        at=event.at,
        kind=event.kind,
        what=label or what,
        quoted=quoted,
        evidence=evidence,
        event_seq=event.seq,
        journal_seq=journal_seq,
    )


# -- detection and recovery --------------------------------------------------------------


def _detection(facts: _Facts) -> Detection:
    first = min(
        (p.first_failure for p in facts.failing if p.first_failure is not None),
        key=lambda e: (e.at, e.seq),
        default=None,
    )
    abort = facts.abort_event
    if first is not None:
        signal = str(first.data.get("probe"))
        how = (
            f"Probe {signal} reported the first unhealthy sample "
            f"{fmt_seconds(_seconds(facts.t0, first.at))} after the first fault."
        )
    elif abort is not None:
        signal = f"abort ({abort.data.get('by', '?')})"
        how = "No probe failed; the run was stopped by an abort."
    else:
        signal = None
        how = "No signal fired: every probe stayed healthy after the first fault."
    if abort is not None:
        how += (
            f" The abort came from the {abort.data.get('by', '?')} "
            f"{fmt_seconds(_seconds(facts.t0, abort.at))} after the first fault."
        )
    return Detection(
        signal=signal,
        first_signal_at=first.at if first else None,
        time_to_detect_s=_seconds(facts.t0, first.at) if first else None,
        abort_at=abort.at if abort else None,
        time_to_abort_s=_seconds(facts.t0, abort.at) if abort else None,
        evidence=(
            f"probe sample #{first.seq}" if first else (f"event #{abort.seq}" if abort else None)
        ),
        how=how,
    )


def _recovery(facts: _Facts) -> Recovery:
    revert = facts.first_revert
    all_reverted = not facts.revert_failed and not facts.left_applied
    parts = [_recovery_sentence(facts)]
    if revert is not None:
        parts.append(
            f"The first revert started {fmt_seconds(_seconds(facts.t0, revert.at))} "
            "after the first fault."
        )
    if facts.revert_failed or facts.left_applied:
        parts.append(
            f"{len(facts.revert_failed) + len(facts.left_applied)} change(s) may still be in "
            "place: see the appendix."
        )
    elif facts.reverted:
        parts.append(f"All {len(facts.reverted)} revertible change(s) were undone.")
    parts.append(
        _rpo_sentence(facts)
        or "Data loss (RPO) was not measured: the run has no canary probe and no RPO objective."
    )
    return Recovery(
        t0=facts.t0,
        first_revert_at=revert.at if revert else None,
        time_to_first_revert_s=_seconds(facts.t0, revert.at) if revert else None,
        achieved_rto_s=facts.achieved,
        target_rto_s=facts.target,
        scaled_target_rto_s=facts.scaled_target,
        rto_met=facts.rto_met,
        target_rpo_s=facts.target_rpo,
        achieved_rpo_s=facts.achieved_rpo,
        scaled_target_rpo_s=facts.scaled_target_rpo,
        rpo_met=facts.rpo_met,
        rpo_canary=facts.rpo_canary,
        time_scale=facts.time_scale,
        all_reverted=all_reverted,
        text=" ".join(parts),
    )


# -- findings and manual steps -----------------------------------------------------------

_ABSENCE_ACTION = "people.mark-unavailable"
"""The action whose journal entries are the people a run marked absent (by name: importing
the people provider's absence module would pull in the cloud providers it composes)."""

_RULE_TEXT: Mapping[str, str] = {
    "sole-owner": "every owner is absent, so nobody owns it",
    "on-call-coverage": "an on-call layer covering it keeps fewer than two responders",
    "runbook": "its runbook has no other editor while its keeper is absent",
    "break-glass": "fewer than two break-glass holders remain",
    "truck-factor": "the truck factor of its code drops below two",
    "manual-timeout": "no acknowledgement arrived within the step's time limit",
    "no-eligible-assignee": "nobody eligible was available to act on it",
    "ack-by-ineligible": "an acknowledgement came from outside the people who may act on it "
    "and was set aside",
}
"""What each finding rule means, worded about systems and processes (never people)."""

_RULE_CLASS: Mapping[str, ActionClass] = {
    "sole-owner": ActionClass.PROCESS,
    "on-call-coverage": ActionClass.MITIGATE,
    "runbook": ActionClass.MITIGATE,
    "break-glass": ActionClass.MITIGATE,
    "truck-factor": ActionClass.PREVENT,
    "manual-timeout": ActionClass.PROCESS,
    "no-eligible-assignee": ActionClass.PROCESS,
    "ack-by-ineligible": ActionClass.PROCESS,
}

_SEVERITY_PRIORITY: Mapping[str, Priority] = {
    "high": Priority.P1,
    "medium": Priority.P2,
    "low": Priority.P3,
}

_SUGGESTION_VERBS: Mapping[str, str] = {"name": "Add", "give": "Extend"}
"""Leading verbs of provider suggestions reworded so action titles start with a known verb."""


def _short(ref: str) -> str:
    return ref.rpartition("/")[2].rpartition(":")[2]


def _text(data: Mapping[str, mutations.JsonValue], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _refs(data: Mapping[str, mutations.JsonValue], key: str) -> list[str] | None:
    value = data.get(key)
    if not isinstance(value, list | tuple):
        return None
    return [_short(str(item)) for item in value]


def _manual_steps(facts: _Facts) -> list[ManualStep]:
    """Each manual step: who could act, who acknowledged (or that nobody did), how fast."""
    found: list[ManualStep] = []
    for event in facts.manual:
        data = event.data
        step = str(data.get("step", "?"))
        timeout = data.get("timeout_s")
        ack = next(
            (
                a
                for a in facts.acks
                if a.seq > event.seq
                and a.data.get("step") == step
                and assignees.accepts(data, a.data)
            ),
            None,
        )
        rules = {
            str(f.data.get("rule")): f
            for f in facts.findings
            if f.seq > event.seq and f.data.get("step") == step
        }
        automated = ack is not None and ack.data.get("automated") is True
        waited: float | None = None
        ended: journal.Event | None = None
        if ack is not None:
            recorded = ack.data.get("waited_s")
            waited = (
                float(recorded)
                if isinstance(recorded, int | float) and not isinstance(recorded, bool)
                else _seconds(event.at, ack.at)
            )
            outcome = ManualOutcome.AUTOMATED if automated else ManualOutcome.ACKNOWLEDGED
        elif "no-eligible-assignee" in rules:
            ended = rules["no-eligible-assignee"]
            outcome = ManualOutcome.NOBODY_ELIGIBLE
        elif "manual-timeout" in rules:
            ended = rules["manual-timeout"]
            outcome = ManualOutcome.TIMED_OUT
        else:
            outcome = ManualOutcome.UNANSWERED
        if ended is not None:
            waited = _seconds(event.at, ended.at)
        last = ack or ended
        found.append(
            ManualStep(
                step=step,
                started_at=event.at,
                assignee=_short(str(data.get("assignee", "?"))),
                role=str(data.get("role", "any")),
                eligible=_refs(data, "eligible"),
                eligible_from=_text(data, "eligibleFrom") or "",
                absent=_refs(data, "absent") or [],
                problem=_text(data, "problem"),
                timeout_s=(
                    float(timeout)
                    if isinstance(timeout, int | float) and not isinstance(timeout, bool)
                    else None
                ),
                outcome=outcome,
                acknowledged_by=(
                    str(ack.data.get("by")) if ack is not None and not automated else None
                ),
                automated=automated,
                ack_evidence=_text(ack.data, "evidence") if ack is not None else None,
                waited_s=waited,
                evidence=f"event #{event.seq}" + (f", event #{last.seq}" if last else ""),
                manual_seq=event.seq,
                ack_seq=ack.seq if ack is not None else None,
            )
        )
    return found


def _finding_text(*, rule: str, severity: str, subject: str, suggestion: str | None) -> str:
    meaning = _RULE_TEXT.get(rule, f"finding {rule}")
    text = f"{subject}: {meaning} (rule {rule}, severity {severity})."
    if suggestion:
        text += f" Suggested action: {suggestion.strip().rstrip('.')}."
    return text


def _finding_rows(facts: _Facts, manual_steps: Sequence[ManualStep]) -> list[FindingRow]:
    manual_names = {m.step for m in manual_steps}
    found: list[FindingRow] = []
    for event in facts.findings:
        data = event.data
        rule = _text(data, "rule") or "unspecified"
        severity = _text(data, "severity") or "medium"
        service_ref = _text(data, "service")
        service = _short(service_ref) if service_ref else None
        step = _text(data, "step")
        suggestion = _text(data, "suggestion")
        if service is not None:
            subject = service
        elif step is not None:
            subject = f"Manual step {step}" if step in manual_names else f"Step {step}"
        else:
            subject = "The drill"
        found.append(
            FindingRow(
                at=event.at,
                rule=rule,
                severity=severity,
                subject=subject,
                service=service,
                service_ref=service_ref,
                step=step,
                suggestion=suggestion,
                text=_finding_text(
                    rule=rule, severity=severity, subject=subject, suggestion=suggestion
                ),
                message=event.message,
                evidence=f"event #{event.seq}",
                event_seq=event.seq,
            )
        )
    return found


def _with_findings(
    rows: Sequence[ImpactRow],
    findings: Sequence[FindingRow],
    catalog: cmdb_models.Catalog | None,
    failure_mode: str,
) -> list[ImpactRow]:
    """Impact rows with their findings, plus a row for each flagged service not reached."""
    labels: dict[str, list[str]] = {}
    for finding in findings:
        if finding.service_ref is None:
            continue
        ref = _canonical(finding.service_ref, catalog)
        label = f"{finding.rule} ({finding.severity})"
        labels.setdefault(ref, [])
        if label not in labels[ref]:
            labels[ref].append(label)
    result: list[ImpactRow] = []
    for row in rows:
        result.append(row.model_copy(update={"findings": labels.pop(row.ref, [])}))
    for ref, found in labels.items():
        service = _service(catalog, ref)
        if catalog is not None and service is not None:
            item = cmdb_impact.ImpactedService(service=service, distance=0, path=(service.ref,))
            row = _catalog_row(item, catalog, failure_mode)
        else:
            row = ImpactRow(
                ref=ref,
                name=_short(ref),
                title=None,
                system=None,
                tier=None,
                distance=0,
                path=[_short(ref)],
                targeted=False,
                owner=None,
                owner_people=[],
                on_call=[],
                target_rto_s=None,
                target_rpo_s=None,
            )
        result.append(
            row.model_copy(update={"targeted": False, "flagged": True, "findings": found})
        )
    return result


def _service(catalog: cmdb_models.Catalog | None, ref: str) -> cmdb_models.Service | None:
    if catalog is None:
        return None
    try:
        return catalog.services.get(catalog.lookup(ref))
    except cmdb_errors.CmdbError:
        return None


def _canonical(ref: str, catalog: cmdb_models.Catalog | None) -> str:
    if catalog is None:
        return ref
    try:
        return str(catalog.lookup(ref))
    except cmdb_errors.CmdbError:
        return ref


def _timeline_labels(
    findings: Sequence[FindingRow], manual_steps: Sequence[ManualStep], facts: _Facts
) -> dict[int, str]:
    """What the timeline says of finding, manual and ack events (by event seq)."""
    labels: dict[int, str] = {}
    for finding in findings:
        where = (
            f" on {finding.service}"
            if finding.service
            else (f" of step {finding.step}" if finding.step else "")
        )
        labels[finding.event_seq] = f"finding {finding.rule} ({finding.severity}){where}"
    for manual in manual_steps:
        absent = f"; absent (simulated): {', '.join(manual.absent)}" if manual.absent else ""
        labels[manual.manual_seq] = (
            f"manual step {manual.step} assigned to {manual.assignee} ({manual.role});"
            f" may act: {_eligible_names(manual)}{absent};"
            f" time limit {fmt_seconds(manual.timeout_s)}"
        )
        if manual.ack_seq is not None:
            who = (
                "automatically (--auto-ack; no person acted)"
                if manual.automated
                else f"by {manual.acknowledged_by}"
            )
            labels[manual.ack_seq] = (
                f"manual step {manual.step} acknowledged {who} after {fmt_seconds(manual.waited_s)}"
            )
    for ack in facts.acks:
        if ack.seq not in labels:
            labels[ack.seq] = (
                f"acknowledgement of {ack.data.get('step', '?')} by {ack.data.get('by', '?')}"
                " set aside (not among the people who may act)"
            )
    return labels


def _eligible_names(manual: ManualStep) -> str:
    if manual.eligible is None:
        return "anyone (no CMDB)"
    return ", ".join(manual.eligible) or "nobody"


def _went_well(facts: _Facts, manual_steps: Sequence[ManualStep]) -> list[str]:
    found: list[str] = []
    if facts.refused:
        found.append("Guardrails stopped an unsafe drill before anything was touched.")
    if facts.held:
        found.append("The steady-state hypothesis held: no probe left its tolerance.")
    if facts.reverted and not facts.revert_failed and not facts.left_applied:
        found.append(f"Every revertible change was undone ({len(facts.reverted)} in all).")
    abort = facts.abort_event
    if abort is not None and abort.data.get("by") in ("guardrail", "probe"):
        found.append(
            f"The {abort.data.get('by')} abort stopped the drill "
            f"{fmt_seconds(_seconds(facts.t0, abort.at))} after the first fault and rollback "
            "followed at once."
        )
    if facts.rto_met is True:
        found.append(f"Recovery met its objective ({fmt_seconds(facts.achieved)}).")
    if facts.rpo_met is True:
        found.append(f"Data loss stayed within its objective ({fmt_seconds(facts.achieved_rpo)}).")
    for manual in manual_steps:
        if manual.outcome is ManualOutcome.ACKNOWLEDGED:
            found.append(
                f"Manual step {manual.step} was acknowledged by {manual.acknowledged_by} with "
                f"evidence after {fmt_seconds(manual.waited_s)}."
            )
    return found or ["Nothing stood out as going well; add what the team saw."]


def _went_wrong(facts: _Facts, findings: Sequence[FindingRow]) -> list[str]:
    """What went wrong, besides the findings (which the report lists with their messages)."""
    found: list[str] = []
    for probe in facts.failing:
        found.append(
            f"Probe {probe.name} reported unhealthy in {len(probe.failures)} of "
            f"{probe.samples} sample(s) after the first fault."
        )
    if facts.rto_met is False:
        found.append(
            f"Recovery took {fmt_seconds(facts.achieved)}, over the objective of "
            f"{fmt_seconds(facts.scaled_target)}."
        )
    if facts.rpo_met is False:
        found.append(
            f"Data loss (RPO) was {fmt_seconds(facts.achieved_rpo)}, over the objective of "
            f"{fmt_seconds(facts.scaled_target_rpo)}."
        )
    for entry in facts.revert_failed:
        found.append(f"Change #{entry.seq} ({entry.action} on {entry.target}) was not undone.")
    for entry in facts.left_applied:
        found.append(f"Change #{entry.seq} ({entry.action} on {entry.target}) may remain.")
    for event in facts.errors:
        found.append(f"The drill recorded an error (event #{event.seq}).")
    for event in facts.refusals:
        found.append(f"Guardrail {event.data.get('rule')} refused the drill (event #{event.seq}).")
    if not found and not findings:
        return ["Nothing went wrong that the drill could observe."]
    return found


def _lucky(
    run: states.Run,
    scenario: models.Scenario | None,
    facts: _Facts,
    impact_rows: Sequence[ImpactRow],
    manual_steps: Sequence[ManualStep],
) -> list[str]:
    found: list[str] = []
    watched = set(facts.probes)
    unwatched = [
        row.name
        for row in impact_rows
        if not row.targeted
        and not row.flagged
        and not any(row.name.rpartition("/")[2] in name for name in watched)
    ]
    if unwatched:
        found.append(
            "No probe watched " + ", ".join(unwatched) + ", which depend(s) on the targets; "
            "how they fared is unknown."
        )
    for manual in manual_steps:
        if manual.automated:
            found.append(
                f"Manual step {manual.step} was acknowledged automatically (--auto-ack): "
                "whether the people who may act could carry it out within its time limit "
                "was not tested."
            )
    if facts.time_scale < 1:
        found.append(
            f"The drill ran at time scale {facts.time_scale:g}: a real outage would last "
            f"{1 / facts.time_scale:g} times longer than what was observed."
        )
    protected = scenario is not None and run.environment in ("production", "prod")
    if not protected:
        found.append(f"It ran in {run.environment}, so no customer was exposed to the failure.")
    return found or ["No close call was observed; add any the team noticed."]


def _factors(facts: _Facts, findings: Sequence[FindingRow]) -> list[Factor]:
    gaps = [
        Factor(
            text=f"{f.subject}: {_RULE_TEXT.get(f.rule, f'finding {f.rule}')} "
            f"(severity {f.severity}).",
            evidence=f.evidence,
        )
        for f in findings
        if f.severity in ("high", "medium")
    ]
    clean = facts.held and not facts.revert_failed and not facts.left_applied
    if clean and not gaps:
        return [Factor(text="None identified: the hypothesis held.", evidence="run verdict")]
    found: list[Factor] = []
    steps = sorted({entry.step for entry in facts.applied})
    if facts.applied and not clean:
        found.append(
            Factor(
                text=f"The injected fault ({', '.join(steps)}) changed "
                f"{len(facts.applied)} target(s) in {facts.run.environment}.",
                evidence=f"journal #{facts.applied[0].seq} to #{facts.applied[-1].seq}",
            )
        )
    for probe in facts.failing:
        first = probe.first_failure
        assert first is not None
        found.append(
            Factor(
                text=f"The service behind {probe.name} did not tolerate the fault: "
                f"{len(probe.failures)} unhealthy sample(s).",
                evidence=f"probe sample #{first.seq}",
            )
        )
    for event in facts.aborts:
        found.append(
            Factor(
                text=f"An abort ({event.data.get('by', '?')}) ended the drill early.",
                evidence=f"event #{event.seq}",
            )
        )
    for entry in facts.revert_failed:
        found.append(
            Factor(
                text=f"The undo of {entry.action} on {entry.target} did not succeed.",
                evidence=f"journal #{entry.seq}",
            )
        )
    if facts.rto_met is False:
        found.append(
            Factor(text="Recovery was slower than its objective.", evidence="run record objectives")
        )
    if facts.rpo_met is False:
        found.append(
            Factor(
                text="More data was lost than its objective allows.",
                evidence="run record objectives",
            )
        )
    found += gaps
    for event in facts.errors:
        found.append(
            Factor(text="A step could not be carried out.", evidence=f"event #{event.seq}")
        )
    for event in facts.refusals:
        found.append(
            Factor(
                text=f"Guardrail {event.data.get('rule')} judged the drill unsafe.",
                evidence=f"event #{event.seq}",
            )
        )
    if len(found) < 2:
        found.append(
            Factor(
                text="Conditions the drill could not observe (traffic, recent changes, "
                "configuration) may have contributed; add them in review.",
                evidence="to be added in review",
            )
        )
    return found


def _due(run: states.Run, priority: Priority) -> dt.date:
    end = run.finished_at or run.started_at
    return (end + dt.timedelta(days=DUE_DAYS[priority])).date()


def _suggested_title(suggestion: str) -> str:
    """A provider's suggestion as a verb-first action title ('name …' -> 'Add …')."""
    text = " ".join(suggestion.split()).rstrip(".")
    first, _, rest = text.partition(" ")
    verb = _SUGGESTION_VERBS.get(first.lower(), first)
    return f"{verb[:1].upper()}{verb[1:]} {rest}".strip()


def _manual_title(finding: FindingRow, manual: ManualStep | None) -> str:
    step = finding.step or "?"
    assignee = f" (assigned to {manual.assignee}, {manual.role})" if manual else ""
    if finding.rule == "manual-timeout":
        limit = f" of {fmt_seconds(manual.timeout_s)}" if manual and manual.timeout_s else ""
        return (
            f"Review the runbook of manual step {step} so it can be done within its time "
            f"limit{limit}{assignee}"
        )
    if finding.rule == "no-eligible-assignee":
        return f"Add an eligible person or on-call rotation for manual step {step}{assignee}"
    if finding.rule == "ack-by-ineligible":
        return f"Review who may acknowledge manual step {step}{assignee}"
    return f"Review finding {finding.rule} of step {step}"


class _FindingOwners:
    """The owning team of a finding: its service's CMDB owner, or the manual step's team."""

    def __init__(
        self,
        owners: _Owners,
        manual_steps: Sequence[ManualStep],
        facts: _Facts,
    ) -> None:
        self.owners = owners
        self.assignee_of = {
            str(e.data.get("step")): str(e.data.get("assignee", "")) for e in facts.manual
        }
        self.manual = {m.step: m for m in manual_steps}

    def owner(self, finding: FindingRow) -> str:
        if finding.service_ref is not None:
            service = _service(self.owners.catalog, finding.service_ref)
            if service is not None:
                return service.owner.short
            for row in self.owners.rows:
                if row.ref == finding.service_ref and row.owner:
                    return row.owner
        assignee = self.assignee_of.get(finding.step or "", "")
        if assignee.startswith("group:"):
            return _short(assignee)
        return self.owners.owner_for(finding.service or "")[0]


def _finding_items(
    run: states.Run,
    findings: Sequence[FindingRow],
    owners: _FindingOwners,
) -> list[ActionItem]:
    """One action item per (suggestion, owner): findings sharing both are merged."""
    groups: dict[tuple[str, str], list[FindingRow]] = {}
    for finding in findings:
        if finding.suggestion:
            base = _suggested_title(finding.suggestion)
        else:
            base = _manual_title(finding, owners.manual.get(finding.step or ""))
        groups.setdefault((base, owners.owner(finding)), []).append(finding)
    items: list[ActionItem] = []
    for (base, owner), group in groups.items():
        services = list(dict.fromkeys(f.service for f in group if f.service))
        named = len(services) == 1 and services[0] in base
        title = base if not services or named else f"{base} (for {', '.join(services)})"
        priority = min(
            (_SEVERITY_PRIORITY.get(f.severity, Priority.P2) for f in group),
            key=lambda p: DUE_DAYS[p],
        )
        items.append(
            ActionItem(
                title=title,
                owner=owner,
                due=_due(run, priority),
                priority=priority,
                action_class=_RULE_CLASS.get(group[0].rule, ActionClass.PROCESS),
                service=", ".join(services) or None,
                evidence=(
                    f"event #{group[0].event_seq}"
                    if len(group) == 1
                    else "events " + ", ".join(f"#{f.event_seq}" for f in group)
                ),
            )
        )
    return items


def _action_items(
    run: states.Run,
    scenario: models.Scenario | None,
    facts: _Facts,
    owners: _Owners,
    findings: Sequence[FindingRow],
    manual_steps: Sequence[ManualStep],
) -> list[ActionItem]:
    items: list[ActionItem] = []

    def add(
        title: str, *, signal: str, priority: Priority, cls: ActionClass, evidence: str
    ) -> None:
        owner, service = owners.owner_for(signal)
        items.append(
            ActionItem(
                title=title,
                owner=owner,
                due=_due(run, priority),
                priority=priority,
                action_class=cls,
                service=service,
                evidence=evidence,
            )
        )

    mode = facts.failure_mode
    for entry in [*facts.revert_failed, *facts.left_applied]:
        add(
            f"Remove the leftover change #{entry.seq} ({entry.action} on {entry.target}) "
            "and fix its undo",
            signal=entry.target.name,
            priority=Priority.P1,
            cls=ActionClass.MITIGATE,
            evidence=f"journal #{entry.seq}",
        )
    for probe in facts.failing:
        first = probe.first_failure
        assert first is not None
        row = owners.service_for(probe.name)
        tier1 = row is not None and row.tier == 1
        name = row.name if row else probe.name
        add(
            f"Make {name} tolerate {_FAILURE_MODE_TEXT.get(mode, mode)} (probe {probe.name})",
            signal=probe.name,
            priority=Priority.P1 if tier1 else Priority.P2,
            cls=ActionClass.PREVENT,
            evidence=f"probe sample #{first.seq}",
        )
        add(
            f"Confirm an alert pages the owner of {name} when {probe.name} fails",
            signal=probe.name,
            priority=Priority.P3,
            cls=ActionClass.DETECT,
            evidence=f"probe sample #{first.seq}",
        )
    if facts.rto_met is False:
        add(
            f"Reduce the recovery time under {mode} to within {fmt_seconds(facts.target)}",
            signal="",
            priority=Priority.P2,
            cls=ActionClass.MITIGATE,
            evidence="run record objectives",
        )
    if facts.rpo_met is False:
        add(
            f"Reduce the data loss under {mode} to within {fmt_seconds(facts.target_rpo)}"
            + (f" (canary {facts.rpo_canary})" if facts.rpo_canary else ""),
            signal=facts.rpo_canary or "",
            priority=Priority.P2,
            cls=ActionClass.MITIGATE,
            evidence="run record objectives",
        )
    items += _finding_items(run, findings, _FindingOwners(owners, manual_steps, facts))
    for event in facts.errors:
        add(
            "Fix the step that could not be carried out and rerun the drill",
            signal="",
            priority=Priority.P2,
            cls=ActionClass.PROCESS,
            evidence=f"event #{event.seq}",
        )
    if not items:
        name = scenario.metadata.name if scenario else run.scenario
        add(
            f"Schedule the next {name} drill",
            signal="",
            priority=Priority.P3,
            cls=ActionClass.PROCESS,
            evidence=f"run {run.id}",
        )
    return items


def _absent_people(run: ev.RunEvidence, manual_steps: Sequence[ManualStep]) -> dict[str, str]:
    """Who the run marked absent (simulated), with where it is recorded."""
    found: dict[str, str] = {}
    for entry in run.entries:
        if entry.action == _ABSENCE_ACTION and entry.state is not mutations.EntryState.APPLY_FAILED:
            found.setdefault(
                _short(entry.target.name),
                f"marked unavailable for the drill (journal #{entry.seq})",
            )
    for manual in manual_steps:
        for person in manual.absent:
            found.setdefault(
                person, f"left out of manual step {manual.step} (event #{manual.manual_seq})"
            )
    return found


def _manual_participants(manual: ManualStep) -> list[Participant]:
    found = [
        Participant(
            role=f"Assigned manual step {manual.step}",
            who=f"{manual.assignee} ({manual.role})",
            detail=f"time limit {fmt_seconds(manual.timeout_s)}; {manual.evidence}",
        ),
        Participant(
            role=f"Eligible for {manual.step}",
            who=_eligible_names(manual),
            detail=manual.problem or manual.eligible_from,
        ),
    ]
    waited = f"after {fmt_seconds(manual.waited_s)}"
    quoted = ""
    if manual.outcome is ManualOutcome.ACKNOWLEDGED:
        who, detail = str(manual.acknowledged_by), f"{waited}; evidence:"
        quoted = manual.ack_evidence or "(none recorded)"
    elif manual.outcome is ManualOutcome.AUTOMATED:
        who, detail = "automated (--auto-ack); no person acknowledged", waited
    elif manual.outcome is ManualOutcome.UNANSWERED:
        who, detail = "nobody", "no acknowledgement recorded before the run ended"
    else:
        who, detail = f"nobody ({manual.outcome.value})", waited
    found.append(
        Participant(
            role=f"Acknowledged {manual.step}",
            who=who,
            detail=detail,
            quoted=quoted,
        )
    )
    return found


def _participants(
    run: ev.RunEvidence,
    impact_rows: Sequence[ImpactRow],
    catalog: cmdb_models.Catalog | None,
    manual_steps: Sequence[ManualStep],
) -> list[Participant]:
    found = [Participant(role="Orchestrator", who=f"stormdrill on {run.run.owner.host}")]
    for approval in ev.record_list(run.run.record, "approvals"):
        found.append(Participant(role="Approver", who=str(approval)))
    for person, where in _absent_people(run, manual_steps).items():
        found.append(Participant(role="Absent (simulated)", who=person, detail=where))
    for manual in manual_steps:
        found += _manual_participants(manual)
    for owner in dict.fromkeys(row.owner for row in impact_rows if row.targeted and row.owner):
        found.append(Participant(role="Owning team (targeted service)", who=str(owner)))
    rotations = dict.fromkeys(name for row in impact_rows if row.targeted for name in row.on_call)
    for rotation in rotations:
        found.append(Participant(role="On-call rotation", who=rotation))
    if catalog is None and not impact_rows:
        found.append(Participant(role="Owning team", who="not recorded (no CMDB)"))
    found.append(Participant(role="Facilitator", who="to be named in review"))
    unique: dict[tuple[str, str], Participant] = {}
    for participant in found:
        unique.setdefault((participant.role, participant.who), participant)
    return list(unique.values())


def _appendix(entries: Sequence[mutations.JournalEntry]) -> list[MutationRow]:
    undo_status = {
        mutations.EntryState.REVERTED: "undone",
        mutations.EntryState.REVERT_FAILED: "UNDO FAILED",
        mutations.EntryState.APPLIED: "NOT UNDONE",
        mutations.EntryState.INTENDED: "unknown (intended)",
        mutations.EntryState.SKIPPED: "not revertible / skipped",
        mutations.EntryState.APPLY_FAILED: "never applied",
    }
    return [
        MutationRow(
            seq=entry.seq,
            step=entry.step,
            action=entry.action,
            target=str(entry.target),
            state=entry.state.value,
            undo=undo_status[entry.state],
            attempts=entry.attempts,
            error=entry.error,
        )
        for entry in entries
    ]
