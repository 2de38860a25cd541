"""Standalone: the Kubernetes sandbox API server in its own process, with a control endpoint.

A real API server runs in another process than its clients; benchmarks need that too, or the
server's request handling competes with the client for one interpreter lock. `start(...)`
launches `python -m sandbox.kubernetes.standalone` as a child process, which seeds its own store
(`--nodes`, `--pods`), serves the API on a free loopback port, writes a kubeconfig for it, and
serves a small JSON control endpoint on another free loopback port:

- `GET /stats`: `{"requests": n, "mutating_requests": m, "seq": s}` (the API's exact counters
  and the number of store changes so far);
- `PUT /faults`: set scalar `FaultConfig` fields (`{"latency_s": 0.02}`); answers all of them;
- `GET /changes?resource=nodes&name=X&after=SEQ&timeout=S`: the recorded changes of that object
  with a sequence number above SEQ, waiting up to S seconds for the first one. Each change
  carries `at`, the child's `time.monotonic()` when the store applied it.

Invariants: everything listens on 127.0.0.1 with ephemeral ports; the child exits when its
standard input closes, so it never outlives the process that started it; `at` timestamps are
CLOCK_MONOTONIC, which on Linux is one clock for every process of the machine, so they compare
with the parent's `time.monotonic()`; the change log keeps the last `CHANGE_LOG_SIZE` changes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.server
import json
import logging
import os
import pathlib
import select
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Self

from sandbox.kubernetes import errors, seed, server
from sandbox.kubernetes import store as store_module

log = logging.getLogger(__name__)

CHANGE_LOG_SIZE = 4096
READY_TIMEOUT_S = 120.0
"""Seeding 3,000 nodes and 10,000 pods takes a few seconds; a loaded machine takes longer."""
_FAULT_FIELDS: tuple[str, ...] = (
    "latency_s",
    "error_rate",
    "timeout_rate",
    "conflict_rate",
    "throttle_rate",
    "retry_after_s",
    "seed",
    "timeout_s",
    "drop_connection_on_timeout",
)


class StandaloneError(errors.SandboxKubeError):
    """The standalone sandbox could not start, or its control endpoint refused a request."""


@dataclasses.dataclass(frozen=True)
class Change:
    """One change of a watched object, as the child's store applied it."""

    seq: int
    at: float
    """The child's `time.monotonic()` (CLOCK_MONOTONIC) when the change was applied."""
    type: str
    object: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Stats:
    """The API server's exact request counters and the store's change count."""

    requests: int
    mutating_requests: int
    seq: int


# ---- the parent's side -----------------------------------------------------------------------


class StandaloneServer:
    """A running child: its API URL, kubeconfig and control client. `stop()` ends it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        api_url: str,
        control_url: str,
        kubeconfig: pathlib.Path,
    ) -> None:
        self.process = process
        self.url = api_url
        self.control_url = control_url
        self.kubeconfig = kubeconfig

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    def stats(self) -> Stats:
        body = self._call("GET", "/stats")
        return Stats(
            requests=int(body["requests"]),
            mutating_requests=int(body["mutating_requests"]),
            seq=int(body["seq"]),
        )

    def set_faults(self, **faults: float | int | bool | None) -> dict[str, Any]:
        """Set `FaultConfig` fields in the child (e.g. `latency_s=0.02`); returns them all."""
        return self._call("PUT", "/faults", faults)

    def changes(self, *, resource: str, name: str, after: int, timeout_s: float) -> list[Change]:
        """Changes of `resource`/`name` after sequence `after`, waiting up to `timeout_s`."""
        query = urllib.parse.urlencode(
            {"resource": resource, "name": name, "after": after, "timeout": timeout_s}
        )
        body = self._call("GET", f"/changes?{query}", timeout_s=timeout_s + 10)
        return [
            Change(seq=int(c["seq"]), at=float(c["at"]), type=str(c["type"]), object=c["object"])
            for c in body["changes"]
        ]

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Close the child's stdin (it exits on EOF); terminate it if it does not."""
        if self.process.poll() is not None:
            return
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("standalone sandbox pid %d ignored EOF; terminating it", self.process.pid)
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = 30,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(dict(body)).encode()
        request = urllib.request.Request(
            self.control_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                decoded: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise StandaloneError(
                f"standalone sandbox control {method} {path}: HTTP {exc.code}: {detail}"
            ) from exc
        except OSError as exc:
            raise StandaloneError(
                f"standalone sandbox control {method} {path} failed: {exc} "
                f"(is the child pid {self.process.pid} still running?)"
            ) from exc
        return decoded


def start(
    workdir: pathlib.Path,
    *,
    nodes: int = 0,
    pods: int = 0,
    pod_namespace: str = "bench",
    pod_labels: Mapping[str, str] | None = None,
    owned_pods: bool = False,
    python: str = sys.executable,
) -> StandaloneServer:
    """Start the child, seeded with `nodes` Ready nodes over `seed.ZONES` and `pods` pods.

    Pods go into `pod_namespace` (labelled `stormdrill.dev/allow-drills=true`) with
    `pod_labels`, owned by a ReplicaSet when `owned_pods`. The kubeconfig is written to
    `workdir/kubeconfig`; the child's log to `workdir/sandbox.log`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = workdir / "kubeconfig"
    command = [
        python,
        "-m",
        "sandbox.kubernetes.standalone",
        "--nodes",
        str(nodes),
        "--pods",
        str(pods),
        "--pod-namespace",
        pod_namespace,
        "--kubeconfig",
        str(kubeconfig),
    ]
    for key, value in (pod_labels or {}).items():
        command += ["--pod-label", f"{key}={value}"]
    if owned_pods:
        command.append("--owned-pods")
    with (workdir / "sandbox.log").open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            cwd=pathlib.Path(__file__).resolve().parents[2],
        )
    try:
        ready = _read_ready(process, log_path=workdir / "sandbox.log")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return StandaloneServer(
        process, api_url=ready["api"], control_url=ready["control"], kubeconfig=kubeconfig
    )


def _read_ready(process: subprocess.Popen[bytes], *, log_path: pathlib.Path) -> dict[str, str]:
    """The child's one JSON line on stdout (`{"api": …, "control": …}`), within the timeout."""
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.5)
        if readable:
            line = process.stdout.readline()
            if line:
                ready: dict[str, str] = json.loads(line)
                return ready
        if process.poll() is not None:
            break
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise StandaloneError(
        f"the standalone sandbox (pid {process.pid}) did not report ready within "
        f"{READY_TIMEOUT_S:.0f} s (exit code {process.poll()}); its log {log_path} ends:\n{tail}"
    )


# ---- the child's side ------------------------------------------------------------------------


class _ChangeLog:
    """The last `CHANGE_LOG_SIZE` store changes, numbered, with a condition to wait on."""

    def __init__(self) -> None:
        self._changes: collections.deque[tuple[int, float, store_module.WatchEvent]] = (
            collections.deque(maxlen=CHANGE_LOG_SIZE)
        )
        self._seq = 0
        self._cond = threading.Condition()

    @property
    def seq(self) -> int:
        with self._cond:
            return self._seq

    def __call__(self, event: store_module.WatchEvent) -> None:
        at = time.monotonic()
        with self._cond:
            self._seq += 1
            self._changes.append((self._seq, at, event))
            self._cond.notify_all()

    def wait(
        self, *, resource: str, name: str, after: int, timeout_s: float
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [
                    {"seq": seq, "at": at, "type": event.type, "object": event.object}
                    for seq, at, event in self._changes
                    if seq > after
                    and event.resource.plural == resource
                    and (event.object.get("metadata") or {}).get("name") == name
                ]
                left = deadline - time.monotonic()
                if found or left <= 0:
                    return found
                self._cond.wait(left)


class _ControlServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    api: server.KubeApiServer
    changes: _ChangeLog


class _ControlHandler(http.server.BaseHTTPRequestHandler):
    server: _ControlServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("control %s", format % args)

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        if parsed.path == "/stats":
            api = self.server.api
            self._answer(
                200,
                {
                    "requests": api.request_count,
                    "mutating_requests": api.mutating_request_count,
                    "seq": self.server.changes.seq,
                },
            )
        elif parsed.path == "/changes":
            try:
                found = self.server.changes.wait(
                    resource=query["resource"],
                    name=query["name"],
                    after=int(query.get("after", "0")),
                    timeout_s=float(query.get("timeout", "0")),
                )
            except (KeyError, ValueError) as exc:
                self._answer(
                    400, {"error": f"/changes needs resource, name, after, timeout: {exc}"}
                )
                return
            self._answer(200, {"changes": found})
        else:
            self._answer(404, {"error": f"no control endpoint {parsed.path}"})

    def do_PUT(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/faults":
            self._answer(404, {"error": f"no control endpoint {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            wanted = json.loads(self.rfile.read(length) or b"{}")
            unknown = sorted(set(wanted) - set(_FAULT_FIELDS))
            if unknown:
                raise ValueError(f"unknown fault fields {unknown} (known: {list(_FAULT_FIELDS)})")
        except ValueError as exc:
            self._answer(400, {"error": str(exc)})
            return
        faults = self.server.api.faults
        for key, value in wanted.items():
            setattr(faults, key, value)
        self._answer(200, {key: getattr(faults, key) for key in _FAULT_FIELDS})

    def _answer(self, code: int, body: Mapping[str, Any]) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _seeded_store(args: argparse.Namespace) -> store_module.ClusterStore:
    cluster_store = store_module.ClusterStore()
    if args.nodes:
        seed.seed_nodes(cluster_store, count=args.nodes, zones=seed.ZONES)
    if args.pods:
        seed.ensure_namespace(
            cluster_store, args.pod_namespace, labels={seed.ALLOW_DRILLS_LABEL: "true"}
        )
        labels = dict(label.split("=", 1) for label in args.pod_label) or {"app": "bench"}
        seed.seed_pods(
            cluster_store,
            namespace=args.pod_namespace,
            count=args.pods,
            labels=labels,
            owned=args.owned_pods,
        )
    return cluster_store


def main(argv: Sequence[str] | None = None) -> int:
    """The child: seed, serve, print the ready line, and serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.kubernetes.standalone")
    parser.add_argument("--nodes", type=int, default=0)
    parser.add_argument("--pods", type=int, default=0)
    parser.add_argument("--pod-namespace", default="bench")
    parser.add_argument("--pod-label", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--owned-pods", action="store_true")
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cluster_store = _seeded_store(args)
    changes = _ChangeLog()
    cluster_store.subscribe(changes)
    api = server.KubeApiServer(store=cluster_store, faults=server.FaultConfig())
    api.start()
    control = _ControlServer(("127.0.0.1", 0), _ControlHandler)
    control.api = api
    control.changes = changes
    thread = threading.Thread(target=control.serve_forever, name="control", daemon=True)
    thread.start()
    try:
        api.write_kubeconfig(args.kubeconfig)
        ready = {
            "api": api.url,
            "control": f"http://127.0.0.1:{control.server_address[1]}",
            "pid": os.getpid(),
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        while sys.stdin.buffer.read(4096):
            pass  # EOF: the parent closed our stdin (or died)
    except KeyboardInterrupt:
        pass
    finally:
        control.shutdown()
        control.server_close()
        api.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
