"""Findings: finding rows, contributing factors and action items derived from a run.

`finding_rows` words each `finding` event blamelessly from its rule, severity, subject
and suggestion. `contributing_factors` lists the factors (plural, never a single root
cause; high and medium findings count). `action_items` derives verb-first items with an
owner (the CMDB owner of the service, or the manual step's team), a priority (finding
severity high P1, medium P2, low P3) and a due date counted from the run's end (no clock
is read); findings sharing a suggestion and owner become one item.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from orchestrator import states
from reports.impact import Owners, catalog_service
from reports.run_facts import FAILURE_MODE_TEXT, Facts, event_text, fmt_seconds, short_name
from reports.sections import (
    DUE_DAYS,
    ActionClass,
    ActionItem,
    Factor,
    FindingRow,
    ManualStep,
    Priority,
)
from scenarios import models

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


def _finding_text(*, rule: str, severity: str, subject: str, suggestion: str | None) -> str:
    meaning = _RULE_TEXT.get(rule, f"finding {rule}")
    text = f"{subject}: {meaning} (rule {rule}, severity {severity})."
    if suggestion:
        text += f" Suggested action: {suggestion.strip().rstrip('.')}."
    return text


def finding_rows(facts: Facts, manual_steps: Sequence[ManualStep]) -> list[FindingRow]:
    manual_names = {m.step for m in manual_steps}
    found: list[FindingRow] = []
    for event in facts.findings:
        data = event.data
        rule = event_text(data, "rule") or "unspecified"
        severity = event_text(data, "severity") or "medium"
        service_ref = event_text(data, "service")
        service = short_name(service_ref) if service_ref else None
        step = event_text(data, "step")
        suggestion = event_text(data, "suggestion")
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


def contributing_factors(facts: Facts, findings: Sequence[FindingRow]) -> list[Factor]:
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
        owners: Owners,
        manual_steps: Sequence[ManualStep],
        facts: Facts,
    ) -> None:
        self.owners = owners
        self.assignee_of = {
            str(e.data.get("step")): str(e.data.get("assignee", "")) for e in facts.manual
        }
        self.manual = {m.step: m for m in manual_steps}

    def owner(self, finding: FindingRow) -> str:
        if finding.service_ref is not None:
            service = catalog_service(self.owners.catalog, finding.service_ref)
            if service is not None:
                return service.owner.short
            for row in self.owners.rows:
                if row.ref == finding.service_ref and row.owner:
                    return row.owner
        assignee = self.assignee_of.get(finding.step or "", "")
        if assignee.startswith("group:"):
            return short_name(assignee)
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


def action_items(
    run: states.Run,
    scenario: models.Scenario | None,
    facts: Facts,
    owners: Owners,
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
            f"Make {name} tolerate {FAILURE_MODE_TEXT.get(mode, mode)} (probe {probe.name})",
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
