"""Coverage a planner can believe, over real runs in the sandbox.

- A drill that never lists `services:` is credited for the services its targets reach
  (a card-vendor outage for checkout: the payments pods, the payments security group and
  the vendor's CIDR), the same set its post-mortem's impact table shows; `plan` says
  which cells it will count for, and warns when a scenario reaches no CMDB service.
- A run refused by guardrails, one that failed on an infrastructure error, and one whose
  orchestrator was killed and then recovered are inconclusive, never FAILED.
- The post-mortem and the JUnit XML quote the same probe sample count.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer import testing

from drills import cli, settings
from drills.service import catalogs
from orchestrator import journal, states
from orchestrator.cmdb import models as cmdb_models
from reports import coverage, evidence, impact, policy, postmortem, run_facts, writing
from sandbox import stack
from scenarios import library
from tests.engine_runs import refusals, support

VENDOR_MODE = "third-party:payprovider"
REACHED = {
    "component:default/payments",
    "resource:default/payprovider",
    "component:default/checkout",
    "component:default/web",
}
"""What cutting the card vendor for checkout reaches: the pods' and the security group's
service (payments), the vendor at the CIDR, and everything depending on payments."""
FAST = ("outage=1m",)
"""A one-minute vendor outage is 1.2 s at the sandbox's time scale 0.02."""


def _without_services(name: str, path: Path, *, rename: str) -> Path:
    """The bundled scenario `name` as a new file without `spec.services`, renamed."""
    document = yaml.safe_load(library.find(name).read_text(encoding="utf-8"))
    assert document["spec"].pop("services"), f"{name} lists services: the test needs it to"
    document["metadata"]["name"] = rename
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path_factory.mktemp("coverage-sandbox")) as sandbox:
        support.settle(sandbox)
        yield sandbox


@pytest.fixture(scope="module")
def card_vendor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new scenario cutting checkout's card vendor, without `services:`."""
    folder = tmp_path_factory.mktemp("scenarios")
    return _without_services(
        "third-party-outage", folder / "card-vendor-outage.yaml", rename="card-vendor-outage"
    )


def _catalog(world: stack.Sandbox) -> cmdb_models.Catalog:
    drill = support.bind(world, "third-party-outage")
    catalog = catalogs.catalog_for(settings.Settings.from_env({}), drill.environment, ())
    assert catalog is not None
    return catalog


def _run_and_report(
    world: stack.Sandbox, store: journal.Journal, target: str, *, sets: tuple[str, ...] = FAST
) -> tuple[states.Run, writing.Written]:
    drill = support.bind(world, target, sets=sets)
    outcome = support.make_engine(store, drill).run(drill)
    run = store.get_run(outcome.run.id)
    reports = Path(store.url.removeprefix("sqlite:///")).parent / "reports"
    return run, writing.write_for_run(run, store, _catalog(world), reports)


def _matrix(world: stack.Sandbox, store: journal.Journal) -> coverage.Matrix:
    catalog = _catalog(world)
    return coverage.build_matrix(
        catalog=catalog,
        rules=policy.load(),
        runs=coverage.load_summaries(store, catalog=catalog),
        now=dt.datetime.now(dt.UTC),
    )


def _cell(matrix: coverage.Matrix, ref: str, mode: str) -> coverage.Cell:
    row = next(r for r in matrix.rows if r.ref == ref)
    return next(c for c in row.cells if c.mode == mode)


@pytest.fixture(scope="module")
def deviated(
    world: stack.Sandbox, card_vendor: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[journal.Journal, states.Run, writing.Written]]:
    """One real run of the card-vendor outage (web falls over with it: DEVIATED)."""
    folder = tmp_path_factory.mktemp("deviated")
    with journal.open_store(f"sqlite:///{folder / 'stormdrill.db'}") as store:
        run, written = _run_and_report(world, store, str(card_vendor))
        assert (run.state, run.verdict) == (states.RunState.COMPLETED, states.Verdict.DEVIATED)
        yield store, run, written


# -- 15: a drill without `services:` counts for what it reached -----------------------------


def test_a_card_vendor_outage_without_services_credits_every_service_it_reached(
    world: stack.Sandbox, deviated: tuple[journal.Journal, states.Run, writing.Written]
) -> None:
    store, run, _ = deviated

    matrix = _matrix(world, store)

    for ref in sorted(REACHED):
        cell = _cell(matrix, ref, VENDOR_MODE)
        assert cell.state is coverage.CellState.FAILED, (ref, cell.state, cell.why)
        assert cell.last_run == run.id and cell.scenarios == ("card-vendor-outage",)
    for untouched in ("component:default/inventory", "resource:default/payments-db"):
        assert _cell(matrix, untouched, VENDOR_MODE).state is coverage.CellState.NOT_APPLICABLE


def test_coverage_credits_exactly_the_services_the_post_mortem_impact_table_shows(
    world: stack.Sandbox, deviated: tuple[journal.Journal, states.Run, writing.Written]
) -> None:
    store, run, written = deviated
    catalog = _catalog(world)
    run_evidence = evidence.load(store, run.id)
    report = postmortem.build_postmortem(run_evidence, evidence.scenario_for(run), cmdb=catalog)
    summary = coverage.summarise(run_evidence, failure_mode="third-party", catalog=catalog)

    table = {row.ref for row in report.impact if not row.flagged}
    recorded = {r.ref for r in impact.reached(run, None, None)}
    assert recorded == {row.ref for row in run.record.impact_rows}

    assert summary is not None
    assert table == set(summary.impacted) == recorded == REACHED
    vendor = next(row for row in report.impact if row.name == "payprovider")
    assert vendor.targeted and vendor.path == ["payprovider"]
    body = json.loads(written.json.read_text(encoding="utf-8"))
    assert {row["ref"] for row in body["impact"]} == REACHED


def test_plan_lists_the_coverage_cells_the_drill_will_count_for(
    world: stack.Sandbox, card_vendor: Path, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'stormdrill.db'}"
    result = testing.CliRunner().invoke(
        cli.app,
        ["plan", str(card_vendor), "--env", str(world.info.environment), "--format", "json"],
        env=support.cli_env(db_url),
    )

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    cells = {(c["service"], c["mode"]) for c in body["coverage"]}
    assert {(ref, VENDOR_MODE) for ref in REACHED} == cells
    assert "reaches no CMDB service" not in result.stderr


def test_plan_shows_the_cells_in_its_table_too(
    world: stack.Sandbox, card_vendor: Path, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'stormdrill.db'}"
    result = testing.CliRunner().invoke(
        cli.app,
        ["plan", str(card_vendor), "--env", str(world.info.environment)],
        env=support.cli_env(db_url),
    )

    assert result.exit_code == 0, result.output
    assert "Coverage cells a run will count for" in result.stdout
    assert re.search(r"component:default/checkout\s*│\s*third-party:payprovider", result.stdout)


def test_plan_warns_when_a_scenario_reaches_no_cmdb_service(
    world: stack.Sandbox, tmp_path: Path
) -> None:
    # key-person-loss targets a person: no Kubernetes, AWS or vendor link reaches a service.
    lonely = _without_services(
        "key-person-loss", tmp_path / "lonely.yaml", rename="lonely-key-person"
    )
    db_url = f"sqlite:///{tmp_path / 'stormdrill.db'}"
    result = testing.CliRunner().invoke(
        cli.app,
        ["plan", str(lonely), "--env", str(world.info.environment), "--format", "json"],
        env=support.cli_env(db_url),
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["coverage"] == []
    warning = result.stderr
    assert f"warning: {lonely}: spec.targets:" in warning
    assert "reaches no CMDB service" in warning and "spec.services" in warning


# -- 17: one probe sample count ------------------------------------------------------------


def test_the_post_mortem_and_the_junit_quote_the_same_probe_sample_count(
    deviated: tuple[journal.Journal, states.Run, writing.Written],
) -> None:
    store, run, written = deviated
    markdown = written.markdown.read_text(encoding="utf-8")
    assert written.junit is not None
    suite = ET.parse(written.junit).getroot()
    case = next(c for c in suite.iter("testcase") if c.get("name") == "web-healthy [during]")
    failure = case.find("failure")
    assert failure is not None

    in_report = re.search(r"web-healthy failed (\d+) of (\d+) sample", markdown)
    in_junit = re.search(
        r"web-healthy \[during\]: (\d+) of (\d+) sample", failure.get("message", "")
    )

    assert in_report is not None and in_junit is not None
    assert in_report.groups() == in_junit.groups()
    events = store.events(run.id)
    t0 = run_facts.first_fault_at(run.record, events)
    assert t0 is not None
    during = [
        e
        for e in events
        if e.kind == "probe"
        and e.data.get("probe") == "web-healthy"
        and e.data.get("phase") == "during"
        and e.at >= t0
    ]
    bad = [e for e in during if e.data.get("ok") is False]
    assert in_report.groups() == (str(len(bad)), str(len(during)))
    assert f"in {len(bad)} of {len(during)} sample(s) after the first fault" in markdown


# -- 16: inconclusive runs -----------------------------------------------------------------


def test_a_run_refused_by_guardrails_is_inconclusive_not_failed(
    world: stack.Sandbox, card_vendor: Path, tmp_path: Path
) -> None:
    def rename(doc: dict[str, Any]) -> None:
        doc["metadata"]["name"] = "qa"

    env = support.environment_variant(world, tmp_path / "qa.yaml", rename)
    with journal.open_store(f"sqlite:///{tmp_path / 'stormdrill.db'}") as store:
        drill = support.bind(world, str(card_vendor), sets=FAST, env=env)
        outcome = support.make_engine(store, drill).run(drill)
        assert outcome.run.record.refused is True

        cell = _cell(_matrix(world, store), "component:default/checkout", VENDOR_MODE)

    assert cell.state.value == "INCONCLUSIVE", cell.why  # not FAILED, not NOT_RUN
    assert cell.inconclusive_runs == 1 and cell.last_run == outcome.run.id
    assert "refused" in cell.why


def test_a_run_that_failed_on_an_infrastructure_error_is_inconclusive_not_failed(
    world: stack.Sandbox, card_vendor: Path, tmp_path: Path
) -> None:
    assert world.kube is not None
    refusal = refusals.KubeRefusal(
        method="POST",
        path_prefix="/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies",
        armed=True,
    )
    world.kube.faults.on_request = refusal
    try:
        with journal.open_store(f"sqlite:///{tmp_path / 'stormdrill.db'}") as store:
            run, _ = _run_and_report(world, store, str(card_vendor))
            matrix = _matrix(world, store)
    finally:
        world.kube.faults.on_request = None

    assert refusal.refused >= 1
    assert run.state is states.RunState.FAILED and run.verdict is not states.Verdict.DEVIATED
    cell = _cell(matrix, "component:default/checkout", VENDOR_MODE)
    assert cell.state.value == "INCONCLUSIVE", cell.why  # not FAILED, not NOT_RUN
    assert "failed on an error" in cell.why
    assert matrix.overall.score is not None
    failed = [c for row in matrix.rows for c in row.cells if c.state is coverage.CellState.FAILED]
    assert failed == []


def test_a_crashed_then_recovered_run_is_inconclusive_not_failed(
    world: stack.Sandbox, card_vendor: Path, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'stormdrill.db'}"
    env = {**os.environ, **support.cli_env(db_url)}
    command = [sys.executable, "-m", "drills.cli", "run", str(card_vendor), "--yes"]
    command += ["--env", str(world.info.environment), "--set", "outage=30m"]
    drill = subprocess.Popen(  # a long outage, killed while the fault is in place
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with journal.open_store(db_url) as store:

            def fault_applied() -> bool:
                runs = store.list_runs()
                return bool(runs) and any(
                    e.data.get("state") == "applied" for e in store.events(runs[0].id)
                )

            support.wait_for(fault_applied, timeout_s=60, what="the drill's first fault")
    finally:
        os.kill(drill.pid, signal.SIGKILL)
        drill.wait(timeout=30)

    recovered = testing.CliRunner().invoke(cli.app, ["recover"], env=support.cli_env(db_url))

    assert recovered.exit_code == 0, recovered.output
    assert "crashed -> failed" in recovered.stdout or "-> failed" in recovered.stdout
    with journal.open_store(db_url) as store:
        [run] = store.list_runs()
        assert run.state is states.RunState.FAILED
        seen = [e.data.get("state") for e in store.events(run.id, kind="state")]
        assert "crashed" in seen
        matrix = _matrix(world, store)
    cell = _cell(matrix, "component:default/checkout", VENDOR_MODE)
    assert cell.state.value == "INCONCLUSIVE", cell.why  # not FAILED, not NOT_RUN
    assert "crashed" in cell.why
    assert support.kube_markers(world) == []
