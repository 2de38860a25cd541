"""The recording mode and the schema check that holds every sandbox answer to Kubernetes v1.31.

The suite-wide check lives in tests/fixtures/kube_schema.py; these tests prove it sees what the
server sends (objects, lists, `Status` bodies, watch events) and that it catches a bad body.
Servers here record into their own directory (`record_dir=`), never into the suite's.
"""

from __future__ import annotations

import json
import os
import pathlib
import urllib.request
from typing import Any

import kubernetes.client
import kubernetes.watch
import pytest

from sandbox.kubernetes import resources, seed, server, store
from tests.fixtures import kube, kube_schema

client: Any = kubernetes.client
watch: Any = kubernetes.watch


def _records(directory: pathlib.Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("kube-responses-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_the_recording_server_writes_each_distinct_body_once_and_the_check_passes(
    tmp_path: pathlib.Path, kube_api_client: kube.ApiClientFactory
) -> None:
    cluster = store.ClusterStore()
    seed.seed_shop(cluster)
    with server.KubeApiServer(store=cluster, record_dir=tmp_path / "rec") as api:
        core = client.CoreV1Api(kube_api_client(api))
        apps = client.AppsV1Api(core.api_client)
        for _ in range(3):
            core.list_namespaced_pod("shop")
        apps.read_namespaced_deployment("web", "shop")
        with pytest.raises(client.ApiException):
            core.read_namespaced_pod("nope", "shop")
        start = core.list_namespaced_pod("default").metadata.resource_version
        core.create_namespaced_pod(
            "default",
            {"metadata": {"name": "w"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        )
        core.delete_namespaced_pod("w", "default")
        events = list(
            watch.Watch().stream(
                core.list_namespaced_pod, "default", resource_version=start, timeout_seconds=1
            )
        )
        assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    records = _records(tmp_path / "rec")
    kinds = [(r["watch"], r["body"].get("kind")) for r in records]
    assert kinds.count((False, "PodList")) == 2  # three equal lists of shop, one of default
    assert {(False, "Deployment"), (False, "Status"), (False, "Pod")} <= set(kinds)
    assert [r["body"]["type"] for r in records if r["watch"]] == ["ADDED", "DELETED"]
    report = kube_schema.validate_recordings(tmp_path / "rec")
    assert report.violations == []
    assert report.validated >= 5


def test_the_check_names_request_field_and_rule_of_a_body_that_breaks_the_schema(
    tmp_path: pathlib.Path,
) -> None:
    cluster = store.ClusterStore()
    seed.ensure_namespace(cluster, "default")
    # The store takes any JSON shape: serve a pod no real API server would answer with.
    cluster.create(
        resource=resources.PODS,
        obj={"metadata": {"name": "odd"}, "spec": {"containers": "web", "nodeName": 7}},
        namespace="default",
    )
    with server.KubeApiServer(store=cluster, record_dir=tmp_path) as api:
        with urllib.request.urlopen(f"{api.url}/api/v1/namespaces/default/pods/odd") as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"{api.url}/api/v1/pods") as answer:
            assert answer.status == 200
    report = kube_schema.validate_recordings(tmp_path)
    found = sorted(str(v) for v in report.violations)
    assert found == [
        "GET /api/v1/namespaces/default/pods/odd: Pod at spec.containers:"
        " 'web' is not of type 'array'",
        "GET /api/v1/namespaces/default/pods/odd: Pod at spec.nodeName:"
        " 7 is not of type 'string', 'null'",
    ]  # the list's item has the same shape: validated once, reported once


def test_the_strict_schemas_refuse_fields_the_real_api_does_not_have() -> None:
    book = kube_schema.schema_book()
    report = kube_schema.Report()
    book.check(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "code": 404,
            "details": {"name": "x", "kind": "pods", "retryAfter": 3},
        },
        request="GET /x",
        report=report,
    )
    book.check_watch_event(
        {"type": "ADDED", "object": {"kind": "Node", "apiVersion": "v1", "spec": {"cordoned": 1}}},
        request="GET /api/v1/nodes?watch=true",
        report=report,
    )
    assert [(v.kind, v.path) for v in report.violations] == [
        ("Status", "details"),
        ("Node", "spec"),
    ]
    assert all("Additional properties are not allowed" in v.message for v in report.violations)


def test_tables_and_custom_resources_are_counted_not_validated(tmp_path: pathlib.Path) -> None:
    (tmp_path / "kube-responses-1-1.jsonl").write_text(
        json.dumps(
            {
                "request": "GET /t",
                "code": 200,
                "watch": False,
                "body": {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": 3},
            }
        )
        + "\n"
        + json.dumps(
            {
                "request": "GET /f",
                "code": 200,
                "watch": False,
                "body": {"kind": "Fault", "apiVersion": "chaos.example/v1", "x": 1},
            }
        )
        + "\n"
    )
    report = kube_schema.validate_recordings(tmp_path)
    assert report.violations == []
    assert report.skipped_kinds == {"Table": 1, "Fault": 1}
    assert report.validated == 0


def test_the_suite_records_every_sandbox_server_of_this_process(
    kube_server: server.KubeApiServer,
) -> None:
    # The suite-wide fixture set the directory at configure time; the shared server records.
    assert kube_server.recorder is not None
    recorded = pathlib.Path(kube_server.recorder.path)
    assert recorded.parent == pathlib.Path(os.environ[server.RECORD_DIR_ENV])
    with urllib.request.urlopen(f"{kube_server.url}/api/v1/namespaces/shop") as answer:
        assert answer.status == 200
    assert any(r["request"] == "GET /api/v1/namespaces/shop" for r in _records(recorded.parent))
