"""A real kubectl binary drives the sandbox: get (table, yaml, jsonpath, watch), cordon, drain
(evictions), taint, scale, rollout status, server-side apply, diff (dry run), foreground delete."""

from __future__ import annotations

import pathlib
import queue
import subprocess
import threading
from typing import Any

import pytest
import yaml

from sandbox.kubernetes import resources
from tests.fixtures import kube

pytestmark = pytest.mark.kubectl


def _kubectl(binary: pathlib.Path, sandbox: kube.KubeSandbox, *args: str) -> str:
    command = [
        str(binary),
        f"--kubeconfig={sandbox.kubeconfig}",
        f"--cache-dir={sandbox.kubeconfig.parent / 'kubectl-cache'}",
        "--request-timeout=20s",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def _pods_on(sandbox: kube.KubeSandbox, node: str) -> list[dict[str, object]]:
    return sandbox.store.list(resource=resources.PODS, field_selector=f"spec.nodeName={node}")


def test_kubectl_gets_nodes_with_status_columns(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    out = _kubectl(kubectl_binary, fresh_kube, "get", "nodes")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == [
        f"node-us-east-1{z}-{i}" for z in "abc" for i in (1, 2)
    ]
    names = _kubectl(
        kubectl_binary,
        fresh_kube,
        "get",
        "no",
        "-l",
        "topology.kubernetes.io/zone=us-east-1b",
        "-o",
        "name",
    )
    assert names.split() == ["node/node-us-east-1b-1", "node/node-us-east-1b-2"]


def _node_field(sandbox: kube.KubeSandbox, node: str, path: str) -> Any:
    return kube.field(sandbox.store.get(resource=resources.NODES, namespace=None, name=node), path)


def _deployments_ready(sandbox: kube.KubeSandbox) -> bool:
    return all(
        kube.field(d, "status.readyReplicas") == kube.field(d, "spec.replicas")
        for d in sandbox.store.list(resource=resources.DEPLOYMENTS, namespace="shop")
    )


def test_kubectl_cordon_and_drain_evict_every_non_daemon_pod(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    node = "node-us-east-1a-1"
    _kubectl(kubectl_binary, fresh_kube, "cordon", node)
    assert _node_field(fresh_kube, node, "spec.unschedulable") is True
    before = fresh_kube.server.mutating_request_count
    _kubectl(
        kubectl_binary,
        fresh_kube,
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=60s",
    )
    assert fresh_kube.server.mutating_request_count > before
    left = _pods_on(fresh_kube, node)
    assert [kube.field(p, "metadata.namespace") for p in left] == ["kube-system"]
    kube.eventually(
        lambda: _deployments_ready(fresh_kube),
        what="shop deployments back to full readiness after the drain",
    )
    _kubectl(kubectl_binary, fresh_kube, "uncordon", node)
    assert not _node_field(fresh_kube, node, "spec.unschedulable")


def test_kubectl_taints_and_untaints_a_node(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    node = "node-us-east-1b-2"
    _kubectl(kubectl_binary, fresh_kube, "taint", "nodes", node, "drill=zone-b:NoSchedule")
    assert _node_field(fresh_kube, node, "spec.taints") == [
        {"key": "drill", "value": "zone-b", "effect": "NoSchedule"}
    ]
    _kubectl(kubectl_binary, fresh_kube, "taint", "nodes", node, "drill=zone-b:NoSchedule-")
    assert not _node_field(fresh_kube, node, "spec.taints")


def test_kubectl_scales_a_deployment(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    _kubectl(kubectl_binary, fresh_kube, "scale", "deployment", "web", "-n", "shop", "--replicas=5")
    kube.eventually(
        lambda: (
            _deployments_ready(fresh_kube)
            and len(
                fresh_kube.store.list(
                    resource=resources.PODS,
                    namespace="shop",
                    label_selector="app.kubernetes.io/name=web",
                )
            )
            == 5
        ),
        what="web at 5 ready pods",
    )
    out = _kubectl(kubectl_binary, fresh_kube, "get", "deploy", "web", "-n", "shop")
    assert out.splitlines()[1].split()[:2] == ["web", "5/5"]


def _shop_pods(sandbox: kube.KubeSandbox, app: str) -> list[dict[str, Any]]:
    return sandbox.store.list(
        resource=resources.PODS, namespace="shop", label_selector=f"app.kubernetes.io/name={app}"
    )


def test_kubectl_prints_objects_as_yaml_and_through_jsonpath(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    printed = yaml.safe_load(
        _kubectl(
            kubectl_binary, fresh_kube, "get", "deploy", "payments", "-n", "shop", "-o", "yaml"
        )
    )
    stored = fresh_kube.store.get(resource=resources.DEPLOYMENTS, namespace="shop", name="payments")
    assert printed == stored
    zones = _kubectl(
        kubectl_binary,
        fresh_kube,
        "get",
        "nodes",
        "-o",
        r"jsonpath={range .items[*]}{.metadata.name}="
        r"{.metadata.labels.topology\.kubernetes\.io/zone}{'\n'}{end}",
    )
    assert zones.splitlines() == [
        f"node-us-east-1{z}-{i}=us-east-1{z}" for z in "abc" for i in (1, 2)
    ]


_CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: drill-settings
  namespace: shop
data:
  mode: {mode}
"""


def _config_map(sandbox: kube.KubeSandbox, mode: str) -> pathlib.Path:
    path = sandbox.kubeconfig.parent / f"drill-settings-{mode}.yaml"
    path.write_text(_CONFIG_MAP.format(mode=mode))
    return path


def _kubectl_diff(binary: pathlib.Path, sandbox: kube.KubeSandbox, *args: str) -> str:
    """`kubectl diff` exits 1 when there is a difference (0: none, >1: an error)."""
    command = [str(binary), f"--kubeconfig={sandbox.kubeconfig}", "diff", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, f"kubectl diff: {result.returncode} {result.stderr}"
    return result.stdout


def test_kubectl_diff_shows_a_new_object_without_creating_it(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    before = fresh_kube.store.resource_version
    out = _kubectl_diff(kubectl_binary, fresh_kube, "-f", str(_config_map(fresh_kube, "calm")))
    assert "+  mode: calm" in out
    # kubectl diff sends dryRun=All: the sandbox must not store anything.
    assert fresh_kube.store.list(resource=resources.CONFIG_MAPS, namespace="shop") == []
    assert fresh_kube.store.resource_version == before


def test_kubectl_server_side_apply_creates_then_updates_and_diff_changes_nothing(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    # --validate=false: the sandbox serves no OpenAPI document (docs/sandbox-world.md).
    apply = ("apply", "--server-side", "--validate=false", "-f")
    out = _kubectl(kubectl_binary, fresh_kube, *apply, str(_config_map(fresh_kube, "calm")))
    assert out.strip() == "configmap/drill-settings serverside-applied"

    def mode() -> Any:
        cm = fresh_kube.store.get(
            resource=resources.CONFIG_MAPS, namespace="shop", name="drill-settings"
        )
        return kube.field(cm, "data.mode")

    assert mode() == "calm"
    storm = str(_config_map(fresh_kube, "storm"))
    before = fresh_kube.store.resource_version
    for extra in ((), ("--server-side",)):
        out = _kubectl_diff(kubectl_binary, fresh_kube, *extra, "-f", storm)
        assert "-  mode: calm" in out and "+  mode: storm" in out
        assert "annotations: {}" not in out
    assert mode() == "calm"
    assert fresh_kube.store.resource_version == before
    _kubectl(kubectl_binary, fresh_kube, *apply, storm)
    assert mode() == "storm"


def test_kubectl_rollout_status_waits_for_a_scaled_deployment(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    _kubectl(
        kubectl_binary, fresh_kube, "scale", "deploy", "checkout", "-n", "shop", "--replicas=4"
    )
    out = _kubectl(
        kubectl_binary,
        fresh_kube,
        "rollout",
        "status",
        "deploy/checkout",
        "-n",
        "shop",
        "--timeout=60s",
    )
    assert out.strip().splitlines()[-1] == 'deployment "checkout" successfully rolled out'
    checkout = fresh_kube.store.get(
        resource=resources.DEPLOYMENTS, namespace="shop", name="checkout"
    )
    assert kube.field(checkout, "status.updatedReplicas") == 4
    assert kube.field(checkout, "status.availableReplicas") == 4


def test_kubectl_foreground_delete_removes_dependents_before_the_owner(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    since = fresh_kube.store.resource_version
    out = _kubectl(
        kubectl_binary,
        fresh_kube,
        "delete",
        "deploy",
        "inventory",
        "-n",
        "shop",
        "--cascade=foreground",
    )
    assert out.strip() == 'deployment.apps "inventory" deleted'
    # Foreground: when kubectl returns, the ReplicaSet and its pods are already gone.
    assert _shop_pods(fresh_kube, "inventory") == []
    replica_sets = fresh_kube.store.list(resource=resources.REPLICA_SETS, namespace="shop")
    assert not [
        rs for rs in replica_sets if str(kube.field(rs, "metadata.name")).startswith("inventory-")
    ]
    events = [
        (e.type, e.object["kind"], e.object["metadata"].get("finalizers"))
        for e in fresh_kube.store.events_since(since, namespace="shop")
        if e.object["metadata"]["name"].startswith("inventory")
    ]
    assert events[0] == ("MODIFIED", "Deployment", ["foregroundDeletion"])
    assert events[-1][:2] == ("DELETED", "Deployment")
    assert {kind for kind_type, kind, _ in events[1:-1] if kind_type == "DELETED"} == {
        "ReplicaSet",
        "Pod",
    }


def test_kubectl_watch_follows_a_pod_rescheduled_off_a_cordoned_node(
    kubectl_binary: pathlib.Path, fresh_kube: kube.KubeSandbox
) -> None:
    old = _shop_pods(fresh_kube, "payments")[0]
    old_name, old_node = old["metadata"]["name"], old["spec"]["nodeName"]
    watcher = subprocess.Popen(
        [
            str(kubectl_binary),
            f"--kubeconfig={fresh_kube.kubeconfig}",
            "get",
            "pods",
            "-n",
            "shop",
            "-l",
            "app.kubernetes.io/name=payments",
            "--watch",
            "-o",
            r"jsonpath={.metadata.name} {.spec.nodeName} {.status.phase}{'\n'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout = watcher.stdout
        assert stdout is not None
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        seen: list[list[str]] = []

        def read_until(done: Any) -> None:
            while not done():
                try:
                    seen.append(lines.get(timeout=30).split())
                except queue.Empty:
                    pytest.fail(f"kubectl --watch printed nothing new for 30s; saw {seen}")

        read_until(lambda: len(seen) >= 2)  # the two current pods come first
        assert {row[0] for row in seen} == {
            p["metadata"]["name"] for p in _shop_pods(fresh_kube, "payments")
        }
        _kubectl(kubectl_binary, fresh_kube, "cordon", old_node)
        _kubectl(kubectl_binary, fresh_kube, "delete", "pod", old_name, "-n", "shop")
        read_until(
            lambda: any(
                row[0] != old_name and len(row) == 3 and row[1] != old_node and row[2] == "Running"
                for row in seen[2:]
            )
        )
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    moved = [row for row in seen[2:] if row[0] not in (old_name, *(r[0] for r in seen[:2]))]
    assert moved and all(row[1] != old_node for row in moved if len(row) == 3)
