"""Simulated health follows the cluster: scale, NetworkPolicies, and the Prometheus API."""

from __future__ import annotations

import functools
from typing import Any

import httpx
from kubernetes import client

from tests.sandbox_stack import support


def _health(shop: support.Shop, service: str) -> httpx.Response:
    return httpx.get(shop.health_url(service), timeout=5)


def _status(shop: support.Shop, service: str) -> int:
    return _health(shop, service).status_code


def test_every_service_is_healthy_at_seed(shop: support.Shop) -> None:
    for service in ("web", "checkout", "payments", "inventory"):
        support.eventually(functools.partial(_status, shop, service), lambda code: code == 200)
    body = _health(shop, "checkout").json()
    assert body == {"status": "ok", "service": "checkout", "ready": 3}


def test_scaling_checkout_to_one_degrades_checkout_then_web(shop: support.Shop) -> None:
    support.eventually(lambda: _status(shop, "web"), lambda code: code == 200)

    client.AppsV1Api(shop.api).patch_namespaced_deployment_scale(
        "checkout", "shop", {"spec": {"replicas": 1}}
    )

    degraded = support.eventually(lambda: _health(shop, "checkout"), lambda r: r.status_code == 503)
    assert degraded.json()["status"] == "degraded"
    assert any("needs at least 2" in reason for reason in degraded.json()["reasons"])
    web = _health(shop, "web")
    assert web.status_code == 503
    assert "web: depends on checkout, which is degraded" in web.json()["reasons"]
    assert _status(shop, "inventory") == 200


def test_deny_egress_policy_degrades_payments_until_deleted(shop: support.Shop) -> None:
    support.eventually(lambda: _status(shop, "payments"), lambda code: code == 200)
    networking = client.NetworkingV1Api(shop.api)
    policy: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "drill-deny-payprovider"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "payments"}},
            "policyTypes": ["Egress"],
        },
    }

    networking.create_namespaced_network_policy("shop", policy)  # type: ignore[arg-type]
    denied = _health(shop, "payments")
    assert denied.status_code == 503
    assert any("shop/drill-deny-payprovider" in r for r in denied.json()["reasons"])
    assert _status(shop, "checkout") == 503

    networking.delete_namespaced_network_policy("drill-deny-payprovider", "shop")
    assert _status(shop, "payments") == 200


def test_prometheus_query_answers_in_the_prometheus_shape(shop: support.Shop) -> None:
    url = f"{shop.server.prometheus_url}/api/v1/query"
    query = 'shop_ready_replicas{service="payments"}'

    def ready() -> str:
        body = httpx.get(url, params={"query": query}, timeout=5).json()
        assert body["status"] == "success"
        assert body["data"]["resultType"] == "vector"
        (sample,) = body["data"]["result"]
        assert sample["metric"] == {"__name__": "shop_ready_replicas", "service": "payments"}
        return str(sample["value"][1])

    support.eventually(ready, lambda value: value == "2")
    client.AppsV1Api(shop.api).patch_namespaced_deployment_scale(
        "payments", "shop", {"spec": {"replicas": 0}}
    )
    support.eventually(ready, lambda value: value == "0")
    up = httpx.post(url, data={"query": 'shop_up{service="payments"}'}, timeout=5).json()
    assert up["data"]["result"][0]["value"][1] == "0"


def test_prometheus_rejects_unsupported_queries_as_bad_data(
    shop: support.Shop,
) -> None:
    url = f"{shop.server.prometheus_url}/api/v1/query"
    answer = httpx.get(url, params={"query": "rate(http_requests_total[5m])"}, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["status"] == "error"
    assert answer.json()["errorType"] == "bad_data"


def test_unknown_paths_answer_404(shop: support.Shop) -> None:
    answer = httpx.get(f"{shop.server.url}/cart/healthz", timeout=5)
    assert answer.status_code == 404
