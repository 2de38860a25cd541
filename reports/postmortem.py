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
as `quoted` text; every string is passed through the run's redactor before it is
returned (a parameter whose name looks secret or was declared `secret: true` is masked
under its name, and the secret values the run bound wherever they appear), so no secret
reaches any rendering.

This module assembles the report and words the prose sections (metadata, summary,
result, detection, recovery, what went well / wrong / lucky, appendix). The model is in
`reports.sections`, run facts in `reports.run_facts`, impact in `reports.impact`, the
timeline in `reports.timeline`, manual steps and participants in `reports.participants`,
findings, factors and action items in `reports.findings`; the model's names and
`fmt_seconds` are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator import mutations, states
from orchestrator.cmdb import models as cmdb_models
from reports import evidence as ev
from reports import redaction
from reports.findings import action_items, contributing_factors, finding_rows
from reports.impact import Owners, impact_of, with_findings
from reports.participants import manual_steps_of, participants_of
from reports.run_facts import (
    FAILURE_MODE_TEXT,
    Facts,
    fmt_duration,
    fmt_seconds,
    recovery_text,
    seconds,
)
from reports.sections import (
    DUE_DAYS,
    ActionClass,
    ActionItem,
    Detection,
    Factor,
    FindingRow,
    ImpactRow,
    ManualOutcome,
    ManualStep,
    Metadata,
    MutationRow,
    Participant,
    PostMortem,
    Priority,
    Recovery,
    ReportKind,
    ReviewStatus,
    TimelineRow,
)
from reports.timeline import timeline_labels, timeline_of
from scenarios import models

__all__ = [
    "DUE_DAYS",
    "ActionClass",
    "ActionItem",
    "Detection",
    "Factor",
    "FindingRow",
    "ImpactRow",
    "ManualOutcome",
    "ManualStep",
    "Metadata",
    "MutationRow",
    "Participant",
    "PostMortem",
    "Priority",
    "Recovery",
    "ReportKind",
    "ReviewStatus",
    "TimelineRow",
    "build_postmortem",
    "fmt_seconds",
]


def build_postmortem(
    run: ev.RunEvidence,
    scenario: models.Scenario | None,
    *,
    cmdb: cmdb_models.Catalog | None = None,
    kind: ReportKind = ReportKind.DRILL,
    status: ReviewStatus = ReviewStatus.DRAFT,
    redactor: redaction.Redactor | None = None,
) -> PostMortem:
    """The post-mortem of `run` (its record, timeline and journal), redacted.

    `redactor` (the store's, in the process that ran the drill) also masks the secret values
    that run bound; without one the pattern and secret-key rules still apply.
    """
    facts = Facts.of(run, scenario)
    manual_steps = manual_steps_of(facts)
    findings = finding_rows(facts, manual_steps)
    impact_rows = with_findings(
        impact_of(run.run, scenario, cmdb, facts.failure_mode), findings, cmdb, facts.failure_mode
    )
    owners = Owners(impact_rows, cmdb)
    report = PostMortem(
        metadata=_metadata(run.run, scenario, facts, kind=kind, status=status),
        summary=_summary(run.run, scenario, facts),
        hypothesis=scenario.spec.hypothesis.strip() if scenario else "(scenario unavailable)",
        result=_result(run.run, facts),
        impact=impact_rows,
        timeline=timeline_of(run, labels=timeline_labels(findings, manual_steps, facts)),
        detection=_detection(facts),
        recovery=_recovery(facts),
        went_well=_went_well(facts, manual_steps),
        went_wrong=_went_wrong(facts, findings),
        lucky=_lucky(run.run, scenario, facts, impact_rows, manual_steps),
        contributing_factors=contributing_factors(facts, findings),
        action_items=action_items(run.run, scenario, facts, owners, findings, manual_steps),
        participants=participants_of(run, impact_rows, cmdb, manual_steps),
        appendix=_appendix(run.entries),
        findings=findings,
        manual_steps=manual_steps,
    )
    return _redacted(report, redactor or redaction.Redactor())


def _redacted(report: PostMortem, redactor: redaction.Redactor) -> PostMortem:
    """Every string masked; the value under a secret-looking key (a parameter) too."""

    def walk(value: Any, key: str | None = None) -> Any:
        if isinstance(value, str):
            masked = redactor.json(value, key=key)
            return masked if isinstance(masked, str) else redaction.MASK
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, dict):
            return {k: walk(v, str(k)) for k, v in value.items()}
        return value

    raw = report.model_dump(
        mode="python", exclude={"achieved_rto", "target_rto", "achieved_rpo", "target_rpo"}
    )
    return PostMortem.model_validate(walk(raw))


def _metadata(
    run: states.Run,
    scenario: models.Scenario | None,
    facts: Facts,
    *,
    kind: ReportKind,
    status: ReviewStatus,
) -> Metadata:
    parameters = run.record.parameters
    return Metadata(
        title=f"{kind.value.capitalize()} report: {run.scenario} on {run.environment}",
        run_id=run.id,
        kind=kind,
        status=status,
        scenario=scenario.metadata.name if scenario else run.scenario,
        scenario_source=run.record.scenario_source,
        drill=run.record.drill,
        failure_mode=facts.failure_mode,
        environment=run.environment,
        state=run.state.value,
        verdict=run.verdict.value if run.verdict else None,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_s=seconds(run.started_at, run.finished_at),
        time_scale=facts.time_scale,
        parameters={k: str(v) for k, v in sorted(parameters.items())},
    )


def _summary(run: states.Run, scenario: models.Scenario | None, facts: Facts) -> list[str]:
    what = FAILURE_MODE_TEXT.get(facts.failure_mode, f"a {facts.failure_mode} failure")
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


def _recovery_sentence(facts: Facts) -> str:
    if facts.achieved is None:
        return "Recovery time was not measured (no fault applied or recovery not observed)."
    if facts.target is None:
        target = "no stated objective"
    elif facts.time_scale == 1:
        target = f"an objective of {fmt_duration(facts.target)}"
    else:
        target = (
            f"an objective of {fmt_duration(facts.target)}"
            f" ({fmt_duration(facts.scaled_target)} of machine time at time scale"
            f" {facts.time_scale:g})"
        )
    verdict = {True: "met", False: "missed", None: "not judged"}[facts.rto_met]
    return f"Recovery took {recovery_text(facts)}, against {target}: {verdict}."


def _rpo_sentence(facts: Facts) -> str:
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


def _result(run: states.Run, facts: Facts) -> str:
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


def _detection(facts: Facts) -> Detection:
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
            f"{fmt_seconds(seconds(facts.t0, first.at))} after the first fault."
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
            f"{fmt_seconds(seconds(facts.t0, abort.at))} after the first fault."
        )
    return Detection(
        signal=signal,
        first_signal_at=first.at if first else None,
        time_to_detect_s=seconds(facts.t0, first.at) if first else None,
        abort_at=abort.at if abort else None,
        time_to_abort_s=seconds(facts.t0, abort.at) if abort else None,
        evidence=(
            f"probe sample #{first.seq}" if first else (f"event #{abort.seq}" if abort else None)
        ),
        how=how,
    )


def _recovery(facts: Facts) -> Recovery:
    revert = facts.first_revert
    all_reverted = not facts.revert_failed and not facts.left_applied
    parts = [_recovery_sentence(facts)]
    if revert is not None:
        parts.append(
            f"The first revert started {fmt_seconds(seconds(facts.t0, revert.at))} "
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
        time_to_first_revert_s=seconds(facts.t0, revert.at) if revert else None,
        achieved_rto_s=facts.achieved,
        manual_wait_s=facts.manual_wait,
        real_world_rto_s=facts.real_world,
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


def _went_well(facts: Facts, manual_steps: Sequence[ManualStep]) -> list[str]:
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
            f"{fmt_seconds(seconds(facts.t0, abort.at))} after the first fault and rollback "
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


def _went_wrong(facts: Facts, findings: Sequence[FindingRow]) -> list[str]:
    """What went wrong, besides the findings (which the report lists with their messages)."""
    found: list[str] = []
    for probe in facts.failing:
        found.append(
            f"Probe {probe.name} reported unhealthy in {len(probe.failures)} of "
            f"{probe.samples} sample(s) after the first fault."
        )
    if facts.rto_met is False:
        found.append(
            f"Recovery took {recovery_text(facts)}, over the objective of "
            f"{fmt_duration(facts.target)}."
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
    facts: Facts,
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
            f"The drill ran at time scale {facts.time_scale:g}: machine waits in a real outage "
            f"would last {1 / facts.time_scale:g} times longer than observed; time spent "
            "waiting for people was not scaled."
        )
    protected = scenario is not None and run.environment in ("production", "prod")
    if not protected:
        found.append(f"It ran in {run.environment}, so no customer was exposed to the failure.")
    return found or ["No close call was observed; add any the team noticed."]


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
