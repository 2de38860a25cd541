"""JUnit XML: one testsuite per run; testcases per step, per probe and phase, and for
guardrails, the recovery objective and rollback.

CI systems (GitHub, GitLab, Jenkins) read `testsuites > testsuite > testcase` with
`failure message=… type=…` children; a failure message says what breached (the probe,
how many samples, the first failing answer; the RTO achieved against its target; the
change left in place). Built from the run record and its timeline only, so a report
can be re-made from the store at any time. Every message is redacted.

Probe cases: `before` fails if the steady state did not hold before the drill; `during`
fails when the run's verdict is DEVIATED and the probe reported unhealthy (failures the
probe's tolerance absorbed are listed in `system-out`, not failed); `after` fails when
the last sample after rollback is unhealthy.
Samples are counted by `run_facts.probe_samples`, the count the post-mortem quotes
(`during`: from the first fault on; earlier ones are named apart, not counted).
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from orchestrator import events as event_kinds
from orchestrator import journal, states
from reports import redaction, run_facts
from scenarios import models


@dataclasses.dataclass(frozen=True)
class Case:
    """One testcase: a step, a probe phase or a check, and its failure if it failed."""

    classname: str
    name: str
    seconds: float
    failure: str | None = None
    output: str | None = None
    failure_type: str = "DrillFailure"


def cases(
    *, run: states.Run, events: Sequence[journal.Event], scenario: models.Scenario
) -> list[Case]:
    """The testcases of a run: steps (scenario order), guardrails, probes, objective, rollback."""
    prefix = f"stormdrill.{scenario.metadata.name}"
    found = _step_cases(run, events, scenario, prefix)
    found += _guardrail_cases(events, prefix)
    found += _probe_cases(run, events, prefix)
    found += _objective_cases(run, prefix)
    if run.state in (states.RunState.ROLLBACK_FAILED, states.RunState.CRASHED):
        found.append(
            Case(
                f"{prefix}.rollback",
                "rollback",
                0.0,
                f"faults may remain: {run.reason}",
                failure_type="RollbackFailed",
            )
        )
    else:
        found.append(Case(f"{prefix}.rollback", "rollback", 0.0, None))
    return [
        dataclasses.replace(
            case,
            failure=redaction.redact(case.failure) if case.failure else None,
            output=redaction.redact(case.output) if case.output else None,
        )
        for case in found
    ]


def _step_cases(
    run: states.Run, events: Sequence[journal.Event], scenario: models.Scenario, prefix: str
) -> list[Case]:
    started: dict[str, journal.Event] = {}
    finished: dict[str, journal.Event] = {}
    for event in events:
        step = event.data.get("step")
        if event.kind != event_kinds.EventKind.STEP or not isinstance(step, str):
            continue
        if event.message.endswith("started") or " started" in event.message:
            started.setdefault(step, event)
        elif event.message.endswith("finished"):
            finished[step] = event
    deviations = {
        str(e.data.get("step", "")): e.message
        for e in events
        if e.kind == event_kinds.EventKind.DEVIATION
    }
    found: list[Case] = []
    for declared in scenario.spec.steps:
        begin, end = started.get(declared.name), finished.get(declared.name)
        if begin is None:
            found.append(
                Case(
                    f"{prefix}.steps",
                    declared.name,
                    0.0,
                    f"not reached: run ended {run.state.value}: {run.reason}",
                    failure_type="NotReached",
                )
            )
            continue
        seconds = (end.at - begin.at).total_seconds() if end is not None else 0.0
        failure = None if end is not None else f"step did not finish: {run.reason}"
        for text in deviations.values():
            if f"step {declared.name}" in text:
                failure = text
        found.append(Case(f"{prefix}.steps", declared.name, max(seconds, 0.0), failure))
    return found


def _guardrail_cases(events: Sequence[journal.Event], prefix: str) -> list[Case]:
    found: list[Case] = []
    for event in events:
        if event.kind != event_kinds.EventKind.GUARDRAIL or event.data.get("ok") is not False:
            continue
        rule = str(event.data.get("rule", "guardrail"))
        kind = "Refused" if "subject" in event.data else "GuardrailTripped"
        found.append(Case(f"{prefix}.guardrails", rule, 0.0, event.message, failure_type=kind))
    return found


def _probe_cases(run: states.Run, events: Sequence[journal.Event], prefix: str) -> list[Case]:
    t0 = run_facts.first_fault_at(run.record, events)
    found: list[Case] = []
    for counted in run_facts.probe_samples(events, t0=t0):
        name, phase, taken, bad = counted.probe, counted.phase, counted.samples, counted.failures
        span = taken or counted.before_fault
        seconds = (span[-1].at - span[0].at).total_seconds() if span else 0.0
        summary = f"{name} [{phase}]: {len(bad)} of {len(taken)} sample(s) unhealthy"
        if phase == "during" and t0 is not None:
            summary += " after the first fault"
        if bad:
            summary += f"; first at {bad[0].at.strftime('%H:%M:%S.%f')[:-3]}Z: {bad[0].message}"
        early_bad = [e for e in counted.before_fault if e.data.get("ok") is False]
        if counted.before_fault:
            summary += (
                f" ({len(counted.before_fault)} sample(s) before the first fault, "
                f"{len(early_bad)} unhealthy, not counted)"
            )
        failure: str | None = None
        if phase == "before" and bad:
            failure = f"steady state did not hold before the drill: {summary}"
        elif phase == "during" and bad and run.verdict is states.Verdict.DEVIATED:
            failure = f"hypothesis breached: {summary}"
        elif phase == "after" and taken and taken[-1].data.get("ok") is False:
            failure = f"not recovered after rollback: {summary}"
        output = summary if (bad or early_bad) and failure is None else None
        found.append(
            Case(
                f"{prefix}.probes",
                f"{name} [{phase}]",
                max(seconds, 0.0),
                failure,
                output=output,
                failure_type="ProbeBreached",
            )
        )
    return found


def _objective_cases(run: states.Run, prefix: str) -> list[Case]:
    objectives = run.record.objectives
    if objectives is None:
        return []
    achieved = objectives.achieved_rto_s
    target = objectives.scaled_target_rto_s
    if objectives.rto_met is False:
        failure = f"recovery objective missed: achieved RTO {achieved} s > target {target} s"
        if objectives.real_world_rto_s is not None and objectives.target_rto_s is not None:
            failure += (
                f" (about {run_facts.fmt_duration(objectives.real_world_rto_s)} in a real"
                f" outage against {run_facts.fmt_duration(objectives.target_rto_s)};"
                f" {run_facts.fmt_duration(objectives.manual_wait_s or 0.0)} of it waiting"
                " for people, never scaled)"
            )
    elif achieved is None and target is not None and objectives.t0 is not None:
        failure = f"recovery not observed within the verify window (target {target} s)"
    else:
        failure = None
    seconds = float(achieved) if achieved is not None else 0.0
    return [Case(f"{prefix}.objectives", "rto", seconds, failure, failure_type="ObjectiveMissed")]


def render(*, run: states.Run, events: Sequence[journal.Event], scenario: models.Scenario) -> str:
    """The JUnit XML document of a run."""
    found = cases(run=run, events=events, scenario=scenario)
    failures = sum(1 for case in found if case.failure is not None)
    total = (
        (run.finished_at - run.started_at).total_seconds() if run.finished_at is not None else 0.0
    )
    root = ET.Element(
        "testsuites",
        name="stormdrill",
        tests=str(len(found)),
        failures=str(failures),
        errors="0",
        time=f"{total:.3f}",
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"{scenario.metadata.name} on {run.environment} ({run.id})",
        tests=str(len(found)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{total:.3f}",
        timestamp=run.started_at.strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=run.owner.host,
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("run", run.id),
        ("state", run.state.value),
        ("verdict", run.verdict.value if run.verdict else ""),
        ("reason", redaction.redact(run.reason)),
    ):
        ET.SubElement(properties, "property", name=key, value=value)
    for case in found:
        element = ET.SubElement(
            suite, "testcase", classname=case.classname, name=case.name, time=f"{case.seconds:.3f}"
        )
        if case.failure is not None:
            failure = ET.SubElement(
                element, "failure", message=case.failure, type=case.failure_type
            )
            failure.text = case.failure
        if case.output is not None:
            ET.SubElement(element, "system-out").text = case.output
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(
    path: Path, *, run: states.Run, events: Sequence[journal.Event], scenario: models.Scenario
) -> Path:
    """Write the JUnit XML of a run to `path`, private (folders created 0700, the file 0600)."""
    redaction.private_folder(path.parent)
    return redaction.write_private(path, render(run=run, events=events, scenario=scenario))
