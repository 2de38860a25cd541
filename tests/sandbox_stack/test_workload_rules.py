"""The rules behind the simulated health: NetworkPolicy egress to the vendor, canned PromQL."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import workloads

PAYMENTS = [{"app.kubernetes.io/name": "payments", "app.kubernetes.io/part-of": "shop"}]


def _policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": spec}


DENY_ALL_EGRESS = _policy(
    "deny-egress",
    {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "payments"}},
        "policyTypes": ["Egress"],
    },
)


def test_no_policies_leave_the_vendor_reachable() -> None:
    assert workloads.vendor_blocked_by([], PAYMENTS) == ()


def test_egress_policy_without_rules_blocks_the_vendor() -> None:
    assert workloads.vendor_blocked_by([DENY_ALL_EGRESS], PAYMENTS) == ("deny-egress",)


def test_ip_block_except_containing_the_vendor_blocks_it() -> None:
    policy = _policy(
        "all-but-vendor",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["203.0.113.0/24"]}}]}],
        },
    )
    assert workloads.vendor_blocked_by([policy], PAYMENTS) == ("all-but-vendor",)


def test_rule_allowing_the_vendor_cidr_on_443_keeps_it_reachable() -> None:
    policy = _policy(
        "vendor-only",
        {
            "podSelector": {
                "matchExpressions": [
                    {"key": "app.kubernetes.io/name", "operator": "In", "values": ["payments"]}
                ]
            },
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                    "ports": [{"protocol": "TCP", "port": 443}],
                }
            ],
        },
    )
    assert workloads.vendor_blocked_by([policy], PAYMENTS) == ()


def test_rule_allowing_only_another_port_blocks_the_vendor() -> None:
    policy = _policy(
        "dns-only",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}],
        },
    )
    assert workloads.vendor_blocked_by([policy], PAYMENTS) == ("dns-only",)


def test_allowing_policy_wins_over_a_denying_one_as_in_kubernetes() -> None:
    allow_all = _policy("allow-all", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})
    assert workloads.vendor_blocked_by([DENY_ALL_EGRESS, allow_all], PAYMENTS) == ()


def test_policies_selecting_other_pods_or_only_ingress_do_not_matter() -> None:
    other = _policy(
        "web-egress",
        {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
            "policyTypes": ["Egress"],
        },
    )
    ingress = _policy("ingress-only", {"podSelector": {}, "policyTypes": ["Ingress"]})
    assert workloads.vendor_blocked_by([other, ingress], PAYMENTS) == ()


def _state(ready: dict[str, int], blocked: tuple[str, ...] = ()) -> workloads.ShopState:
    return workloads.ShopState(
        ready=ready, vendor_blocked_by=blocked, health=workloads._evaluate(ready, blocked)
    )


HEALTHY = {"web": 3, "checkout": 3, "payments": 2, "inventory": 2}


def test_degraded_payments_degrades_checkout_and_web_but_not_inventory() -> None:
    state = _state(HEALTHY, blocked=("deny-egress",))
    assert {s: h.healthy for s, h in state.health.items()} == {
        "web": False,
        "checkout": False,
        "payments": False,
        "inventory": True,
    }
    assert any(
        "203.0.113.0/24" in r and "shop/deny-egress" in r for r in state.health["payments"].reasons
    )
    assert state.health["web"].reasons == ("web: depends on checkout, which is degraded",)


def test_prometheus_selector_filters_by_label() -> None:
    state = _state({**HEALTHY, "checkout": 1})
    samples = workloads.evaluate_query(state, 'shop_ready_replicas{service="checkout"}')
    assert [(dict(s.labels), s.value) for s in samples] == [
        ({"__name__": "shop_ready_replicas", "service": "checkout"}, 1.0)
    ]
    body = workloads.vector_body(samples, at=12.5)
    assert body["data"]["result"][0]["value"] == [12.5, "1"]


def test_prometheus_aggregation_and_negative_matcher() -> None:
    state = _state({**HEALTHY, "checkout": 1})
    (total,) = workloads.evaluate_query(state, 'sum(shop_up{service!="inventory"})')
    assert total.value == 1.0  # web and checkout are down, payments is up
    (up,) = workloads.evaluate_query(state, "min(shop_up)")
    assert up.value == 0.0


@pytest.mark.parametrize(
    "query", ["rate(shop_up[5m])", "nope_metric", 'shop_up{service=~"x"}', "sum(shop_up"]
)
def test_unsupported_queries_are_rejected_with_what_is_supported(query: str) -> None:
    with pytest.raises(workloads.QueryError, match="query"):
        workloads.evaluate_query(_state(HEALTHY), query)
