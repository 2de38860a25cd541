"""Delivering: retries with backoff until the receiver accepts, signatures, Slack's shape,
giving up visibly, and no second delivery id after a crash."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from drills.service import leases
from drills.service.notify import dispatching, notices, outbox, routing, sinks, sources
from orchestrator import journal, states
from scenarios import errors
from tests.notifications import conftest as world
from tests.notifications.conftest import Receiver


def _collect(store: journal.Journal, config: object, *, at: float = 0.0) -> sources.Collected:
    assert isinstance(config, routing.Config)
    return sources.collect(store, "test", config, now=world.later(at), from_start=True)


def _dispatch(store: journal.Journal, config: object, *, at: float) -> dispatching.DispatchFigures:
    assert isinstance(config, routing.Config)
    return dispatching.dispatch_once(store, config, now=world.later(at), rng=lambda: 1.0)


def test_a_receiver_failing_twice_gets_the_delivery_retried_and_delivered_once(
    store: journal.Journal, tmp_path: Path
) -> None:
    with Receiver([503, 500]) as receiver:
        config = world.webhook_config(tmp_path, receiver.url)
        world.start(store, world.new_run(store))
        collected = _collect(store, config)
        first = _dispatch(store, config, at=1)
        too_soon = _dispatch(store, config, at=1.5)
        second = _dispatch(store, config, at=3)
        third = _dispatch(store, config, at=10)
        after = _dispatch(store, config, at=100)

    assert len(collected.deliveries) == 1
    assert (first.retried, too_soon.claimed, second.retried, third.delivered) == (1, 0, 1, 1)
    assert after.claimed == 0
    [row] = outbox.deliveries(store)
    assert row.state is outbox.DeliveryState.DELIVERED
    assert row.attempts == 3 and row.last_error is None
    assert receiver.delivery_ids() == [row.delivery_id] * 3
    assert len({r.body for r in receiver.requests}) == 1  # every attempt sends the same bytes


def test_the_backoff_doubles_per_attempt_up_to_the_cap_with_jitter_below_it() -> None:
    policy = routing.DeliveryPolicy(backoff_s=2.0, max_backoff_s=10.0)

    highest = [dispatching.backoff_s(policy, n, rng=lambda: 1.0) for n in range(1, 6)]
    lowest = [dispatching.backoff_s(policy, n, rng=lambda: 0.0) for n in range(1, 6)]

    assert highest == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert lowest == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_signature_is_an_hmac_sha256_of_the_exact_body_with_the_shared_secret(
    store: journal.Journal, tmp_path: Path, receiver: Receiver
) -> None:
    config = world.webhook_config(tmp_path, receiver.url)
    run = world.start(store, world.new_run(store))
    _collect(store, config)
    _dispatch(store, config, at=1)

    [request] = receiver.requests
    expected = hmac.new(world.SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Stormdrill-Signature"] == f"sha256={expected}"
    assert request.headers["X-Stormdrill-Event"] == "started"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert body["deliveryId"] == request.headers["X-Stormdrill-Delivery"]
    assert body["kind"] == "started" and body["runId"] == run.id
    assert body["teams"] == ["group:default/payments", "group:default/web"]
    assert body["details"]["trigger"]["principal"] == "alice"
    tampered = request.body.replace(b"started", b"finished")
    forged = hmac.new(world.SECRET.encode(), tampered, hashlib.sha256).hexdigest()
    assert request.headers["X-Stormdrill-Signature"] != f"sha256={forged}"


def test_a_finished_run_is_told_with_its_verdict_and_report_link(
    store: journal.Journal, tmp_path: Path, receiver: Receiver
) -> None:
    config = world.webhook_config(tmp_path, receiver.url)
    run = world.new_run(store)
    world.finish(
        store, world.inject(store, world.start(store, run)), verdict=states.Verdict.DEVIATED
    )
    _collect(store, config)
    _dispatch(store, config, at=1)

    bodies = {json.loads(r.body)["kind"]: json.loads(r.body) for r in receiver.requests}
    assert set(bodies) == {"started", "finished"}
    finished = bodies["finished"]
    assert finished["severity"] == "warning"  # the hypothesis did not hold
    assert finished["details"]["verdict"] == "deviated"
    assert finished["details"]["reportUrl"] == (
        f"https://stormdrill.example.com/api/v1/runs/{run.id}/report"
    )


def test_the_slack_sink_gets_text_and_blocks_in_the_incoming_webhook_shape(
    store: journal.Journal, tmp_path: Path, receiver: Receiver
) -> None:
    config = world.load(
        tmp_path,
        """\
links: {baseUrl: "https://sd.example.com"}
sinks:
  - {name: chat, type: slack, urlEnv: SLACK_URL}
routes:
  - {match: {kinds: [rollback-failed]}, sinks: [chat]}
""",
        SLACK_URL=f"{receiver.url}/services/T000/B000/XXXX",
    )
    run = world.fail_rollback(store, world.inject(store, world.start(store, world.new_run(store))))
    _collect(store, config)
    _dispatch(store, config, at=1)

    [request] = receiver.requests
    assert request.path == "/services/T000/B000/XXXX"
    assert "X-Stormdrill-Signature" not in request.headers  # no secret configured
    body = json.loads(request.body)
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith(":rotating_light: ROLLBACK FAILED")
    assert [block["type"] for block in body["blocks"]] == [
        "section",
        "section",
        "section",
        "context",
    ]
    fields = {
        f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in body["blocks"][1]["fields"]
    }
    assert fields["*Run*"] == run.id and fields["*Severity*"] == "critical"
    assert body["blocks"][2]["text"]["text"] == (
        f"<https://sd.example.com/api/v1/runs/{run.id}/report|Post-mortem report>"
    )
    assert request.headers["X-Stormdrill-Delivery"] in body["blocks"][3]["elements"][0]["text"]


def test_a_delivery_refused_for_good_is_failed_at_once_with_its_error(
    store: journal.Journal, tmp_path: Path
) -> None:
    with Receiver(then=410) as receiver:
        config = world.webhook_config(tmp_path, receiver.url)
        world.start(store, world.new_run(store))
        _collect(store, config)
        figures = _dispatch(store, config, at=1)
        again = _dispatch(store, config, at=1000)

    assert (figures.failed, again.claimed, len(receiver.requests)) == (1, 0, 1)
    [row] = outbox.deliveries(store, state=outbox.DeliveryState.FAILED)
    assert row.attempts == 1
    assert row.last_error == "refused: HTTP 410: try later"


def test_a_delivery_given_up_after_its_attempts_stays_failed_and_visible(
    store: journal.Journal, tmp_path: Path
) -> None:
    with Receiver(then=503) as receiver:
        config = world.webhook_config(tmp_path, receiver.url, maxAttempts="3")
        world.start(store, world.new_run(store))
        _collect(store, config)
        figures = [_dispatch(store, config, at=at) for at in (1, 100, 200, 300, 400)]

    assert [f.retried for f in figures] == [1, 1, 0, 0, 0]
    assert [f.failed for f in figures] == [0, 0, 1, 0, 0]
    assert len(receiver.requests) == 3
    [row] = outbox.deliveries(store)
    assert row.state is outbox.DeliveryState.FAILED and row.attempts == 3
    assert row.last_error == "gave up after 3 attempt(s): HTTP 503: try later"


def test_a_crash_between_the_send_and_the_mark_resends_only_the_same_delivery_id(
    store: journal.Journal, tmp_path: Path, receiver: Receiver
) -> None:
    config = world.webhook_config(tmp_path, receiver.url)
    world.start(store, world.new_run(store))
    _collect(store, config)
    # The process that crashed: it claimed, sent (the receiver answered 200), never marked.
    _token, [claimed] = outbox.claim_due(
        store,
        now=world.later(1),
        limit=10,
        hold=timedelta(seconds=dispatching.hold_s(config.delivery)),
    )
    sink = config.sinks[claimed.sink]
    with httpx.Client() as client:
        sent = sinks.send(client, sink, sinks.render(sink, claimed), redactor=store.redactor)
    _collect(store, config, at=2)  # collecting again after the restart adds nothing
    while_held = _dispatch(store, config, at=2)
    after_hold = _dispatch(store, config, at=1 + dispatching.hold_s(config.delivery) + 1)
    later = _dispatch(store, config, at=10_000)

    assert sent.delivered
    assert while_held.claimed == 0  # nobody else sends it while the crashed claim holds it
    assert after_hold.delivered == 1 and later.claimed == 0
    assert len(outbox.deliveries(store)) == 1
    assert receiver.delivery_ids() == [claimed.delivery_id] * 2
    assert receiver.requests[0].body == receiver.requests[1].body


def test_a_pass_that_lost_the_lease_claims_and_sends_nothing(
    store: journal.Journal, tmp_path: Path, receiver: Receiver
) -> None:
    class LeaseLost(errors.StormdrillError):
        pass

    def fence(conn: object) -> None:
        del conn
        raise LeaseLost("a newer holder does this work now")

    config = world.webhook_config(tmp_path, receiver.url)
    world.start(store, world.new_run(store))
    _collect(store, config)
    with pytest.raises(LeaseLost):
        dispatching.dispatch_once(store, config, now=world.later(1), fence=fence)
    with pytest.raises(LeaseLost):
        sources.collect(store, "other", config, now=world.later(1), fence=fence, from_start=True)

    assert receiver.requests == []
    [row] = outbox.deliveries(store)
    assert row.state is outbox.DeliveryState.PENDING and row.attempts == 0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_webhook_urls_and_secrets_never_reach_the_logs_or_the_stored_error(
    store: journal.Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_path = "/hooks/T0KEN-abcdef123456"
    config = world.load(
        tmp_path,
        """\
sinks:
  - {name: hook, type: webhook, urlEnv: HOOK_URL, secretEnv: HOOK_SECRET}
routes:
  - {sinks: [hook]}
""",
        HOOK_URL=f"http://127.0.0.1:{_closed_port()}{token_path}",
    )
    world.start(store, world.new_run(store))
    _collect(store, config)
    with caplog.at_level(logging.DEBUG):
        figures = _dispatch(store, config, at=1)

    assert figures.retried == 1
    [row] = outbox.deliveries(store)
    assert row.last_error and "ConnectError" in row.last_error
    for text in (row.last_error, caplog.text, repr(config)):
        assert "T0KEN-abcdef123456" not in text
        assert world.SECRET not in text


@pytest.mark.postgres
def test_two_dispatchers_at_once_send_each_delivery_once(postgres_url: str, tmp_path: Path) -> None:
    with journal.open_store(postgres_url) as store, Receiver() as receiver:
        config = world.webhook_config(tmp_path, receiver.url, batch="5")
        for _ in range(12):
            world.start(store, world.new_run(store))
        _collect(store, config)
        barrier = threading.Barrier(2)
        results: list[dispatching.DispatchFigures] = []

        def work() -> None:
            barrier.wait()
            for _ in range(4):
                results.append(_dispatch(store, config, at=1))

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = outbox.deliveries(store)

    assert sum(f.delivered for f in results) == 12
    assert sorted(receiver.delivery_ids()) == sorted(d.delivery_id for d in stored)
    assert {d.state for d in stored} == {outbox.DeliveryState.DELIVERED}
    assert len(set(receiver.delivery_ids())) == len(receiver.delivery_ids()) == 12
    assert notices.Kind.STARTED.value in {
        r.headers["X-Stormdrill-Event"] for r in receiver.requests
    }


def test_the_housekeeping_job_sends_under_the_lease_and_a_former_holder_sends_nothing(
    store: journal.Journal, tmp_path: Path, receiver: Receiver
) -> None:
    config = world.webhook_config(tmp_path, receiver.url)
    ttl = timedelta(seconds=10)
    first = leases.SqlLease(store, holder=leases.HolderId("replica-a"), ttl=ttl)
    second = leases.SqlLease(store, holder=leases.HolderId("replica-b"), ttl=ttl)
    held_a = first.try_acquire(world.T0)
    assert held_a is not None
    notify = dispatching.job(store, config)
    notify(held_a)  # the first pass starts the cursor at the end of the timeline
    world.start(store, world.new_run(store))
    notify(held_a)
    held_b = second.try_acquire(world.later(20))  # a's tenure expired: b takes over
    assert held_b is not None and held_b.epoch > held_a.epoch
    world.start(store, world.new_run(store))

    with pytest.raises(leases.LeaseLost):
        notify(held_a)
    sent_before_b = len(receiver.requests)
    notify(held_b)

    assert sent_before_b == 1
    assert len(receiver.requests) == 2
    assert {d.state for d in outbox.deliveries(store)} == {outbox.DeliveryState.DELIVERED}
