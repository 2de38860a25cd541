"""Sweeper: heals orphaned runs' faults from annotations alone; live runs are left alone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orchestrator import context
from orchestrator.providers.kubernetes import (
    markers,
    network,
    nodes,
    objects,
    rbac,
    sweeping,
    workloads,
)
from tests.fixtures import kube
from tests.providers_kubernetes import factories

CORDONED = factories.node("node-us-east-1a-1")
TAINTED = factories.node("node-us-east-1b-1")
INVENTORY = factories.ref("deployment", "inventory", "shop")
PAYMENTS = factories.ref("deployment", "payments", "shop")
PAYMENTS_ONCALL = factories.ref("rolebinding", "payments-oncall", "shop")
SHOP_ADMINS = factories.ref("clusterrolebinding", "shop-admins")
TOUCHED = [CORDONED, TAINTED, INVENTORY, PAYMENTS_ONCALL, SHOP_ADMINS]


def _inject_everything(ctx: context.RunContext) -> None:
    """Cordon, taint, scale, deny egress and revoke alice — then forget the undo tokens."""
    for action, refs, params in (
        (nodes.CordonAction(), [CORDONED], {}),
        (nodes.TaintAction(), [TAINTED], {"key": "drill", "effect": "NoSchedule"}),
        (workloads.ScaleAction(), [INVENTORY], {"replicas": 0}),
        (network.DenyEgressAction(), [PAYMENTS], {"cidr": "203.0.113.0/24", "port": 443}),
        (rbac.RevokeSubjectAction(), [factories.ref("subject", "User:alice")], {}),
    ):
        factories.apply_all(action, ctx, factories.plan(action, ctx, refs, params))


def _settled(sandbox: kube.KubeSandbox) -> None:
    """Wait for the controller's own idle signal: a clean pass over the store as it is now."""
    assert sandbox.controller.wait_idle(timeout_s=10), (
        f"the controller did not settle after the faults (generation "
        f"{sandbox.controller.generation}, store version {sandbox.store.resource_version})"
    )


def _policies(ctx: context.RunContext) -> list[dict[str, Any]]:
    conn = factories.conn_of(ctx)
    return objects.items(
        conn.call("policies", conn.networking.list_namespaced_network_policy, "shop")
    )


def test_sweep_heals_every_fault_of_an_orphaned_run_from_its_annotations(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    before = factories.states_of(ctx, TOUCHED)
    _inject_everything(ctx)
    asked: list[tuple[str, datetime]] = []

    def orphan(run_id: str, expires_at: datetime) -> bool:
        asked.append((run_id, expires_at))
        return True

    findings = sweeping.KubernetesSweeper().sweep(ctx, is_orphan=orphan, dry_run=False)

    assert {f.run_id for f in findings} == {factories.RUN_ID}
    assert all(f.healed for f in findings), [f.message for f in findings]
    assert len(findings) == 6  # two nodes, a deployment, a policy, two bindings
    assert {run for run, _ in asked} == {factories.RUN_ID}
    assert _policies(ctx) == []
    _settled(fresh_kube)
    assert factories.states_of(ctx, TOUCHED) == before


def test_sweep_leaves_a_live_runs_markers_alone_and_dry_run_changes_nothing(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    _inject_everything(ctx)
    _settled(fresh_kube)  # the controller reports inventory's new status asynchronously
    during = factories.states_of(ctx, TOUCHED)
    assert not (during[INVENTORY.key] or {}).get("status", {}).get("replicas"), during
    writes = fresh_kube.server.mutating_request_count
    sweeper = sweeping.KubernetesSweeper()

    live = sweeper.sweep(ctx, is_orphan=lambda _run, _at: False, dry_run=False)
    dry = sweeper.sweep(ctx, is_orphan=lambda _run, _at: True, dry_run=True)

    assert fresh_kube.server.mutating_request_count == writes
    assert factories.states_of(ctx, TOUCHED) == during
    assert len(live) == len(dry) == 6
    assert not any(f.healed or f.expired for f in live + dry)
    assert all("still live" in f.message for f in live)
    assert len(_policies(ctx)) == 1


def test_expired_markers_are_reported_as_expired(fresh_kube: kube.KubeSandbox) -> None:
    ctx = factories.make_context(fresh_kube.kubeconfig, expires_in=timedelta(seconds=-5))
    action = nodes.CordonAction()
    factories.apply_all(action, ctx, factories.plan(action, ctx, [CORDONED]))

    findings = sweeping.KubernetesSweeper().sweep(
        ctx,
        is_orphan=lambda _run, expires_at: expires_at < datetime.now(expires_at.tzinfo),
        dry_run=False,
    )

    assert [(f.target.name, f.expired, f.healed) for f in findings] == [
        ("node-us-east-1a-1", True, True)
    ]
    assert markers.RUN_ID not in factories.annotations_on(ctx, CORDONED)
