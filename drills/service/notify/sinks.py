"""Sinks: a delivery rendered for its sink (generic webhook, Slack) and sent over HTTP.

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
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Mapping

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


def render(sink: routing.Sink, delivery: outbox.Delivery) -> Request:
    """The exact request `sink` gets for `delivery` (the same bytes on every attempt)."""
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
