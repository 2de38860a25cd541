"""RPO canaries: records written to PostgreSQL and an HTTP endpoint, data lost, RPO measured."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import server
from typing import Any

import psycopg
import pytest

from orchestrator import canary, context, journal, registry, states
from scenarios import models


def _ctx(run_id: str) -> context.RunContext:
    env = models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "t"},
            "spec": {},
        }
    )
    return context.RunContext(
        run_id=states.RunId(run_id),
        environment=env,
        connections=context.Connections(env, {}),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


def _event(
    seq: int, probe: str, kind: str, phase: str, result: registry.ProbeResult
) -> journal.Event:
    return journal.Event(
        seq=seq,
        run_id=states.RunId("r"),
        at=result.at,
        kind="probe",
        message=result.message,
        data={"probe": probe, "type": kind, "phase": phase, "ok": result.ok, "value": result.value},
    )


def _at(result: registry.ProbeResult, key: str) -> datetime:
    value = result.value
    assert isinstance(value, dict)
    record = canary.Record.from_json(value[key])
    assert record is not None
    return record.at


@pytest.fixture
def table(postgres_dsn: str) -> Iterator[str]:
    name = f"sd_canary_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{name}"')


def _closed_port() -> int:
    """A loopback port nothing listens on (bound by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.postgres
def test_postgres_canary_measures_the_records_lost_in_the_fault(
    table: str, postgres_dsn: str
) -> None:
    probe = canary.PostgresCanary()
    params = probe.parse_params({"dsn": postgres_dsn, "table": table})
    ctx = _ctx(f"run-{uuid.uuid4().hex[:8]}")
    before = [probe.check(ctx, params=params) for _ in range(3)]
    with psycopg.connect(postgres_dsn) as conn:  # the failover loses the last two writes
        conn.execute(f'DELETE FROM "{table}" WHERE seq > 1')
    after = probe.check(ctx, params=params)

    events = [
        _event(i, "orders", probe.name, phase, result)
        for i, (phase, result) in enumerate(
            [("before", before[0]), ("during", before[1]), ("during", before[2]), ("after", after)]
        )
    ]
    measured = canary.achieved_rpo(events)

    assert all(r.ok for r in [*before, after])
    assert measured is not None and measured.newest_surviving is not None
    assert measured.newest_surviving.seq == 1
    assert measured.seconds == (_at(before[2], "wrote") - _at(before[0], "wrote")).total_seconds()
    assert after.value["wrote"]["seq"] == 4  # type: ignore[index,call-overload]


@pytest.mark.postgres
def test_postgres_canary_with_nothing_lost_has_an_rpo_of_zero(
    table: str, postgres_dsn: str
) -> None:
    probe = canary.PostgresCanary()
    params = probe.parse_params({"dsn": postgres_dsn, "table": table, "stream": "s"})
    ctx = _ctx(f"run-{uuid.uuid4().hex[:8]}")
    results = [probe.check(ctx, params=params) for _ in range(3)]
    events = [
        _event(i, "c", probe.name, "after" if i == 2 else "during", r)
        for i, r in enumerate(results)
    ]

    measured = canary.achieved_rpo(events)

    assert measured is not None and measured.seconds == 0.0 and not measured.all_lost


def test_unreachable_postgres_is_a_failing_sample_not_an_exception() -> None:
    port = _closed_port()
    probe = canary.PostgresCanary()
    params = probe.parse_params(
        {"dsn": f"postgresql://postgres@127.0.0.1:{port}/test", "timeout": "1s"}
    )

    result = probe.check(_ctx("run-x"), params=params)

    assert result.ok is False
    assert result.value == {"read": False, "newest": None, "wrote": None, "error": result.message}
    assert result.message.startswith(
        "canary stormdrill_canary/default: OperationalError: connection failed: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused'
    ), result.message


@pytest.mark.postgres
def test_a_canary_that_reads_but_cannot_write_fails_naming_the_table_and_the_cause(
    table: str, postgres_dsn: str
) -> None:
    probe = canary.PostgresCanary()
    params = probe.parse_params({"dsn": postgres_dsn, "table": table})
    ctx = _ctx(f"run-{uuid.uuid4().hex[:8]}")
    first = probe.check(ctx, params=params)
    with psycopg.connect(postgres_dsn) as conn:  # the database turns read-only for the table
        conn.execute(
            f'CREATE FUNCTION "{table}_ro"() RETURNS trigger LANGUAGE plpgsql AS '
            "$$ BEGIN RAISE EXCEPTION 'read-only replica'; END $$"
        )
        conn.execute(
            f'CREATE TRIGGER "{table}_ro" BEFORE INSERT ON "{table}" '
            f'FOR EACH ROW EXECUTE FUNCTION "{table}_ro"()'
        )
    try:
        second = probe.check(ctx, params=params)
    finally:
        with psycopg.connect(postgres_dsn) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            conn.execute(f'DROP FUNCTION IF EXISTS "{table}_ro"()')

    assert first.ok
    assert second.ok is False
    assert second.message.startswith(
        f"canary {table}/default: RaiseException: read-only replica"
    ), second.message
    newest = first.value["wrote"]  # type: ignore[index,call-overload]
    assert second.value == {"read": True, "newest": newest, "wrote": None, "error": second.message}


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[tuple[str, str], list[dict[str, Any]]] = {}


def _handler(store: _Store) -> type[server.BaseHTTPRequestHandler]:
    class Handler(server.BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            return None

        def _reply(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            key = (query["run"][0], query["stream"][0])
            with store.lock:
                rows = store.records.get(key, [])
                newest = max(rows, key=lambda r: r["seq"]) if rows else None
            if newest is None:
                self._reply(404, None)
            else:
                self._reply(200, {"seq": newest["seq"], "writtenAt": newest["writtenAt"]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with store.lock:
                store.records.setdefault((body["run"], body["stream"]), []).append(body)
            self._reply(201, {"stored": body["seq"]})

    return Handler


@pytest.fixture
def canary_endpoint() -> Iterator[tuple[str, _Store]]:
    store = _Store()
    httpd = server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(store))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/canary", store
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_canary_measures_loss_through_the_endpoint(
    canary_endpoint: tuple[str, _Store],
) -> None:
    url, store = canary_endpoint
    probe = canary.HttpCanary()
    params = probe.parse_params({"url": url})
    ctx = _ctx("run-http")
    before = [probe.check(ctx, params=params) for _ in range(4)]
    with store.lock:  # the data store comes back from a backup holding only the first two
        store.records[("run-http", "default")] = store.records[("run-http", "default")][:2]
    after = probe.check(ctx, params=params)
    events = [
        _event(i, "api", probe.name, "after" if r is after else "during", r)
        for i, r in enumerate([*before, after])
    ]

    measured = canary.achieved_rpo(events)

    assert all(r.ok for r in [*before, after])
    assert measured is not None and measured.newest_surviving is not None
    assert measured.newest_surviving.seq == 2
    assert measured.seconds == (_at(before[3], "wrote") - _at(before[1], "wrote")).total_seconds()


def test_http_canary_with_everything_lost_reports_all_lost(
    canary_endpoint: tuple[str, _Store],
) -> None:
    url, store = canary_endpoint
    probe = canary.HttpCanary()
    params = probe.parse_params({"url": url, "stream": "orders"})
    ctx = _ctx("run-lost")
    before = [probe.check(ctx, params=params) for _ in range(2)]
    with store.lock:
        store.records.clear()
    after = probe.check(ctx, params=params)
    events = [
        _event(i, "api", probe.name, "after" if r is after else "during", r)
        for i, r in enumerate([*before, after])
    ]

    measured = canary.achieved_rpo(events)

    assert measured is not None and measured.all_lost
    assert measured.seconds == (_at(before[1], "wrote") - _at(before[0], "wrote")).total_seconds()
