"""The prometheus.query probe against a loopback server speaking the Prometheus API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import errors, probes, registry
from tests.engine_probes import factories as f

QUERY_PATH = "/prometheus/api/v1/query"


@pytest.fixture
def server() -> Iterator[f.LoopbackServer]:
    with f.serving() as running:
        yield running


def _check(server: f.LoopbackServer, raw: dict[str, Any]) -> registry.ProbeResult:
    env = f.environment(prometheus={"url": f"{server.url}/prometheus"})
    probe = probes.PrometheusQueryProbe()
    return probe.check(f.run_context(env), params=probe.parse_params(raw))


def test_every_sample_within_the_threshold_passes(server: f.LoopbackServer) -> None:
    server.json(
        QUERY_PATH, f.prometheus_vector(({"pod": "checkout-1"}, "3"), ({"pod": "checkout-2"}, "1"))
    )
    result = _check(server, {"query": "errors", "op": "<", "value": 5})
    assert result.ok, result.message
    assert "all 2 sample(s) are < 5" in result.message
    method, path, _headers = server.requests[-1]
    assert method == "GET"
    assert path.startswith(QUERY_PATH + "?query=errors")


def test_one_sample_breaking_the_threshold_fails_naming_it(server: f.LoopbackServer) -> None:
    server.json(
        QUERY_PATH, f.prometheus_vector(({"pod": "checkout-1"}, "3"), ({"pod": "checkout-2"}, "9"))
    )
    result = _check(server, {"query": "errors", "op": "<=", "value": 5})
    assert not result.ok
    assert '{pod="checkout-2"} = 9 is not <= 5' in result.message
    assert result.value == [
        {"metric": {"pod": "checkout-1"}, "value": "3"},
        {"metric": {"pod": "checkout-2"}, "value": "9"},
    ]


@pytest.mark.parametrize(
    ("op", "value", "ok"),
    [(">", 2, True), (">=", 3, True), ("==", 3, True), ("!=", 3, False), ("<", 3, False)],
)
def test_every_comparison(server: f.LoopbackServer, op: str, value: float, ok: bool) -> None:
    server.json(QUERY_PATH, f.prometheus_vector(({}, "3")))
    assert _check(server, {"query": "q", "op": op, "value": value}).ok is ok


def test_an_empty_result_fails_unless_allowed(server: f.LoopbackServer) -> None:
    server.json(QUERY_PATH, f.prometheus_vector())
    result = _check(server, {"query": "up", "op": "==", "value": 1})
    assert not result.ok
    assert "no samples" in result.message and "emptyOk" in result.message
    assert _check(server, {"query": "up", "op": "==", "value": 1, "emptyOk": True}).ok


def test_a_refused_query_fails_with_the_prometheus_error(server: f.LoopbackServer) -> None:
    server.json(
        QUERY_PATH,
        {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"},
        status=400,
    )
    result = _check(server, {"query": "up{", "op": "==", "value": 1})
    assert not result.ok
    assert "bad_data" in result.message and "parse error" in result.message


def test_an_unreachable_prometheus_is_a_failure(server: f.LoopbackServer) -> None:
    env = f.environment(prometheus={"url": f"{server.url}/prometheus"})
    server.stop()
    probe = probes.PrometheusQueryProbe()
    result = probe.check(f.run_context(env), params=probe.parse_params({"query": "up"}))
    assert not result.ok
    assert "cannot reach Prometheus" in result.message


def test_a_url_param_overrides_the_environment(server: f.LoopbackServer) -> None:
    server.json("/other/api/v1/query", f.prometheus_vector(({}, "1")))
    probe = probes.PrometheusQueryProbe()
    params = probe.parse_params({"query": "up", "url": f"{server.url}/other"})
    assert probe.check(f.run_context(f.environment()), params=params).ok


def test_without_any_prometheus_url_the_probe_cannot_run() -> None:
    probe = probes.PrometheusQueryProbe()
    with pytest.raises(errors.ProviderPermanent, match=r"spec\.prometheus\.url"):
        probe.check(f.run_context(f.environment()), params=probe.parse_params({"query": "up"}))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"query": "up", "op": "<"}, "both 'op' and 'value'"),
        ({"query": "up", "op": "=~", "value": 1}, "op"),
        ({"query": ""}, "query"),
        ({"query": "up", "url": "gopher://x"}, "not an http(s) URL"),
    ],
)
def test_bad_params_are_refused_at_parse_time(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(errors.InvalidParams, match=r"probe prometheus\.query params") as caught:
        probes.PrometheusQueryProbe().parse_params(raw)
    assert problem in str(caught.value)
