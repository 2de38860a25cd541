"""Paginated lists as the real API server serves them, through the official client.

What the Kubernetes API documents (API Concepts, "Retrieving large results sets in chunks"
and "Resource versions"): `limit` caps a page and `metadata.continue` carries on; every page
of one list reports the first page's `resourceVersion` and is served from that snapshot, so
objects changed, created or deleted after the first page do not show (or show as they were);
`remainingItemCount` is set only without selectors; a continue token with `resourceVersion`
is a 400; `resourceVersionMatch=Exact` lists at that version; selectors apply before the page
is cut; a version the log no longer holds is 410 Gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from sandbox.kubernetes import errors, resources, seed, server
from sandbox.kubernetes import store as store_module
from tests.fixtures import kube

client: Any = kubernetes.client
NAMESPACE = "paging"


@pytest.fixture
def cluster() -> Iterator[tuple[store_module.ClusterStore, server.KubeApiServer]]:
    """9 nodes over three zones, 40 pods in `paging` and 5 in `other`; no controller."""
    st = store_module.ClusterStore()
    seed.seed_nodes(st, count=9, zones=seed.ZONES)
    seed.seed_pods(st, namespace=NAMESPACE, count=40, labels={"app": "paged"}, owned=True)
    seed.seed_pods(st, namespace="other", count=5, labels={"app": "else"}, name_prefix="x")
    api = server.KubeApiServer(store=st)
    api.start()
    yield st, api
    api.stop()


def _core(factory: kube.ApiClientFactory, api: server.KubeApiServer) -> Any:
    return client.CoreV1Api(factory(api))


def _raw(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(call(*args, _preload_content=False, **kwargs).data)
    return answer


def _walk(call: Any, *args: Any, limit: int, **kwargs: Any) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    token = None
    while True:
        extra: dict[str, str] = {"_continue": token} if token else {}
        page = _raw(call, *args, limit=limit, **kwargs, **extra)
        pages.append(page)
        token = page["metadata"].get("continue")
        if not token:
            return pages


def _names(pages: list[dict[str, Any]]) -> list[str]:
    return [item["metadata"]["name"] for page in pages for item in page["items"]]


def test_pages_of_a_list_add_up_to_the_whole_list_in_key_order(
    cluster: tuple[store_module.ClusterStore, server.KubeApiServer],
    kube_api_client: kube.ApiClientFactory,
) -> None:
    core = _core(kube_api_client, cluster[1])
    whole = _raw(core.list_pod_for_all_namespaces)

    pages = _walk(core.list_pod_for_all_namespaces, limit=7)

    assert _names(pages) == [i["metadata"]["name"] for i in whole["items"]]
    assert [len(p["items"]) for p in pages] == [7] * 6 + [3]
    assert {p["metadata"]["resourceVersion"] for p in pages} == {
        whole["metadata"]["resourceVersion"]
    }
    keys = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in whole["items"]]
    assert keys == sorted(keys)
    assert pages[0]["metadata"]["remainingItemCount"] == 45 - 7
    assert pages[-2]["metadata"]["remainingItemCount"] == 3
    assert "continue" not in pages[-1]["metadata"]


def test_a_continued_list_is_served_from_the_first_pages_snapshot(
    cluster: tuple[store_module.ClusterStore, server.KubeApiServer],
    kube_api_client: kube.ApiClientFactory,
) -> None:
    st, api = cluster
    core = _core(kube_api_client, api)
    before = _raw(core.list_namespaced_pod, NAMESPACE)["items"]
    first = _raw(core.list_namespaced_pod, NAMESPACE, limit=10)
    token = first["metadata"]["continue"]

    st.delete(resource=resources.PODS, namespace=NAMESPACE, name="bench-00030")
    # a pod created after the first page must not show up
    seed.seed_pods(
        st, namespace=NAMESPACE, count=1, labels={"app": "paged"}, name_prefix="bench-00025a"
    )
    changed: Any = st.get(resource=resources.PODS, namespace=NAMESPACE, name="bench-00020")
    changed["metadata"]["labels"]["changed"] = "yes"
    st.update(resource=resources.PODS, obj=changed, namespace=NAMESPACE)

    rest: list[dict[str, Any]] = [first]
    while token:
        page = _raw(core.list_namespaced_pod, NAMESPACE, limit=10, _continue=token)
        rest.append(page)
        token = page["metadata"].get("continue")

    assert _names(rest) == [p["metadata"]["name"] for p in before]
    shown = {i["metadata"]["name"]: i for page in rest for i in page["items"]}
    assert "changed" not in shown["bench-00020"]["metadata"]["labels"]
    assert {p["metadata"]["resourceVersion"] for p in rest} == {
        first["metadata"]["resourceVersion"]
    }
    now = _names(_walk(core.list_namespaced_pod, NAMESPACE, limit=10))
    assert "bench-00030" not in now and "bench-00025a-00000" in now


def test_selectors_apply_before_the_page_is_cut_and_hide_the_remaining_count(
    cluster: tuple[store_module.ClusterStore, server.KubeApiServer],
    kube_api_client: kube.ApiClientFactory,
) -> None:
    core = _core(kube_api_client, cluster[1])
    node = "node-us-east-1a-1"

    on_node = _walk(
        core.list_pod_for_all_namespaces, limit=2, field_selector=f"spec.nodeName={node}"
    )
    by_label = _walk(core.list_pod_for_all_namespaces, limit=4, label_selector="app=else")
    in_namespace = _walk(
        core.list_pod_for_all_namespaces,
        limit=6,
        field_selector=f"metadata.namespace={NAMESPACE},status.phase=Running",
    )

    everything = _raw(core.list_pod_for_all_namespaces)["items"]
    assert _names(on_node) == [
        p["metadata"]["name"] for p in everything if p["spec"]["nodeName"] == node
    ]
    assert len(_names(on_node)) == 5 + 1 and all(len(p["items"]) <= 2 for p in on_node)
    assert _names(by_label) == [f"x-{i:05d}" for i in range(5)]
    assert len(_names(in_namespace)) == 40
    for page in (*on_node, *by_label, *in_namespace):
        assert "remainingItemCount" not in page["metadata"]


def test_resource_version_rules_of_a_list(
    cluster: tuple[store_module.ClusterStore, server.KubeApiServer],
    kube_api_client: kube.ApiClientFactory,
) -> None:
    st, api = cluster
    core = _core(kube_api_client, api)
    at = _raw(core.list_node)["metadata"]["resourceVersion"]
    st.delete(resource=resources.NODES, namespace=None, name="node-us-east-1b-3")

    exact = _raw(core.list_node, resource_version=at, resource_version_match="Exact")
    latest = _raw(core.list_node, resource_version=at, resource_version_match="NotOlderThan")
    first = _raw(core.list_node, limit=2)

    assert len(exact["items"]) == 9 and exact["metadata"]["resourceVersion"] == at
    assert len(latest["items"]) == 8
    with pytest.raises(client.ApiException) as refused:
        core.list_node(limit=2, _continue=first["metadata"]["continue"], resource_version=at)
    assert refused.value.status == 400
    with pytest.raises(client.ApiException) as unmatched:
        core.list_node(resource_version_match="Exact")
    assert unmatched.value.status == 400
    with pytest.raises(client.ApiException) as bad_token:
        core.list_node(limit=2, _continue="not-a-token")
    assert bad_token.value.status == 400


def test_a_snapshot_the_log_no_longer_holds_is_gone_with_a_token_to_carry_on() -> None:
    st = store_module.ClusterStore(event_log_size=5)
    seed.seed_nodes(st, count=6, zones=seed.ZONES)
    first = st.list_page(resource=resources.NODES, limit=2)
    for name in ("node-us-east-1a-1", "node-us-east-1b-1", "node-us-east-1c-1"):
        node: Any = st.get(resource=resources.NODES, namespace=None, name=name)
        node["metadata"]["labels"]["touched"] = "yes"
        st.update(resource=resources.NODES, obj=node)

    with pytest.raises(errors.Gone) as gone:
        st.list_page(resource=resources.NODES, limit=2, continue_token=first.continue_token)

    assert gone.value.code == 410 and gone.value.list_continue
    carried = st.list_page(
        resource=resources.NODES, limit=10, continue_token=gone.value.list_continue
    )
    names = [_name(n) for n in st.list(resource=resources.NODES)]
    assert [_name(n) for n in carried.items] == names[2:]


def _name(obj: Any) -> str:
    return str(obj["metadata"]["name"])
