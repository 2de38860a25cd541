"""Guardrails refuse at plan time via `Engine.run`: exit 3, ABORTED, rule named, nothing touched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import engine, journal, planning, states
from sandbox import stack
from sandbox.kubernetes import resources
from tests.engine_runs import support


def _assert_refused(
    world: stack.Sandbox, store: journal.Journal, drill: planning.DrillInput, *, rule: str
) -> states.Run:
    assert world.kube is not None
    writes, aws_before = world.kube.mutating_request_count, support.aws_snapshot(world)

    outcome = support.make_engine(store, drill).run(drill)

    assert outcome.exit_code == engine.ExitCode.INVALID == 3
    assert outcome.run.state is states.RunState.ABORTED
    assert f"{rule}:" in outcome.run.reason, outcome.run.reason
    assert outcome.run.record.refused is True
    assert store.entries(outcome.run.id) == []
    assert store.held_targets(outcome.run.id) == []
    refusals = [e for e in store.events(outcome.run.id, kind="guardrail") if not e.data["ok"]]
    assert [e.data["rule"] for e in refusals] == [rule] * len(refusals) and refusals
    assert world.kube.mutating_request_count == writes
    assert support.aws_snapshot(world) == aws_before
    return outcome.run


def test_an_environment_the_scenario_does_not_allow_is_refused(
    shared_world: stack.Sandbox, store: journal.Journal, tmp_path: Path
) -> None:
    def rename(doc: dict[str, Any]) -> None:
        doc["metadata"]["name"] = "qa"

    env = support.environment_variant(shared_world, tmp_path / "qa.yaml", rename)
    drill = support.bind(shared_world, "az-failure-kubernetes", env=env)

    run = _assert_refused(shared_world, store, drill, rule="environment")

    assert "may run only in sandbox, staging, not in qa" in run.reason


def test_a_selection_beyond_the_blast_radius_is_refused(
    shared_world: stack.Sandbox, store: journal.Journal
) -> None:
    drill = support.bind(shared_world, "az-failure-kubernetes", sets=["maxNodes=1"])

    run = _assert_refused(shared_world, store, drill, rule="blast-radius")

    assert "selects 2 of 6 node(s)" in run.reason and "blastRadius.max 1" in run.reason


@pytest.fixture
def shop_opted_out(shared_world: stack.Sandbox) -> Iterator[None]:
    """The `shop` namespace without its opt-in label (restored afterwards)."""
    assert shared_world.store is not None
    label = {"metadata": {"labels": {"stormdrill.dev/allow-drills": None}}}
    shared_world.store.patch(
        resource=resources.NAMESPACES, namespace=None, name="shop", patch=label
    )
    yield
    back = {"metadata": {"labels": {"stormdrill.dev/allow-drills": "true"}}}
    shared_world.store.patch(resource=resources.NAMESPACES, namespace=None, name="shop", patch=back)


@pytest.mark.usefixtures("shop_opted_out")
def test_a_namespace_without_the_opt_in_label_is_refused(
    shared_world: stack.Sandbox, store: journal.Journal
) -> None:
    drill = support.bind(shared_world, "dependency-outage")

    run = _assert_refused(shared_world, store, drill, rule="namespace-opt-in")

    assert "namespace shop has not opted in" in run.reason


def test_a_namespace_with_the_opt_in_label_is_allowed(
    shared_world: stack.Sandbox, store: journal.Journal
) -> None:
    drill = support.bind(shared_world, "dependency-outage")

    plan = support.make_engine(store, drill).plan(drill)

    opt_in = [v for v in plan.verdicts if v.rule == "namespace-opt-in"]
    assert [(v.ok, v.subject) for v in opt_in] == [(True, "shop")]


def test_an_engaged_kill_switch_in_the_journal_refuses_every_drill(
    shared_world: stack.Sandbox, store: journal.Journal
) -> None:
    store.set_killswitch(engaged=True, by="oncall", reason="incident 42")
    drill = support.bind(shared_world, "az-failure-kubernetes")

    run = _assert_refused(shared_world, store, drill, rule="killswitch")

    assert "engaged by oncall: incident 42" in run.reason


def test_a_kill_switch_file_refuses_every_drill(
    shared_world: stack.Sandbox, store: journal.Journal
) -> None:
    switch = shared_world.info.kill_switch
    switch.write_text("stop\n", encoding="utf-8")
    try:
        drill = support.bind(shared_world, "az-failure-aws")
        run = _assert_refused(shared_world, store, drill, rule="killswitch")
    finally:
        switch.unlink()

    assert f"the kill-switch file {switch} exists" in run.reason


def test_a_protected_environment_without_approvals_is_refused(
    shared_world: stack.Sandbox, store: journal.Journal, tmp_path: Path
) -> None:
    def protect(doc: dict[str, Any]) -> None:
        doc["spec"]["protected"] = True

    env = support.environment_variant(shared_world, tmp_path / "protected.yaml", protect)
    drill = support.bind(shared_world, "az-failure-kubernetes", env=env)

    run = _assert_refused(shared_world, store, drill, rule="approvals")

    assert "is protected and needs 1 approval(s); nobody approved" in run.reason


def test_a_protected_environment_with_an_approval_may_run(
    shared_world: stack.Sandbox, store: journal.Journal, tmp_path: Path
) -> None:
    def protect(doc: dict[str, Any]) -> None:
        doc["spec"]["protected"] = True

    env = support.environment_variant(shared_world, tmp_path / "protected.yaml", protect)
    drill = support.bind(shared_world, "az-failure-kubernetes", env=env, approvals=["bob"])

    plan = support.make_engine(store, drill).plan(drill)

    assert not plan.refused, [str(v) for v in plan.refusals]


def test_a_drill_outside_its_time_windows_is_refused(
    shared_world: stack.Sandbox, store: journal.Journal, tmp_path: Path
) -> None:
    opens = datetime.now(UTC) + timedelta(hours=12)

    def window(doc: dict[str, Any]) -> None:
        doc["spec"]["guardrails"]["windows"] = [
            {
                "start": opens.strftime("%H:%M"),
                "end": (opens + timedelta(minutes=1)).strftime("%H:%M"),
                "timezone": "UTC",
            }
        ]

    path = support.scenario_variant("az-failure-kubernetes", tmp_path / "windowed.yaml", window)
    drill = support.bind(shared_world, str(path))

    run = _assert_refused(shared_world, store, drill, rule="window")

    assert "is outside every window of the scenario" in run.reason


def test_a_drill_overlapping_another_run_on_the_same_targets_is_refused(
    shared_world: stack.Sandbox, store: journal.Journal
) -> None:
    drill = support.bind(shared_world, "az-power-loss-kubernetes")
    keys = support.make_engine(store, drill).plan(drill).target_keys()
    other = states.new_run(
        id=states.RunId("other-run"),
        scenario="az-failure-kubernetes",
        environment="sandbox",
        environment_source=str(shared_world.info.environment),
        owner=states.Owner.current(),
        at=datetime.now(UTC),
    )
    store.create_run(other)
    assert store.acquire_targets(other.id, keys) == []

    run = _assert_refused(shared_world, store, drill, rule="overlap")

    assert "run other-run is drilling 2 of the same target(s)" in run.reason
    assert store.held_targets(other.id) == keys
