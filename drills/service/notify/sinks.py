"""Sinks: a delivery rendered for its sink (generic webhook, Slack, email) and sent.

`deliver` is what the dispatcher calls: HTTP for webhook and Slack (`render`, `send`), SMTP
for email (`render_email`, `send_email`).

Every request is a POST with a JSON body and the headers `X-Stormdrill-Delivery` (the
delivery id: receivers dedupe on it), `X-Stormdrill-Event` (the kind) and, when the sink has
a secret, `X-Stormdrill-Signature: sha256=<hex HMAC-SHA256 of the exact body>`. The body is
rendered deterministically (sorted keys, no spaces), so every attempt of one delivery sends
the same bytes and the same signature.
- webhook: the notice's payload with `deliveryId` added;
- slack: Slack's incoming-webhook shape, `{"text": <summary>, "blocks": [...]}` (a section
  with the summary, the facts as fields, a link to the report when there is one, a link to
  a game day's channel when there is one, and a context line with the delivery id).
An answer is `Outcome`: 2xx delivered; 408, 425, 429 and 5xx, a timeout or a connection
error retryable (with the server's `Retry-After` seconds when it gave one); any other status
refused for good. Errors are written with the sink's URL and secret masked (they are stored
and logged): never the URL itself.

Email (standard library `smtplib`): one plain-text message per delivery, subject
`[Stormdrill] <kind>: <summary>`, the same `X-Stormdrill-Delivery` / `X-Stormdrill-Event`
headers, `Auto-Submitted: auto-generated`, a `Message-ID` derived from the delivery id and
a `Date` from the delivery's creation, so a resend after a crash is byte-for-byte the same
message and recognisably a duplicate. Each SMTP command is bounded by the policy's timeout
and the whole exchange by the dispatcher's worst-case send time. An SMTP 4xx (at any
command), a timeout, a refused or dropped connection is retryable; a 5xx, a login refused,
or a required STARTTLS / AUTH the server does not offer is refused for good. A recipient
refused with 5xx while others are accepted does not stop the message: it goes to the
others and `Outcome.error` names the refused ones (delivered, with a warning). A recipient
deferred with 4xx defers the whole message (nobody gets it twice). The password is masked
(as is its AUTH PLAIN encoding) in every error.
"""

from __future__ import annotations

import base64
import dataclasses
import email.message
import email.policy
import email.utils
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Mapping
from datetime import UTC

import httpx

from drills.service.notify import outbox, routing
from orchestrator import mutations
from scenarios import secrets

SIGNATURE_HEADER = "X-Stormdrill-Signature"
DELIVERY_HEADER = "X-Stormdrill-Delivery"
EVENT_HEADER = "X-Stormdrill-Event"
USER_AGENT = "stormdrill-notifications/1"
ERROR_LIMIT = 300
_RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclasses.dataclass(frozen=True)
class Request:
    body: bytes
    headers: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Outcome:
    delivered: bool
    retryable: bool = False
    error: str = ""
    status: int | None = None
    retry_after_s: float | None = None


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of body>` (what receivers recompute to verify)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def deliver(
    client: httpx.Client,
    sink: routing.Sink,
    delivery: outbox.Delivery,
    *,
    redactor: secrets.Redactor,
    timeout_s: float,
    deadline_s: float,
) -> Outcome:
    """Send `delivery` to `sink` by the sink's means (HTTP or SMTP); never raises for the
    network's doing. `timeout_s` bounds each SMTP command, `deadline_s` the exchange (HTTP
    uses `client`'s own timeouts)."""
    if sink.type is routing.SinkType.EMAIL:
        return send_email(
            sink,
            render_email(sink, delivery),
            redactor=redactor,
            timeout_s=timeout_s,
            deadline_s=deadline_s,
        )
    return send(client, sink, render(sink, delivery), redactor=redactor)


def render(sink: routing.Sink, delivery: outbox.Delivery) -> Request:
    """The exact request `sink` gets for `delivery` (the same bytes on every attempt)."""
    if sink.type is routing.SinkType.EMAIL:
        raise TypeError(f"sink {sink.name} is an email sink: use render_email")
    if sink.type is routing.SinkType.SLACK:
        body = _canonical(slack_body(delivery))
    else:
        body = _canonical({**delivery.payload, "deliveryId": delivery.delivery_id})
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: delivery.delivery_id,
        EVENT_HEADER: delivery.kind.value,
    }
    if sink.secret is not None:
        headers[SIGNATURE_HEADER] = sign(sink.secret.get_secret_value(), body)
    return Request(body=body, headers=headers)


def _escape(text: str) -> str:
    """Slack mrkdwn control characters escaped (`&`, `<`, `>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def slack_body(delivery: outbox.Delivery) -> dict[str, mutations.JsonValue]:
    """Slack's incoming-webhook payload: `text` (the fallback) and `blocks`."""
    payload = delivery.payload
    details = payload.get("details")
    facts = details if isinstance(details, Mapping) else {}
    summary = str(payload.get("summary", delivery.kind.value))
    icon = _ICONS.get(delivery.severity.value, "")
    fields: list[mutations.JsonValue] = []
    for label, value in (
        ("Event", delivery.kind.value),
        ("Severity", delivery.severity.value),
        ("Run", payload.get("runId")),
        ("Environment", payload.get("environment")),
        ("Scenario", facts.get("scenario")),
        ("Verdict", facts.get("verdict")),
        ("Schedule", facts.get("schedule")),
        ("Game day", facts.get("gameday")),
        ("Facilitator", facts.get("facilitator")),
        ("Reason", facts.get("reason")),
    ):
        if isinstance(value, str) and value:
            fields.append({"type": "mrkdwn", "text": f"*{label}*\n{_escape(value)}"})
    blocks: list[mutations.JsonValue] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{_escape(summary)}*"}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    report = facts.get("reportUrl")
    if isinstance(report, str) and report:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{report}|Post-mortem report>"},
            }
        )
    channel = facts.get("channel")
    if isinstance(channel, str) and channel.startswith(("https://", "http://")):
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{channel}|Game day channel>"},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"stormdrill delivery {delivery.delivery_id}"}],
        }
    )
    return {"text": f"{icon} {summary}".strip(), "blocks": blocks}


def send(
    client: httpx.Client, sink: routing.Sink, request: Request, *, redactor: secrets.Redactor
) -> Outcome:
    """POST `request` to `sink`; what came of it (never raises for the network's doing)."""
    try:
        answer = client.post(
            sink.url.get_secret_value(), content=request.body, headers=dict(request.headers)
        )
    except httpx.TimeoutException as exc:
        return Outcome(False, retryable=True, error=_masked(f"timed out: {exc}", redactor))
    except httpx.HTTPError as exc:
        return Outcome(
            False, retryable=True, error=_masked(f"{type(exc).__name__}: {exc}", redactor)
        )
    if 200 <= answer.status_code < 300:
        return Outcome(True, status=answer.status_code)
    said = " ".join(answer.text.split())[:ERROR_LIMIT]
    error = _masked(f"HTTP {answer.status_code}" + (f": {said}" if said else ""), redactor)
    retryable = answer.status_code in _RETRYABLE_STATUS or answer.status_code >= 500
    return Outcome(
        False,
        retryable=retryable,
        error=error,
        status=answer.status_code,
        retry_after_s=_retry_after(answer.headers.get("Retry-After")),
    )


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        seconds = float(raw.strip())
    except ValueError:
        return None  # an HTTP date: ignored (our own backoff applies)
    return seconds if seconds >= 0 else None


def _masked(text: str, redactor: secrets.Redactor) -> str:
    return redactor.text(secrets.redact(text))[: ERROR_LIMIT + 100]


# ---- email ---------------------------------------------------------------------------------

SUBJECT_PREFIX = "[Stormdrill]"
SUBJECT_LIMIT = 200
_POLICY = email.policy.SMTP


def message_id(delivery_id: str, sender: str) -> str:
    """`<delivery id@sender's domain>`: the same for every attempt of one delivery."""
    _, address = email.utils.parseaddr(sender)
    domain = address.rpartition("@")[2] or "stormdrill.invalid"
    return f"<{delivery_id}@{domain}>"


def _mailer(sink: routing.Sink) -> routing.Mailer:
    if sink.email is None:
        raise TypeError(f"sink {sink.name} is not an email sink")
    return sink.email


def _line(value: object) -> str:
    """A value on one line: strings as they are (whitespace collapsed), the rest as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return " ".join(text.split())


def subject(delivery: outbox.Delivery) -> str:
    """`[Stormdrill] <kind>: <summary>` on one line, at most `SUBJECT_LIMIT` characters."""
    summary = _line(delivery.payload.get("summary") or delivery.kind.value)
    text = f"{SUBJECT_PREFIX} {delivery.kind.value}: {summary}"
    return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 1] + "\u2026"


_FACTS = (
    ("Scenario", "scenario"),
    ("Verdict", "verdict"),
    ("State", "state"),
    ("Schedule", "schedule"),
    ("Game day", "gameday"),
    ("Facilitator", "facilitator"),
    ("Reason", "reason"),
)
_SHOWN = frozenset({key for _, key in _FACTS} | {"reportUrl", "channel"})


def email_text(delivery: outbox.Delivery) -> str:
    """The plain-text body: the summary, the notice's fields, the report link, the details."""
    payload = delivery.payload
    details = payload.get("details")
    facts = details if isinstance(details, Mapping) else {}
    rows: list[tuple[str, str]] = [
        ("Event", delivery.kind.value),
        ("Severity", delivery.severity.value),
    ]
    for label, key in (("Run", "runId"), ("Environment", "environment"), ("When", "occurredAt")):
        value = payload.get(key)
        if isinstance(value, str) and value:
            rows.append((label, value))
    for label, key in (("Teams", "teams"), ("Services", "services")):
        value = payload.get(key)
        if isinstance(value, list) and value:
            rows.append((label, ", ".join(str(item) for item in value)))
    for label, key in _FACTS:
        value = facts.get(key)
        if value not in (None, "", [], {}):
            rows.append((label, _line(value)))
    report = facts.get("reportUrl")
    if isinstance(report, str) and report:
        rows.append(("Report", report))
    channel = facts.get("channel")
    if isinstance(channel, str) and channel:
        rows.append(("Channel", channel))
    width = max(len(label) for label, _ in rows) + 1
    lines = [_line(payload.get("summary") or delivery.kind.value), ""]
    lines += [f"{label + ':':<{width}} {value}" for label, value in rows]
    rest = [
        (key, value)
        for key, value in sorted(facts.items())
        if key not in _SHOWN and value not in (None, "", [], {})
    ]
    if rest:
        lines += ["", "Details:"]
        lines += [f"  {key}: {_line(value)}" for key, value in rest]
    lines += ["", "-- ", f"Stormdrill notification, delivery {delivery.delivery_id}"]
    return "\n".join(lines) + "\n"


def render_email(sink: routing.Sink, delivery: outbox.Delivery) -> email.message.EmailMessage:
    """The message `sink` sends for `delivery` (the same bytes on every attempt)."""
    mailer = _mailer(sink)
    created = delivery.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    message = email.message.EmailMessage(policy=_POLICY)
    message["Subject"] = subject(delivery)
    message["From"] = mailer.sender
    message["To"] = ", ".join(mailer.recipients)
    message["Date"] = email.utils.format_datetime(created.astimezone(UTC))
    message["Message-ID"] = message_id(delivery.delivery_id, mailer.sender)
    message["Auto-Submitted"] = "auto-generated"
    message[DELIVERY_HEADER] = delivery.delivery_id
    message[EVENT_HEADER] = delivery.kind.value
    message.set_content(email_text(delivery), charset="utf-8", cte="quoted-printable")
    return message


class _Refused(Exception):
    """An SMTP reply that ends the exchange (raised and caught inside this module only)."""

    def __init__(self, code: int, stage: str, reply: bytes | str) -> None:
        said = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        self.code = code
        super().__init__(f"SMTP {code} ({stage}): {' '.join(said.split())[:ERROR_LIMIT]}")


class _Unsupported(Exception):
    """The server lacks what the sink requires (STARTTLS, AUTH): refused for good."""


@dataclasses.dataclass
class _Session:
    """One SMTP exchange with a deadline; every command gets at most the time left."""

    mailer: routing.Mailer
    timeout_s: float
    deadline: float
    smtp: smtplib.SMTP | None = None
    stage: str = "connect"

    def budget(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the exchange took longer than its {self.timeout_s:g}s bounds")
        bound = min(self.timeout_s, left)
        if self.smtp is not None:
            self.smtp.timeout = bound
            if self.smtp.sock is not None:
                self.smtp.sock.settimeout(bound)
        return bound

    def open(self) -> smtplib.SMTP:
        mailer = self.mailer
        bound = self.budget()
        if mailer.tls is routing.Tls.IMPLICIT:
            self.smtp = smtplib.SMTP_SSL(timeout=bound, context=ssl.create_default_context())
        else:
            self.smtp = smtplib.SMTP(timeout=bound)
        smtp = self.smtp
        code, reply = smtp.connect(mailer.host, mailer.port)
        if code != 220:
            raise _Refused(code, "greeting", reply)
        self.hello(smtp)
        if mailer.tls is routing.Tls.STARTTLS:
            if not smtp.has_extn("starttls"):
                raise _Unsupported(
                    "the server does not offer STARTTLS, which this sink requires"
                    " (starttls: false only for a trusted relay)"
                )
            self.stage = "STARTTLS"
            self.budget()
            smtp.starttls(context=ssl.create_default_context())
            self.hello(smtp)
        return smtp

    def hello(self, smtp: smtplib.SMTP) -> None:
        self.budget()
        code, reply = smtp.ehlo()
        if not 200 <= code < 300:
            self.budget()
            code, reply = smtp.helo()
            if not 200 <= code < 300:
                raise _Refused(code, "HELO", reply)

    def login(self, smtp: smtplib.SMTP, password: str) -> None:
        username = self.mailer.username
        assert username is not None
        if not smtp.has_extn("auth"):
            raise _Unsupported("the server does not offer AUTH, and this sink logs in")
        self.stage = "AUTH"
        self.budget()
        smtp.login(username, password)

    def send(self, message: email.message.EmailMessage, *, password: str | None) -> Outcome:
        smtp = self.open()
        if password is not None:
            self.login(smtp, password)
        _, sender = email.utils.parseaddr(self.mailer.sender)
        self.budget()
        code, reply = smtp.mail(sender)
        if not 200 <= code < 300:
            raise _Refused(code, "MAIL FROM", reply)
        accepted: list[str] = []
        refused: list[str] = []
        for recipient in self.mailer.recipients:
            _, address = email.utils.parseaddr(recipient)
            self.budget()
            code, reply = smtp.rcpt(address)
            if 200 <= code < 300:
                accepted.append(address)
            elif code < 500:
                raise _Refused(code, f"RCPT {address}", reply)  # the whole message waits
            else:
                refused.append(str(_Refused(code, f"RCPT {address}", reply)))
        if not accepted:
            raise _Refused(code, "RCPT", "; ".join(refused))
        self.budget()
        code, reply = smtp.data(message.as_bytes(policy=_POLICY))
        if code != 250:
            raise _Refused(code, "DATA", reply)
        self.quit()
        note = f"not accepted for some recipients: {'; '.join(refused)}" if refused else ""
        return Outcome(True, status=code, error=note)

    def quit(self) -> None:
        if self.smtp is None:
            return
        try:
            self.budget()
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass  # the message was accepted; a rude goodbye changes nothing

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.close()


def send_email(
    sink: routing.Sink,
    message: email.message.EmailMessage,
    *,
    redactor: secrets.Redactor,
    timeout_s: float,
    deadline_s: float,
) -> Outcome:
    """Send `message` through `sink`'s SMTP server; what came of it (never raises for the
    network's or the server's doing). The password is masked in every error."""
    mailer = _mailer(sink)
    password = None if sink.secret is None else sink.secret.get_secret_value()
    if password is not None and mailer.username is not None:
        plain = base64.b64encode(f"\0{mailer.username}\0{password}".encode()).decode()
        redactor = redactor.with_secrets((password, plain))
    where = f"{mailer.host}:{mailer.port}"
    session = _Session(mailer, timeout_s=timeout_s, deadline=time.monotonic() + deadline_s)
    try:
        outcome = session.send(message, password=password)
    except _Refused as exc:
        return Outcome(
            False,
            retryable=exc.code < 500,
            error=_masked(f"{where}: {exc}", redactor),
            status=exc.code,
        )
    except smtplib.SMTPResponseException as exc:  # STARTTLS or AUTH answered with an error
        refused = _Refused(exc.smtp_code, session.stage, exc.smtp_error)
        return Outcome(
            False,
            retryable=exc.smtp_code < 500,
            error=_masked(f"{where}: {refused}", redactor),
            status=exc.smtp_code,
        )
    except (_Unsupported, smtplib.SMTPNotSupportedError) as exc:
        return Outcome(False, error=_masked(f"{where}: {exc}", redactor))
    except TimeoutError as exc:
        return Outcome(False, retryable=True, error=_masked(f"{where}: timed out: {exc}", redactor))
    except smtplib.SMTPServerDisconnected as exc:
        return Outcome(
            False, retryable=True, error=_masked(f"{where}: disconnected: {exc}", redactor)
        )
    except smtplib.SMTPException as exc:  # e.g. no AUTH mechanism smtplib knows
        return Outcome(False, error=_masked(f"{where}: {exc}", redactor))
    except OSError as exc:  # refused, reset, unreachable, TLS handshake
        return Outcome(
            False,
            retryable=True,
            error=_masked(
                f"{where}: cannot reach the server: {type(exc).__name__}: {exc}", redactor
            ),
        )
    finally:
        session.close()
    return dataclasses.replace(outcome, error=_masked(outcome.error, redactor))
