"""The Kubernetes sandbox in its own process (`sandbox.kubernetes.standalone`), as benchmarks use.

Spoken to over HTTP only: the API through the official client's kubeconfig, the control
endpoint through `StandaloneServer`. Outcomes only, no timing.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from sandbox.kubernetes import standalone
from tests.benchmarks import processes


def _api(server: standalone.StandaloneServer, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        server.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_the_child_serves_its_seeded_nodes_and_counts_every_request(
    tmp_path: pathlib.Path,
) -> None:
    with standalone.start(tmp_path, nodes=4) as server:
        before = server.stats()
        nodes = _api(server, "GET", "/api/v1/nodes")["items"]
        _api(server, "PATCH", "/api/v1/nodes/node-us-east-1a-1", {"spec": {"unschedulable": True}})
        after = server.stats()

        kubeconfig = yaml.safe_load(server.kubeconfig.read_text())
        assert kubeconfig["clusters"][0]["cluster"]["server"] == server.url
    assert len(nodes) == 4
    assert (before.requests, before.mutating_requests) == (0, 0)
    assert (after.requests, after.mutating_requests) == (2, 1)
    assert after.seq == before.seq + 1
    assert server.process.returncode == 0
    assert processes.standalone_children() == []


def test_pods_are_seeded_in_an_opted_in_namespace_with_the_given_labels(
    tmp_path: pathlib.Path,
) -> None:
    with standalone.start(
        tmp_path, nodes=2, pods=5, pod_namespace="load", pod_labels={"tier": "x"}
    ) as server:
        pods = _api(server, "GET", "/api/v1/namespaces/load/pods?labelSelector=tier%3Dx")["items"]
        namespace = _api(server, "GET", "/api/v1/namespaces/load")
    assert len(pods) == 5
    assert namespace["metadata"]["labels"]["stormdrill.dev/allow-drills"] == "true"


def test_faults_set_through_the_control_endpoint_reach_the_api(tmp_path: pathlib.Path) -> None:
    with standalone.start(tmp_path, nodes=1) as server:
        answer = server.set_faults(latency_s=0.02, error_rate=1.0)
        with pytest.raises(urllib.error.HTTPError) as failed:
            _api(server, "GET", "/api/v1/nodes")
        server.set_faults(latency_s=0.0, error_rate=0.0)
        listed = _api(server, "GET", "/api/v1/nodes")["items"]

        with pytest.raises(standalone.StandaloneError, match="unknown fault fields"):
            server.set_faults(latancy_s=0.02)
    assert answer["latency_s"] == 0.02 and answer["error_rate"] == 1.0
    assert failed.value.code == 500
    assert len(listed) == 1


def test_changes_carry_the_object_and_a_monotonic_time_shared_with_the_parent(
    tmp_path: pathlib.Path,
) -> None:
    with standalone.start(tmp_path, nodes=2) as server:
        since = server.stats().seq
        assert (
            server.changes(resource="nodes", name="node-us-east-1b-1", after=since, timeout_s=0)
            == []
        )

        before = time.monotonic()
        _api(server, "PATCH", "/api/v1/nodes/node-us-east-1b-1", {"spec": {"unschedulable": True}})
        after = time.monotonic()
        [change] = server.changes(
            resource="nodes", name="node-us-east-1b-1", after=since, timeout_s=10
        )
        other = server.changes(resource="nodes", name="node-us-east-1a-1", after=since, timeout_s=0)
    assert change.type == "MODIFIED" and change.seq == since + 1
    assert change.object["spec"]["unschedulable"] is True
    assert before <= change.at <= after
    assert other == []


def test_a_child_that_dies_while_seeding_is_reported_with_its_log(tmp_path: pathlib.Path) -> None:
    with pytest.raises(standalone.StandaloneError, match="did not report ready") as failed:
        standalone.start(tmp_path, nodes=1, pods=1, pod_labels={"": ""}, python=sys.executable)

    assert "exit code 1" in str(failed.value)
    assert (tmp_path / "sandbox.log").read_text()
    assert processes.standalone_children() == []


def test_stopping_twice_is_harmless(tmp_path: pathlib.Path) -> None:
    server = standalone.start(tmp_path, nodes=1)
    server.stop()
    server.stop()

    assert server.process.returncode == 0
