"""Factories for probe and observer tests: a loopback HTTP server, contexts, scripted probes."""

from __future__ import annotations

import collections
import copy
import dataclasses
import http.server
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pydantic

from orchestrator import context, mutations, registry, states
from scenarios import models


@dataclasses.dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    hang: bool = False


class LoopbackServer:
    """An HTTP server on 127.0.0.1 (port 0) answering each path as its `Route` says."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                path = self.path
                outer.requests.append((self.command, path, dict(self.headers.items())))
                route = outer.routes.get(path) or outer.routes.get(path.split("?", 1)[0])
                if route is None:
                    route = Route(status=404, body=b'{"error": "no such path"}')
                if route.hang:
                    outer.release.wait(30)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(route.body)

            do_GET = _answer
            do_HEAD = _answer
            do_OPTIONS = _answer

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def json(self, path: str, body: object, *, status: int = 200) -> str:
        self.routes[path] = Route(status=status, body=json.dumps(body).encode())
        return self.url + path

    def text(self, path: str, body: str, *, status: int = 200) -> str:
        self.routes[path] = Route(status=status, body=body.encode(), content_type="text/plain")
        return self.url + path

    def hanging(self, path: str) -> str:
        self.routes[path] = Route(hang=True)
        return self.url + path

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serving() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def prometheus_vector(*samples: tuple[Mapping[str, str], str]) -> dict[str, Any]:
    """An instant-query answer in the Prometheus API shape."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": dict(labels), "value": [1700000000.0, value]}
                for labels, value in samples
            ],
        },
    }


_ENVIRONMENT: dict[str, Any] = {
    "apiVersion": "stormdrill.dev/v1",
    "kind": "Environment",
    "metadata": {"name": "sandbox"},
    "spec": {"timeScale": 0.02},
}


def environment(**spec: Any) -> models.Environment:
    raw = copy.deepcopy(_ENVIRONMENT)
    raw["spec"].update(spec)
    return models.Environment.model_validate(raw)


def run_context(
    env: models.Environment | None = None,
    *,
    run_id: str = "run-1",
    time_scale: float | None = None,
) -> context.RunContext:
    env = env or environment()
    return context.RunContext(
        run_id=states.RunId(run_id),
        environment=env,
        connections=context.Connections(env, {}),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        time_scale=env.spec.time_scale if time_scale is None else time_scale,
    )


# ---- scripted probes -------------------------------------------------------------------------


class ScriptParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    label: str = ""


class Script:
    """Results a scripted probe hands out in order; after the script, the last one repeats."""

    def __init__(self, results: Iterable[bool | None]) -> None:
        self._queue: collections.deque[bool | None] = collections.deque(results)
        self._last: bool | None = True
        self._lock = threading.Lock()
        self.calls = 0
        self.exhausted = threading.Event()
        self.reached: dict[int, threading.Event] = collections.defaultdict(threading.Event)
        self.release = threading.Event()

    def next(self) -> bool | None:
        """True: pass; False: fail; None: hang until `release` is set."""
        with self._lock:
            self.calls += 1
            if self._queue:
                self._last = self._queue.popleft()
            else:
                self.exhausted.set()
            result = self._last
            self.reached[self.calls].set()
        return result

    def wait_calls(self, count: int, timeout: float = 20.0) -> bool:
        with self._lock:
            event = self.reached[count]
        return event.wait(timeout)


def scripted_probe(name: str, script: Script) -> type[registry.Probe[Any]]:
    """A fresh probe class named `name` whose results come from `script`."""

    class ScriptedProbe(registry.Probe[ScriptParams]):
        params_model: ClassVar[type[pydantic.BaseModel]] = ScriptParams
        description: ClassVar[str] = "scripted test probe"

        def check(
            self, ctx: registry.ProviderContext, *, params: ScriptParams
        ) -> registry.ProbeResult:
            outcome = script.next()
            if outcome is None:
                script.release.wait(30)
                outcome = True
            value: mutations.JsonValue = {"call": script.calls}
            message = f"{params.label or name} call {script.calls}: {'up' if outcome else 'down'}"
            return registry.ProbeResult(
                ok=outcome, value=value, message=message, at=datetime.now(UTC)
            )

    ScriptedProbe.name = name
    return ScriptedProbe


def scenario(
    probes: list[dict[str, Any]],
    *,
    abort_when: list[dict[str, str]] | None = None,
    max_duration: str = "30m",
) -> models.Scenario:
    return models.Scenario.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Scenario",
            "metadata": {"name": "observed"},
            "spec": {
                "description": "Observed drill.",
                "failureMode": "custom",
                "hypothesis": "It holds.",
                "steadyState": probes,
                "guardrails": {
                    "environments": ["sandbox"],
                    "maxDuration": max_duration,
                    "abortWhen": abort_when or [],
                },
                "steps": [{"name": "hold", "wait": "1m"}],
            },
        }
    )


def probe(name: str, type_: str, *, tolerance: int = 0, **fields: Any) -> dict[str, Any]:
    """A steady-state probe entry (interval 1s: 0.05s at the 0.02 time scale)."""
    return {"name": name, "type": type_, "interval": "1s", "tolerance": tolerance, **fields}
