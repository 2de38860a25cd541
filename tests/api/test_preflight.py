"""Preflight hooks: the plan POSTed signed to loopback hooks; any non-2xx answer vetoes."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pydantic
import pytest

from drills import store as store_mod
from drills.api import config as api_config
from drills.service import approvals
from orchestrator import events, journal, states
from tests.api import protected_world

SECRET = "hook-shared-secret"
_S = states.RunState


@dataclasses.dataclass
class Hook:
    """A loopback preflight hook: answers `status` with `body`, keeps what it received."""

    status: int = 204
    body: str = ""
    hold: threading.Event | None = None
    """When set, each request waits for this event before answering (a slow hook)."""
    received: list[tuple[dict[str, str], bytes]] = dataclasses.field(default_factory=list)
    url: str = ""


def _handler(hook: Hook) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            hook.received.append((dict(self.headers.items()), self.rfile.read(length)))
            if hook.hold is not None:
                hook.hold.wait(timeout=30)
            payload = hook.body.encode()
            try:
                self.send_response(hook.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (the timeout test)

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    return Handler


Serve = Callable[[Hook], Hook]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a hook on 127.0.0.1 (port 0); every one is stopped after the test."""
    started: list[tuple[Hook, http.server.ThreadingHTTPServer]] = []

    def start(hook: Hook) -> Hook:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(hook))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        hook.url = f"http://127.0.0.1:{server.server_address[1]}/preflight"
        started.append((hook, server))
        return hook

    yield start
    for hook, server in started:
        if hook.hold is not None:
            hook.hold.set()
        server.shutdown()
        server.server_close()


def _settings(
    *urls: str, secret: str | None = SECRET, timeout_s: float = 5.0
) -> api_config.ApiSettings:
    return api_config.ApiSettings(
        preflight_hooks=urls,
        preflight_secret=None if secret is None else pydantic.SecretStr(secret),
        preflight_timeout_s=timeout_s,
    )


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/preflight"  # nothing listens there any more


BODY = b'{"plan":{"scenario":"absence"}}'


def test_a_hook_gets_the_body_signed_with_the_shared_secret_and_a_2xx_lets_it_start(
    serve: Serve,
) -> None:
    hook = serve(Hook(status=200, body="fine"))

    verdict = approvals.preflight(_settings(hook.url), BODY)

    assert verdict.ok
    [(headers, body)] = hook.received
    assert body == BODY
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert headers["X-Stormdrill-Signature"] == f"sha256={expected}"
    assert headers["Content-Type"] == "application/json"


def test_a_non_2xx_answer_vetoes_with_the_hooks_answer_trimmed(serve: Serve) -> None:
    hook = serve(Hook(status=403, body="\n  change freeze:\n   INC-42 is open  \n"))

    verdict = approvals.preflight(_settings(hook.url), BODY)

    assert not verdict.ok and verdict.status == 403 and verdict.hook == hook.url
    assert (
        verdict.reason
        == f"preflight hook {hook.url} vetoed (HTTP 403): change freeze: INC-42 is open"
    )


def test_a_long_answer_is_cut_and_a_redirect_is_a_veto(serve: Serve) -> None:
    long = serve(Hook(status=500, body="x" * 5000))
    moved = serve(Hook(status=302, body=""))

    cut = approvals.preflight(_settings(long.url), BODY)
    redirect = approvals.preflight(_settings(moved.url), BODY)

    assert not cut.ok and len(cut.reason) < 700 and cut.reason.endswith("…")
    assert not redirect.ok and redirect.reason.endswith("vetoed (HTTP 302)")


def test_hooks_are_asked_in_order_and_the_first_veto_stops_the_asking(serve: Serve) -> None:
    first = serve(Hook(status=204))
    vetoing = serve(Hook(status=409, body="on-call says no"))
    never = serve(Hook(status=204))

    verdict = approvals.preflight(_settings(first.url, vetoing.url, never.url), BODY)

    assert not verdict.ok and verdict.hook == vetoing.url and "on-call says no" in verdict.reason
    assert len(first.received) == 1 and len(vetoing.received) == 1 and never.received == []


def test_a_hook_that_does_not_answer_in_time_vetoes(serve: Serve) -> None:
    slow = serve(Hook(status=204, hold=threading.Event()))

    verdict = approvals.preflight(_settings(slow.url, timeout_s=0.3), BODY)

    assert not verdict.ok and verdict.status is None
    assert "did not answer in 0.3s" in verdict.reason


def test_a_hook_that_cannot_be_reached_vetoes() -> None:
    url = _closed_port_url()

    verdict = approvals.preflight(_settings(url), BODY)

    assert not verdict.ok and verdict.status is None
    assert f"preflight hook {url} could not be reached" in verdict.reason


def test_without_hooks_nothing_is_asked_and_without_a_secret_nothing_is_signed(
    serve: Serve,
) -> None:
    hook = serve(Hook(status=200))

    assert approvals.preflight(_settings(), BODY).ok
    assert approvals.preflight(_settings(hook.url, secret=None), BODY).ok
    [(headers, _)] = hook.received
    assert "X-Stormdrill-Signature" not in headers


def test_credentials_in_a_hook_url_are_masked_in_the_reason() -> None:
    url = _closed_port_url().replace("http://", "http://ops:hunter2pass@")

    verdict = approvals.preflight(_settings(url), BODY)

    assert not verdict.ok and "hunter2pass" not in verdict.reason


@pytest.fixture
def world(tmp_path: Path) -> protected_world.World:
    return protected_world.write(tmp_path, required=1)


@pytest.fixture
def store(world: protected_world.World) -> Iterator[journal.Journal]:
    with store_mod.open_store(world.config) as opened:
        yield opened


def test_a_veto_before_the_start_ends_the_run_aborted_with_the_reason_on_record(
    serve: Serve, world: protected_world.World, store: journal.Journal
) -> None:
    hook = serve(Hook(status=423, body="payments freeze until Monday"))
    run, plan = protected_world.submit(world, store, by="alice")
    approvals.protect(store, run, plan=plan, requester="alice")
    approvals.approve(store, run.id, by="bob")

    gate = approvals.gate(store, run, plan=plan, config=_settings(hook.url))

    assert gate.outcome is approvals.GateOutcome.VETOED
    ended = store.get_run(run.id)
    assert ended.state is _S.ABORTED and ended.record.refused
    assert ended.abort_reason is not None and "payments freeze until Monday" in ended.abort_reason
    lines = store.events(run.id, kind=events.EventKind.GUARDRAIL)
    assert lines[-1].data["rule"] == "preflight-hook" and lines[-1].data["status"] == 423
    [(headers, body)] = hook.received
    sent = json.loads(body)
    assert sent["run"]["id"] == run.id and sent["planHash"] == approvals.plan_hash(plan)
    assert sent["plan"]["scenario"] == "absence"
    assert protected_world.SECRET not in body.decode()
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Stormdrill-Signature"] == f"sha256={mac}"


def test_an_unapproved_run_is_not_sent_to_the_hooks(
    serve: Serve, world: protected_world.World, store: journal.Journal
) -> None:
    hook = serve(Hook(status=204))
    run, plan = protected_world.submit(world, store, by="alice")
    approvals.protect(store, run, plan=plan, requester="alice")

    gate = approvals.gate(store, run, plan=plan, config=_settings(hook.url))

    assert gate.outcome is approvals.GateOutcome.WAIT and hook.received == []
    assert store.get_run(run.id).state is _S.PENDING


def test_an_unprotected_run_is_checked_by_the_hooks_and_goes_when_they_agree(
    serve: Serve, tmp_path: Path
) -> None:
    hook = serve(Hook(status=202))
    world = protected_world.write(tmp_path, protected=False, required=0, name="test")
    with store_mod.open_store(world.config) as store:
        run, plan = protected_world.submit(world, store, by="alice")
        gate = approvals.gate(store, run, plan=plan, config=_settings(hook.url))

    assert gate.outcome is approvals.GateOutcome.GO and gate.approvers == ()
    assert len(hook.received) == 1
