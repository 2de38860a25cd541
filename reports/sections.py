"""Post-mortem sections: the pydantic model of the report, one class per section.

`PostMortem` is the whole report and renderers only format it; every other class is one
section or one row of a section. Models are frozen and forbid extra fields; enums carry
the values written into the report (`Priority`, `ActionClass`, `ManualOutcome`, …).
`DUE_DAYS` maps a priority to the days from the end of the run to an action item's due
date. Nothing here decides content: `reports.postmortem.build_postmortem` does.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping

import pydantic


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
    """Measured in the run, wall-clock seconds (machine time scaled, people's time not)."""
    manual_wait_s: float = 0.0
    """Of `achieved_rto_s`, the time manual steps waited for people (never scaled)."""
    real_world_rto_s: float | None = None
    """The scaled equivalent: machine time scaled back up plus people's time (judged)."""
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
        """Achieved RTO in wall-clock seconds, as measured in the run (see `recovery`)."""
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
