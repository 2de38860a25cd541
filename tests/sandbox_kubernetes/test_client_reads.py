"""The official client reads the seeded shop through the sandbox: discovery, selectors, errors."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import kubernetes.client
import pytest

from sandbox.kubernetes import server
from tests.fixtures import kube

# The official client's models make every field Optional; tests read them dynamically.
client: Any = kubernetes.client


@pytest.mark.realcluster
def test_listing_nodes_by_zone_label_and_name_field_agrees_with_the_full_list(
    kube_api_client: kube.ApiClientFactory, kubeconfig_path: pathlib.Path
) -> None:
    core = client.CoreV1Api(kube_api_client(kubeconfig_path))
    nodes = core.list_node().items
    assert nodes, "the cluster has no nodes"
    zoned = core.list_node(label_selector="topology.kubernetes.io/zone").items
    assert {n.metadata.name for n in zoned} == {
        n.metadata.name for n in nodes if "topology.kubernetes.io/zone" in (n.metadata.labels or {})
    }
    first = nodes[0].metadata.name
    by_name = core.list_node(field_selector=f"metadata.name={first}").items
    assert [n.metadata.name for n in by_name] == [first]
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={first}").items
    assert all(p.spec.node_name == first for p in pods)


def test_version_answers_every_version_info_field(
    kube_api_client: kube.ApiClientFactory, kube_server: server.KubeApiServer
) -> None:
    info = client.VersionApi(kube_api_client(kube_server)).get_code()
    for field in (
        "major",
        "minor",
        "git_version",
        "git_commit",
        "git_tree_state",
        "build_date",
        "go_version",
        "compiler",
        "platform",
    ):
        assert getattr(info, field), field


def test_nodes_carry_the_world_zones_and_select_by_zone(
    kube_api_client: kube.ApiClientFactory, kube_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(kube_server))
    names = [n.metadata.name for n in core.list_node().items]
    assert names == [f"node-us-east-1{z}-{i}" for z in "abc" for i in (1, 2)]
    in_a = core.list_node(label_selector="topology.kubernetes.io/zone=us-east-1a").items
    assert [n.metadata.name for n in in_a] == ["node-us-east-1a-1", "node-us-east-1a-2"]
    not_a = core.list_node(label_selector="topology.kubernetes.io/zone notin (us-east-1a)").items
    assert len(not_a) == 4


def test_pods_select_with_set_based_and_negated_label_selectors(
    kube_api_client: kube.ApiClientFactory, kube_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(kube_server))
    pods = core.list_namespaced_pod(
        "shop",
        label_selector="app.kubernetes.io/name in (web,payments),app.kubernetes.io/part-of=shop",
    ).items
    assert (
        sorted(p.metadata.labels["app.kubernetes.io/name"] for p in pods)
        == ["payments"] * 2 + ["web"] * 3
    )
    without = core.list_pod_for_all_namespaces(label_selector="!app.kubernetes.io/part-of").items
    assert {p.metadata.namespace for p in without} == {"kube-system", "stormdrill"}


def test_pods_select_by_node_phase_and_namespace_fields(
    kube_api_client: kube.ApiClientFactory, kube_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(kube_server))
    on_node = core.list_pod_for_all_namespaces(
        field_selector="spec.nodeName=node-us-east-1c-2"
    ).items
    assert "stormdrill-0" in {p.metadata.name for p in on_node}
    assert all(p.spec.node_name == "node-us-east-1c-2" for p in on_node)
    running = core.list_pod_for_all_namespaces(
        field_selector="status.phase=Running,metadata.namespace=stormdrill"
    ).items
    assert [p.metadata.name for p in running] == ["stormdrill-0"]


def test_seeded_workloads_are_ready_with_current_disruption_budgets(
    kube_api_client: kube.ApiClientFactory, kube_server: server.KubeApiServer
) -> None:
    api_client = kube_api_client(kube_server)
    deployments = client.AppsV1Api(api_client).list_namespaced_deployment("shop").items
    assert {d.metadata.name: d.status.ready_replicas for d in deployments} == {
        "checkout": 3,
        "inventory": 2,
        "payments": 2,
        "web": 3,
    }
    pdbs = client.PolicyV1Api(api_client).list_namespaced_pod_disruption_budget("shop").items
    assert {
        p.metadata.name: (
            p.status.current_healthy,
            p.status.desired_healthy,
            p.status.disruptions_allowed,
        )
        for p in pdbs
    } == {
        "checkout": (3, 2, 1),
        "payments": (2, 1, 1),
        "web": (3, 2, 1),
    }
    daemon_pods = client.CoreV1Api(api_client).list_namespaced_pod("kube-system").items
    assert sorted(p.spec.node_name for p in daemon_pods) == sorted(
        f"node-us-east-1{z}-{i}" for z in "abc" for i in (1, 2)
    )


def test_rbac_bindings_of_the_world_are_served(
    kube_api_client: kube.ApiClientFactory, kube_server: server.KubeApiServer
) -> None:
    rbac = client.RbacAuthorizationV1Api(kube_api_client(kube_server))
    oncall = rbac.read_namespaced_role_binding("payments-oncall", "shop")
    assert [(s.kind, s.name) for s in oncall.subjects] == [
        ("User", "alice"),
        ("User", "bob"),
        ("Group", "team-payments"),
    ]
    admins = rbac.read_cluster_role_binding("shop-admins")
    assert admins.role_ref.name == "cluster-admin"
    assert {s.name for s in admins.subjects} == {"frank", "alice"}


def test_missing_object_answers_a_not_found_status_body(
    kube_api_client: kube.ApiClientFactory, kube_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(kube_server))
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod("no-such-pod", "shop")
    assert caught.value.status == 404
    body = json.loads(caught.value.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert (body["status"], body["reason"], body["code"]) == ("Failure", "NotFound", 404)
    assert body["details"] == {"name": "no-such-pod", "kind": "pods"}
    assert "no-such-pod" in body["message"]


def test_invalid_label_selector_is_a_bad_request(
    kube_api_client: kube.ApiClientFactory, kube_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(kube_server))
    with pytest.raises(client.ApiException) as caught:
        core.list_node(label_selector="zone in (a")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["reason"] == "BadRequest"
