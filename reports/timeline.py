"""Timeline: one row per event worth reading, each naming where it is recorded.

Facts events are left out; passed guardrail checks fold into one row; probe samples
appear only when a probe's health changes (per probe and phase). Finding, manual-step and
acknowledgement events are worded by `timeline_labels`. Rows are ordered by time, then
event sequence; each keeps the recorded message verbatim as `quoted`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator import events, journal
from reports import evidence as ev
from reports.participants import eligible_names
from reports.run_facts import Facts, fmt_seconds
from reports.sections import FindingRow, ManualStep, TimelineRow

_K = events.EventKind
_TIMELINE_SKIPPED = frozenset({_K.REPORT_FACTS})


def timeline_of(run: ev.RunEvidence, *, labels: Mapping[int, str]) -> list[TimelineRow]:
    """Every event worth a row; `labels` word some events (findings, manual steps, acks)."""
    rows: list[TimelineRow] = []
    passed_guardrails: list[journal.Event] = []
    last_ok: dict[tuple[str, str], bool] = {}
    for event in run.events:
        if event.kind in _TIMELINE_SKIPPED:
            continue
        if event.kind == _K.GUARDRAIL and event.data.get("ok") is True:
            passed_guardrails.append(event)
            continue
        if event.kind == _K.PROBE:
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
                kind=_K.GUARDRAIL.value,
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
        kind=_K.PROBE.value,
        what=what,
        quoted=event.message,
        evidence=f"probe sample #{event.seq}",
        event_seq=event.seq,
    )


_KIND_LABEL: Mapping[str, str] = {
    _K.STATE: "run state",
    _K.GUARDRAIL: "guardrail",
    _K.STEP: "step",
    _K.MUTATION: "change",
    _K.REVERT: "revert",
    _K.ABORT: "abort",
    _K.ABORT_REQUEST: "abort requested",
    _K.ERROR: "error",
    _K.DEVIATION: "deviation",
    _K.MANUAL: "manual step",
    _K.ACK: "acknowledgement",
    _K.FINDING: "finding",
}


def _event_row(event: journal.Event, label: str | None = None) -> TimelineRow:
    seq = event.data.get("seq")
    journal_seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    evidence = f"event #{event.seq}"
    if journal_seq is not None:
        evidence += f", journal #{journal_seq}"
    what = _KIND_LABEL.get(event.kind, event.kind)
    if event.kind == _K.STATE:
        what = f"run entered {event.data.get('state', '?')}"
    elif event.kind == _K.GUARDRAIL:
        verb = "refused the drill" if "subject" in event.data else "tripped"
        what = f"guardrail {event.data.get('rule', '?')} {verb}"
    elif event.kind == _K.STEP:
        what = f"step {event.data.get('step', '?')}"
    elif event.kind == _K.MUTATION:
        what = f"change #{journal_seq} {event.data.get('state', '')}"
    elif event.kind == _K.ACK:
        automated = event.data.get("automated") is True
        what = f"manual step {event.data.get('step', '?')} acknowledged" + (
            " (automatically)" if automated else ""
        )
    quoted = event.message
    proof = event.data.get("evidence")
    if event.kind == _K.ACK and isinstance(proof, str) and proof and proof not in quoted:
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


def timeline_labels(
    findings: Sequence[FindingRow], manual_steps: Sequence[ManualStep], facts: Facts
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
            f" may act: {eligible_names(manual)}{absent};"
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
