"""Systems that refuse us at the wire: a Kubernetes API answering 403, an AWS endpoint denying.

- `KubeRefusal` is a per-request hook for the sandbox API server (`FaultConfig.on_request`):
  once armed, requests matching a method and path prefix get a real `Status` 403 answer.
- `RefusingAwsProxy` is a loopback HTTP proxy in front of moto: every request is forwarded,
  except, once armed, EC2 query calls whose `Action` is in `denied`, which get the answer AWS
  gives a principal whose permission was removed (HTTP 403, `UnauthorizedOperation`).
  moto can enforce IAM only process-wide and only for callers signing with keys it issued
  (the sandbox's seeding, probes and snapshots use dummy keys), so the refusal is made here.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

from sandbox.kubernetes import errors as kube_errors


class Forbidden(kube_errors.ApiError):
    """What the API server answers a client RBAC does not allow (HTTP 403)."""

    code = 403
    reason = "Forbidden"


@dataclasses.dataclass
class KubeRefusal:
    """A request hook: once `armed`, `method` requests under `path_prefix` are forbidden."""

    method: str
    path_prefix: str
    armed: bool = False
    refused: int = 0

    def __call__(self, method: str, path: str) -> bool:
        if self.armed and method == self.method and path.startswith(self.path_prefix):
            self.refused += 1
            raise Forbidden(
                f'nodes is forbidden: User "stormdrill" cannot {method.lower()} resource'
                ' "nodes" in API group "" at the cluster scope (injected by the test)',
                kind="nodes",
            )
        return False


_DENIED_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    "<Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this"
    " operation. User: arn:aws:iam::123456789012:user/stormdrill is not authorized to perform:"
    " ec2:{action} (permission removed by the test)</Message></Error></Errors>"
    "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
)
_HOP_BY_HOP = frozenset({"connection", "transfer-encoding", "content-length", "keep-alive"})


class RefusingAwsProxy:
    """Forward to `upstream` (moto); once `armed`, deny the EC2 actions in `denied` with 403."""

    def __init__(self, upstream: str, *, denied: frozenset[str]) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.denied = denied
        self.armed = False
        self.refused: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                proxy.forward(self, "GET")

            def do_POST(self) -> None:
                proxy.forward(self, "POST")

            def do_PUT(self) -> None:
                proxy.forward(self, "PUT")

            def do_DELETE(self) -> None:
                proxy.forward(self, "DELETE")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def forward(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        action = (urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action") or [""])[0]
        if self.armed and action in self.denied:
            self.refused.append(action)
            payload = _DENIED_BODY.format(action=action).encode()
            handler.send_response(403)
            handler.send_header("Content-Type", "text/xml;charset=UTF-8")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30
        )
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(method, handler.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
            handler.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        finally:
            upstream.close()

    def __enter__(self) -> RefusingAwsProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serving(proxy: RefusingAwsProxy) -> Iterator[RefusingAwsProxy]:
    """Yield a started proxy and stop it afterwards (for fixtures)."""
    with proxy:
        yield proxy
