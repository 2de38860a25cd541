"""Seed: the shop world of docs/sandbox-world.md, plus bulk nodes and pods for benchmarks.

`seed_shop` leaves the cluster settled: every workload pod scheduled and Ready, every status
(Deployment, ReplicaSet, DaemonSet, PDB) current. Seeding is idempotent per object kind only in
the sense that it expects an empty store; it raises `errors.AlreadyExists` otherwise.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sandbox.kubernetes import controller, errors, resources
from sandbox.kubernetes import store as store_module

REGION = "us-east-1"
ZONES: tuple[str, ...] = ("us-east-1a", "us-east-1b", "us-east-1c")
SHOP_NAMESPACE = "shop"
ALLOW_DRILLS_LABEL = "stormdrill.dev/allow-drills"
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"

# deployment → (replicas, PDB spec or None)
SHOP_DEPLOYMENTS: dict[str, tuple[int, dict[str, int] | None]] = {
    "web": (3, {"minAvailable": 2}),
    "checkout": (3, {"minAvailable": 2}),
    "payments": (2, {"maxUnavailable": 1}),
    "inventory": (2, None),
}
ROLE_BINDINGS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "payments-oncall": ("edit", (("User", "alice"), ("User", "bob"), ("Group", "team-payments"))),
    "storefront-deployers": ("edit", (("User", "dave"), ("User", "erin"))),
}
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "shop-admins": ("cluster-admin", (("User", "frank"), ("User", "alice"))),
}


def ensure_namespace(
    store: store_module.ClusterStore, name: str, *, labels: Mapping[str, str] | None = None
) -> None:
    """Create the namespace unless it exists."""
    with contextlib.suppress(errors.AlreadyExists):
        store.create(
            resource=resources.NAMESPACES,
            obj={"metadata": {"name": name, "labels": dict(labels or {})}},
        )


def node_object(name: str, *, zone: str, index: int) -> dict[str, object]:
    """A Ready worker node in `zone` with the world's labels, addresses and capacity."""
    ip = f"10.0.{ZONES.index(zone) + 1 if zone in ZONES else 9}.{10 + index % 240}"
    now = store_module.timestamp(datetime.datetime.now(datetime.UTC))
    conditions: list[dict[str, Any]] = [
        {
            "type": kind,
            "status": "False",
            "reason": f"KubeletHas{reason}",
            "message": "",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for kind, reason in (
            ("MemoryPressure", "SufficientMemory"),
            ("DiskPressure", "NoDiskPressure"),
            ("PIDPressure", "SufficientPID"),
        )
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    )
    capacity = {"cpu": "2", "memory": "8011284Ki", "pods": "110", "ephemeral-storage": "83873772Ki"}
    return {
        "metadata": {
            "name": name,
            "labels": {
                controller.ZONE_LABEL: zone,
                "topology.kubernetes.io/region": REGION,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "m5.large",
            },
        },
        "spec": {"providerID": f"aws:///{zone}/i-{index:017x}"},
        "status": {
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "capacity": capacity,
            "allocatable": capacity,
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": f"boot-{index}",
                "containerRuntimeVersion": "containerd://1.7.20",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "v1.31.0",
                "kubeletVersion": "v1.31.0",
                "machineID": f"machine-{index}",
                "operatingSystem": "linux",
                "osImage": "Stormdrill Sandbox Linux",
                "systemUUID": f"uuid-{index}",
            },
        },
    }


def seed_nodes(store: store_module.ClusterStore, *, count: int, zones: Sequence[str]) -> None:
    """`count` Ready nodes spread round-robin over `zones`, named `node-<zone>-<n>`."""
    if not zones:
        raise errors.SandboxKubeError("seed_nodes: pass at least one zone (e.g. seed.ZONES)")
    for i in range(count):
        zone = zones[i % len(zones)]
        name = f"node-{zone}-{i // len(zones) + 1}"
        store.create(resource=resources.NODES, obj=node_object(name, zone=zone, index=i))


def _container(name: str, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {},
    }


def _ready_status(
    node_ip: str, pod_ip: str, containers: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    now = store_module.timestamp(datetime.datetime.now(datetime.UTC))
    return {
        "phase": "Running",
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "hostIP": node_ip,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "qosClass": "BestEffort",
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in containers
        ],
    }


def seed_pods(
    store: store_module.ClusterStore,
    *,
    namespace: str,
    count: int,
    labels: Mapping[str, str],
    name_prefix: str = "bench",
    owned: bool = False,
) -> None:
    """`count` Running, Ready pods `<prefix>-00000…` spread round-robin over existing nodes.

    Bare pods by default; with `owned`, pods of a ReplicaSet `<prefix>` (created here, with
    no controller running it), as a real drain finds them.
    """
    ensure_namespace(store, namespace)
    nodes = [str(n["metadata"]["name"]) for n in store.list(resource=resources.NODES)]  # type: ignore[index]
    containers = [_container("main", "registry.example/bench:1")]
    owners: list[dict[str, Any]] = []
    if owned:
        replica_set = store.create(
            resource=resources.REPLICA_SETS,
            obj={
                "metadata": {"name": name_prefix, "namespace": namespace, "labels": dict(labels)},
                "spec": {
                    "replicas": count,
                    "selector": {"matchLabels": dict(labels)},
                    "template": {
                        "metadata": {"labels": dict(labels)},
                        "spec": {"containers": containers},
                    },
                },
            },
        )
        owners = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": name_prefix,
                "uid": str(cast(Mapping[str, object], replica_set["metadata"])["uid"]),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    for i in range(count):
        spec: dict[str, Any] = {"containers": containers}
        if nodes:
            spec["nodeName"] = nodes[i % len(nodes)]
        metadata: dict[str, Any] = {
            "name": f"{name_prefix}-{i:05d}",
            "namespace": namespace,
            "labels": dict(labels),
        }
        if owners:
            metadata["ownerReferences"] = [dict(ref) for ref in owners]
        pod = {
            "metadata": metadata,
            "spec": spec,
            "status": _ready_status(
                "10.0.9.1", f"10.250.{i // 250 % 250}.{i % 250 + 1}", containers
            )
            if nodes
            else {"phase": "Pending"},
        }
        store.create(resource=resources.PODS, obj=pod)


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {NAME_LABEL: name, PART_OF_LABEL: "shop"}
    return {
        "metadata": {"name": name, "namespace": SHOP_NAMESPACE, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [_container(name, f"registry.example/shop/{name}:1.0")]},
            },
        },
    }


def _seed_workloads(store: store_module.ClusterStore) -> None:
    for name, (replicas, budget) in SHOP_DEPLOYMENTS.items():
        store.create(resource=resources.DEPLOYMENTS, obj=_deployment(name, replicas))
        store.create(
            resource=resources.SERVICES,
            obj={
                "metadata": {
                    "name": name,
                    "namespace": SHOP_NAMESPACE,
                    "labels": {NAME_LABEL: name, PART_OF_LABEL: "shop"},
                },
                "spec": {
                    "selector": {NAME_LABEL: name},
                    "type": "ClusterIP",
                    "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                },
            },
        )
        if budget is not None:
            store.create(
                resource=resources.POD_DISRUPTION_BUDGETS,
                obj={
                    "metadata": {"name": name, "namespace": SHOP_NAMESPACE},
                    "spec": {**budget, "selector": {"matchLabels": {NAME_LABEL: name}}},
                },
            )
    store.create(
        resource=resources.DAEMON_SETS,
        obj={
            "metadata": {
                "name": "kube-proxy",
                "namespace": "kube-system",
                "labels": {"k8s-app": "kube-proxy"},
            },
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-proxy"}},
                    "spec": {
                        "containers": [
                            _container("kube-proxy", "registry.k8s.io/kube-proxy:v1.31.0")
                        ],
                        "tolerations": [{"operator": "Exists"}],
                        "priorityClassName": "system-node-critical",
                    },
                },
            },
        },
    )


def _seed_orchestrator(store: store_module.ClusterStore) -> None:
    labels = {NAME_LABEL: "stormdrill"}
    sts = store.create(
        resource=resources.STATEFUL_SETS,
        obj={
            "metadata": {"name": "stormdrill", "namespace": "stormdrill", "labels": dict(labels)},
            "spec": {
                "replicas": 1,
                "serviceName": "stormdrill",
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"containers": [_container("stormdrill", "stormdrill:0.1.0")]},
                },
            },
        },
    )
    sts_meta = sts["metadata"]
    assert isinstance(sts_meta, dict)
    containers = [_container("stormdrill", "stormdrill:0.1.0")]
    store.create(
        resource=resources.PODS,
        obj={
            "metadata": {
                "name": "stormdrill-0",
                "namespace": "stormdrill",
                "labels": {
                    NAME_LABEL: "stormdrill",
                    "statefulset.kubernetes.io/pod-name": "stormdrill-0",
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": "stormdrill",
                        "uid": sts_meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"containers": containers, "nodeName": "node-us-east-1c-2"},
            "status": _ready_status("10.0.3.10", "10.244.99.1", containers),
        },
    )
    store.update_status(
        resource=resources.STATEFUL_SETS,
        namespace="stormdrill",
        name="stormdrill",
        status={
            "replicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "currentReplicas": 1,
            "updatedReplicas": 1,
            "observedGeneration": 1,
        },
    )


def _subjects(subjects: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [
        {"kind": kind, "name": name, "apiGroup": "rbac.authorization.k8s.io"}
        for kind, name in subjects
    ]


def _seed_rbac(store: store_module.ClusterStore) -> None:
    for role in ("edit", "cluster-admin", "view"):
        store.create(
            resource=resources.CLUSTER_ROLES,
            obj={
                "metadata": {"name": role},
                "rules": [
                    {
                        "apiGroups": ["*"],
                        "resources": ["*"],
                        "verbs": ["*"] if role != "view" else ["get", "list", "watch"],
                    }
                ],
            },
        )
    for name, (role, subjects) in ROLE_BINDINGS.items():
        store.create(
            resource=resources.ROLE_BINDINGS,
            obj={
                "metadata": {"name": name, "namespace": SHOP_NAMESPACE},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": _subjects(subjects),
            },
        )
    for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items():
        store.create(
            resource=resources.CLUSTER_ROLE_BINDINGS,
            obj={
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": _subjects(subjects),
            },
        )


def seed_shop(store: store_module.ClusterStore) -> None:
    """The whole world of docs/sandbox-world.md, settled (pods scheduled and Ready)."""
    for name, labels in (
        ("default", {}),
        ("kube-system", {}),
        (SHOP_NAMESPACE, {ALLOW_DRILLS_LABEL: "true"}),
        ("stormdrill", {}),
    ):
        ensure_namespace(store, name, labels=labels)
    seed_nodes(store, count=6, zones=ZONES)
    _seed_orchestrator(store)
    _seed_workloads(store)
    _seed_rbac(store)
    settle = controller.Controller(store)
    settle.reconcile_once()
    settle.reconcile_once()
