"""`Engine.plan` and `stormdrill plan` only read: the sandbox and the journal stay as they were."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer import testing

from drills import cli
from orchestrator import journal
from sandbox import stack
from tests.engine_runs import support

PLANNABLE = [name for name in support.bundled_scenarios() if name != "key-person-loss"]


def _mutations(world: stack.Sandbox) -> int:
    assert world.kube is not None
    return world.kube.mutating_request_count


@pytest.mark.parametrize("scenario", PLANNABLE)
def test_engine_plan_and_cli_plan_change_nothing_and_list_what_a_person_needs(
    shared_world: stack.Sandbox, store: journal.Journal, db_url: str, scenario: str
) -> None:
    drill = support.bind(shared_world, scenario)
    eng = support.make_engine(store, drill)
    writes, aws_before = _mutations(shared_world), support.aws_snapshot(shared_world)

    plan = eng.plan(drill)

    assert _mutations(shared_world) == writes
    assert support.aws_snapshot(shared_world) == aws_before
    assert store.list_runs() == []
    assert not plan.refused, [str(v) for v in plan.refusals]
    assert set(plan.selections) == set(drill.scenario.spec.targets)
    assert all(sel.count > 0 for sel in plan.selections.values())
    planned = [m for step in plan.steps for m in step.mutations]
    assert planned, "a plan of a fault-injecting scenario plans mutations"
    assert plan.rollback_plan() == list(reversed(planned))

    result = testing.CliRunner().invoke(
        cli.app,
        ["plan", scenario, "--env", str(shared_world.info.environment), "--format", "json"],
        env=support.cli_env(db_url),
    )

    assert result.exit_code == 0, result.output
    assert _mutations(shared_world) == writes
    assert support.aws_snapshot(shared_world) == aws_before
    body: dict[str, Any] = json.loads(result.stdout)
    assert body["scenario"] == scenario
    assert body["environment"] == "sandbox"
    assert body["refused"] is False
    assert set(body["targets"]) == set(drill.scenario.spec.targets)
    for name, target in body["targets"].items():
        declared = drill.scenario.spec.targets[name].blast_radius
        assert target["count"] == len(target["refs"]) > 0
        assert target["population"] >= target["count"]
        assert target["limit"] == (str(declared.max) if declared is not None else None)
    assert body["services"], "the sandbox's CMDB maps every bundled scenario to services"
    assert all({"ref", "tier", "distance"} <= set(s) for s in body["services"])
    rules = {v["rule"] for v in body["guardrails"]}
    assert {"environment", "approvals", "killswitch", "blast-radius", "window"} <= rules
    assert all(v["ok"] for v in body["guardrails"])
    assert body["rollback"], "the rollback plan lists every planned undo"
    assert all({"step", "action", "target"} <= set(u) for u in body["rollback"])
    assert store.list_runs() == []


def test_cli_plan_table_exits_0_and_shows_the_rollback_plan(
    shared_world: stack.Sandbox, db_url: str
) -> None:
    writes = _mutations(shared_world)

    result = testing.CliRunner().invoke(
        cli.app,
        ["plan", "az-failure-kubernetes", "--env", str(shared_world.info.environment)],
        env=support.cli_env(db_url),
    )

    assert result.exit_code == 0, result.output
    assert "Rollback plan (4 undo(s), newest first)" in result.stdout
    assert "May run." in result.stdout
    assert _mutations(shared_world) == writes
