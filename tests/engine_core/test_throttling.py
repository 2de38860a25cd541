"""Throttling answers become pool-wide pauses: Kubernetes 429s (APF) and AWS throttling errors.

The Kubernetes answers come from the sandbox API server over HTTP (its `FaultConfig` answers
429 in plain text with `Retry-After`, as API Priority and Fairness does; an eviction a budget
forbids is a `Status` naming the DisruptionBudget cause). AWS errors are the SDK's own
`ClientError`s with the answers botocore builds from a throttling response.
"""

from __future__ import annotations

import json

import pytest
from botocore import exceptions as botocore_errors

from orchestrator import errors
from orchestrator.providers.aws import wrapping
from orchestrator.providers.kubernetes import connection
from orchestrator.providers.kubernetes import errors as kube_errors
from sandbox.kubernetes import errors as sandbox_errors
from sandbox.kubernetes import server
from tests.fixtures import kube


def test_an_apf_429_from_the_api_server_pauses_the_whole_pool_for_its_retry_after(
    fresh_kube: kube.KubeSandbox, kube_api_client: kube.ApiClientFactory
) -> None:
    conn = connection.KubeConnection(api_client=kube_api_client(fresh_kube))
    fresh_kube.server.faults.throttle_rate = 1.0
    fresh_kube.server.faults.retry_after_s = 3

    with pytest.raises(kube_errors.Throttled) as caught:
        conn.call("nodes", conn.core.list_node)

    assert caught.value.retry_after_s == 3.0
    assert caught.value.delay == 3.0
    assert isinstance(caught.value, errors.ProviderRetryable)
    assert "nodes" in str(caught.value)
    fresh_kube.server.faults.throttle_rate = 0.0
    assert conn.call("nodes", conn.core.list_node)["items"]


def test_an_eviction_a_budget_forbids_concerns_that_pod_only() -> None:
    refusal = sandbox_errors.TooManyRequests(
        "Cannot evict pod as it would violate the pod's disruption budget.",
        causes=(("DisruptionBudget", "The disruption budget web needs 2 healthy pods", ""),),
    )
    body = json.dumps(server.status_body(refusal)).encode()

    error = kube_errors.too_many_requests("pod shop/web-1", body=body, retry_after=None)

    assert type(error) is kube_errors.TooManyRequests
    assert error.retry_after_s is None


def test_a_429_status_without_retry_after_still_pauses_with_its_retry_after_seconds() -> None:
    body = json.dumps(
        {
            "kind": "Status",
            "code": 429,
            "reason": "TooManyRequests",
            "message": "storage is (re)initializing",
            "details": {"retryAfterSeconds": 2},
        }
    )

    error = kube_errors.too_many_requests("deployment shop/web", body=body, retry_after=None)

    assert isinstance(error, kube_errors.Throttled)
    assert (error.retry_after_s, error.delay) == (2.0, None)
    bare = kube_errors.too_many_requests("deployment shop/web", body="", retry_after=None)
    assert bare.retry_after_s == kube_errors.THROTTLE_PAUSE_S


def _client_error(code: str, *, status: int, headers: dict[str, str]) -> Exception:
    return botocore_errors.ClientError(
        {
            "Error": {"Code": code, "Message": "Rate exceeded"},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "HTTPHeaders": headers,
                "RequestId": "r-1",
                "HostId": "",
                "RetryAttempts": 0,
            },
        },
        "StartInstances",
    )


@pytest.mark.parametrize("code", sorted(wrapping.THROTTLING_CODES))
def test_aws_throttling_pauses_the_regions_pool_and_keeps_its_own_backoff(code: str) -> None:
    error = wrapping.wrap(_client_error(code, status=400, headers={}), "instance i-1")

    assert isinstance(error, errors.ProviderRetryable)
    assert error.retry_after_s == wrapping.THROTTLE_PAUSE_S
    assert error.delay is None  # the call's own retries still back off exponentially
    assert "instance i-1" in str(error) and "throttled" in str(error)


def test_aws_throttling_with_a_retry_after_header_pauses_that_long() -> None:
    raw = _client_error("TooManyRequestsException", status=429, headers={"retry-after": "4"})

    error = wrapping.wrap(raw, "group web-asg")

    assert isinstance(error, errors.ProviderRetryable)
    assert (error.retry_after_s, error.delay) == (4.0, 4.0)


def test_an_aws_server_error_is_retried_without_pausing_the_pool() -> None:
    error = wrapping.wrap(_client_error("InternalError", status=500, headers={}), "subnet s-1")

    assert isinstance(error, errors.ProviderRetryable)
    assert error.retry_after_s is None
