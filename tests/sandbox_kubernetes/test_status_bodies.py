"""Error answers match the real API server's: HTTP code, `Status` body (reason, message, details)
and headers, exactly, for the cases drills rely on.

The expected shapes are those kube-apiserver v1.31 writes (`k8s.io/apimachinery/pkg/api/errors`:
NewNotFound, NewAlreadyExists, NewConflict, NewInvalid, NewResourceExpired, NewTooManyRequests;
the eviction subresource; API Priority and Fairness' plain-text 429).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.kubernetes import errors, resources, seed, server, store


@dataclasses.dataclass(frozen=True)
class Answer:
    code: int
    headers: dict[str, str]
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text)


def _call(
    api: server.KubeApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
) -> Answer:
    connection = http.client.HTTPConnection(api.host, api.port, timeout=20)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read().decode())
    finally:
        connection.close()


def _status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


@pytest.fixture
def api() -> Iterator[server.KubeApiServer]:
    """A server over the seeded shop (no controller: nothing moves under the test)."""
    cluster = store.ClusterStore()
    seed.seed_shop(cluster)
    with server.KubeApiServer(store=cluster) as running:
        yield running


def _pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **({"labels": labels} if labels else {})},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def test_a_missing_object_is_404_not_found_with_name_and_kind(api: server.KubeApiServer) -> None:
    core = _call(api, "GET", "/api/v1/namespaces/shop/pods/nope")
    assert core.code == 404
    assert core.headers["Content-Type"] == "application/json"
    assert core.body == _status(404, "NotFound", 'pods "nope" not found', name="nope", kind="pods")
    grouped = _call(api, "GET", "/apis/apps/v1/namespaces/shop/deployments/nope")
    assert grouped.body == _status(
        404,
        "NotFound",
        'deployments.apps "nope" not found',
        name="nope",
        group="apps",
        kind="deployments",
    )


def test_creating_an_existing_object_is_409_already_exists(api: server.KubeApiServer) -> None:
    first = _call(api, "POST", "/api/v1/namespaces/shop/pods", _pod("twin"))
    assert first.code == 201
    again = _call(api, "POST", "/api/v1/namespaces/shop/pods", _pod("twin"))
    assert again.code == 409
    assert again.body == _status(
        409, "AlreadyExists", 'pods "twin" already exists', name="twin", kind="pods"
    )


def test_a_write_with_a_stale_resource_version_is_409_conflict(api: server.KubeApiServer) -> None:
    path = "/apis/apps/v1/namespaces/shop/deployments/web"
    live = _call(api, "GET", path).body
    stale = json.loads(json.dumps(live))
    live["metadata"]["labels"]["touched"] = "yes"
    assert _call(api, "PUT", path, live).code == 200
    stale["metadata"]["labels"]["touched"] = "again"
    answer = _call(api, "PUT", path, stale)
    assert answer.code == 409
    assert answer.body == _status(
        409,
        "Conflict",
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified;'
        " please apply your changes to the latest version and try again",
        name="web",
        group="apps",
        kind="deployments",
    )


def test_an_invalid_object_is_422_with_one_cause_per_field(api: server.KubeApiServer) -> None:
    one = _call(api, "POST", "/api/v1/namespaces/shop/pods", _pod("Bad_Name"))
    assert one.code == 422
    name_message = (
        'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case'
        " alphanumeric characters, '-' or '.', and must start and end with an alphanumeric"
        " character (e.g. 'example.com', regex used for validation is"
        r" '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    assert one.body == _status(
        422,
        "Invalid",
        f'Pod "Bad_Name" is invalid: metadata.name: {name_message}',
        name="Bad_Name",
        kind="Pod",
        causes=[{"reason": "FieldValueInvalid", "message": name_message, "field": "metadata.name"}],
    )
    two = _call(api, "POST", "/api/v1/namespaces/shop/pods", _pod("Bad_Name", tier="-x-"))
    assert two.code == 422
    assert two.body["message"] == (
        'Pod "Bad_Name" is invalid: [metadata.name: '
        + name_message
        + ', metadata.labels: Invalid value: "-x-": not a valid label value]'
    )
    assert [c["field"] for c in two.body["details"]["causes"]] == [
        "metadata.name",
        "metadata.labels",
    ]


def test_a_negative_scale_is_422_naming_the_group_qualified_kind(
    api: server.KubeApiServer,
) -> None:
    answer = _call(
        api,
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/web/scale",
        {"spec": {"replicas": -1}},
        content_type="application/merge-patch+json",
    )
    assert answer.code == 422
    message = "Invalid value: -1: must be greater than or equal to 0"
    assert answer.body == _status(
        422,
        "Invalid",
        f'Scale.autoscaling "web" is invalid: spec.replicas: {message}',
        name="web",
        group="autoscaling",
        kind="Scale",
        causes=[{"reason": "FieldValueInvalid", "message": message, "field": "spec.replicas"}],
    )


def test_an_expired_continue_token_is_410_with_a_token_that_continues_inconsistently() -> None:
    cluster = store.ClusterStore(event_log_size=20)
    seed.ensure_namespace(cluster, "default")
    seed.seed_pods(cluster, namespace="bench", count=6, labels={"app": "bench"})
    with server.KubeApiServer(store=cluster) as api:
        first = _call(api, "GET", "/api/v1/namespaces/bench/pods?limit=2").body
        assert [p["metadata"]["name"] for p in first["items"]] == ["bench-00000", "bench-00001"]
        for i in range(25):  # the list's snapshot falls out of the history ("compaction")
            cluster.patch(
                resource=resources.PODS,
                namespace="bench",
                name="bench-00005",
                patch={"metadata": {"labels": {"round": str(i)}}},
            )
        token = first["metadata"]["continue"]
        answer = _call(api, "GET", f"/api/v1/namespaces/bench/pods?limit=2&continue={token}")
        assert answer.code == 410
        body = answer.body
        new_token = body["metadata"].pop("continue")
        assert body == _status(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result."
            " You can start a new list without the continue parameter, or use the continue token"
            " in this response to retrieve the remainder of the results. Continuing with the"
            " provided token results in an inconsistent list - objects that were created,"
            " modified, or deleted between the time the first chunk was returned and now may show"
            " up in the list.",
        )
        rest = _call(api, "GET", f"/api/v1/namespaces/bench/pods?limit=10&continue={new_token}")
        assert rest.code == 200
        assert [p["metadata"]["name"] for p in rest.body["items"]] == [
            f"bench-{i:05d}" for i in range(2, 6)
        ]
        assert int(rest.body["metadata"]["resourceVersion"]) == cluster.resource_version


def test_a_watch_from_a_compacted_version_is_410_expired() -> None:
    cluster = store.ClusterStore(event_log_size=5)
    seed.ensure_namespace(cluster, "default")
    seed.seed_pods(cluster, namespace="bench", count=10, labels={"app": "bench"})
    with server.KubeApiServer(store=cluster) as small:
        answer = _call(small, "GET", "/api/v1/pods?watch=true&resourceVersion=2")
    assert answer.code == 410
    floor = answer.body["message"].split("(")[1].rstrip(")")
    assert answer.body == _status(410, "Expired", f"too old resource version: 2 ({floor})")


def test_an_eviction_blocked_by_a_budget_is_429_with_the_budget_cause_and_no_retry_after(
    api: server.KubeApiServer,
) -> None:
    cluster = api.store
    cluster.patch(
        resource=resources.POD_DISRUPTION_BUDGETS,
        namespace="shop",
        name="web",
        patch={"spec": {"minAvailable": 3}},
    )
    cluster.refresh_pdb_statuses("shop")
    pod = cluster.list(
        resource=resources.PODS, namespace="shop", label_selector="app.kubernetes.io/name=web"
    )[0]
    name = pod["metadata"]["name"]  # type: ignore[index]
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": "shop"},
    }
    answer = _call(api, "POST", f"/api/v1/namespaces/shop/pods/{name}/eviction", eviction)
    assert answer.code == 429
    # Upstream's disruptionsAllowed == 0 case passes retryAfterSeconds 0: no header, no field.
    assert "Retry-After" not in answer.headers
    assert answer.body == _status(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        causes=[
            {
                "reason": "DisruptionBudget",
                "message": "The disruption budget web needs 3 healthy pods and has 3 currently",
            }
        ],
    )


def test_throttling_is_429_plain_text_with_retry_after_like_priority_and_fairness(
    api: server.KubeApiServer,
) -> None:
    api.faults.throttle_rate = 1.0
    api.faults.retry_after_s = 7
    answer = _call(api, "GET", "/api/v1/namespaces/shop/pods")
    assert answer.code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.text == "Too many requests, please try again later.\n"
    assert _call(api, "GET", "/version").code == 200  # discovery is never faulted


def test_a_status_with_retry_after_seconds_also_sends_the_retry_after_header() -> None:
    exc = store.invalid("Pod", "", "p", (("FieldValueInvalid", "m", "f"),))
    assert "retryAfterSeconds" not in server.status_body(exc).get("details", {})
    throttled = errors.TooManyRequests("slow down", retry_after_s=10)
    assert server.status_body(throttled) == _status(
        429, "TooManyRequests", "slow down", retryAfterSeconds=10
    )


def test_an_unknown_dry_run_value_is_400(api: server.KubeApiServer) -> None:
    answer = _call(api, "POST", "/api/v1/namespaces/shop/pods?dryRun=Some", _pod("dry"))
    assert answer.code == 400
    assert answer.body == _status(
        400, "BadRequest", 'dryRun: Unsupported value: "Some": supported values: "All"'
    )
    assert (
        api.store.list(
            resource=resources.PODS, namespace="shop", field_selector="metadata.name=dry"
        )
        == []
    )


def test_dry_run_writes_answer_as_if_done_and_store_nothing(api: server.KubeApiServer) -> None:
    before = api.store.resource_version
    created = _call(api, "POST", "/api/v1/namespaces/shop/pods?dryRun=All", _pod("dry"))
    assert created.code == 201
    assert created.body["metadata"]["name"] == "dry"
    assert "resourceVersion" not in created.body["metadata"]
    path = "/apis/apps/v1/namespaces/shop/deployments/web"
    patched = _call(
        api,
        "PATCH",
        f"{path}?dryRun=All",
        {"spec": {"replicas": 9}},
        content_type="application/merge-patch+json",
    )
    assert patched.body["spec"]["replicas"] == 9
    deleted = _call(api, "DELETE", f"{path}?dryRun=All")
    assert deleted.code == 200
    assert _call(api, "GET", path).body["spec"]["replicas"] == 3
    assert api.store.resource_version == before
