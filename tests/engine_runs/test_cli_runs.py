"""`stormdrill run` end to end: every exit code, JUnit XML, leftovers on stderr, no tracebacks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from typer import testing

from drills import cli
from orchestrator import engine, journal, states
from sandbox import aws, stack
from sandbox.kubernetes import resources
from tests.engine_runs import support

_S = states.RunState


def _run(
    world: stack.Sandbox, db_url: str, scenario: str, *extra: str, sets: tuple[str, ...] = ()
) -> testing.Result:
    args = ["run", scenario, "--env", str(world.info.environment), "--yes", *extra]
    for pair in sets:
        args += ["--set", pair]
    return testing.CliRunner().invoke(cli.app, args, env=support.cli_env(db_url))


def _newest_run(db_url: str) -> states.Run:
    with journal.open_store(db_url) as store:
        return store.list_runs(limit=1)[0]


def _junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return suites[0]


def _cases(suite: ET.Element) -> dict[str, list[ET.Element]]:
    grouped: dict[str, list[ET.Element]] = {}
    for case in suite.findall("testcase"):
        grouped.setdefault(case.get("classname", "").rsplit(".", 1)[-1], []).append(case)
    return grouped


def test_a_held_run_exits_0_and_its_junit_has_a_passing_case_per_step_and_probe_check(
    world: stack.Sandbox, db_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "reports" / "junit.xml"

    result = _run(
        world, db_url, "az-failure-kubernetes", "--junit", str(report), sets=support.FAST_SOAK
    )

    assert result.exit_code == engine.ExitCode.HELD == 0, result.output
    assert "COMPLETED verdict=held" in result.stdout
    suite = _junit(report)
    cases = _cases(suite)
    drill = support.bind(world, "az-failure-kubernetes")
    assert [c.get("name") for c in cases["steps"]] == [s.name for s in drill.scenario.spec.steps]
    run = _newest_run(db_url)
    with journal.open_store(db_url) as store:
        checks = store.events(run.id, kind="probe")
    checked = {f"{e.data['probe']} [{e.data['phase']}]" for e in checks}
    assert sorted(c.get("name", "") for c in cases["probes"]) == sorted(checked)
    assert {"checkout-healthy [before]", "web-healthy [during]"} <= checked
    assert [c.get("name") for c in cases["rollback"]] == ["rollback"]
    assert suite.get("failures") == "0" and suite.findall(".//failure") == []
    assert int(suite.get("tests", "0")) == len(suite.findall("testcase"))


def test_a_probe_abort_exits_2_and_its_junit_failures_say_what_breached(
    world: stack.Sandbox, db_url: str, tmp_path: Path
) -> None:
    support.pin_checkout(world, zone="us-east-1a")
    report = tmp_path / "junit.xml"

    result = _run(
        world, db_url, "az-power-loss-kubernetes", "--junit", str(report), sets=("zone=us-east-1a",)
    )

    assert result.exit_code == engine.ExitCode.ABORTED == 2, result.output
    assert _newest_run(db_url).state is _S.ABORTED
    suite = _junit(report)
    failures = [f.get("message", "") for f in suite.iter("failure")]
    assert int(suite.get("failures", "0")) == len(failures) > 0
    [breach] = [m for m in failures if "checkout-healthy [during]" in m]
    assert breach.startswith("hypothesis breached: checkout-healthy [during]: ")
    assert "checkout/healthz: status 503, expected 200" in breach
    [unreached] = [c for c in _cases(suite)["steps"] if c.get("name") == "checkout-survived"]
    message = unreached.find("failure")
    assert message is not None
    assert "not reached" in message.get("message", "")
    assert "probe checkout-healthy failed 4 times in a row" in message.get("message", "")


def test_a_drill_failed_by_its_provider_exits_1_with_everything_reverted(
    world: stack.Sandbox, db_url: str
) -> None:
    assert world.store is not None
    zone = support.pod_zones(world, "checkout")[0]
    world.store.patch(
        resource=resources.POD_DISRUPTION_BUDGETS,
        namespace="shop",
        name="checkout",
        patch={"spec": {"minAvailable": 3}},
    )

    result = _run(
        world, db_url, "az-failure-kubernetes", sets=(f"zone={zone}", "drainTimeout=30s", "soak=1m")
    )

    assert result.exit_code == engine.ExitCode.DEVIATED == 1, result.output
    assert "FAILED" in result.stdout
    assert _newest_run(db_url).state is _S.FAILED
    assert support.kube_markers(world) == []
    assert all(
        not n.get("spec", {}).get("unschedulable") for n in support.objects(world, resources.NODES)
    )


def test_a_refused_drill_exits_3_and_says_which_guardrail(
    world: stack.Sandbox, db_url: str
) -> None:
    result = _run(world, db_url, "az-failure-kubernetes", sets=("maxNodes=1",))

    assert result.exit_code == engine.ExitCode.INVALID == 3, result.output
    assert "refused by guardrails: blast-radius" in result.stdout
    assert _newest_run(db_url).state is _S.ABORTED


def test_a_rollback_that_cannot_finish_exits_4_and_lists_the_leftovers_on_stderr(
    world: stack.Sandbox, db_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"

    def delete_the_database() -> None:
        with journal.open_store(db_url) as store:
            support.wait_for(support.step_started(store, "hold-zone-down"), what="the soak")
        rds = aws.session().client("rds", endpoint_url=world.info.aws_endpoint_url)
        rds.delete_db_instance(DBInstanceIdentifier=aws.RDS_ID, SkipFinalSnapshot=True)

    side = support.in_background(delete_the_database)
    result = _run(world, db_url, "az-failure-aws", "--junit", str(report), sets=("soak=2m",))
    side.join(timeout=10)

    assert result.exit_code == engine.ExitCode.ROLLBACK_FAILED == 4, result.output
    run = _newest_run(db_url)
    assert run.state is _S.ROLLBACK_FAILED
    assert run.verdict is None, "a run whose faults may remain is never called held"
    assert "ROLLBACK_FAILED" in result.stdout
    assert "LEFTOVER:" in result.stderr and "aws.rds.failover" in result.stderr
    assert "Traceback" not in result.output
    assert run.record.leftovers
    [rollback_case] = _cases(_junit(report))["rollback"]
    failure = rollback_case.find("failure")
    assert failure is not None and "faults may remain" in failure.get("message", "")
