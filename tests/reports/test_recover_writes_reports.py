"""`stormdrill recover` writes the reports of each run it finishes, with its recorded CMDB."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from typer.testing import CliRunner

from drills import cli
from orchestrator import mutations, records, states
from reports import linting
from tests.reports import factories

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: staging
spec:
  cmdb:
    backstage: [{catalog}]
"""


def _crashed_run(tmp_path: Path, *, environment_source: str) -> states.RunId:
    """An INJECTING run whose orchestrator (on another host) went silent long ago."""
    store = factories.open_store(tmp_path)
    rid = states.RunId("run-crashed")
    run = states.new_run(
        id=rid,
        scenario="key-person-loss",
        environment="staging",
        environment_source=environment_source,
        owner=states.Owner(host="gone-host", pid=1, token="t"),
        at=factories.T0,
        record=records.RunRecord(scenario_source=str(tmp_path / "gone.yaml"), time_scale=0.02),
    )
    store.create_run(run)
    store.append_event(rid, kind="state", message="injecting", data={"state": "injecting"})
    store.append_event(
        rid,
        kind="finding",
        message="payments-db: on-call rotation payments layer primary keeps 1 responder(s)",
        data={
            "step": "analyse-absence",
            "rule": "on-call-coverage",
            "severity": "medium",
            "service": "resource:default/payments-db",
            "suggestion": "add a responder to layer primary of rotation payments, or an"
            " override covering the absence",
        },
    )
    entry = store.record_intent(
        rid,
        mutations.PlannedMutation(
            step="mark-unavailable",
            target=mutations.TargetRef(provider="people", kind="person", name="user:default/alice"),
            action="people.mark-unavailable",
            params={"reason": "drill"},
            pre_state={"available": True},
            undo=mutations.UndoToken(action="people.mark-unavailable", data={}),
        ),
    )
    store.mark_applied(entry.seq)
    injecting = dataclasses.replace(run, state=states.RunState.INJECTING)
    store.save_run(injecting, expected_state=states.RunState.PENDING)
    store.close()
    return rid


def test_recover_writes_the_reports_of_each_run_it_finishes(tmp_path: Path) -> None:
    catalog = factories.write_catalog(tmp_path / "cmdb", factories.KEY_PERSON_CATALOG)
    environment = tmp_path / "staging.environment.yaml"
    environment.write_text(
        ENVIRONMENT.format(catalog=tmp_path / "cmdb" / "catalog-info.yaml"), encoding="utf-8"
    )
    rid = _crashed_run(tmp_path, environment_source=str(environment))
    reports = tmp_path / "reports"

    result = CliRunner().invoke(
        cli.app,
        ["recover"],
        env={
            "STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path / 'journal.db'}",
            "STORMDRILL_DATA_DIR": str(tmp_path / "data"),
            "STORMDRILL_REPORTS_DIR": str(reports),
            "STORMDRILL_CMDB": "",
        },
    )

    assert result.exit_code == 0, result.output
    assert "run run-crashed: injecting -> failed" in result.output
    folder = reports / rid
    assert f"post-mortem: {folder / 'postmortem.md'}" in result.output.replace("\n", "")
    body = json.loads((folder / "postmortem.json").read_text())
    assert body["metadata"]["state"] == "failed"
    flagged = next(row for row in body["impact"] if row["name"] == "payments-db")
    assert flagged["owner"] == "team-data"  # from the CMDB the recorded Environment names
    assert any(a["owner"] == "team-data" for a in body["action_items"])
    assert (folder / "postmortem.html").is_file()
    markdown = (folder / "postmortem.md").read_text()
    assert linting.lint(markdown, people=linting.people_names(catalog)) == []


def test_recover_of_a_run_whose_environment_is_gone_writes_no_reports_yet(
    tmp_path: Path,
) -> None:
    rid = _crashed_run(tmp_path, environment_source=str(tmp_path / "missing.yaml"))
    reports = tmp_path / "reports"

    result = CliRunner().invoke(
        cli.app,
        ["recover"],
        env={
            "STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path / 'journal.db'}",
            "STORMDRILL_DATA_DIR": str(tmp_path / "data"),
            "STORMDRILL_REPORTS_DIR": str(reports),
        },
    )

    assert result.exit_code == 4, result.output
    assert "cannot load environment" in result.output
    assert not (reports / rid).exists()
