"""JUnit XML: the shape CI tools read (GitHub, GitLab, Jenkins), and what a failure says.

No XSD validator is installed, so the shape is checked by hand against the JUnit schema
CI tools accept: `testsuites` > `testsuite` (name, tests, failures, errors, time) >
`testcase` (classname, name, time) with optional `failure` (message, type) and
`system-out`; counts match the children.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from reports import evidence, junit
from tests.reports import factories

SUITE_ATTRS = {"name", "tests", "failures", "errors", "time"}
CASE_ATTRS = {"classname", "name", "time"}
CASE_CHILDREN = {"failure", "error", "skipped", "system-out", "system-err"}


def assert_junit_shape(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1, "one testsuite per run"
    for suite in suites:
        assert set(suite.attrib) >= SUITE_ATTRS
        cases = suite.findall("testcase")
        assert int(suite.attrib["tests"]) == len(cases)
        assert int(suite.attrib["failures"]) == sum(
            1 for c in cases if c.find("failure") is not None
        )
        float(suite.attrib["time"])
        for child in suite:
            assert child.tag in {"properties", "testcase", "system-out", "system-err"}
        for case in cases:
            assert set(case.attrib) >= CASE_ATTRS, case.attrib
            float(case.attrib["time"])
            assert float(case.attrib["time"]) >= 0
            for child in case:
                assert child.tag in CASE_CHILDREN
                if child.tag == "failure":
                    assert child.attrib.get("message") and child.attrib.get("type")
    return root


def _xml(tmp_path: Path, **kwargs: object) -> str:
    store = factories.open_store(tmp_path)
    run = factories.record_run(store, **kwargs)  # type: ignore[arg-type]
    scenario = factories.scenario(tmp_path / "scenario")
    loaded = evidence.load(store, run.id)
    return junit.render(run=loaded.run, events=loaded.events, scenario=scenario)


def test_deviated_run_has_the_junit_shape_and_says_what_breached(tmp_path: Path) -> None:
    root = assert_junit_shape(_xml(tmp_path))
    failures = {
        case.attrib["name"]: case.find("failure").attrib["message"]  # type: ignore[union-attr]
        for case in root.iter("testcase")
        if case.find("failure") is not None
    }
    assert (
        "hypothesis breached: web-healthy [during]: 2 of 2 sample(s) unhealthy"
        in failures["web-healthy [during]"]
    )
    assert "abort-when" in failures
    assert "web-healthy [before]" not in failures and "rollback" not in failures


def test_held_run_has_no_failures(tmp_path: Path) -> None:
    root = assert_junit_shape(_xml(tmp_path, deviate=False))
    assert root.find("testsuite").attrib["failures"] == "0"  # type: ignore[union-attr]
    names = [c.attrib["name"] for c in root.iter("testcase")]
    assert (
        names[:3] == ["baseline", "taint-zone", "hold"] and "rto" in names and "rollback" in names
    )


def test_missed_objective_and_failed_rollback_are_failures(tmp_path: Path) -> None:
    root = assert_junit_shape(_xml(tmp_path, revert_fails=True, rto_s=90.0))
    messages = [f.attrib["message"] for f in root.iter("failure")]
    assert any(
        m.startswith("recovery objective missed: achieved RTO 90.0 s > target 60.0 s")
        for m in messages
    )
    assert any(m.startswith("faults may remain") for m in messages)


def test_failure_messages_are_redacted(tmp_path: Path) -> None:
    text = _xml(tmp_path)
    assert "abc123secret" not in text and "token=***" in text
