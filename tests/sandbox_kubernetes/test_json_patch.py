"""JSON Patch (RFC 6902) through the official client: all or nothing, `test` as a precondition.

A patch the server cannot apply (a failed `test`, a missing path) is refused as kube-apiserver
refuses it (`handlers/patch.go`: NewGenericServerResponse(422, …)): 422, reason Invalid, the
generic message, and nothing changed.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest

from sandbox.kubernetes import errors, patching, resources
from tests.fixtures import kube

client: Any = kubernetes.client
NODE = "node-us-east-1b-2"
UNDO_PATH = "/metadata/annotations/stormdrill.dev~1undo"


def _node(sandbox: kube.KubeSandbox) -> dict[str, Any]:
    found: dict[str, Any] = dict(
        sandbox.store.get(resource=resources.NODES, namespace=None, name=NODE)
    )
    return found


def _cordon(core: Any) -> None:
    core.patch_node(
        NODE,
        {
            "spec": {"unschedulable": True},
            "metadata": {"annotations": {"stormdrill.dev/undo": '{"cordon":{}}'}},
        },
        _content_type="application/merge-patch+json",
    )


def test_a_list_body_is_sent_as_json_patch_and_its_tests_guard_the_write(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    _cordon(core)
    uid = _node(fresh_kube)["metadata"]["uid"]

    core.patch_node(
        NODE,
        [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "test", "path": UNDO_PATH, "value": '{"cordon":{}}'},
            {"op": "test", "path": "/spec/unschedulable", "value": True},
            {"op": "remove", "path": "/spec/unschedulable"},
            {"op": "remove", "path": UNDO_PATH},
        ],
        _content_type="application/json-patch+json",
    )

    node = _node(fresh_kube)
    assert "unschedulable" not in node["spec"]
    assert "stormdrill.dev/undo" not in (node["metadata"].get("annotations") or {})


def test_the_client_picks_json_patch_for_a_patch_when_no_content_type_is_given(
    kube_api_client: kube.ApiClientFactory, fresh_kube: kube.KubeSandbox
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))

    core.patch_node(NODE, [{"op": "add", "path": "/metadata/labels/drill", "value": "on"}])

    assert _node(fresh_kube)["metadata"]["labels"]["drill"] == "on"


@pytest.mark.parametrize(
    "failing",
    [
        {"op": "test", "path": "/metadata/uid", "value": "someone-else"},
        {"op": "test", "path": "/spec/unschedulable", "value": 1},  # true is not 1
        {"op": "test", "path": UNDO_PATH, "value": '{"cordon":{"by":"x"}}'},
        {"op": "remove", "path": "/metadata/annotations/stormdrill.dev~1run-id"},  # not there
    ],
)
def test_a_patch_the_server_cannot_apply_is_422_invalid_and_changes_nothing(
    kube_api_client: kube.ApiClientFactory,
    fresh_kube: kube.KubeSandbox,
    failing: dict[str, Any],
) -> None:
    core = client.CoreV1Api(kube_api_client(fresh_kube))
    _cordon(core)
    before = _node(fresh_kube)

    with pytest.raises(client.ApiException) as caught:
        core.patch_node(
            NODE,
            [
                {"op": "remove", "path": "/spec/unschedulable"},
                failing,
                {"op": "remove", "path": UNDO_PATH},
            ],
            _content_type="application/json-patch+json",
        )

    assert caught.value.status == 422
    assert json.loads(caught.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": patching.PATCH_REFUSED,
        "reason": "Invalid",
        "code": 422,
    }
    assert _node(fresh_kube) == before


def test_test_compares_json_values_exactly() -> None:
    doc = {"a": [1, {"b": True}], "c": 1.0, "d": "1"}

    assert patching.json_patch(doc, [{"op": "test", "path": "/a", "value": [1, {"b": True}]}])
    for path, value in (("/a", [True, {"b": True}]), ("/c", 1), ("/d", 1), ("/a/1/b", 1)):
        with pytest.raises(errors.Invalid, match=patching.PATCH_REFUSED):
            patching.json_patch(doc, [{"op": "test", "path": path, "value": value}])
