"""Node actions against the sandbox cluster: cordon, drain and taint, with exact undo."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import context
from orchestrator.providers.kubernetes import errors as kube_errors
from orchestrator.providers.kubernetes import markers, nodes, objects
from sandbox.kubernetes import resources
from tests.fixtures import kube
from tests.providers_kubernetes import factories

NODE = "node-us-east-1a-1"
WEB = "app.kubernetes.io/name=web"


def _pods_on(ctx: context.RunContext, node: str) -> list[dict[str, Any]]:
    conn = factories.conn_of(ctx)
    answer = conn.call(
        "pods", conn.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}"
    )
    return objects.items(answer)


def _owner_kinds(pods: list[dict[str, Any]]) -> set[str]:
    kinds = set()
    for pod in pods:
        for owner in pod["metadata"].get("ownerReferences") or []:
            kinds.add(owner["kind"])
    return kinds


def test_cordon_plan_touches_nothing_and_apply_then_revert_restores_the_node_exactly(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.CordonAction()
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    writes = fresh_kube.server.mutating_request_count

    planned = factories.plan(action, ctx, [target])

    assert fresh_kube.server.mutating_request_count == writes
    assert planned[0].pre_state == {"unschedulable": False}
    tokens = factories.apply_all(action, ctx, planned)
    node = objects.read(factories.conn_of(ctx), target)
    assert node is not None and node["spec"]["unschedulable"] is True
    found = factories.annotations_on(ctx, target)
    assert found[markers.RUN_ID] == factories.RUN_ID
    assert markers.EXPIRES_AT in found and '"cordon"' in found[markers.UNDO]

    factories.revert_all(action, ctx, tokens)
    assert factories.states_of(ctx, [target]) == before
    factories.revert_all(action, ctx, tokens)  # twice is harmless
    assert factories.states_of(ctx, [target]) == before


def test_cordon_of_a_node_unschedulable_before_the_drill_is_a_no_op_and_never_uncordons(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    objects.patch(factories.conn_of(ctx), target, {"spec": {"unschedulable": True}})
    before = factories.states_of(ctx, [target])
    action = nodes.CordonAction()

    planned = factories.plan(action, ctx, [target])
    assert planned[0].undo.data["entry"] is None
    tokens = factories.apply_all(action, ctx, planned)
    assert tokens[0].data["entry"] is None
    factories.revert_all(action, ctx, tokens)

    assert factories.states_of(ctx, [target]) == before


def test_revert_of_a_cordon_never_applied_is_harmless(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.CordonAction()
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    planned = factories.plan(action, ctx, [target])

    action.revert(ctx, undo=planned[0].undo)

    assert factories.states_of(ctx, [target]) == before


def test_drain_evicts_every_non_daemonset_pod_and_the_controller_reschedules_them(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.DrainAction()
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    evictable = [p for p in _pods_on(ctx, NODE) if "DaemonSet" not in _owner_kinds([p])]
    assert evictable, "the seed puts workload pods on every node"
    writes = fresh_kube.server.mutating_request_count

    planned = factories.plan(action, ctx, [target], {"timeout": "20s"})
    assert fresh_kube.server.mutating_request_count == writes
    tokens = factories.apply_all(action, ctx, planned)

    left = _pods_on(ctx, NODE)
    assert _owner_kinds(left) <= {"DaemonSet"}
    assert len(tokens[0].data["evicted"]) == len(evictable)  # type: ignore[arg-type]

    def deployments() -> Any:
        return fresh_kube.store.list(resource=resources.DEPLOYMENTS)

    kube.eventually(
        lambda: all(
            (d["status"].get("readyReplicas") or 0) == d["spec"]["replicas"] for d in deployments()
        ),
        what="every shop deployment back to full strength on the other nodes",
    )
    assert markers.RUN_ID in factories.annotations_on(ctx, target)

    factories.revert_all(action, ctx, tokens)
    assert factories.states_of(ctx, [target]) == before
    factories.revert_all(action, ctx, tokens)
    assert factories.states_of(ctx, [target]) == before


def test_drain_blocked_by_a_budget_retries_then_fails_clearly_and_uncordons(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    conn = factories.conn_of(ctx)
    web = objects.items(
        conn.call("pods", conn.core.list_namespaced_pod, "shop", label_selector=WEB)
    )
    node_name = web[0]["spec"]["nodeName"]
    web_here = [p for p in web if p["spec"]["nodeName"] == node_name]
    fresh_kube.store.patch(
        resource=resources.POD_DISRUPTION_BUDGETS,
        namespace="shop",
        name="web",
        patch={"spec": {"minAvailable": 3}},
    )
    fresh_kube.store.refresh_pdb_statuses("shop")
    action = nodes.DrainAction()
    target = factories.node(node_name)
    before = factories.states_of(ctx, [target])
    planned = factories.plan(action, ctx, [target], {"timeout": "1s"})

    with pytest.raises(kube_errors.DrainFailed) as caught:
        factories.apply_all(action, ctx, planned)

    assert "disruption budget" in str(caught.value)
    assert node_name in str(caught.value)
    assert factories.states_of(ctx, [target]) == before
    remaining = [p["metadata"]["name"] for p in _pods_on(ctx, node_name)]
    assert all(p["metadata"]["name"] in remaining for p in web_here)


def test_drain_time_scale_shrinks_the_timeout(fresh_kube: kube.KubeSandbox) -> None:
    fresh_kube.store.patch(
        resource=resources.POD_DISRUPTION_BUDGETS,
        namespace="shop",
        name="web",
        patch={"spec": {"minAvailable": 3}},
    )
    ctx = factories.make_context(fresh_kube.kubeconfig, time_scale=0.001)
    conn = factories.conn_of(ctx)
    web = objects.items(
        conn.call("pods", conn.core.list_namespaced_pod, "shop", label_selector=WEB)
    )
    action = nodes.DrainAction()
    target = factories.node(web[0]["spec"]["nodeName"])
    planned = factories.plan(action, ctx, [target], {"timeout": "10m"})

    with pytest.raises(kube_errors.DrainFailed, match=r"x0\.001 time scale"):
        factories.apply_all(action, ctx, planned)


def test_taint_is_added_and_undo_removes_only_our_taint(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    conn = factories.conn_of(ctx)
    objects.patch(
        conn,
        target,
        {"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}},
    )
    before = factories.states_of(ctx, [target])
    action = nodes.TaintAction()
    writes = fresh_kube.server.mutating_request_count

    planned = factories.plan(
        action, ctx, [target], {"key": "stormdrill.dev/zone-down", "effect": "NoSchedule"}
    )
    assert fresh_kube.server.mutating_request_count == writes
    tokens = factories.apply_all(action, ctx, planned)
    taints = objects.read(conn, target)["spec"]["taints"]  # type: ignore[index]
    assert {"key": "stormdrill.dev/zone-down", "effect": "NoSchedule"} in taints
    assert {"key": "dedicated", "value": "db", "effect": "NoSchedule"} in taints

    factories.revert_all(action, ctx, tokens)
    assert factories.states_of(ctx, [target]) == before
    factories.revert_all(action, ctx, tokens)
    assert factories.states_of(ctx, [target]) == before


def test_taint_identical_to_one_present_before_is_never_removed(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    objects.patch(factories.conn_of(ctx), target, {"spec": {"taints": [taint]}})
    before = factories.states_of(ctx, [target])
    action = nodes.TaintAction()

    planned = factories.plan(action, ctx, [target], taint)
    tokens = factories.apply_all(action, ctx, planned)
    assert tokens[0].data["entry"] is None
    factories.revert_all(action, ctx, tokens)

    assert factories.states_of(ctx, [target]) == before


def test_taint_replacing_a_value_restores_the_old_value_on_undo(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    conn = factories.conn_of(ctx)
    objects.patch(
        conn,
        target,
        {"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}},
    )
    before = factories.states_of(ctx, [target])
    action = nodes.TaintAction()
    planned = factories.plan(
        action, ctx, [target], {"key": "dedicated", "value": "drill", "effect": "NoSchedule"}
    )
    tokens = factories.apply_all(action, ctx, planned)
    assert objects.read(conn, target)["spec"]["taints"] == [  # type: ignore[index]
        {"key": "dedicated", "value": "drill", "effect": "NoSchedule"}
    ]

    factories.revert_all(action, ctx, tokens)

    assert factories.states_of(ctx, [target]) == before


def test_no_execute_taint_evicts_untolerating_pods_and_undo_lets_them_back(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    action = nodes.TaintAction()
    planned = factories.plan(action, ctx, [target], {"key": "drill", "effect": "NoExecute"})

    tokens = factories.apply_all(action, ctx, planned)
    kube.eventually(
        lambda: _owner_kinds(_pods_on(ctx, NODE)) <= {"DaemonSet"},
        what="untolerating pods leave the NoExecute-tainted node",
    )
    factories.revert_all(action, ctx, tokens)

    assert factories.states_of(ctx, [target]) == before
