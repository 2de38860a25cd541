"""The official client mutates a private sandbox: cordon, taint, evict, conflicts, errors."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest

from sandbox.kubernetes import resources
from tests.fixtures import kube

# The official client's models make every field Optional; tests read them dynamically.
client: Any = kubernetes.client


def _shop_pods(sandbox: kube.KubeSandbox, name: str) -> list[dict[str, object]]:
    return sandbox.store.list(
        resource=resources.PODS, namespace="shop", label_selector=f"app.kubernetes.io/name={name}"
    )


def test_cordon_patches_spec_unschedulable(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    core.patch_node("node-us-east-1a-1", {"spec": {"unschedulable": True}})
    assert core.read_node("node-us-east-1a-1").spec.unschedulable is True
    core.patch_node("node-us-east-1a-1", {"spec": {"unschedulable": None}})
    assert not core.read_node("node-us-east-1a-1").spec.unschedulable


def test_taint_is_added_and_removed_by_strategic_merge_patch(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    taint = {"key": "stormdrill.dev/drill", "value": "run-1", "effect": "NoSchedule"}
    core.patch_node("node-us-east-1b-1", {"spec": {"taints": [taint]}})
    taints = core.read_node("node-us-east-1b-1").spec.taints
    assert [(t.key, t.value, t.effect) for t in taints] == [
        ("stormdrill.dev/drill", "run-1", "NoSchedule")
    ]
    core.patch_node("node-us-east-1b-1", {"spec": {"taints": []}})
    assert not core.read_node("node-us-east-1b-1").spec.taints


def test_json_patch_adds_a_label(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    api_client = kube_api_client(fresh_kube)
    core = client.CoreV1Api(api_client)
    core.api_client.set_default_header("Content-Type", "application/json-patch+json")
    patched = core.patch_node(
        "node-us-east-1c-1",
        [{"op": "add", "path": "/metadata/labels/stormdrill.dev~1run-id", "value": "r1"}],
    )
    assert patched.metadata.labels["stormdrill.dev/run-id"] == "r1"


def test_eviction_blocked_by_pdb_returns_429(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    fresh_kube.controller.stop()  # no replacement pods: the budget stays exhausted
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    first, second = (str(kube.field(p, "metadata.name")) for p in _shop_pods(fresh_kube, "web")[:2])
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": first, "namespace": "shop"},
    }
    core.create_namespaced_pod_eviction(first, "shop", eviction)
    assert len(_shop_pods(fresh_kube, "web")) == 2
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod_eviction(
            second, "shop", {**eviction, "metadata": {"name": second, "namespace": "shop"}}
        )
    assert caught.value.status == 429
    body = json.loads(caught.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "TooManyRequests", 429)
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert len(_shop_pods(fresh_kube, "web")) == 2
    budget = client.PolicyV1Api(core.api_client).read_namespaced_pod_disruption_budget(
        "web", "shop"
    )
    assert (budget.status.current_healthy, budget.status.disruptions_allowed) == (2, 0)


def test_replace_with_a_stale_resource_version_is_a_409_conflict(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    apps = client.AppsV1Api(kube_api_client(fresh_kube))
    stale = apps.read_namespaced_deployment("inventory", "shop")
    apps.patch_namespaced_deployment(
        "inventory", "shop", {"metadata": {"labels": {"touched": "yes"}}}
    )
    stale.spec.replicas = 5
    with pytest.raises(client.ApiException) as caught:
        apps.replace_namespaced_deployment("inventory", "shop", stale)
    assert caught.value.status == 409
    assert json.loads(caught.value.body)["reason"] == "Conflict"
    assert apps.read_namespaced_deployment("inventory", "shop").spec.replicas == 2


def test_patch_carrying_a_stale_resource_version_is_a_409_conflict(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    old = core.read_node("node-us-east-1a-2").metadata.resource_version
    core.patch_node("node-us-east-1a-2", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(client.ApiException) as caught:
        core.patch_node(
            "node-us-east-1a-2",
            {"metadata": {"resourceVersion": old}, "spec": {"unschedulable": True}},
        )
    assert caught.value.status == 409
    assert not core.read_node("node-us-east-1a-2").spec.unschedulable


def test_replace_with_the_current_resource_version_succeeds(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    node = core.read_node("node-us-east-1c-1")
    node.metadata.labels["replaced"] = "true"
    replaced = core.replace_node("node-us-east-1c-1", node)
    assert replaced.metadata.labels["replaced"] == "true"
    assert int(replaced.metadata.resource_version) > int(node.metadata.resource_version)


def test_invalid_name_answers_a_422_invalid_status(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_config_map("shop", {"metadata": {"name": "Not_Valid"}, "data": {}})
    assert caught.value.status == 422
    body = json.loads(caught.value.body)
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status",
        "Failure",
        "Invalid",
        422,
    )
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert fresh_kube.store.list(resource=resources.CONFIG_MAPS, namespace="shop") == []


def test_creating_an_existing_object_is_already_exists(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    with pytest.raises(client.ApiException) as caught:
        core.create_namespace({"metadata": {"name": "shop"}})
    assert caught.value.status == 409
    assert json.loads(caught.value.body)["reason"] == "AlreadyExists"


def test_scale_subresource_reads_and_patches_replicas(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    apps = client.AppsV1Api(kube_api_client(fresh_kube))
    scale = apps.read_namespaced_deployment_scale("web", "shop")
    assert scale.spec.replicas == 3
    assert scale.status.selector == "app.kubernetes.io/name=web,app.kubernetes.io/part-of=shop"
    apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 5}})
    kube.eventually(lambda: len(_shop_pods(fresh_kube, "web")) == 5, what="web scaled to 5 pods")
    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": -1}})
    assert caught.value.status == 422


def test_network_policy_and_custom_resource_round_trip(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    api_client = kube_api_client(fresh_kube)
    net = client.NetworkingV1Api(api_client)
    net.create_namespaced_network_policy(
        "shop",
        {
            "metadata": {"name": "deny-vendor"},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "payments"}},
                "policyTypes": ["Egress"],
                "egress": [],
            },
        },
    )
    assert [p.metadata.name for p in net.list_namespaced_network_policy("shop").items] == [
        "deny-vendor"
    ]
    fresh_kube.store.register_type(
        resources.ResourceType(
            group="chaos.stormdrill.dev",
            version="v1",
            plural="faults",
            kind="Fault",
            namespaced=True,
        )
    )
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        "chaos.stormdrill.dev",
        "v1",
        "shop",
        "faults",
        {
            "apiVersion": "chaos.stormdrill.dev/v1",
            "kind": "Fault",
            "metadata": {"name": "f1"},
            "spec": {"x": 1},
        },
    )
    got = custom.get_namespaced_custom_object("chaos.stormdrill.dev", "v1", "shop", "faults", "f1")
    assert kube.field(got, "spec") == {"x": 1} and kube.field(got, "metadata.uid")


def test_lease_create_and_replace(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    coordination = client.CoordinationV1Api(kube_api_client(fresh_kube))
    lease = coordination.create_namespaced_lease(
        "stormdrill",
        {
            "metadata": {"name": "leader"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    lease.spec.holder_identity = "b"
    assert (
        coordination.replace_namespaced_lease("leader", "stormdrill", lease).spec.holder_identity
        == "b"
    )
