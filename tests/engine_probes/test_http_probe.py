"""The http probe against a real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import errors, probes, registry
from scenarios import loading
from tests.engine_probes import factories as f


@pytest.fixture
def server() -> Iterator[f.LoopbackServer]:
    with f.serving() as running:
        yield running


def _check(raw: dict[str, Any], *, time_scale: float = 1.0) -> registry.ProbeResult:
    probe = probes.HttpProbe()
    return probe.check(f.run_context(time_scale=time_scale), params=probe.parse_params(raw))


def test_a_healthy_endpoint_passes_with_the_default_status(server: f.LoopbackServer) -> None:
    url = server.json("/healthz", {"status": "ok"})
    result = _check({"url": url})
    assert result.ok, result.message
    assert isinstance(result.value, dict) and result.value["status"] == 200


def test_an_unexpected_status_fails_naming_both(server: f.LoopbackServer) -> None:
    url = server.json("/healthz", {"status": "degraded"}, status=503)
    result = _check({"url": url, "expectStatus": 200})
    assert not result.ok
    assert "status 503, expected 200" in result.message


@pytest.mark.parametrize(
    ("status", "expect", "ok"),
    [
        (302, "200-399", True),
        (302, "400-499", False),
        (301, [204, "300-302"], True),
        (204, [200, 500], False),
    ],
)
def test_status_ranges_and_lists(
    server: f.LoopbackServer, status: int, expect: object, ok: bool
) -> None:
    url = server.text("/answer", "", status=status)
    assert _check({"url": url, "expectStatus": expect}).ok is ok


def test_body_contains_passes_and_fails(server: f.LoopbackServer) -> None:
    url = server.text("/ping", "pong from checkout")
    assert _check({"url": url, "bodyContains": "pong"}).ok
    result = _check({"url": url, "bodyContains": "ready"})
    assert not result.ok
    assert "does not contain 'ready'" in result.message


def test_a_json_path_must_hold_the_expected_value(server: f.LoopbackServer) -> None:
    url = server.json("/status", {"status": "ok", "items": [{"ready": True}, {"ready": False}]})
    assert _check({"url": url, "jsonPath": "$.status", "expectValue": "ok"}).ok
    assert _check({"url": url, "jsonPath": "$.items[0].ready", "expectValue": True}).ok
    wrong = _check({"url": url, "jsonPath": "$.items[-1].ready", "expectValue": True})
    assert not wrong.ok
    assert "$.items[-1].ready is false, expected true" in wrong.message


def test_a_json_path_without_expected_value_must_exist(server: f.LoopbackServer) -> None:
    url = server.json("/status", {"status": "ok"})
    result = _check({"url": url, "jsonPath": "$.status"})
    assert result.ok
    assert isinstance(result.value, dict) and result.value["json"] == "ok"
    missing = _check({"url": url, "jsonPath": "$.checks[0]"})
    assert not missing.ok and "not in the body" in missing.message


def test_a_json_path_on_a_body_that_is_not_json_fails(server: f.LoopbackServer) -> None:
    url = server.text("/plain", "ok")
    result = _check({"url": url, "jsonPath": "$.status", "expectValue": "ok"})
    assert not result.ok and "not JSON" in result.message


def test_true_is_not_one_in_expected_values(server: f.LoopbackServer) -> None:
    url = server.json("/count", {"ready": 1})
    assert not _check({"url": url, "jsonPath": "$.ready", "expectValue": True}).ok
    assert _check({"url": url, "jsonPath": "$.ready", "expectValue": 1}).ok


def test_a_timeout_is_a_failure_not_an_exception(server: f.LoopbackServer) -> None:
    url = server.hanging("/slow")
    result = _check({"url": url, "timeout": "100ms"})
    assert not result.ok
    assert "no answer within" in result.message


def test_a_refused_connection_is_a_failure(server: f.LoopbackServer) -> None:
    url = server.url + "/healthz"
    server.stop()
    result = _check({"url": url})
    assert not result.ok
    assert "ConnectError" in result.message


def test_headers_and_method_are_sent(server: f.LoopbackServer) -> None:
    url = server.json("/healthz", {})
    assert _check({"url": url, "method": "head", "headers": {"X-Drill": "yes"}}).ok
    method, _path, headers = server.requests[-1]
    assert method == "HEAD"
    assert headers.get("X-Drill") == "yes"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"url": "ftp://files.example/x"}, "not an http(s) URL"),
        ({"url": "file:///etc/passwd"}, "not an http(s) URL"),
        ({"url": "http://x", "expectStatus": "ok"}, "expected an HTTP status"),
        ({"url": "http://x", "expectStatus": 700}, "not an HTTP status"),
        ({"url": "http://x", "jsonPath": "$..items"}, "jsonPath"),
        ({"url": "http://x", "expectValue": 1}, "needs 'jsonPath'"),
        ({"url": "http://x", "method": "DELETE"}, "method"),
        ({"url": "http://x", "expectedStatus": 200}, "expectedStatus"),
    ],
)
def test_bad_params_are_refused_at_parse_time(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(errors.InvalidParams, match="probe http params") as caught:
        probes.HttpProbe().parse_params(raw)
    assert problem in str(caught.value)


def test_every_http_and_prometheus_probe_of_the_bundled_library_parses() -> None:
    library = Path(loading.__file__).parent / "library"
    found = 0
    for path in sorted(library.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for entry in document["spec"].get("steadyState", []):
                raw = dict(entry.get("with", {}))
                if entry["type"] == "http":
                    probes.HttpProbe().parse_params({**raw, "url": "http://127.0.0.1/healthz"})
                    found += 1
                elif entry["type"] == "prometheus.query":
                    probes.PrometheusQueryProbe().parse_params(raw)
                    found += 1
    assert found >= 10


def test_register_adds_both_probes() -> None:
    reg = registry.Registry()
    probes.register(reg)
    assert reg.get_probe("http") is probes.HttpProbe
    assert reg.get_probe("prometheus.query") is probes.PrometheusQueryProbe
