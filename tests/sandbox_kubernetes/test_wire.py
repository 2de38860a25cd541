"""Wire behaviour: pagination, watches, keep-alive with bodies, fault knobs, request counters."""

from __future__ import annotations

import http.client
import json
import pathlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import kubernetes.watch
import pytest

from sandbox.kubernetes import resources, seed, server, store
from tests.fixtures import kube

# The official client's models make every field Optional; tests read them dynamically.
client: Any = kubernetes.client
watch: Any = kubernetes.watch


@pytest.fixture
def bare_server() -> Iterator[server.KubeApiServer]:
    """A server over a store with nodes and namespaces only (no controller)."""
    cluster = store.ClusterStore()
    seed.ensure_namespace(cluster, "default")
    seed.seed_nodes(cluster, count=6, zones=seed.ZONES)
    with server.KubeApiServer(store=cluster) as api:
        yield api


def test_list_pages_through_5000_pods_with_limit_and_continue(
    kube_api_client: kube.ApiClientFactory, bare_server: server.KubeApiServer
) -> None:
    seed.seed_pods(bare_server.store, namespace="bench", count=5000, labels={"app": "bench"})
    core = client.CoreV1Api(kube_api_client(bare_server))
    names: list[str] = []
    token: str | None = None
    pages = 0
    list_versions = set()
    while True:
        page = core.list_namespaced_pod("bench", limit=700, _continue=token)
        pages += 1
        names.extend(p.metadata.name for p in page.items)
        list_versions.add(page.metadata.resource_version)
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 5000 - len(names)
    assert pages == 8
    assert names == [f"bench-{i:05d}" for i in range(5000)]
    assert len(list_versions) == 1


def test_watch_streams_added_modified_and_deleted_events_from_a_resource_version(
    kube_api_client: kube.ApiClientFactory, bare_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(bare_server))
    start = core.list_namespaced_pod("default").metadata.resource_version
    pod = {"metadata": {"name": "w1"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    core.create_namespaced_pod("default", pod)
    core.patch_namespaced_pod("w1", "default", {"metadata": {"labels": {"x": "y"}}})
    core.delete_namespaced_pod("w1", "default")
    seen = [
        (event["type"], event["object"].metadata.name)
        for event in watch.Watch().stream(
            core.list_namespaced_pod, "default", resource_version=start, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_without_resource_version_starts_with_the_current_objects_then_follows(
    kube_api_client: kube.ApiClientFactory, bare_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(bare_server))
    timer = threading.Timer(
        0.3,
        lambda: bare_server.store.patch(
            resource=resources.NODES,
            namespace=None,
            name="node-us-east-1a-1",
            patch={"spec": {"unschedulable": True}},
        ),
    )
    timer.start()
    events = []
    stream = watch.Watch()
    for event in stream.stream(core.list_node, timeout_seconds=5):
        events.append((event["type"], event["object"].metadata.name))
        if event["type"] == "MODIFIED":
            stream.stop()
    timer.join()
    assert events[:6] == [("ADDED", f"node-us-east-1{z}-{i}") for z in "abc" for i in (1, 2)]
    assert events[6:] == [("MODIFIED", "node-us-east-1a-1")]


def _raw(
    connection: http.client.HTTPConnection, method: str, path: str, body: object = None
) -> tuple[int, Any]:
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Authorization": "Bearer anything"}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_delete_with_a_body_keeps_the_keep_alive_connection_usable(
    bare_server: server.KubeApiServer,
) -> None:
    host = urllib.parse.urlsplit(bare_server.url)
    connection = http.client.HTTPConnection(host.hostname or "", host.port)
    pod = {"metadata": {"name": "k1"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    assert _raw(connection, "POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
    options = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Background",
    }
    status, deleted = _raw(connection, "DELETE", "/api/v1/namespaces/default/pods/k1", options)
    assert status == 200 and deleted["metadata"]["name"] == "k1"
    sock = connection.sock
    status, node = _raw(connection, "GET", "/api/v1/nodes/node-us-east-1a-1")
    assert status == 200 and node["kind"] == "Node"
    assert connection.sock is sock, "the server closed the keep-alive connection"
    connection.close()


def test_eviction_with_a_body_keeps_the_keep_alive_connection_usable(
    bare_server: server.KubeApiServer,
) -> None:
    host = urllib.parse.urlsplit(bare_server.url)
    connection = http.client.HTTPConnection(host.hostname or "", host.port)
    pod = {"metadata": {"name": "e1"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    _raw(connection, "POST", "/api/v1/namespaces/default/pods", pod)
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "e1", "namespace": "default"},
    }
    status, body = _raw(connection, "POST", "/api/v1/namespaces/default/pods/e1/eviction", eviction)
    assert (status, body["status"]) == (201, "Success")
    status, missing = _raw(connection, "GET", "/api/v1/namespaces/default/pods/e1")
    assert (status, missing["reason"]) == (404, "NotFound")
    connection.close()


def test_error_rate_one_turns_every_resource_request_into_a_500_status(
    kube_api_client: kube.ApiClientFactory, bare_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(bare_server))
    bare_server.faults.error_rate = 1.0
    with pytest.raises(client.ApiException) as caught:
        core.list_node()
    assert caught.value.status == 500
    assert json.loads(caught.value.body)["reason"] == "InternalError"
    assert client.VersionApi(core.api_client).get_code().major == "1"  # discovery is never faulted
    bare_server.faults.error_rate = 0.0
    assert len(core.list_node().items) == 6


def test_seeded_error_rate_fails_the_same_requests_every_time(
    kube_api_client: kube.ApiClientFactory, bare_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(bare_server))

    def outcomes() -> list[int]:
        bare_server.faults.seed = None
        bare_server.faults.seed = 7
        bare_server.faults.error_rate = 0.5
        results = []
        for _ in range(20):
            try:
                core.read_node("node-us-east-1a-1")
                results.append(200)
            except client.ApiException as exc:
                results.append(exc.status)
        bare_server.faults.error_rate = 0.0
        return results

    first = outcomes()
    bare_server.faults.seed = None
    core.read_node("node-us-east-1a-1")
    assert outcomes() == first
    assert set(first) == {200, 500}


def test_conflict_rate_fails_writes_but_not_reads(
    kube_api_client: kube.ApiClientFactory, bare_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(bare_server))
    bare_server.faults.conflict_rate = 1.0
    assert core.read_node("node-us-east-1a-1").metadata.name == "node-us-east-1a-1"
    with pytest.raises(client.ApiException) as caught:
        core.patch_node("node-us-east-1a-1", {"spec": {"unschedulable": True}})
    assert caught.value.status == 409
    bare_server.faults.conflict_rate = 0.0
    assert not core.read_node("node-us-east-1a-1").spec.unschedulable


def test_timeout_rate_answers_504_and_latency_delays_answers(
    kube_api_client: kube.ApiClientFactory, bare_server: server.KubeApiServer
) -> None:
    core = client.CoreV1Api(kube_api_client(bare_server))
    bare_server.faults.timeout_rate = 1.0
    with pytest.raises(client.ApiException) as caught:
        core.list_node()
    assert caught.value.status == 504
    bare_server.faults.timeout_rate = 0.0
    bare_server.faults.latency_s = 0.2
    started = time.monotonic()
    core.list_node()
    assert time.monotonic() - started >= 0.2  # a lower bound: the injected sleep happened


def test_request_counters_separate_reads_from_writes(
    kube_api_client: kube.ApiClientFactory,
    bare_server: server.KubeApiServer,
    tmp_path: pathlib.Path,
) -> None:
    core = client.CoreV1Api(kube_api_client(bare_server))
    before, writes_before = bare_server.request_count, bare_server.mutating_request_count
    core.list_node()
    core.read_node("node-us-east-1a-1")
    assert bare_server.request_count == before + 2
    assert bare_server.mutating_request_count == writes_before
    core.patch_node("node-us-east-1a-1", {"metadata": {"labels": {"x": "y"}}})
    assert bare_server.mutating_request_count == writes_before + 1
