"""Email sinks: a real SMTP exchange on loopback, retries on 4xx, failure on 5xx, the
config's checks (no literal passwords), AUTH PLAIN with the password from the environment."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from drills.service.notify import dispatching, notices, outbox, routing, sinks, sources
from orchestrator import journal, states
from tests.fixtures.smtp import SmtpServer
from tests.notifications import conftest as world

PASSWORD = "smtp-pa55word-xyz"
SENDER = "stormdrill@example.com"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


def _config(
    tmp_path: Path,
    smtp_address: str,
    *,
    to: tuple[str, ...] = ("ops@example.com",),
    kinds: str = "",
    extra: str = "",
    **env: str,
) -> routing.Config:
    match = f"\n    match: {{kinds: [{kinds}]}}" if kinds else ""
    return world.load(
        tmp_path,
        f"""\
links:
  baseUrl: https://stormdrill.example.com
delivery:
  backoff: 1s
  maxBackoff: 8s
sinks:
  - name: mail
    type: email
    smtp: {smtp_address}
    from: Stormdrill <{SENDER}>
    to: [{", ".join(to)}]{extra}
routes:
  - sinks: [mail]{match}
""",
        **env,
    )


def _collect(store: journal.Journal, config: routing.Config) -> sources.Collected:
    return sources.collect(store, "test", config, now=world.later(0), from_start=True)


def _dispatch(
    store: journal.Journal, config: routing.Config, *, at: float
) -> dispatching.DispatchFigures:
    return dispatching.dispatch_once(store, config, now=world.later(at), rng=lambda: 1.0)


def _problems(tmp_path: Path, text: str, **env: str) -> list[str]:
    with pytest.raises(routing.NotificationsInvalid) as caught:
        world.load(tmp_path, text, **env)
    return [str(p) for p in caught.value.problems]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- delivering ----------------------------------------------------------------------------


def test_a_finished_run_arrives_by_email_with_its_subject_headers_fields_and_report_link(
    store: journal.Journal, tmp_path: Path, smtp: SmtpServer
) -> None:
    config = _config(
        tmp_path, smtp.address, to=("ops@example.com", "Lead <lead@example.com>"), kinds="finished"
    )
    run = world.new_run(store)
    world.finish(
        store, world.inject(store, world.start(store, run)), verdict=states.Verdict.DEVIATED
    )
    _collect(store, config)
    figures = _dispatch(store, config, at=1)

    assert figures.delivered == 1
    [row] = outbox.deliveries(store)
    [received] = smtp.messages
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ("ops@example.com", "lead@example.com")
    assert received.user is None  # no AUTH without credentials
    message = received.parsed()
    assert message["Subject"] == f"[Stormdrill] finished: {row.payload['summary']}"
    assert message["From"] == f"Stormdrill <{SENDER}>"
    assert message["To"] == "ops@example.com, Lead <lead@example.com>"
    assert message["Message-ID"] == f"<{row.delivery_id}@example.com>"
    assert message["X-Stormdrill-Delivery"] == row.delivery_id
    assert message["X-Stormdrill-Event"] == "finished"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] is not None
    assert message.get_content_type() == "text/plain"
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith(f"{row.payload['summary']}\n")
    lines = [" ".join(line.split()) for line in body.splitlines()]
    assert "Event: finished" in lines and "Severity: warning" in lines
    assert f"Run: {run.id}" in lines and "Environment: staging" in lines
    assert "Verdict: deviated" in lines and "Scenario: az-outage" in lines
    assert "Teams: group:default/payments, group:default/web" in lines
    assert f"Report: https://stormdrill.example.com/api/v1/runs/{run.id}/report" in lines
    assert f"Stormdrill notification, delivery {row.delivery_id}" in lines


def test_an_email_deferred_with_451_is_retried_with_backoff_and_delivered_exactly_once(
    store: journal.Journal, tmp_path: Path
) -> None:
    with SmtpServer(defer=2) as smtp:
        config = _config(tmp_path, smtp.address)
        world.start(store, world.new_run(store))
        _collect(store, config)
        first = _dispatch(store, config, at=1)
        [deferred] = outbox.deliveries(store)
        too_soon = _dispatch(store, config, at=1.5)
        second = _dispatch(store, config, at=3)
        third = _dispatch(store, config, at=10)
        after = _dispatch(store, config, at=100)

    assert (first.retried, too_soon.claimed, second.retried, third.delivered) == (1, 0, 1, 1)
    assert after.claimed == 0
    assert deferred.last_error == f"{smtp.address}: SMTP 451 (DATA): 4.3.0 try again later"
    [row] = outbox.deliveries(store)
    assert row.state is outbox.DeliveryState.DELIVERED
    assert row.attempts == 3 and row.last_error is None
    assert smtp.data_attempts == 3
    [received] = smtp.messages  # exactly one accepted
    assert received.parsed()["X-Stormdrill-Delivery"] == row.delivery_id


def test_a_recipient_refused_with_550_fails_the_delivery_at_once_and_it_is_not_retried(
    store: journal.Journal, tmp_path: Path
) -> None:
    with SmtpServer(refuse=["nobody@example.com"]) as smtp:
        config = _config(tmp_path, smtp.address, to=("nobody@example.com",))
        world.start(store, world.new_run(store))
        _collect(store, config)
        figures = _dispatch(store, config, at=1)
        again = _dispatch(store, config, at=10_000)

    assert (figures.failed, again.claimed) == (1, 0)
    assert smtp.messages == [] and smtp.data_attempts == 0
    assert smtp.commands.count("MAIL") == 1  # one attempt, never again
    [row] = outbox.deliveries(store, state=outbox.DeliveryState.FAILED)
    assert row.attempts == 1
    assert row.last_error == (
        f"refused: {smtp.address}: SMTP 550 (RCPT): SMTP 550 (RCPT nobody@example.com):"
        " 5.1.1 <nobody@example.com>: mailbox unavailable"
    )


def test_a_refused_recipient_among_accepted_ones_gets_a_warning_while_the_others_get_the_mail(
    store: journal.Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SmtpServer(refuse=["gone@example.com"]) as smtp:
        config = _config(tmp_path, smtp.address, to=("gone@example.com", "ops@example.com"))
        world.start(store, world.new_run(store))
        _collect(store, config)
        with caplog.at_level(logging.WARNING):
            figures = _dispatch(store, config, at=1)

    assert figures.delivered == 1
    [received] = smtp.messages
    assert received.rcpt_tos == ("ops@example.com",)
    [row] = outbox.deliveries(store)
    assert row.state is outbox.DeliveryState.DELIVERED
    assert "not accepted for some recipients" in caplog.text
    assert "550 (RCPT gone@example.com)" in caplog.text


def test_a_closed_smtp_port_is_retried_later_with_the_reason_stored(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = _config(tmp_path, f"127.0.0.1:{_closed_port()}")
    world.start(store, world.new_run(store))
    _collect(store, config)
    figures = _dispatch(store, config, at=1)

    assert figures.retried == 1
    [row] = outbox.deliveries(store)
    assert row.state is outbox.DeliveryState.PENDING
    assert row.last_error is not None
    assert "cannot reach the server: ConnectionRefusedError" in row.last_error


def test_a_required_starttls_the_server_does_not_offer_fails_the_delivery(
    store: journal.Journal, tmp_path: Path, smtp: SmtpServer
) -> None:
    config = _config(tmp_path, smtp.address, extra="\n    starttls: true")
    world.start(store, world.new_run(store))
    _collect(store, config)
    figures = _dispatch(store, config, at=1)

    assert figures.failed == 1 and smtp.messages == []
    assert "MAIL" not in smtp.commands  # nothing was sent in clear
    [row] = outbox.deliveries(store)
    assert row.last_error is not None
    assert "the server does not offer STARTTLS, which this sink requires" in row.last_error


def test_a_crash_after_the_send_resends_the_same_message_with_the_same_message_id(
    store: journal.Journal, tmp_path: Path, smtp: SmtpServer
) -> None:
    config = _config(tmp_path, smtp.address)
    world.start(store, world.new_run(store))
    _collect(store, config)
    # The process that crashed: it claimed and sent (250), then never marked the row.
    _token, [claimed] = outbox.claim_due(
        store,
        now=world.later(1),
        limit=10,
        hold=timedelta(seconds=dispatching.hold_s(config.delivery)),
    )
    sink = config.sinks[claimed.sink]
    with httpx.Client() as client:
        sent = sinks.deliver(
            client, sink, claimed, redactor=store.redactor, timeout_s=5, deadline_s=20
        )
    after_hold = _dispatch(store, config, at=1 + dispatching.hold_s(config.delivery) + 1)

    assert sent.delivered and after_hold.delivered == 1
    first, second = smtp.messages
    assert first.data == second.data  # byte for byte: the receiver can tell it is a resend
    assert first.parsed()["Message-ID"] == f"<{claimed.delivery_id}@example.com>"


# ---- logging in --------------------------------------------------------------------------


def test_the_password_from_the_environment_logs_in_with_auth_plain_and_is_never_shown(
    store: journal.Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    login = "\n    username: stormdrill\n    passwordEnv: SMTP_PASSWORD"
    with SmtpServer(credentials=("stormdrill", PASSWORD)) as smtp:
        config = _config(tmp_path, smtp.address, extra=login, SMTP_PASSWORD=PASSWORD)
        world.start(store, world.new_run(store))
        _collect(store, config)
        with caplog.at_level(logging.DEBUG):
            figures = _dispatch(store, config, at=1)

    assert figures.delivered == 1
    assert smtp.logins == [("stormdrill", True)]
    [received] = smtp.messages
    assert received.user == "stormdrill"
    assert PASSWORD not in received.data.decode()
    for text in (caplog.text, repr(config)):
        assert PASSWORD not in text


def test_a_wrong_password_fails_the_delivery_without_showing_the_password(
    store: journal.Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    login = "\n    username: stormdrill\n    passwordEnv: SMTP_PASSWORD"
    with SmtpServer(credentials=("stormdrill", "the-right-one")) as smtp:
        config = _config(tmp_path, smtp.address, extra=login, SMTP_PASSWORD=PASSWORD)
        world.start(store, world.new_run(store))
        _collect(store, config)
        with caplog.at_level(logging.DEBUG):
            figures = _dispatch(store, config, at=1)

    assert figures.failed == 1 and smtp.messages == []
    assert smtp.logins == [("stormdrill", False)]
    [row] = outbox.deliveries(store)
    assert row.last_error == (
        f"refused: {smtp.address}: SMTP 535 (AUTH): 5.7.8 credentials invalid"
    )
    for text in (row.last_error, caplog.text, repr(config)):
        assert PASSWORD not in text


# ---- the notifications file ------------------------------------------------------------


def test_a_literal_password_is_refused_at_its_file_line_and_field_without_echoing_it(
    tmp_path: Path,
) -> None:
    problems = _problems(
        tmp_path,
        f"""\
sinks:
  - name: mail
    type: email
    smtp: smtp.example.com:587
    from: {SENDER}
    to: [ops@example.com]
    username: stormdrill
    password: {PASSWORD}
""",
    )

    path = tmp_path / "notifications.yaml"
    assert problems[0] == (
        f"{path}:8:15: sinks[0].password: a password is never written in the notifications"
        " file (export it in an environment variable and name that with passwordEnv:)"
    )
    assert all(PASSWORD not in problem for problem in problems)


def test_a_password_in_the_smtp_address_or_on_a_webhook_is_refused_too(tmp_path: Path) -> None:
    in_address = _problems(
        tmp_path,
        f"""\
sinks:
  - {{name: mail, type: email, smtp: "smtp://u:{PASSWORD}@mx.example.com", from: {SENDER},
     to: [ops@example.com]}}
""",
    )
    on_webhook = _problems(
        tmp_path,
        f"""\
sinks:
  - name: hook
    type: webhook
    url: https://hooks.example.com/x
    password: {PASSWORD}
""",
    )

    assert len(in_address) == 1
    assert ":2:" in in_address[0] and "sinks[0].smtp: credentials do not belong" in in_address[0]
    assert on_webhook == [
        f"{tmp_path / 'notifications.yaml'}:5:15: sinks[0].password: a password is never"
        " written in the notifications file (export it in an environment variable and name"
        " that with passwordEnv:)"
    ]
    assert all(PASSWORD not in problem for problem in in_address + on_webhook)


def test_the_smtp_address_forms_and_the_starttls_defaults_are_read(tmp_path: Path) -> None:
    def mailer(smtp_value: str, extra: str = "") -> tuple[str, routing.Mailer]:
        config = _config(tmp_path, smtp_value, extra=extra)
        sink = config.sinks[notices.SinkName("mail")]
        assert sink.email is not None
        return sink.url.get_secret_value(), sink.email

    remote_url, remote = mailer("mx.example.com:2525")
    secure_url, secure = mailer("smtps://mx.example.com")
    local_url, local = mailer("smtp://127.0.0.1:2525")
    _, forced = mailer("localhost:25", extra="\n    starttls: true")
    _, plain = mailer("mx.example.com:25", extra="\n    starttls: false")

    assert (remote_url, remote.host, remote.port, remote.tls) == (
        "smtp://mx.example.com:2525",
        "mx.example.com",
        2525,
        routing.Tls.STARTTLS,
    )
    assert (secure_url, secure.port, secure.tls) == (
        "smtps://mx.example.com:465",
        465,
        routing.Tls.IMPLICIT,
    )
    assert (local_url, local.tls) == ("smtp://127.0.0.1:2525", routing.Tls.NONE)
    assert forced.tls is routing.Tls.STARTTLS and plain.tls is routing.Tls.NONE
    assert remote.sender == f"Stormdrill <{SENDER}>" and remote.recipients == ("ops@example.com",)


def test_email_sink_mistakes_are_each_placed_at_their_field(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
sinks:
  - name: mail
    type: email
    smtp: smtps://mx.example.com
    starttls: true
    from: not-an-address
    to: [ops@example.com, "a@b.example, c@d.example"]
    url: https://hooks.example.com/x
    username: stormdrill
  - name: remote
    type: email
    smtp: mx.example.com:25
    starttls: false
    from: stormdrill@example.com
    to: [ops@example.com]
    username: stormdrill
    passwordEnv: SMTP_PASSWORD
  - {name: hook, type: webhook, url: "https://hooks.example.com/x", to: [ops@example.com]}
""",
        SMTP_PASSWORD=PASSWORD,
    )

    fields = [re.search(r":\d+:\d+: ([^:]+): ", problem) for problem in problems]
    assert [
        found.group(1) if found else problem
        for found, problem in zip(fields, problems, strict=True)
    ] == [
        "sinks[0].url",
        "sinks[0].from",
        "sinks[0].to[1]",
        "sinks[0].username",
        "sinks[0].starttls",
        "sinks[1].starttls",
        "sinks[2].to",
    ]
    text = "\n".join(problems)
    assert "an email sink has no url" in text
    assert "'not-an-address' is not one email address" in text
    assert "username and passwordEnv go together: passwordEnv is missing" in text
    assert "smtps:// is TLS from the first byte: starttls does not apply" in text
    assert "the password would cross the network to mx.example.com unencrypted" in text
    assert "to is a field of email sinks, not of webhook sinks" in text


def test_a_password_variable_that_is_not_set_is_a_mistake_of_the_file(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        f"""\
sinks:
  - name: mail
    type: email
    smtp: 127.0.0.1:2525
    from: {SENDER}
    to: [ops@example.com]
    username: stormdrill
    passwordEnv: SMTP_PASSWORD
""",
    )

    assert problems == [
        f"{tmp_path / 'notifications.yaml'}:8:18: sinks[0].passwordEnv: the variable"
        " SMTP_PASSWORD is not set (export it with the SMTP password)"
    ]


def test_a_server_that_never_greets_times_out_and_the_delivery_is_retried(
    store: journal.Journal, tmp_path: Path
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = int(silent.getsockname()[1])
        config = world.load(
            tmp_path,
            f"""\
delivery: {{timeout: 200ms}}
sinks:
  - {{name: mail, type: email, smtp: "127.0.0.1:{port}", from: {SENDER}, to: [ops@example.com]}}
routes:
  - {{sinks: [mail]}}
""",
        )
        world.start(store, world.new_run(store))
        _collect(store, config)
        figures = _dispatch(store, config, at=1)

    assert figures.retried == 1
    [row] = outbox.deliveries(store)
    assert row.state is outbox.DeliveryState.PENDING
    assert row.last_error is not None and "timed out" in row.last_error
