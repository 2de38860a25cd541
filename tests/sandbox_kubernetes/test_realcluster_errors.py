"""Error shapes that hold on the sandbox and on a real cluster alike (marker `realcluster`).

By default these run against the sandbox; with `STORMDRILL_TEST_KUBECONFIG` set they run
against that cluster, in the namespace `shop` labelled `stormdrill.dev/allow-drills=true`
(see docs/sandbox-world.md, "What the sandbox does not implement"). Each test cleans up what
it creates.
"""

from __future__ import annotations

import json
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from tests.fixtures import kube

client: Any = kubernetes.client
NAMESPACE = "shop"

pytestmark = pytest.mark.realcluster


@pytest.fixture
def core(
    kube_api_client: kube.ApiClientFactory,
    kubeconfig_path: pathlib.Path,
    uses_real_cluster: bool,
    fresh_kube: kube.KubeSandbox,
) -> Iterator[Any]:
    """The real cluster's API, else a private sandbox (the shared one must stay untouched)."""
    target = kubeconfig_path if uses_real_cluster else fresh_kube.kubeconfig
    api = client.CoreV1Api(kube_api_client(target))
    labels = api.read_namespace(NAMESPACE).metadata.labels or {}
    assert labels.get("stormdrill.dev/allow-drills") == "true", (
        f"namespace {NAMESPACE} must be labelled stormdrill.dev/allow-drills=true"
    )
    yield api


def _status(caught: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(caught.value.body)
    return body


def _config_map(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"stormdrill.dev/test": "errors"}}}


def test_a_missing_object_is_a_not_found_status(core: Any) -> None:
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_config_map("stormdrill-absent", NAMESPACE)
    assert caught.value.status == 404
    body = _status(caught)
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status",
        "Failure",
        "NotFound",
        404,
    )
    assert body["message"] == 'configmaps "stormdrill-absent" not found'
    assert body["details"] == {"name": "stormdrill-absent", "kind": "configmaps"}


def test_a_duplicate_create_is_already_exists_and_a_stale_update_is_conflict(core: Any) -> None:
    name = f"stormdrill-{uuid.uuid4().hex[:8]}"
    created = core.create_namespaced_config_map(NAMESPACE, _config_map(name))
    try:
        with pytest.raises(client.ApiException) as twice:
            core.create_namespaced_config_map(NAMESPACE, _config_map(name))
        assert twice.value.status == 409
        assert _status(twice)["reason"] == "AlreadyExists"
        assert _status(twice)["details"] == {"name": name, "kind": "configmaps"}
        core.patch_namespaced_config_map(name, NAMESPACE, {"data": {"a": "1"}})
        created.data = {"a": "2"}
        with pytest.raises(client.ApiException) as stale:
            core.replace_namespaced_config_map(name, NAMESPACE, created)
        assert stale.value.status == 409
        body = _status(stale)
        assert body["reason"] == "Conflict"
        assert body["message"] == (
            f'Operation cannot be fulfilled on configmaps "{name}": the object has been'
            " modified; please apply your changes to the latest version and try again"
        )
    finally:
        core.delete_namespaced_config_map(name, NAMESPACE)


def test_an_invalid_name_is_422_with_the_field_cause(core: Any) -> None:
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_config_map(NAMESPACE, _config_map("Bad_Name"))
    assert caught.value.status == 422
    body = _status(caught)
    assert body["reason"] == "Invalid"
    assert body["details"]["name"] == "Bad_Name"
    assert body["details"]["kind"] == "ConfigMap"
    assert [(c["reason"], c["field"]) for c in body["details"]["causes"]] == [
        ("FieldValueInvalid", "metadata.name")
    ]
    assert body["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase'
        " RFC 1123 subdomain must consist of lower case alphanumeric characters"
    )


def test_a_dry_run_create_stores_nothing(core: Any) -> None:
    name = f"stormdrill-dry-{uuid.uuid4().hex[:8]}"
    answer = core.create_namespaced_config_map(NAMESPACE, _config_map(name), dry_run="All")
    assert answer.metadata.name == name
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_config_map(name, NAMESPACE)
    assert caught.value.status == 404
