"""The controller gives real effects: zone drains heal elsewhere, pods return, PDBs stay current."""

from __future__ import annotations

from typing import Any

import kubernetes.client

from sandbox.kubernetes import controller, resources, seed, store
from tests.fixtures import kube

# The official client's models make every field Optional; tests read them dynamically.
client: Any = kubernetes.client

SHOP_REPLICAS = {name: replicas for name, (replicas, _) in seed.SHOP_DEPLOYMENTS.items()}


def _ready_by_deployment(apps: Any) -> dict[str, int]:
    return {
        d.metadata.name: d.status.ready_replicas or 0
        for d in apps.list_namespaced_deployment("shop").items
    }


def _node_zone(core: Any) -> dict[str, str]:
    return {
        n.metadata.name: n.metadata.labels["topology.kubernetes.io/zone"]
        for n in core.list_node().items
    }


def test_draining_a_zone_moves_every_shop_pod_out_and_restores_full_replicas(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    api_client = kube_api_client(fresh_kube)
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    zone_nodes = [
        n.metadata.name
        for n in core.list_node(label_selector="topology.kubernetes.io/zone=us-east-1a").items
    ]
    for name in zone_nodes:
        core.patch_node(name, {"spec": {"unschedulable": True}})

    def evict_zone() -> bool:
        remaining = [
            p
            for name in zone_nodes
            for p in core.list_namespaced_pod("shop", field_selector=f"spec.nodeName={name}").items
        ]
        for pod in remaining:
            try:
                core.create_namespaced_pod_eviction(
                    pod.metadata.name,
                    "shop",
                    {
                        "apiVersion": "policy/v1",
                        "kind": "Eviction",
                        "metadata": {"name": pod.metadata.name, "namespace": "shop"},
                    },
                )
            except client.ApiException as exc:
                assert exc.status in (404, 429), exc
        return not remaining

    kube.eventually(evict_zone, what="zone us-east-1a emptied of shop pods")
    kube.eventually(
        lambda: _ready_by_deployment(apps) == SHOP_REPLICAS, what="shop back to full replicas"
    )
    zones = _node_zone(core)
    placed = [zones[p.spec.node_name] for p in core.list_namespaced_pod("shop").items]
    assert len(placed) == sum(SHOP_REPLICAS.values())
    assert "us-east-1a" not in placed
    assert {"us-east-1b", "us-east-1c"} <= set(placed)
    kube_proxy = core.list_namespaced_pod("kube-system").items
    assert len(kube_proxy) == 6  # DaemonSet pods stay on cordoned nodes


def test_a_deleted_pod_is_recreated(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    victim = core.list_namespaced_pod(
        "shop", label_selector="app.kubernetes.io/name=payments"
    ).items[0]
    core.delete_namespaced_pod(
        victim.metadata.name, "shop", body=client.V1DeleteOptions(grace_period_seconds=0)
    )

    def replaced() -> bool:
        pods = core.list_namespaced_pod(
            "shop", label_selector="app.kubernetes.io/name=payments"
        ).items
        ready = [p for p in pods if p.status.phase == "Running"]
        return len(ready) == 2 and victim.metadata.name not in {p.metadata.name for p in pods}

    kube.eventually(replaced, what="payments pod recreated")
    pods = core.list_namespaced_pod("shop", label_selector="app.kubernetes.io/name=payments").items
    assert all("pod-template-hash" in p.metadata.labels for p in pods)
    assert all(p.metadata.owner_references[0].kind == "ReplicaSet" for p in pods)


def test_pdb_status_follows_scaling(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    api_client = kube_api_client(fresh_kube)
    apps, policy = client.AppsV1Api(api_client), client.PolicyV1Api(api_client)
    apps.patch_namespaced_deployment_scale("checkout", "shop", {"spec": {"replicas": 5}})

    def budget() -> tuple[int, int, int, int]:
        status = policy.read_namespaced_pod_disruption_budget("checkout", "shop").status
        return (
            status.expected_pods,
            status.current_healthy,
            status.desired_healthy,
            status.disruptions_allowed,
        )

    kube.eventually(lambda: budget() == (5, 5, 2, 3), what="checkout PDB status at 5 replicas")
    apps.patch_namespaced_deployment_scale("checkout", "shop", {"spec": {"replicas": 2}})
    kube.eventually(lambda: budget() == (2, 2, 2, 0), what="checkout PDB status at 2 replicas")


def test_no_execute_taint_evicts_pods_and_reschedules_them() -> None:
    cluster = store.ClusterStore()
    seed.seed_shop(cluster)
    loop = controller.Controller(cluster)
    cluster.patch(
        resource=resources.NODES,
        namespace=None,
        name="node-us-east-1b-1",
        patch={"spec": {"taints": [{"key": "drill", "value": "x", "effect": "NoExecute"}]}},
    )
    loop.reconcile_once()
    on_node = cluster.list(
        resource=resources.PODS, field_selector="spec.nodeName=node-us-east-1b-1"
    )
    assert [kube.field(p, "metadata.namespace") for p in on_node] == ["kube-system"]
    shop = cluster.list(resource=resources.PODS, namespace="shop")
    assert len(shop) == sum(SHOP_REPLICAS.values())
    assert all(kube.field(p, "status.phase") == "Running" for p in shop)


def test_unschedulable_pods_wait_pending_until_a_node_admits_them() -> None:
    cluster = store.ClusterStore()
    seed.seed_shop(cluster)
    loop = controller.Controller(cluster)
    for node in cluster.list(resource=resources.NODES):
        cluster.patch(
            resource=resources.NODES,
            namespace=None,
            name=str(kube.field(node, "metadata.name")),
            patch={"spec": {"unschedulable": True}},
        )
    cluster.patch(
        resource=resources.DEPLOYMENTS,
        namespace="shop",
        name="inventory",
        patch={"spec": {"replicas": 3}},
    )
    loop.reconcile_once()
    pending = [
        p
        for p in cluster.list(
            resource=resources.PODS,
            namespace="shop",
            label_selector="app.kubernetes.io/name=inventory",
        )
        if not kube.field(p, "spec.nodeName")
    ]
    assert len(pending) == 1 and kube.field(pending[0], "status.phase") == "Pending"
    cluster.patch(
        resource=resources.NODES,
        namespace=None,
        name="node-us-east-1c-1",
        patch={"spec": {"unschedulable": None}},
    )
    loop.reconcile_once()
    inventory = cluster.get(resource=resources.DEPLOYMENTS, namespace="shop", name="inventory")
    assert kube.field(inventory, "status.readyReplicas") == 3


def test_pods_turn_ready_only_after_the_configured_delay() -> None:
    cluster = store.ClusterStore()
    seed.seed_shop(cluster)
    loop = controller.Controller(cluster, pod_ready_delay_s=3600)
    cluster.patch(
        resource=resources.DEPLOYMENTS,
        namespace="shop",
        name="web",
        patch={"spec": {"replicas": 4}},
    )
    loop.reconcile_once()
    web = cluster.get(resource=resources.DEPLOYMENTS, namespace="shop", name="web")
    assert kube.field(web, "status.replicas") == 4 and kube.field(web, "status.readyReplicas") == 3


def test_deleting_a_deployment_garbage_collects_its_replica_set_and_pods() -> None:
    cluster = store.ClusterStore()
    seed.seed_shop(cluster)
    cluster.delete(resource=resources.DEPLOYMENTS, namespace="shop", name="inventory")
    loop = controller.Controller(cluster)
    loop.reconcile_once()
    loop.reconcile_once()
    assert (
        cluster.list(
            resource=resources.PODS,
            namespace="shop",
            label_selector="app.kubernetes.io/name=inventory",
        )
        == []
    )
    assert (
        cluster.list(
            resource=resources.REPLICA_SETS,
            namespace="shop",
            label_selector="app.kubernetes.io/name=inventory",
        )
        == []
    )
