"""Fixtures of the notification tests: a loopback receiver, a store with the outbox tables,
and runs moved through their states with the engine's own state-move helper."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drills import tables_approvals, tables_outbox, tables_schedules
from drills.service.notify import outbox, routing
from orchestrator import engine, events, journal, mutations, records, states

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "s3cret-hmac-key"
TEAM = "group:default/payments"
SERVICE = "component:default/checkout"

assert tables_approvals and tables_outbox and tables_schedules  # their tables on the metadata


@dataclasses.dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP server on 127.0.0.1 (port 0) that records every POST and answers as told.

    `script` is the status of each answer in turn; past its end it answers `then`.
    """

    def __init__(self, script: Sequence[int] = (), *, then: int = 200) -> None:
        self.script = list(script)
        self.then = then
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    status = receiver.script.pop(0) if receiver.script else receiver.then
                self.send_response(status)
                answer = b"ok" if status < 300 else b"try later"
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def delivery_ids(self) -> list[str]:
        return [r.headers["X-Stormdrill-Delivery"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def store(store_url: str) -> Iterator[journal.Journal]:
    """An open store (SQLite, then PostgreSQL) with every table, outbox and schedules too."""
    with journal.open_store(store_url) as opened:
        yield opened


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifications.yaml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, **env: str) -> routing.Config:
    return routing.load(config_file(tmp_path, text), {"HOOK_SECRET": SECRET, **env})


def webhook_config(tmp_path: Path, url: str, **delivery: str) -> routing.Config:
    extra = "".join(f"\n  {key}: {value}" for key, value in delivery.items())
    return load(
        tmp_path,
        f"""\
links:
  baseUrl: https://stormdrill.example.com
delivery:
  backoff: 1s
  maxBackoff: 8s{extra}
sinks:
  - name: hook
    type: webhook
    url: {url}/hook
    secretEnv: HOOK_SECRET
routes:
  - sinks: [hook]
""",
    )


def new_run(
    store: journal.Journal,
    *,
    scenario: str = "az-outage",
    environment: str = "staging",
    owner: str = TEAM,
    service: str = SERVICE,
) -> states.Run:
    record = records.RunRecord(
        impact=(
            records.ImpactRow(ref=service, owner=owner, distance=0),
            records.ImpactRow(ref="component:default/web", owner="group:default/web", distance=1),
        ),
        trigger=records.Trigger(kind=records.TriggerKind.MANUAL, principal="alice"),
    )
    run = states.new_run(
        id=states.new_run_id(T0),
        scenario=scenario,
        environment=environment,
        environment_source="test",
        owner=states.Owner(host="h", pid=1, token="t"),
        at=T0,
        record=record,
    )
    return store.create_run(run)


_S = states.RunState


def start(store: journal.Journal, run: states.Run) -> states.Run:
    return engine.move_run(store, run, _S.PLANNING, reason="planning the drill")


def inject(store: journal.Journal, run: states.Run) -> states.Run:
    for to in (_S.PREFLIGHT, _S.INJECTING, _S.OBSERVING):
        run = engine.move_run(store, run, to, reason=f"now {to.value}")
    return run


def finish(
    store: journal.Journal, run: states.Run, *, verdict: states.Verdict = states.Verdict.HELD
) -> states.Run:
    run = engine.move_run(
        store, run, _S.ROLLING_BACK, reason="done", ending=states.Ending.COMPLETED
    )
    run = engine.move_run(store, run, _S.VERIFYING, reason="verifying")
    return engine.move_run(store, run, _S.COMPLETED, reason="all reverted", verdict=verdict)


def fail_rollback(store: journal.Journal, run: states.Run) -> states.Run:
    run = engine.move_run(store, run, _S.ROLLING_BACK, reason="abort", ending=states.Ending.ABORTED)
    run = engine.move_run(store, run, _S.ROLLBACK_FAILED, reason="faults may remain")
    store.append_event(
        run.id,
        kind=events.EventKind.ROLLBACK_FAILED,
        message="rollback failed: 1 fault(s) may remain",
        data={"leftovers": [{"seq": 3, "action": "kubernetes.nodes.drain"}], "by": "engine"},
    )
    return run


def trip(store: journal.Journal, run: states.Run) -> None:
    store.append_event(
        run.id,
        kind=events.EventKind.GUARDRAIL,
        message="abort: error rate above 5%",
        data={"rule": "abortWhen", "ok": False, "reason": "error rate", "source": "observer"},
    )


def details(row: outbox.Delivery) -> Mapping[str, mutations.JsonValue]:
    """The `details` object of a delivery's payload."""
    found = row.payload["details"]
    assert isinstance(found, Mapping)
    return found


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)
