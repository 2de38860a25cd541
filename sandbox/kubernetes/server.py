"""Kube API server: a stateful Kubernetes REST API on loopback over the `ClusterStore`.

Speaks enough of the real dialect for the official Python client and kubectl: discovery,
CRUD with label/field selectors and limit/continue pagination, merge/strategic/JSON patches,
`watch=true` streams, the `pods/eviction`, `scale` and `status` subresources, and `Status`
error bodies. Plain HTTP, any bearer token accepted.

Invariants: every request body is read in full before answering (keep-alive stays in sync);
`FaultConfig` is read per request and applies only to resource requests (never discovery);
counters are exact (`request_count`, `mutating_request_count`).

Recording mode (`record_dir=`, or `$STORMDRILL_SANDBOX_RECORD_DIR` read at `start()`): every
distinct JSON response body and watch event is appended to a JSONL file in that directory, so
the test suite can hold what the sandbox sends to the real API's schemas
(`tests/fixtures/kube_schema.py`). Recording never changes an answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import json
import logging
import os
import pathlib
import random
import socket
import threading
import time
import types
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from sandbox.kubernetes import errors, patching, resources, selectors, tables
from sandbox.kubernetes import store as store_module

log = logging.getLogger(__name__)

RECORD_DIR_ENV = "STORMDRILL_SANDBOX_RECORD_DIR"
_DISCOVERY_PREFIXES = ("/version", "/healthz", "/readyz", "/livez", "/openapi")
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-stormdrill",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclasses.dataclass
class FaultConfig:
    """Mutable fault knobs, read on every resource request (discovery is never faulted).

    `timeout_rate` requests sleep `timeout_s` and then answer 504 (or, with
    `drop_connection_on_timeout`, close the connection without an answer). `conflict_rate`
    applies to writes only. A `seed` makes the sequence of faults deterministic.
    """

    latency_s: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    conflict_rate: float = 0.0
    throttle_rate: float = 0.0
    """Requests answered 429 as API Priority and Fairness does: a plain-text body and a
    `Retry-After: retry_after_s` header (not a `Status`)."""
    retry_after_s: int = 1
    seed: int | None = None
    timeout_s: float = 0.0
    drop_connection_on_timeout: bool = False
    on_request: Callable[[str, str], bool] | None = None
    """Called with (method, path) for every resource request before it is handled (tests kill
    a client at a chosen request with it); True drops the request unanswered and unapplied."""


@dataclasses.dataclass(frozen=True)
class Route:
    """A parsed resource URL."""

    resource: resources.ResourceType
    namespace: str | None
    name: str
    subresource: str


def status_body(error: errors.ApiError) -> dict[str, Any]:
    """The `Status` object for an error, shaped like the real API server's."""
    details: dict[str, Any] = {}
    if error.name:
        details["name"] = error.name
    if error.group:
        details["group"] = error.group
    if error.kind:
        details["kind"] = error.kind
    if error.causes:
        details["causes"] = [
            {k: v for k, v in (("reason", r), ("message", m), ("field", f)) if v}
            for r, m, f in error.causes
        ]
    if error.retry_after_s > 0:
        details["retryAfterSeconds"] = error.retry_after_s
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {"continue": error.list_continue} if error.list_continue else {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }
    if details:
        body["details"] = details
    return body


class ResponseRecorder:
    """Appends each distinct response body to a JSONL file (thread-safe, line-buffered).

    A line is `{"request": "GET /api/v1/pods", "code": 200, "watch": false, "body": …}`; a
    watch event is recorded with `"watch": true` and the event (`{"type", "object"}`) as body.
    Bodies already written (same bytes) are skipped, so a polled list costs one line.
    """

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: set[bytes] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab", buffering=0)

    def record(self, *, request: str, code: int, payload: bytes, watch: bool = False) -> None:
        """Write one body (JSON bytes) unless the same bytes were written before."""
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        head = json.dumps({"request": request, "code": code, "watch": watch})[:-1].encode()
        with self._lock:
            if digest in self._seen or self._file.closed:
                return
            self._seen.add(digest)
            self._file.write(head + b', "body": ' + payload + b"}\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: KubeApiServer


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: headers and body go out in two writes; with Nagle on, the body waits for
    # the client's delayed ACK (~40 ms a request on Linux), which dwarfs injected latency.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def setup(self) -> None:
        super().setup()
        self.server.api._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ----- plumbing ------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self, code: int, payload: bytes, *, watch: bool = False) -> None:
        recorder = self.server.api.recorder
        if recorder is not None:
            recorder.record(
                request=f"{self.command} {self.path}", code=code, payload=payload, watch=watch
            )

    def _send_json(self, code: int, body: Any, *, headers: Mapping[str, str] | None = None) -> None:
        self._send_payload(code, json.dumps(body, separators=(",", ":")).encode(), headers=headers)

    def _send_payload(
        self, code: int, payload: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer with `payload`, compact JSON already encoded."""
        self._record(code, payload)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_text(self, code: int, text: str, *, headers: Mapping[str, str] | None = None) -> None:
        payload = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self, method: str) -> None:
        body = self._read_body()
        api = self.server.api
        api._count(method)
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        try:
            if method == "GET" and self._discovery(path):
                return
            hook = api.faults.on_request
            if hook is not None and hook(method, path):
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if not api._apply_faults(method, self):
                return
            self._resource_request(method, path, query, body)
        except errors.ApiError as exc:
            retry = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s > 0 else None
            self._send_json(exc.code, status_body(exc), headers=retry)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("kube sandbox: %s %s failed", method, self.path)
            self._send_json(500, status_body(errors.InternalError(f"sandbox bug: {exc!r}")))

    # ----- discovery -----------------------------------------------------------------
    def _discovery(self, path: str) -> bool:
        api = self.server.api
        registry = api.store.registry
        if path == "/version":
            self._send_json(200, VERSION_INFO)
        elif path in ("/healthz", "/readyz", "/livez"):
            self._send_text(200, "ok")
        elif path.startswith("/openapi"):
            self._send_json(404, status_body(errors.NotFound("the server has no OpenAPI document")))
        elif path == "/api":
            self._send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": api.url.split("//", 1)[1]}
                    ],
                },
            )
        elif path == "/api/v1":
            self._send_json(200, _resource_list(registry, "", "v1"))
        elif path == "/apis":
            groups = [
                _api_group(name, versions)
                for name, versions in sorted(registry.group_versions().items())
                if name
            ]
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        else:
            parts = path.strip("/").split("/")
            if parts[0] != "apis" or len(parts) not in (2, 3):
                return False
            versions = registry.group_versions().get(parts[1])
            if not versions or (len(parts) == 3 and parts[2] not in versions):
                return False
            if len(parts) == 2:
                self._send_json(
                    200, {"kind": "APIGroup", "apiVersion": "v1", **_api_group(parts[1], versions)}
                )
            else:
                self._send_json(200, _resource_list(registry, parts[1], parts[2]))
        return True

    # ----- resources -----------------------------------------------------------------
    def _route(self, path: str) -> Route:
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.NotFound(f"the server could not find the requested resource ({path})")
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise errors.NotFound(f"the server could not find the requested resource ({path})")
        resource = self.server.api.store.registry.find(group=group, version=version, plural=rest[0])
        if resource is None:
            raise errors.NotFound(f"the server could not find the requested resource ({path})")
        if namespace is not None and not resource.namespaced:
            raise errors.NotFound(
                f"{resource} is cluster-scoped; drop /namespaces/{namespace} ({path})"
            )
        name = rest[1] if len(rest) >= 2 else ""
        sub = rest[2] if len(rest) == 3 else ""
        if sub and not resource.has_subresource(sub):
            raise errors.NotFound(f"{resource} has no subresource {sub!r} ({path})")
        return Route(resource, namespace, name, sub)

    def _wants_table(self) -> bool:
        accept = self.headers.get("Accept", "")
        return "as=Table" in accept and "g=meta.k8s.io" in accept

    def _json_body(self, body: bytes) -> Any:
        content_type = self.headers.get("Content-Type", "application/json")
        if "protobuf" in content_type or "yaml" in content_type:
            raise errors.UnsupportedMediaType(
                f"the sandbox accepts JSON bodies only, not {content_type!r}"
            )
        if not body:
            raise errors.BadRequest("the request needs a JSON body")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise errors.BadRequest(f"the body is not valid JSON: {exc}") from exc

    def _resource_request(
        self, method: str, path: str, query: Mapping[str, str], body: bytes
    ) -> None:
        route = self._route(path)
        st = self.server.api.store
        if route.subresource == "eviction":
            if method != "POST":
                raise errors.MethodNotAllowed("pods/eviction accepts POST only")
            if body:
                self._json_body(body)
            st.evict(namespace=route.namespace or "default", name=route.name)
            self._send_json(
                201,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
            )
            return
        if route.subresource == "scale":
            self._scale(method, route, body)
            return
        if not route.name:
            self._collection(method, route, query, body)
            return
        dry_run = _dry_run(query)
        resource, namespace, name, sub = (
            route.resource,
            route.namespace,
            route.name,
            route.subresource,
        )
        if method == "GET":
            obj = st.get(resource=resource, namespace=namespace, name=name)
            if self._wants_table():
                meta = obj["metadata"]
                assert isinstance(meta, dict)
                obj = tables.table(resource, [obj], resource_version=str(meta["resourceVersion"]))
            self._send_json(200, obj)
        elif method == "PUT":
            sent = self._json_body(body)
            if not isinstance(sent, dict):
                raise errors.BadRequest("the body must be a JSON sentect")
            sent.setdefault("metadata", {})
            if sent["metadata"].get("name") not in (None, name):
                raise errors.BadRequest(
                    f"the name of the sentect ({sent['metadata'].get('name')}) does not match the"
                    f" name on the URL ({name})"
                )
            sent["metadata"]["name"] = name
            if resource.namespaced:
                sent["metadata"]["namespace"] = namespace
            self._send_json(
                200,
                st.update(
                    resource=resource,
                    obj=sent,
                    namespace=namespace,
                    subresource=sub,
                    dry_run=dry_run,
                ),
            )
        elif (
            method == "PATCH"
            and _media(self.headers.get("Content-Type")) == patching.APPLY_PATCH
            and not sub
        ):
            obj, created = st.apply(
                resource=resource,
                namespace=namespace,
                name=name,
                config=_yaml_body(body),
                field_manager=query.get("fieldManager", ""),
                dry_run=dry_run,
            )
            self._send_json(201 if created else 200, obj)
        elif method == "PATCH":
            self._send_json(
                200,
                st.patch(
                    resource=resource,
                    namespace=namespace,
                    name=name,
                    patch=self._json_body(body),
                    content_type=self.headers.get("Content-Type", ""),
                    subresource=sub,
                    dry_run=dry_run,
                ),
            )
        elif method == "DELETE":
            options = self._json_body(body) if body.strip() else {}
            if not isinstance(options, dict):
                options = {}
            preconditions = options.get("preconditions") or {}
            propagation = str(
                query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
            )
            dry_run = dry_run or "All" in (options.get("dryRun") or [])
            gone = st.delete(
                resource=resource,
                namespace=namespace,
                name=name,
                uid=preconditions.get("uid"),
                resource_version=preconditions.get("resourceVersion"),
                propagation=propagation,
                dry_run=dry_run,
            )
            # The object while its deletion is pending (a pod's grace, a finalizer), else a Status.
            pending = resource == resources.PODS or propagation == "Foreground"
            self._send_json(200, gone if pending else _deleted_status(gone, resource))
        else:
            raise errors.MethodNotAllowed(f"{method} is not allowed on {path}")

    def _collection(self, method: str, route: Route, query: Mapping[str, str], body: bytes) -> None:
        st = self.server.api.store
        resource = route.resource
        if method == "POST":
            obj = self._json_body(body)
            if not isinstance(obj, dict):
                raise errors.BadRequest("the body must be a JSON object")
            self._send_json(
                201,
                st.create(
                    resource=resource,
                    obj=obj,
                    namespace=route.namespace,
                    dry_run=_dry_run(query),
                ),
            )
            return
        if method not in ("GET", "DELETE"):
            raise errors.MethodNotAllowed(f"{method} is not allowed on a {resource} collection")
        label_selector = query.get("labelSelector", "")
        field_selector = query.get("fieldSelector", "")
        if method == "GET" and query.get("watch", "").lower() in ("true", "1"):
            self._watch(route, query, label_selector, field_selector)
            return
        try:
            limit = int(query.get("limit") or 0)
        except ValueError as exc:
            raise errors.BadRequest(f"limit={query.get('limit')!r} is not an integer") from exc
        as_table = method == "GET" and self._wants_table()
        page = st.list_page(
            resource=resource,
            namespace=route.namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            continue_token=query.get("continue", ""),
            resource_version=query.get("resourceVersion", ""),
            resource_version_match=query.get("resourceVersionMatch", ""),
            copies=method == "DELETE" or as_table,
        )
        if method == "DELETE":
            for item in page.items:
                item_meta = item["metadata"]
                assert isinstance(item_meta, dict)
                st.delete(
                    resource=resource, namespace=item_meta.get("namespace"), name=item_meta["name"]
                )
        if as_table:
            self._send_json(
                200,
                tables.table(
                    resource,
                    page.items,
                    resource_version=page.resource_version,
                    continue_token=page.continue_token,
                ),
            )
            return
        meta: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.continue_token:
            meta["continue"] = page.continue_token
            if page.remaining is not None and not label_selector and not field_selector:
                meta["remainingItemCount"] = page.remaining
        if method == "DELETE":
            self._send_json(
                200,
                {
                    "kind": resource.list_kind,
                    "apiVersion": resource.api_version,
                    "metadata": meta,
                    "items": page.items,
                },
            )
            return
        # Each stored object is serialised once (`encoded`); the list is joined around them.
        head = json.dumps(
            {"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": meta},
            separators=(",", ":"),
        ).encode()
        items = b",".join(st.encoded(item) for item in page.items)
        self._send_payload(200, head[:-1] + b',"items":[' + items + b"]}")

    def _scale(self, method: str, route: Route, body: bytes) -> None:
        st = self.server.api.store
        resource, namespace, name = route.resource, route.namespace, route.name
        current = st.get(resource=resource, namespace=namespace, name=name)
        scale = _scale_of(current)
        if method == "GET":
            self._send_json(200, scale)
            return
        if method == "PUT":
            wanted = self._json_body(body)
        elif method == "PATCH":
            wanted = patching.apply_patch(
                target=scale,
                patch=self._json_body(body),
                content_type=self.headers.get("Content-Type", ""),
            )
        else:
            raise errors.MethodNotAllowed(f"{method} is not allowed on the scale subresource")
        replicas = ((wanted or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise store_module.invalid(
                "Scale",
                "autoscaling",
                name,
                (
                    (
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(replicas)}: must be greater than or equal"
                        " to 0",
                        "spec.replicas",
                    ),
                ),
            )
        patch: dict[str, Any] = {"spec": {"replicas": replicas}}
        sent_rv = ((wanted or {}).get("metadata") or {}).get("resourceVersion")
        if method == "PUT" and sent_rv:
            patch["metadata"] = {"resourceVersion": sent_rv}
        updated = st.patch(
            resource=resource,
            namespace=namespace,
            name=name,
            patch=patch,
            content_type="application/merge-patch+json",
        )
        self._send_json(200, _scale_of(updated))

    def _watch(
        self, route: Route, query: Mapping[str, str], label_selector: str, field_selector: str
    ) -> None:
        st = self.server.api.store
        labels = selectors.parse_label_selector(label_selector)
        fields = selectors.parse_field_selector(field_selector)
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        raw_rv = query.get("resourceVersion", "")
        initial: list[tuple[str, Any]] = []
        if raw_rv in ("", "0"):
            page = st.list_page(
                resource=route.resource,
                namespace=route.namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
            initial = [("ADDED", item) for item in page.items]
            since = int(page.resource_version)
        else:
            try:
                since = int(raw_rv)
            except ValueError as exc:
                raise errors.BadRequest(f"resourceVersion={raw_rv!r} is not a number") from exc
            st.events_since(since, resource=route.resource)  # raises Gone before headers go out
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        api = self.server.api

        def emit(event_type: str, obj: Any) -> None:
            data = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode()
            self._record(200, data, watch=True)
            data += b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        for event_type, obj in initial:
            emit(event_type, obj)
        try:
            while not api._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    events = st.events_since(
                        since, resource=route.resource, namespace=route.namespace
                    )
                except errors.Gone as exc:
                    emit("ERROR", status_body(exc))
                    break
                for event in events:
                    since = event.resource_version
                    obj = event.object
                    meta = obj.get("metadata") or {}
                    if labels.matches(meta.get("labels") or {}) and fields.matches(obj):
                        emit(event.type, obj)
                if not events:
                    st.wait_for_change(since, timeout_s=min(remaining, 0.25))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


def _dry_run(query: Mapping[str, str]) -> bool:
    """`?dryRun=All`: check and answer, store nothing; any other value is refused (as upstream)."""
    value = query.get("dryRun", "")
    if value not in ("", "All"):
        raise errors.BadRequest(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return value == "All"


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _yaml_body(body: bytes) -> dict[str, Any]:
    """An apply request's body: YAML (JSON is YAML too), which must be an object."""
    try:
        config = yaml.safe_load(body) if body.strip() else None
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"the apply body is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise errors.BadRequest("the apply body must be a YAML or JSON object")
    return config


def _deleted_status(gone: Mapping[str, Any], resource: resources.ResourceType) -> dict[str, Any]:
    meta = gone.get("metadata") or {}
    details = {"name": meta.get("name"), "kind": resource.plural, "uid": meta.get("uid")}
    if resource.group:
        details["group"] = resource.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _scale_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int(spec.get("replicas", 1))},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas", 0)),
            "selector": selectors.to_selector_string(spec.get("selector")),
        },
    }


def _api_group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def _resource_list(
    registry: resources.ResourceRegistry, group: str, version: str
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for resource in sorted(registry.all(), key=lambda r: r.plural):
        if resource.group != group or resource.version != version:
            continue
        entry: dict[str, Any] = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": list(resource.verbs),
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        entries.append(entry)
        for sub in resource.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{resource.plural}/{sub.name}",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": sub.kind or resource.kind,
                "verbs": list(sub.verbs),
            }
            if sub.group or sub.version:
                sub_entry["group"], sub_entry["version"] = sub.group, sub.version
            entries.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


class KubeApiServer:
    """The loopback API server; `start()`/`stop()` or use it as a context manager."""

    def __init__(
        self,
        *,
        store: store_module.ClusterStore | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultConfig | None = None,
        record_dir: pathlib.Path | None = None,
    ) -> None:
        self.store = store if store is not None else store_module.ClusterStore()
        self.record_dir = record_dir
        self.recorder: ResponseRecorder | None = None
        self.faults = faults if faults is not None else FaultConfig()
        self.host = host
        self.port = port
        self.url = ""
        self.request_count = 0
        self.mutating_request_count = 0
        self._counter_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._rng_seed = self.faults.seed
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()

    def start(self) -> None:
        """Bind (port 0 = ephemeral) and serve on a daemon thread; sets `url`."""
        if self._httpd is not None:
            return
        self._stopping.clear()
        httpd = _Server((self.host, self.port), _Handler)
        httpd.api = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        record_dir = self.record_dir or (
            pathlib.Path(os.environ[RECORD_DIR_ENV]) if os.environ.get(RECORD_DIR_ENV) else None
        )
        if record_dir is not None:
            self.recorder = ResponseRecorder(
                record_dir / f"kube-responses-{os.getpid()}-{self.port}.jsonl"
            )
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="kube-sandbox",
            daemon=True,
        )
        self._thread.start()
        log.info("kube sandbox API server listening on %s", self.url)

    def stop(self) -> None:
        """Stop serving, end open watches and close every open connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._counter_lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        log.info("kube sandbox API server on %s stopped", self.url)

    def __enter__(self) -> KubeApiServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    def write_kubeconfig(self, path: pathlib.Path, *, context: str = "sandbox") -> pathlib.Path:
        """Write a kubeconfig for this server (any bearer token works) and return its path."""
        if not self.url:
            raise errors.SandboxKubeError(
                "the kube sandbox server is not started; call start() before write_kubeconfig()"
            )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "sandbox-token"}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": "default"},
                }
            ],
            "current-context": context,
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ----- used by the handler -------------------------------------------------------
    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._counter_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _count(self, method: str) -> None:
        with self._counter_lock:
            self.request_count += 1
            if method in _MUTATING:
                self.mutating_request_count += 1

    def _apply_faults(self, method: str, handler: _Handler) -> bool:
        """Inject the configured faults; False when the request was answered (or dropped)."""
        faults = self.faults
        with self._fault_lock:
            if faults.seed != self._rng_seed:
                self._rng, self._rng_seed = random.Random(faults.seed), faults.seed
            timeout_roll, error_roll, conflict_roll = (self._rng.random() for _ in range(3))
            throttle_roll = self._rng.random() if faults.throttle_rate > 0 else 1.0
        if faults.latency_s > 0:
            time.sleep(faults.latency_s)
        if timeout_roll < faults.timeout_rate:
            if faults.timeout_s > 0:
                time.sleep(faults.timeout_s)
            if faults.drop_connection_on_timeout:
                handler.close_connection = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
                return False
            raise errors.GatewayTimeout(
                "the sandbox injected a timeout (FaultConfig.timeout_rate); retry the request"
            )
        if throttle_roll < faults.throttle_rate:
            handler._send_text(
                429,
                "Too many requests, please try again later.\n",
                headers={
                    "Retry-After": str(faults.retry_after_s),
                    "X-Content-Type-Options": "nosniff",
                },
            )
            return False
        if error_roll < faults.error_rate:
            raise errors.InternalError(
                "the sandbox injected an internal error (FaultConfig.error_rate); retry the request"
            )
        if method in _MUTATING and conflict_roll < faults.conflict_rate:
            raise errors.Conflict(
                "Operation cannot be fulfilled: the object has been modified; please apply your"
                " changes to the latest version and try again"
                " (injected by FaultConfig.conflict_rate)"
            )
        return True
