"""Controller: a tiny reconcile loop giving drills real effects in the sandbox cluster.

Each pass (`reconcile_once`), in order: pods on vanished nodes or on nodes with an untolerated
NoExecute taint are deleted; orphans (owner gone) are garbage-collected; each Deployment owns one
ReplicaSet per pod-template hash (older ones scaled to 0); ReplicaSets and DaemonSets get their
pods; pending pods are scheduled on schedulable nodes whose NoSchedule/NoExecute taints they
tolerate, spreading each owner's pods across zones (fewest of its pods first, then the least
loaded node); scheduled pods turn Ready after `pod_ready_delay_s`; ReplicaSet, Deployment,
DaemonSet and PodDisruptionBudget statuses are written when they change (and only then, so the
loop converges). Pods of cordoned nodes stay where they are until evicted.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import threading
import time
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.kubernetes import disruption, errors, resources
from sandbox.kubernetes import store as store_module

log = logging.getLogger(__name__)

ZONE_LABEL = "topology.kubernetes.io/zone"
HASH_LABEL = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")

Obj = dict[str, Any]


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable 10-character hash of a pod template (the `pod-template-hash` label value)."""
    number = int(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest(), 16)
    chars = []
    for _ in range(10):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Whether any toleration matches the taint (key/operator/value/effect semantics)."""
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        operator = tol.get("operator", "Equal")
        if not tol.get("key") and operator == "Exists":
            return True
        if tol.get("key") != taint.get("key"):
            continue
        if operator == "Exists" or tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _meta(obj: Mapping[str, Any]) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _taints(node: Mapping[str, Any]) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or [])


def _tolerations(pod: Mapping[str, Any]) -> list[Obj]:
    return list((pod.get("spec") or {}).get("tolerations") or [])


def _node_admits(node: Mapping[str, Any], pod: Mapping[str, Any], *, daemon: bool = False) -> bool:
    if not daemon and (node.get("spec") or {}).get("unschedulable"):
        return False
    wanted = (pod.get("spec") or {}).get("nodeSelector") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in wanted.items()):
        return False
    return all(
        tolerates(_tolerations(pod), taint)
        for taint in _taints(node)
        if taint.get("effect") in _BLOCKING_EFFECTS
    )


class Controller:
    """Runs `reconcile_once` on each store change (at least every `interval_s`) on a thread."""

    def __init__(
        self,
        store: store_module.ClusterStore,
        *,
        interval_s: float = 0.2,
        pod_ready_delay_s: float = 0.0,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.pod_ready_delay_s = pod_ready_delay_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first_seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._passes = threading.Condition()
        self._generation = 0
        self._clean_at = -1
        """The store's resourceVersion a pass started from and finished without error."""

    # ----- loop ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="kube-sandbox-controller", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Controller:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        seen = -1
        while not self._stop.is_set():
            current = self.store.resource_version
            if current != seen or self._waiting_for_ready():
                clean = False
                try:
                    self.reconcile_once()
                    clean = True
                except errors.ApiError as exc:
                    log.info("controller pass hit %s; retrying on the next pass", exc)
                except Exception:
                    log.exception("controller pass failed; retrying in %.1fs", self.interval_s)
                seen = current
                with self._passes:
                    self._generation += 1
                    self._clean_at = current if clean else -1
                    self._passes.notify_all()
            self.store.wait_for_change(seen, timeout_s=self.interval_s)

    def _waiting_for_ready(self) -> bool:
        return self.pod_ready_delay_s > 0 and bool(self._first_seen)

    # ----- the idle signal -----------------------------------------------------------
    @property
    def generation(self) -> int:
        """How many passes the loop has finished (with or without error)."""
        with self._passes:
            return self._generation

    def idle(self) -> bool:
        """The loop has caught up: its last pass started from the store's current version,
        ended without error and changed nothing (else the version would have moved on), and
        no pod is waiting to turn Ready."""
        with self._passes:
            return self._is_idle()

    def _is_idle(self) -> bool:
        caught_up = self._clean_at == self.store.resource_version
        return self._thread is not None and caught_up and not self._waiting_for_ready()

    def wait_idle(self, *, timeout_s: float = 10.0) -> bool:
        """Block until `idle()` (True) or `timeout_s` passes (False); the loop must be running.

        A write made before the call is covered: it moved the store's version past the last
        pass, so only a later pass that reconciles it (and writes nothing more) ends the wait.
        """
        deadline = time.monotonic() + timeout_s
        with self._passes:
            while not self._is_idle():
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                # A change with no pass after it yet (or a pod not yet Ready) re-checks soon.
                self._passes.wait(timeout=min(left, max(self.interval_s, 0.01)))
            return True

    # ----- one pass ------------------------------------------------------------------
    def reconcile_once(self) -> None:
        """One full pass (see the module docstring); safe to call from any thread."""
        with self._lock:
            nodes = {_meta(n)["name"]: n for n in self._list(resources.NODES)}
            pods: list[Obj] = self._list(resources.PODS)
            pods = self._evict_from_bad_nodes(nodes, pods)
            pods = self._collect_orphans(pods)
            self._sync_deployments()
            replica_sets = self._list(resources.REPLICA_SETS)
            for rs in replica_sets:
                pods = self._sync_replica_set(rs, nodes, pods)
            for ds in self._list(resources.DAEMON_SETS):
                pods = self._sync_daemon_set(ds, nodes, pods)
            pods = self._schedule_pending(nodes, pods)
            pods = self._mark_ready(nodes, pods)
            self._write_statuses(pods)

    def _list(self, resource: resources.ResourceType) -> list[Obj]:
        return typing.cast(list[Obj], self.store.list(resource=resource))

    def _delete_pod(self, pod: Mapping[str, Any], why: str) -> None:
        meta = _meta(pod)
        try:
            self.store.delete(
                resource=resources.PODS,
                namespace=meta["namespace"],
                name=meta["name"],
                uid=meta.get("uid"),
            )
            log.info("controller deleted pod %s/%s: %s", meta["namespace"], meta["name"], why)
        except (errors.NotFound, errors.Conflict):
            pass

    def _evict_from_bad_nodes(self, nodes: Mapping[str, Obj], pods: list[Obj]) -> list[Obj]:
        kept = []
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and node_name not in nodes:
                self._delete_pod(pod, f"node {node_name} is gone")
                continue
            if node_name:
                no_execute = [
                    t for t in _taints(nodes[node_name]) if t.get("effect") == "NoExecute"
                ]
                if any(not tolerates(_tolerations(pod), t) for t in no_execute):
                    self._delete_pod(pod, f"node {node_name} has an untolerated NoExecute taint")
                    continue
            kept.append(pod)
        return kept

    def _owner_exists(self, obj: Mapping[str, Any]) -> bool:
        ref = disruption.controller_of(obj)
        if ref is None:
            return True
        owner_type = self.store.registry.by_kind(
            api_version=str(ref.get("apiVersion")), kind=str(ref.get("kind"))
        )
        if owner_type is None:
            return True
        try:
            owner = self.store.get(
                resource=owner_type,
                namespace=_meta(obj).get("namespace") if owner_type.namespaced else None,
                name=str(ref.get("name")),
            )
        except errors.NotFound:
            return False
        return bool(_meta(owner).get("uid") == ref.get("uid"))

    def _collect_orphans(self, pods: list[Obj]) -> list[Obj]:
        for rs in self._list(resources.REPLICA_SETS):
            if not self._owner_exists(rs):
                meta = _meta(rs)
                with contextlib.suppress(errors.NotFound):
                    self.store.delete(
                        resource=resources.REPLICA_SETS,
                        namespace=meta["namespace"],
                        name=meta["name"],
                    )
        kept = []
        for pod in pods:
            if self._owner_exists(pod):
                kept.append(pod)
            else:
                self._delete_pod(pod, "its owner is gone")
        return kept

    def _sync_deployments(self) -> None:
        replica_sets = self._list(resources.REPLICA_SETS)
        for deployment in self._list(resources.DEPLOYMENTS):
            meta, spec = _meta(deployment), deployment.get("spec") or {}
            template = spec.get("template") or {}
            wanted_hash = template_hash(template)
            owned = [
                rs
                for rs in replica_sets
                if (disruption.controller_of(rs) or {}).get("uid") == meta["uid"]
            ]
            replicas = int(spec.get("replicas", 1))
            current = next(
                (rs for rs in owned if _meta(rs).get("labels", {}).get(HASH_LABEL) == wanted_hash),
                None,
            )
            if current is None:
                self._create_replica_set(deployment, wanted_hash, replicas)
            elif (current.get("spec") or {}).get("replicas") != replicas:
                self.store.patch(
                    resource=resources.REPLICA_SETS,
                    namespace=meta["namespace"],
                    name=_meta(current)["name"],
                    patch={"spec": {"replicas": replicas}},
                )
            for old in owned:
                if old is not current and (old.get("spec") or {}).get("replicas") != 0:
                    self.store.patch(
                        resource=resources.REPLICA_SETS,
                        namespace=meta["namespace"],
                        name=_meta(old)["name"],
                        patch={"spec": {"replicas": 0}},
                    )

    def _create_replica_set(self, deployment: Obj, pod_hash: str, replicas: int) -> None:
        meta, spec = _meta(deployment), deployment.get("spec") or {}
        template = store_module.clone(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = store_module.clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        self.store.create(
            resource=resources.REPLICA_SETS,
            obj={
                "metadata": {
                    "name": f"{meta['name']}-{pod_hash}",
                    "namespace": meta["namespace"],
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                    "ownerReferences": [_owner_ref(deployment)],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            },
        )

    def _sync_replica_set(self, rs: Obj, nodes: Mapping[str, Obj], pods: list[Obj]) -> list[Obj]:
        uid = _meta(rs)["uid"]
        mine = [p for p in pods if (disruption.controller_of(p) or {}).get("uid") == uid]
        wanted = int((rs.get("spec") or {}).get("replicas", 1))
        pods = list(pods)
        for _ in range(wanted - len(mine)):
            pod = self._new_pod(rs, node_name=None)
            node = self._choose_node(pod, nodes, pods)
            if node is not None:
                pod["spec"]["nodeName"] = node
            pods.append(self._create_pod(pod))
        if len(mine) > wanted:

            def doom_order(pod: Obj) -> tuple[bool, bool, str]:
                return (
                    bool((pod.get("spec") or {}).get("nodeName")),
                    disruption.is_pod_ready(pod),
                    "~" + _meta(pod).get("creationTimestamp", ""),
                )

            doomed = sorted(mine, key=doom_order)[: len(mine) - wanted]
            doomed_uids = {_meta(p)["uid"] for p in doomed}
            for pod in doomed:
                self._delete_pod(pod, "scaled down")
            pods = [p for p in pods if _meta(p)["uid"] not in doomed_uids]
        return pods

    def _sync_daemon_set(self, ds: Obj, nodes: Mapping[str, Obj], pods: list[Obj]) -> list[Obj]:
        uid = _meta(ds)["uid"]
        mine = [p for p in pods if (disruption.controller_of(p) or {}).get("uid") == uid]
        probe = {"spec": (ds.get("spec") or {}).get("template", {}).get("spec") or {}}
        eligible = {name for name, node in nodes.items() if _node_admits(node, probe, daemon=True)}
        covered: set[str] = set()
        kept = [p for p in pods if (disruption.controller_of(p) or {}).get("uid") != uid]
        for pod in mine:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name in eligible and node_name not in covered:
                covered.add(node_name)
                kept.append(pod)
            else:
                self._delete_pod(pod, "not wanted on its node by its DaemonSet")
        for node_name in sorted(eligible - covered):
            kept.append(self._create_pod(self._new_pod(ds, node_name=node_name)))
        return kept

    def _new_pod(self, owner: Obj, *, node_name: str | None) -> Obj:
        meta = _meta(owner)
        template = store_module.clone((owner.get("spec") or {}).get("template") or {})
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        spec = dict(template.get("spec") or {})
        if node_name:
            spec["nodeName"] = node_name
        return {
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [_owner_ref(owner)],
            },
            "spec": spec,
            "status": {"phase": "Pending"},
        }

    def _create_pod(self, pod: Obj) -> Obj:
        if not (pod.get("spec") or {}).get("nodeName"):
            pod["status"]["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/0 nodes are available: no schedulable node admits the pod",
                }
            ]
        created = self.store.create(resource=resources.PODS, obj=pod)
        return dict(created)

    def _choose_node(
        self, pod: Mapping[str, Any], nodes: Mapping[str, Obj], pods: Sequence[Obj]
    ) -> str | None:
        candidates = [n for n in sorted(nodes) if _node_admits(nodes[n], pod)]
        if not candidates:
            return None
        owner_uid = (disruption.controller_of(pod) or {}).get("uid")
        load: dict[str, int] = {}
        zone_count: dict[str, int] = {}
        for other in pods:
            node_name = (other.get("spec") or {}).get("nodeName")
            if not node_name:
                continue
            load[node_name] = load.get(node_name, 0) + 1
            if owner_uid and (disruption.controller_of(other) or {}).get("uid") == owner_uid:
                zone = _zone(nodes.get(node_name))
                zone_count[zone] = zone_count.get(zone, 0) + 1
        zones = sorted(
            {_zone(nodes[n]) for n in candidates}, key=lambda z: (zone_count.get(z, 0), z)
        )
        in_zone = [n for n in candidates if _zone(nodes[n]) == zones[0]]
        return min(in_zone, key=lambda n: (load.get(n, 0), n))

    def _schedule_pending(self, nodes: Mapping[str, Obj], pods: list[Obj]) -> list[Obj]:
        current = list(pods)
        for index, pod in enumerate(current):
            if (pod.get("spec") or {}).get("nodeName"):
                continue
            node = self._choose_node(pod, nodes, current)
            if node is None:
                continue
            meta = _meta(pod)
            try:
                self.store.patch(
                    resource=resources.PODS,
                    namespace=meta["namespace"],
                    name=meta["name"],
                    patch={"spec": {"nodeName": node}},
                )
                updated = self.store.update_status(
                    resource=resources.PODS,
                    namespace=meta["namespace"],
                    name=meta["name"],
                    status={"phase": "Pending", "conditions": [_condition("PodScheduled", "True")]},
                )
                current[index] = dict(updated)
            except errors.ApiError:
                continue
        return current

    def _mark_ready(self, nodes: Mapping[str, Obj], pods: list[Obj]) -> list[Obj]:
        now = time.monotonic()
        live = {_meta(p)["uid"] for p in pods}
        self._first_seen = {uid: t for uid, t in self._first_seen.items() if uid in live}
        result = []
        for pod in pods:
            meta = _meta(pod)
            if not (pod.get("spec") or {}).get("nodeName") or disruption.is_pod_ready(pod):
                result.append(pod)
                continue
            first = self._first_seen.setdefault(meta["uid"], now)
            if now - first < self.pod_ready_delay_s:
                result.append(pod)
                continue
            self._first_seen.pop(meta["uid"], None)
            try:
                updated = self.store.update_status(
                    resource=resources.PODS,
                    namespace=meta["namespace"],
                    name=meta["name"],
                    status=self._running_status(pod, nodes.get(pod["spec"]["nodeName"])),
                )
                result.append(dict(updated))
            except errors.NotFound:
                continue
        return result

    def _running_status(self, pod: Obj, node: Mapping[str, Any] | None) -> Obj:
        host_ip = next(
            (
                a.get("address")
                for a in ((node or {}).get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            "10.0.0.1",
        )
        number = int(hashlib.sha256(str(_meta(pod).get("uid")).encode()).hexdigest()[:8], 16)
        ip = f"10.244.{number // 250 % 250}.{number % 250 + 1}"
        now = store_module.timestamp(_utcnow())
        containers = (pod.get("spec") or {}).get("containers") or []
        return {
            "phase": "Running",
            "conditions": [
                _condition(t, "True", now)
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": c.get("name", "main"),
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

    # ----- statuses ------------------------------------------------------------------
    def _write_statuses(self, pods: Sequence[Obj]) -> None:
        by_owner: dict[str, list[Obj]] = {}
        for pod in pods:
            ref = disruption.controller_of(pod)
            if ref is not None:
                by_owner.setdefault(str(ref.get("uid")), []).append(pod)
        rs_status: dict[str, Obj] = {}
        for rs in self._list(resources.REPLICA_SETS):
            meta = _meta(rs)
            owned = by_owner.get(meta["uid"], [])
            ready = sum(1 for p in owned if disruption.is_pod_ready(p))
            status = {
                "replicas": len(owned),
                "fullyLabeledReplicas": len(owned),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": meta.get("generation", 1),
            }
            rs_status[meta["uid"]] = {
                **status,
                "owner": (disruption.controller_of(rs) or {}).get("uid"),
                "hash": meta.get("labels", {}).get(HASH_LABEL),
            }
            self._set_status(resources.REPLICA_SETS, rs, status)
        for deployment in self._list(resources.DEPLOYMENTS):
            self._set_status(
                resources.DEPLOYMENTS, deployment, self._deployment_status(deployment, rs_status)
            )
        for ds in self._list(resources.DAEMON_SETS):
            meta = _meta(ds)
            owned = by_owner.get(meta["uid"], [])
            ready = sum(1 for p in owned if disruption.is_pod_ready(p))
            self._set_status(
                resources.DAEMON_SETS,
                ds,
                {
                    "currentNumberScheduled": len(owned),
                    "desiredNumberScheduled": len(owned),
                    "numberMisscheduled": 0,
                    "numberReady": ready,
                    "numberAvailable": ready,
                    "updatedNumberScheduled": len(owned),
                    "observedGeneration": meta.get("generation", 1),
                },
            )
        self.store.refresh_pdb_statuses()

    def _deployment_status(self, deployment: Obj, rs_status: Mapping[str, Obj]) -> Obj:
        meta, spec = _meta(deployment), deployment.get("spec") or {}
        mine = [s for s in rs_status.values() if s["owner"] == meta["uid"]]
        current_hash = template_hash(spec.get("template") or {})
        wanted = int(spec.get("replicas", 1))
        replicas = sum(s["replicas"] for s in mine)
        ready = sum(s["readyReplicas"] for s in mine)
        updated = sum(s["replicas"] for s in mine if s["hash"] == current_hash)
        available = ready >= wanted
        previous = {
            c.get("type"): c for c in (deployment.get("status") or {}).get("conditions") or []
        }
        now = store_module.timestamp(_utcnow())

        def condition(kind: str, ok: bool, reason: str, message: str) -> Obj:
            status = "True" if ok else "False"
            old = previous.get(kind)
            if old is not None and old.get("status") == status and old.get("reason") == reason:
                return dict(old)
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }

        status: Obj = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                condition(
                    "Available",
                    available,
                    "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                ),
                condition(
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{meta["name"]}-{current_hash}" has successfully progressed.',
                ),
            ],
        }
        if replicas > ready:
            status["unavailableReplicas"] = replicas - ready
        return status

    def _set_status(self, resource: resources.ResourceType, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        meta = _meta(obj)
        with contextlib.suppress(errors.NotFound):
            self.store.update_status(
                resource=resource, namespace=meta.get("namespace"), name=meta["name"], status=status
            )


def _zone(node: Mapping[str, Any] | None) -> str:
    if node is None:
        return ""
    return str((_meta(node).get("labels") or {}).get(ZONE_LABEL, ""))


def _owner_ref(owner: Mapping[str, Any]) -> Obj:
    meta = _meta(owner)
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _condition(kind: str, status: str, when: str | None = None) -> Obj:
    return {
        "type": kind,
        "status": status,
        "lastTransitionTime": when or store_module.timestamp(_utcnow()),
    }


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
