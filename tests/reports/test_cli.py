"""`stormdrill report|lint-report|coverage` through CliRunner, and the per-run hook."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from typer.testing import CliRunner

from drills.commands import reporting
from reports import evidence, writing
from tests.reports import factories


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    store = factories.open_store(tmp_path)
    factories.record_run(store, failure_mode="availability-zone")
    store.close()
    factories.write_catalog(tmp_path / "cmdb")
    return {
        "STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path / 'journal.db'}",
        "STORMDRILL_CMDB": str(tmp_path / "cmdb"),
        "STORMDRILL_DATA_DIR": str(tmp_path / "data"),
    }


def test_report_renders_json_with_the_achieved_rto(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        reporting.app, ["report", "run-golden", "--format", "json"], env=env
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["achieved_rto"] == 1.5 and body["metadata"]["run_id"] == "run-golden"


def test_report_writes_html_to_a_file(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        reporting.app, ["report", "run-golden", "--format", "html", "-o", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<svg") >= 1 and 'data-kind="phase"' in text  # the timeline picture


def test_report_as_yaml_is_the_json_post_mortem(env: dict[str, str]) -> None:
    runner = CliRunner()
    as_json = runner.invoke(reporting.app, ["report", "run-golden", "--format", "json"], env=env)
    as_yaml = runner.invoke(reporting.app, ["report", "run-golden", "--format", "yaml"], env=env)

    assert as_yaml.exit_code == 0, as_yaml.output
    body = yaml.safe_load(as_yaml.stdout)
    assert body["metadata"]["run_id"] == "run-golden"
    assert body == json.loads(as_json.stdout)


def test_report_as_junit_is_the_runs_xml(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario" / "zone-loss.yaml"
    factories.scenario(scenario_file.parent)
    store = factories.open_store(tmp_path)
    factories.record_run(store, scenario_source=str(scenario_file))
    store.close()
    env = {"STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path / 'journal.db'}"}

    result = CliRunner().invoke(
        reporting.app, ["report", "run-golden", "--format", "junit"], env=env
    )

    assert result.exit_code == 0, result.output
    suites = ElementTree.fromstring(result.stdout)
    assert suites.tag == "testsuites" and suites.find("testsuite/testcase") is not None


def test_report_as_junit_of_a_run_whose_scenario_is_gone_exits_3_saying_so(
    env: dict[str, str],
) -> None:
    result = CliRunner().invoke(
        reporting.app, ["report", "run-golden", "--format", "junit"], env=env
    )

    assert result.exit_code == 3
    assert "cannot be read, so it has no JUnit report" in result.stderr


def test_report_of_an_unknown_run_exits_3_naming_it(env: dict[str, str]) -> None:
    result = CliRunner().invoke(reporting.app, ["report", "nope"], env=env)
    assert result.exit_code == 3 and "nope" in result.output


def test_lint_report_exits_1_on_findings_and_0_when_clean(
    env: dict[str, str], tmp_path: Path
) -> None:
    runner = CliRunner()
    generated = tmp_path / "pm.md"
    runner.invoke(reporting.app, ["report", "run-golden", "-o", str(generated)], env=env)
    clean = runner.invoke(reporting.app, ["lint-report", str(generated)], env=env)
    assert clean.exit_code == 0, clean.output
    edited = tmp_path / "edited.md"
    edited.write_text(
        generated.read_text().replace(
            "## What went wrong\n", "## What went wrong\n\n- ann forgot the runbook\n"
        )
    )
    found = runner.invoke(reporting.app, ["lint-report", str(edited)], env=env)
    assert found.exit_code == 1
    assert "edited.md:" in found.stdout and "person-blame" in found.stdout


def test_coverage_prints_every_format(env: dict[str, str]) -> None:
    runner = CliRunner()
    for fmt in ("table", "md", "html", "json", "yaml", "csv"):
        result = runner.invoke(reporting.app, ["coverage", "--format", fmt], env=env)
        assert result.exit_code == 0, (fmt, result.output)
    body = json.loads(
        runner.invoke(reporting.app, ["coverage", "--format", "json"], env=env).stdout
    )
    web = next(s for s in body["services"] if s["ref"] == "component:default/web")
    az = next(c for c in web["cells"] if c["mode"] == "availability-zone")
    assert az["state"] == "FAILED" and az["last_run"] == "run-golden"
    as_yaml = yaml.safe_load(
        runner.invoke(reporting.app, ["coverage", "--format", "yaml"], env=env).stdout
    )
    assert as_yaml == body | {"generated_at": as_yaml["generated_at"]}
    html = runner.invoke(reporting.app, ["coverage", "--format", "html"], env=env).stdout
    markdown = runner.invoke(reporting.app, ["coverage", "--format", "md"], env=env).stdout
    assert "<svg" in html and 'id="trend-title"' in html  # the weekly trend picture
    assert "<svg" not in markdown


def test_coverage_with_a_bad_policy_exits_3(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("kind: Nope\n")
    result = CliRunner().invoke(reporting.app, ["coverage", "--policy", str(bad)], env=env)
    assert result.exit_code == 3 and "p.yaml" in result.output


def test_write_for_run_writes_every_report_once_and_records_coverage_facts(tmp_path: Path) -> None:
    store = factories.open_store(tmp_path)
    run = factories.record_run(store, scenario_source=str(tmp_path / "missing.yaml"))
    catalog = factories.write_catalog(tmp_path / "cmdb")
    written = writing.write_for_run(run, store, catalog, tmp_path / "reports")
    again = writing.write_for_run(run, store, catalog, tmp_path / "reports")
    assert written.folder == tmp_path / "reports" / "run-golden"
    assert written.markdown.exists() and written.html.exists() and written.json.exists()
    assert written.findings == () and again.findings == ()
    facts = store.events(run.id, kind=evidence.FACTS_KIND)
    assert len(facts) == 1
    assert str(facts[0].data["fingerprints"]).startswith("{'component:default/web': 'sha256:")
