"""Network actions: deny-egress and partition NetworkPolicies, created and deleted exactly."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import context, errors
from orchestrator.providers.kubernetes import markers, network, objects
from sandbox import workloads as sandbox_workloads
from tests.fixtures import kube
from tests.providers_kubernetes import factories

PAYMENTS = factories.ref("deployment", "payments", "shop")
WEB = factories.ref("deployment", "web", "shop")
VENDOR = {"cidr": "203.0.113.0/24", "port": 443}


def _policies(ctx: context.RunContext, namespace: str = "shop") -> list[dict[str, Any]]:
    conn = factories.conn_of(ctx)
    return objects.items(
        conn.call("policies", conn.networking.list_namespaced_network_policy, namespace)
    )


def _vendor_blocked(ctx: context.RunContext) -> tuple[str, ...]:
    return sandbox_workloads.vendor_blocked_by(
        _policies(ctx),
        [{"app.kubernetes.io/name": "payments", "app.kubernetes.io/part-of": "shop"}],
    )


def test_deny_egress_creates_a_marked_policy_that_blocks_the_vendor_and_undo_deletes_it(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = network.DenyEgressAction()
    writes = fresh_kube.server.mutating_request_count

    planned = factories.plan(action, ctx, [PAYMENTS], VENDOR)

    assert fresh_kube.server.mutating_request_count == writes
    assert _policies(ctx) == []
    tokens = factories.apply_all(action, ctx, planned)
    (policy,) = _policies(ctx)
    meta = policy["metadata"]
    assert meta["name"].startswith("stormdrill-deny-egress-abcd1234-")
    assert meta["labels"][markers.RUN_ID] == factories.RUN_ID
    assert meta["annotations"][markers.RUN_ID] == factories.RUN_ID
    assert _vendor_blocked(ctx) == (meta["name"],)
    egress = policy["spec"]["egress"]
    assert {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]} in egress

    factories.apply_all(action, ctx, planned)  # applying again finds our own policy
    assert len(_policies(ctx)) == 1
    factories.revert_all(action, ctx, tokens)
    assert _policies(ctx) == []
    assert _vendor_blocked(ctx) == ()
    factories.revert_all(action, ctx, tokens)
    action.revert(ctx, undo=planned[0].undo)


def test_deny_egress_rules_allow_the_vendor_on_other_ports_and_everything_else() -> None:
    params = network.DenyEgressParams.model_validate(VENDOR)

    rules = network.deny_egress_rules(params)

    assert rules[0]["to"][1] == {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["203.0.113.0/24"]}}
    ports = rules[1]["ports"]
    assert {"protocol": "TCP", "port": 1, "endPort": 442} in ports
    assert {"protocol": "TCP", "port": 444, "endPort": 65535} in ports


def test_deny_egress_refuses_params_without_anything_to_deny() -> None:
    with pytest.raises(errors.InvalidParams, match="at least one of"):
        network.DenyEgressAction().parse_params({})


def test_undo_leaves_a_policy_of_the_same_name_from_another_run_alone(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = network.DenyEgressAction()
    other = factories.make_context(fresh_kube.kubeconfig, run_id=factories.OTHER_RUN_ID)
    planned = factories.plan(action, other, [PAYMENTS], VENDOR)
    factories.apply_all(action, other, planned)
    forged = planned[0].undo.to_json()
    forged["data"]["runId"] = factories.RUN_ID  # type: ignore[index]

    action.revert(ctx, undo=type(planned[0].undo).from_json(forged))

    assert len(_policies(ctx)) == 1


def test_partition_isolates_both_sides_and_undo_deletes_both_policies(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = network.PartitionAction()
    writes = fresh_kube.server.mutating_request_count

    planned = factories.plan(
        action, ctx, [WEB], {"peerLabels": {"app.kubernetes.io/name": "checkout"}}
    )

    assert fresh_kube.server.mutating_request_count == writes
    tokens = factories.apply_all(action, ctx, planned)
    policies = {p["metadata"]["name"]: p["spec"] for p in _policies(ctx)}
    assert len(policies) == 2
    a = next(spec for name, spec in policies.items() if name.endswith("-a"))
    b = next(spec for name, spec in policies.items() if name.endswith("-b"))
    assert a["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "web"
    assert b["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "checkout"}}
    assert a["policyTypes"] == ["Ingress", "Egress"]

    factories.revert_all(action, ctx, tokens)
    assert _policies(ctx) == []


def test_partition_of_a_namespace_with_itself_is_refused(ctx: context.RunContext) -> None:
    with pytest.raises(errors.ProviderPermanent, match="both sides"):
        factories.plan(network.PartitionAction(), ctx, [WEB], {})
