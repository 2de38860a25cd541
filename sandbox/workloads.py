"""Simulated workloads: the shop's health endpoints and a Prometheus-shaped query API.

`WorkloadServer` serves, on loopback, `/<service>/healthz` for web, checkout, payments and
inventory, plus `/prometheus/api/v1/query`. Every answer is computed afresh from the
Kubernetes sandbox's in-process store (no caching), following docs/sandbox-world.md:

- a pod counts as Ready when its `Ready` condition is `True` and it is not being deleted;
- payments loses its vendor (203.0.113.0/24, tcp/443) when it is isolated for egress by
  NetworkPolicies in `shop` and none of those policies allows that destination (Kubernetes
  semantics: policies selecting a pod are a union of allows);
- web needs 2 Ready pods and a healthy checkout; checkout needs 2 Ready pods and a healthy
  payments; payments needs 1 Ready pod and its vendor; inventory needs 1 Ready pod.

Invariant: this module only reads the store; it never changes the simulated world.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from http import server as http_server
from typing import Any, Final

from sandbox import errors
from sandbox.kubernetes import resources, store

log = logging.getLogger(__name__)

NAMESPACE: Final = "shop"
NAME_LABEL: Final = "app.kubernetes.io/name"
VENDOR_CIDR: Final = ipaddress.ip_network("203.0.113.0/24")
VENDOR_PORT: Final = 443
SERVICES: Final = ("web", "checkout", "payments", "inventory")
# The labels of the payments pod template; used to judge policies when no pod exists.
PAYMENTS_TEMPLATE_LABELS: Final = {NAME_LABEL: "payments", "app.kubernetes.io/part-of": "shop"}


@dataclasses.dataclass(frozen=True)
class Requirement:
    """What one service needs to be healthy."""

    min_ready: int
    depends_on: tuple[str, ...] = ()
    needs_vendor: bool = False


REQUIREMENTS: Final[Mapping[str, Requirement]] = {
    "web": Requirement(min_ready=2, depends_on=("checkout",)),
    "checkout": Requirement(min_ready=2, depends_on=("payments",)),
    "payments": Requirement(min_ready=1, needs_vendor=True),
    "inventory": Requirement(min_ready=1),
}


@dataclasses.dataclass(frozen=True)
class ServiceHealth:
    """The simulated health of one service at one moment."""

    service: str
    ready: int
    reasons: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.reasons


@dataclasses.dataclass(frozen=True)
class ShopState:
    """Everything the endpoints answer from, read from the store in one pass."""

    ready: Mapping[str, int]
    vendor_blocked_by: tuple[str, ...]  # names of the policies isolating payments' egress
    health: Mapping[str, ServiceHealth]

    @property
    def vendor_reachable(self) -> bool:
        return not self.vendor_blocked_by


# --- reading the store -------------------------------------------------------------------


def _is_ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _ready_count(source: store.ClusterStore, service: str) -> int:
    pods = source.list(
        resource=resources.PODS, namespace=NAMESPACE, label_selector=f"{NAME_LABEL}={service}"
    )
    return sum(1 for pod in pods if _is_ready(pod))


def _payments_labels(source: store.ClusterStore) -> list[Mapping[str, str]]:
    pods = source.list(
        resource=resources.PODS, namespace=NAMESPACE, label_selector=f"{NAME_LABEL}=payments"
    )
    labels: list[Mapping[str, str]] = [_labels_of(p) for p in pods]
    return labels or [PAYMENTS_TEMPLATE_LABELS]


def _labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}


# --- NetworkPolicy semantics (the subset that decides the vendor's reachability) -------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; {} matches all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _applies_to_egress(spec: Mapping[str, Any]) -> bool:
    types = spec.get("policyTypes")
    if types is None:  # defaulted by the API server: Egress only when egress rules exist
        return bool(spec.get("egress"))
    return "Egress" in types


def _peer_allows_vendor(peer: Mapping[str, Any]) -> bool:
    block = peer.get("ipBlock")
    if not block:
        return False  # pod/namespace selectors never match an address outside the cluster
    try:
        cidr = ipaddress.ip_network(block.get("cidr", ""), strict=False)
        excepted = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
    except ValueError:
        return False
    if cidr.version != VENDOR_CIDR.version or not VENDOR_CIDR.subnet_of(cidr):  # type: ignore[arg-type]
        return False
    return not any(e.version == VENDOR_CIDR.version and e.overlaps(VENDOR_CIDR) for e in excepted)


def _port_allows_vendor(port: Mapping[str, Any]) -> bool:
    if port.get("protocol", "TCP") != "TCP":
        return False
    number = port.get("port")
    if number is None:
        return True
    if not isinstance(number, int):
        return False  # a named port cannot name a port outside the cluster
    end = port.get("endPort", number)
    return bool(number <= VENDOR_PORT <= end)


def _rule_allows_vendor(rule: Mapping[str, Any]) -> bool:
    peers = rule.get("to") or []
    ports = rule.get("ports") or []
    to_ok = not peers or any(_peer_allows_vendor(p) for p in peers)
    ports_ok = not ports or any(_port_allows_vendor(p) for p in ports)
    return to_ok and ports_ok


def vendor_blocked_by(
    policies: Sequence[Mapping[str, Any]], pod_labels: Sequence[Mapping[str, str]]
) -> tuple[str, ...]:
    """Names of the egress policies isolating payments when none allows the vendor, else ()."""
    isolating: list[Mapping[str, Any]] = []
    for policy in policies:
        spec = policy.get("spec") or {}
        if not _applies_to_egress(spec):
            continue
        if any(selector_matches(spec.get("podSelector"), labels) for labels in pod_labels):
            isolating.append(policy)
    if not isolating:
        return ()
    for policy in isolating:
        if any(
            _rule_allows_vendor(rule) for rule in (policy.get("spec") or {}).get("egress") or []
        ):
            return ()
    return tuple(sorted(str(p.get("metadata", {}).get("name", "?")) for p in isolating))


# --- health ------------------------------------------------------------------------------


def _evaluate(ready: Mapping[str, int], blocked: tuple[str, ...]) -> dict[str, ServiceHealth]:
    health: dict[str, ServiceHealth] = {}

    def visit(service: str) -> ServiceHealth:
        if service in health:
            return health[service]
        need = REQUIREMENTS[service]
        reasons: list[str] = []
        if ready[service] < need.min_ready:
            reasons.append(
                f"{service}: {ready[service]} pod(s) Ready in namespace {NAMESPACE}, "
                f"needs at least {need.min_ready}"
            )
        for dependency in need.depends_on:
            if not visit(dependency).healthy:
                reasons.append(f"{service}: depends on {dependency}, which is degraded")
        if need.needs_vendor and blocked:
            reasons.append(
                f"{service}: egress to payprovider {VENDOR_CIDR}:{VENDOR_PORT} denied by "
                f"NetworkPolicy {', '.join(f'{NAMESPACE}/{n}' for n in blocked)}"
            )
        health[service] = ServiceHealth(service, ready[service], tuple(reasons))
        return health[service]

    for service in SERVICES:
        visit(service)
    return health


def read_state(source: store.ClusterStore) -> ShopState:
    """The shop's simulated state now, read from the Kubernetes store."""
    ready = {service: _ready_count(source, service) for service in SERVICES}
    policies = source.list(resource=resources.NETWORK_POLICIES, namespace=NAMESPACE)
    blocked = vendor_blocked_by(policies, _payments_labels(source))
    return ShopState(ready=ready, vendor_blocked_by=blocked, health=_evaluate(ready, blocked))


# --- Prometheus-shaped query API ---------------------------------------------------------

_SELECTOR = re.compile(
    r"^\s*(?:(sum|min|max|count)\s*\(\s*)?([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*(\))?\s*$"
)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=|!=)\s*"([^"]*)"\s*')
METRICS: Final = ("shop_up", "shop_ready_replicas", "shop_vendor_reachable")


class QueryError(errors.SandboxError):
    """A query the canned Prometheus cannot answer; the message lists what it can."""


@dataclasses.dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: Mapping[str, str]
    value: float


def _series(state: ShopState, metric: str) -> list[Sample]:
    if metric == "shop_vendor_reachable":
        return [
            Sample({"__name__": metric, "vendor": "payprovider"}, float(state.vendor_reachable))
        ]
    samples = []
    for service in SERVICES:
        value = (
            state.ready[service]
            if metric == "shop_ready_replicas"
            else state.health[service].healthy
        )
        samples.append(Sample({"__name__": metric, "service": service}, float(value)))
    return samples


def _matches(labels: Mapping[str, str], matchers: Sequence[tuple[str, str, str]]) -> bool:
    return all((labels.get(k, "") == v) == (op == "=") for k, op, v in matchers)


def _parse_matchers(text: str, query: str) -> list[tuple[str, str, str]]:
    matchers: list[tuple[str, str, str]] = []
    for part in (p for p in text.split(",") if p.strip()):
        found = _MATCHER.fullmatch(part)
        if found is None:
            raise QueryError(f"query {query!r}: cannot parse label matcher {part.strip()!r}")
        matchers.append((found.group(1), found.group(2), found.group(3)))
    return matchers


def evaluate_query(state: ShopState, query: str) -> list[Sample]:
    """Answer `metric{label="v",...}` or `sum|min|max|count(...)` over the canned metrics."""
    found = _SELECTOR.match(query)
    if found is None or bool(found.group(1)) != bool(found.group(4)):
        raise QueryError(
            f"query {query!r}: the sandbox answers only selectors like "
            f'shop_up{{service="checkout"}}, optionally wrapped in sum/min/max/count'
        )
    aggregation, metric, matcher_text = found.group(1), found.group(2), found.group(3) or ""
    if metric not in METRICS:
        raise QueryError(f"query {query!r}: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    samples = [
        s
        for s in _series(state, metric)
        if _matches(s.labels, _parse_matchers(matcher_text, query))
    ]
    if aggregation is None:
        return samples
    if not samples:
        return []
    values = [s.value for s in samples]
    folded = {
        "sum": sum(values),
        "min": min(values),
        "max": max(values),
        "count": float(len(values)),
    }
    return [Sample({}, folded[aggregation])]


def _format_value(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def vector_body(samples: Sequence[Sample], *, at: float) -> dict[str, Any]:
    """The JSON body Prometheus answers for an instant vector."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": dict(s.labels), "value": [at, _format_value(s.value)]} for s in samples
            ],
        },
    }


# --- HTTP --------------------------------------------------------------------------------


class _Handler(http_server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("workloads %s: " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self._route(url.path, urllib.parse.parse_qs(url.query))

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode() if length else "")
        form.update(urllib.parse.parse_qs(url.query))
        self._route(url.path, form)

    def _route(self, path: str, params: Mapping[str, list[str]]) -> None:
        parts = path.strip("/").split("/")
        try:
            if len(parts) == 2 and parts[0] in SERVICES and parts[1] == "healthz":
                self._health(parts[0])
            elif path.rstrip("/") == "/prometheus/api/v1/query":
                self._query(params)
            else:
                self._send(404, {"status": "error", "error": f"no such path {path}"})
        except Exception:  # a bug in the simulation must not hang the client
            log.exception("workloads: answering %s failed", path)
            self._send(500, {"status": "error", "error": "internal error; see the sandbox log"})

    def _health(self, service: str) -> None:
        health = read_state(self.server.source).health[service]
        if health.healthy:
            self._send(200, {"status": "ok", "service": service, "ready": health.ready})
        else:
            body = {"status": "degraded", "service": service, "ready": health.ready}
            self._send(503, {**body, "reasons": list(health.reasons)})

    def _query(self, params: Mapping[str, list[str]]) -> None:
        query = (params.get("query") or [""])[0]
        raw_time = (params.get("time") or [""])[0]
        try:
            at = float(raw_time) if raw_time else time.time()
            samples = evaluate_query(read_state(self.server.source), query)
        except (QueryError, ValueError) as exc:
            self._send(400, {"status": "error", "errorType": "bad_data", "error": str(exc)})
            return
        self._send(200, vector_body(samples, at=at))

    def _send(self, code: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(http_server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], source: store.ClusterStore) -> None:
        super().__init__(address, _Handler)
        self.source = source


class WorkloadServer:
    """The health endpoints and the Prometheus API on one loopback port."""

    def __init__(
        self, source: store.ClusterStore, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._source = source
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a background thread; with port 0 the OS picks the port."""
        if self._server is not None:
            return
        self._server = _Server(self._address, self._source)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sandbox-workloads",
            daemon=True,
        )
        self._thread.start()
        log.info("simulated workloads listening on %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """`http://host:port` of the running server."""
        if self._server is None:
            raise errors.SandboxNotStarted("WorkloadServer.url: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def health_url(self, service: str) -> str:
        """The health endpoint of `service` (one of SERVICES)."""
        if service not in SERVICES:
            raise errors.SandboxError(
                f"no simulated service {service!r}; known: {', '.join(SERVICES)}"
            )
        return f"{self.url}/{service}/healthz"

    @property
    def prometheus_url(self) -> str:
        """Base URL of the Prometheus-shaped API (append /api/v1/query)."""
        return f"{self.url}/prometheus"
