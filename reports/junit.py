"""JUnit XML: one testsuite per run, a testcase per step and per probe check.

CI systems (GitHub, GitLab, Jenkins) read `testsuites > testsuite > testcase` with
`failure message=…` children; a failure message says what breached. Built from the run
record and its timeline only, so a report can be re-made from the store at any time.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from orchestrator import journal, states
from scenarios import models


@dataclasses.dataclass(frozen=True)
class Case:
    """One testcase: a step or a probe check, and its failure if it failed."""

    classname: str
    name: str
    seconds: float
    failure: str | None = None


def cases(
    *, run: states.Run, events: Sequence[journal.Event], scenario: models.Scenario
) -> list[Case]:
    """The testcases of a run: every step (in scenario order), then every probe check."""
    started: dict[str, journal.Event] = {}
    finished: dict[str, journal.Event] = {}
    for event in events:
        step = event.data.get("step")
        if event.kind != "step" or not isinstance(step, str):
            continue
        if event.message.endswith("started") or " started" in event.message:
            started.setdefault(step, event)
        elif event.message.endswith("finished"):
            finished[step] = event
    prefix = f"stormdrill.{scenario.metadata.name}"
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
                )
            )
            continue
        seconds = (end.at - begin.at).total_seconds() if end is not None else 0.0
        failure = None if end is not None else f"step did not finish: {run.reason}"
        found.append(Case(f"{prefix}.steps", declared.name, seconds, failure))
    for event in events:
        if event.kind != "probe":
            continue
        name = event.data.get("probe")
        ok = event.data.get("ok")
        phase = event.data.get("phase", "")
        if not isinstance(name, str) or not isinstance(ok, bool):
            continue
        label = f"{name} [{phase}] @ {event.at.strftime('%H:%M:%S.%f')[:-3]}Z"
        found.append(Case(f"{prefix}.probes", label, 0.0, None if ok else event.message))
    if run.state in (states.RunState.ROLLBACK_FAILED, states.RunState.CRASHED):
        found.append(
            Case(f"{prefix}.rollback", "rollback", 0.0, f"faults may remain: {run.reason}")
        )
    else:
        found.append(Case(f"{prefix}.rollback", "rollback", 0.0, None))
    return found


def render(*, run: states.Run, events: Sequence[journal.Event], scenario: models.Scenario) -> str:
    """The JUnit XML document of a run."""
    found = cases(run=run, events=events, scenario=scenario)
    failures = sum(1 for case in found if case.failure is not None)
    total = (
        (run.finished_at - run.started_at).total_seconds() if run.finished_at is not None else 0.0
    )
    root = ET.Element(
        "testsuites", name="stormdrill", tests=str(len(found)), failures=str(failures)
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
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("run", run.id),
        ("state", run.state.value),
        ("verdict", run.verdict.value if run.verdict else ""),
        ("reason", run.reason),
    ):
        ET.SubElement(properties, "property", name=key, value=value)
    for case in found:
        element = ET.SubElement(
            suite, "testcase", classname=case.classname, name=case.name, time=f"{case.seconds:.3f}"
        )
        if case.failure is not None:
            failure = ET.SubElement(element, "failure", message=case.failure, type="DrillFailure")
            failure.text = case.failure
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(
    path: Path, *, run: states.Run, events: Sequence[journal.Event], scenario: models.Scenario
) -> Path:
    """Write the JUnit XML of a run to `path` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(run=run, events=events, scenario=scenario), encoding="utf-8")
    return path
