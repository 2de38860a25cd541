"""A real kubectl binary drives the sandbox: get, cordon, drain (evictions), taint, scale."""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest

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
