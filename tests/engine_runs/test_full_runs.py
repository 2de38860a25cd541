"""Whole drills against the sandbox: a clean run, a probe abort, a deadline, a provider error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator import engine, journal, mutations, states
from sandbox import stack
from sandbox.kubernetes import resources
from tests.engine_runs import support

_S = states.RunState


def _assert_reverted_newest_first(store: journal.Journal, run_id: states.RunId) -> None:
    """Every entry went intended → applied → reverted; per target, newest reverted first."""
    entries = store.entries(run_id)
    assert entries, "the run journaled mutations"
    assert {e.state for e in entries} == {mutations.EntryState.REVERTED}
    histories = support.entry_histories(store, run_id)
    for entry in entries:
        assert histories[entry.seq] == ["intended", "applied", "reverted"], entry
    order = support.revert_order_per_target(store, run_id)
    assert sorted(seq for seqs in order.values() for seq in seqs) == [e.seq for e in entries]
    for target, seqs in order.items():
        assert seqs == sorted(seqs, reverse=True), f"{target} reverted oldest first: {seqs}"
    events = store.events(run_id)
    rollback_at = next(e.seq for e in events if e.data.get("state") == "rolling_back")
    last_apply = max(e.seq for e in events if e.data.get("state") == "applied")
    first_revert = min(e.seq for e in events if e.kind == "revert")
    assert last_apply < rollback_at < first_revert


def test_az_failure_kubernetes_completes_holds_and_leaves_every_node_as_it_was(
    world: stack.Sandbox, store: journal.Journal
) -> None:
    before = support.kube_snapshot(world)
    wanted = {name: replicas for name, (replicas, _) in support.deployments_ready(world).items()}
    drill = support.bind(world, "az-failure-kubernetes", sets=support.FAST_SOAK)

    outcome = support.make_engine(store, drill).run(drill)

    assert (outcome.run.state, outcome.run.verdict) == (_S.COMPLETED, states.Verdict.HELD)
    assert outcome.exit_code == engine.ExitCode.HELD == 0
    assert outcome.leftovers == ()
    assert support.kube_snapshot(world) == before
    assert support.kube_markers(world) == []
    support.wait_for(
        lambda: all(want == ready for want, ready in support.deployments_ready(world).values()),
        what="every deployment back at full replicas",
    )
    assert {n: want for n, (want, _) in support.deployments_ready(world).items()} == wanted
    _assert_reverted_newest_first(store, outcome.run.id)
    states_seen = [e.data["state"] for e in store.events(outcome.run.id, kind="state")]
    assert states_seen == [
        "planning",
        "preflight",
        "injecting",
        "observing",
        "rolling_back",
        "verifying",
        "completed",
    ]
    assert store.held_targets(outcome.run.id) == []
    record = store.get_run(outcome.run.id).record
    assert record.planned_mutations == 4
    assert record.objectives is not None and record.objectives.rto_met is True


def test_a_probe_breach_mid_drill_aborts_and_reverts_everything_newest_first(
    world: stack.Sandbox, store: journal.Journal
) -> None:
    support.pin_checkout(world, zone="us-east-1a")
    before = support.kube_snapshot(world)
    drill = support.bind(world, "az-power-loss-kubernetes", sets=["zone=us-east-1a"])

    outcome = support.make_engine(store, drill).run(drill)

    assert (outcome.run.state, outcome.run.verdict) == (_S.ABORTED, states.Verdict.DEVIATED)
    assert outcome.exit_code == engine.ExitCode.ABORTED == 2
    assert "probe checkout-healthy failed" in (outcome.run.abort_reason or "")
    assert all(taints == [] for taints in support.node_taints(world).values())
    assert support.kube_snapshot(world) == before
    assert support.kube_markers(world) == []
    _assert_reverted_newest_first(store, outcome.run.id)
    steps = [e.data["step"] for e in store.events(outcome.run.id, kind="step")]
    assert "checkout-survived" not in steps, "no step runs after the abort"


def _short_deadline(doc: dict[str, Any]) -> None:
    doc["spec"]["guardrails"]["maxDuration"] = "2m"
    doc["spec"]["parameters"]["soak"]["default"] = "1h"


def test_exceeding_max_duration_aborts_the_drill_and_rolls_it_back(
    world: stack.Sandbox, store: journal.Journal, tmp_path: Path
) -> None:
    path = support.scenario_variant(
        "az-failure-kubernetes", tmp_path / "slow.yaml", _short_deadline
    )
    before = support.kube_snapshot(world)
    drill = support.bind(world, str(path))

    outcome = support.make_engine(store, drill).run(drill)

    assert outcome.run.state is _S.ABORTED
    assert outcome.exit_code == engine.ExitCode.ABORTED
    assert "exceeded maxDuration 2m" in (outcome.run.abort_reason or "")
    guardrail = [e for e in store.events(outcome.run.id, kind="guardrail") if not e.data["ok"]]
    assert [e.data["rule"] for e in guardrail] == ["max-duration"]
    assert support.kube_snapshot(world) == before
    _assert_reverted_newest_first(store, outcome.run.id)


def _checkout_zone(world: stack.Sandbox) -> str:
    zones = support.pod_zones(world, "checkout")
    assert zones, "checkout runs somewhere"
    return zones[0]


def test_a_drain_blocked_by_a_pod_disruption_budget_fails_the_run_and_reverts_it(
    world: stack.Sandbox, store: journal.Journal
) -> None:
    assert world.store is not None
    zone = _checkout_zone(world)
    before = support.kube_snapshot(world)
    world.store.patch(
        resource=resources.POD_DISRUPTION_BUDGETS,
        namespace="shop",
        name="checkout",
        patch={"spec": {"minAvailable": 3}},
    )
    drill = support.bind(
        world, "az-failure-kubernetes", sets=[f"zone={zone}", "drainTimeout=30s", "soak=1m"]
    )

    outcome = support.make_engine(store, drill).run(drill)

    assert outcome.run.state is _S.FAILED
    assert outcome.exit_code == engine.ExitCode.DEVIATED == 1
    assert "could not be evicted" in outcome.run.reason
    assert "PodDisruptionBudget" in outcome.run.reason
    entries = store.entries(outcome.run.id)
    assert {e.state for e in entries} == {mutations.EntryState.REVERTED}
    assert [e.step for e in entries][:2] == ["cordon-zone", "cordon-zone"]
    world.store.patch(
        resource=resources.POD_DISRUPTION_BUDGETS,
        namespace="shop",
        name="checkout",
        patch={"spec": {"minAvailable": 2}},
    )
    assert support.kube_snapshot(world) == before
    assert support.kube_markers(world) == []
    order = support.revert_order_per_target(store, outcome.run.id)
    assert all(seqs == sorted(seqs, reverse=True) for seqs in order.values())
