"""Workload actions: scale (undone through the scale subresource) and pod deletion."""

from __future__ import annotations

from typing import Any

from orchestrator import context
from orchestrator.providers.kubernetes import markers, objects, workloads
from sandbox.kubernetes import resources
from tests.fixtures import kube
from tests.providers_kubernetes import factories

INVENTORY = factories.ref("deployment", "inventory", "shop")


def _replicas(ctx: context.RunContext) -> int:
    found = objects.read(factories.conn_of(ctx), INVENTORY)
    assert found is not None
    return int(found["spec"]["replicas"])


def _settled(fresh_kube: kube.KubeSandbox, name: str, replicas: int) -> bool:
    found: Any = fresh_kube.store.get(resource=resources.DEPLOYMENTS, namespace="shop", name=name)
    status = found.get("status") or {}
    return bool(
        status.get("replicas", 0) == replicas and status.get("readyReplicas", 0) == replicas
    )


def test_scale_to_zero_then_revert_restores_the_deployment_exactly(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = workloads.ScaleAction()
    before = factories.states_of(ctx, [INVENTORY])
    writes = fresh_kube.server.mutating_request_count

    planned = factories.plan(action, ctx, [INVENTORY], {"replicas": 0})

    assert fresh_kube.server.mutating_request_count == writes
    assert planned[0].pre_state == {"replicas": 2}
    tokens = factories.apply_all(action, ctx, planned)
    assert _replicas(ctx) == 0
    assert '"replicas":2' in factories.annotations_on(ctx, INVENTORY)[markers.UNDO]
    kube.eventually(lambda: _settled(fresh_kube, "inventory", 0), what="inventory at zero")

    factories.revert_all(action, ctx, tokens)
    kube.eventually(lambda: _settled(fresh_kube, "inventory", 2), what="inventory back at two")
    kube.eventually(
        lambda: factories.states_of(ctx, [INVENTORY]) == before,
        what="the deployment equal to its state before the drill",
    )
    factories.revert_all(action, ctx, tokens)
    assert factories.states_of(ctx, [INVENTORY]) == before


def test_applying_a_scale_twice_keeps_the_count_seen_first(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = workloads.ScaleAction()
    planned = factories.plan(action, ctx, [INVENTORY], {"replicas": 0})

    factories.apply_all(action, ctx, planned)
    tokens = factories.apply_all(action, ctx, planned)

    assert tokens[0].data["replicas"] == 2
    factories.revert_all(action, ctx, tokens)
    assert _replicas(ctx) == 2
    assert markers.RUN_ID not in factories.annotations_on(ctx, INVENTORY)


def test_revert_of_a_scale_never_applied_changes_nothing(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = workloads.ScaleAction()
    planned = factories.plan(action, ctx, [INVENTORY], {"replicas": 0})
    before = factories.states_of(ctx, [INVENTORY])
    writes = fresh_kube.server.mutating_request_count

    action.revert(ctx, undo=planned[0].undo)

    assert fresh_kube.server.mutating_request_count == writes
    assert factories.states_of(ctx, [INVENTORY]) == before


def test_pod_delete_removes_the_planned_pods_and_their_controller_recreates_them(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    conn = factories.conn_of(ctx)
    pods = objects.items(
        conn.call(
            "pods",
            conn.core.list_namespaced_pod,
            "shop",
            label_selector="app.kubernetes.io/name=web",
        )
    )
    refs = [objects.ref_of(p, kind="pod") for p in pods]
    action = workloads.DeletePodsAction()
    writes = fresh_kube.server.mutating_request_count

    planned = factories.plan(action, ctx, refs, {"count": 1})

    assert fresh_kube.server.mutating_request_count == writes
    assert len(planned) == 1
    tokens = factories.apply_all(action, ctx, planned)
    assert objects.read(conn, planned[0].target) is None
    kube.eventually(lambda: _settled(fresh_kube, "web", 3), what="web recreated to three")
    factories.revert_all(action, ctx, tokens)  # nothing to undo, and harmless
    assert action.revertible is False and action.destructive is True
