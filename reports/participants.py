"""Participants: manual steps (who could act, who acknowledged) and the people of a run.

`manual_steps_of` pairs each `manual` event with the acknowledgement an eligible person
(or --auto-ack) gave, or with the finding that ended it (nobody eligible, timed out).
`participants_of` lists the orchestrator, approvers, people marked absent (simulated),
each manual step's assignee, eligible people and acknowledgement, the owning teams and
on-call rotations of targeted services, and a facilitator; one row per (role, who).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator import journal, mutations
from orchestrator import manual as manual_rules
from orchestrator.cmdb import models as cmdb_models
from reports import evidence as ev
from reports.run_facts import Facts, event_text, fmt_seconds, seconds, short_name
from reports.sections import ImpactRow, ManualOutcome, ManualStep, Participant


def _refs(data: Mapping[str, mutations.JsonValue], key: str) -> list[str] | None:
    value = data.get(key)
    if not isinstance(value, list | tuple):
        return None
    return [short_name(str(item)) for item in value]


def manual_steps_of(facts: Facts) -> list[ManualStep]:
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
                and manual_rules.accepts(data, a.data)
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
                else seconds(event.at, ack.at)
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
            waited = seconds(event.at, ended.at)
        last = ack or ended
        found.append(
            ManualStep(
                step=step,
                started_at=event.at,
                assignee=short_name(str(data.get("assignee", "?"))),
                role=str(data.get("role", "any")),
                eligible=_refs(data, "eligible"),
                eligible_from=event_text(data, "eligibleFrom") or "",
                absent=_refs(data, "absent") or [],
                problem=event_text(data, "problem"),
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
                ack_evidence=event_text(ack.data, "evidence") if ack is not None else None,
                waited_s=waited,
                evidence=f"event #{event.seq}" + (f", event #{last.seq}" if last else ""),
                manual_seq=event.seq,
                ack_seq=ack.seq if ack is not None else None,
            )
        )
    return found


def eligible_names(manual: ManualStep) -> str:
    if manual.eligible is None:
        return "anyone (no CMDB)"
    return ", ".join(manual.eligible) or "nobody"


def _absent_people(run: ev.RunEvidence, manual_steps: Sequence[ManualStep]) -> dict[str, str]:
    """Who the run marked absent (simulated), with where it is recorded."""
    found: dict[str, str] = {}
    for entry in run.entries:
        if (
            entry.action == manual_rules.ABSENCE_ACTION
            and entry.state is not mutations.EntryState.APPLY_FAILED
        ):
            found.setdefault(
                short_name(entry.target.name),
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
            who=eligible_names(manual),
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


def participants_of(
    run: ev.RunEvidence,
    impact_rows: Sequence[ImpactRow],
    catalog: cmdb_models.Catalog | None,
    manual_steps: Sequence[ManualStep],
) -> list[Participant]:
    found = [Participant(role="Orchestrator", who=f"stormdrill on {run.run.owner.host}")]
    for approval in run.run.record.approvals:
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
