"""Kubernetes provider errors: the API's answers mapped onto the orchestrator's error tree.

Invariants: every class derives from `orchestrator.errors.ProviderRetryable` (try again:
conflicts, throttling, server and network trouble) or `ProviderPermanent` (retrying will not
help: forbidden, invalid, not found). Messages name the object and the API's reason. An HTTP
429 is either an eviction a disruption budget forbids (about that pod: `TooManyRequests`) or
the API server shedding load (`Throttled`, with `retry_after_s` set: every caller pauses).
"""

from __future__ import annotations

import json

from orchestrator import errors

THROTTLE_PAUSE_S = 1.0
"""How long callers pause after a throttling 429 that names no Retry-After."""


class NotFound(errors.ProviderPermanent):
    """The object does not exist (HTTP 404)."""


class Conflict(errors.ProviderRetryable):
    """The object changed under us (HTTP 409): re-read it and apply the change again."""


class AlreadyExists(Conflict):
    """A create found an object of that name (HTTP 409, reason AlreadyExists)."""


class TooManyRequests(errors.ProviderRetryable):
    """Throttled, or an eviction a PodDisruptionBudget forbids for now (HTTP 429)."""


class Throttled(TooManyRequests):
    """The API server sheds load (429 from API Priority and Fairness): everyone waits.

    `retry_after_s` is the server's Retry-After (or `THROTTLE_PAUSE_S`): a rollback starts
    no request on this API server until it has passed.
    """


def too_many_requests(
    detail: str, *, body: str | bytes | None, retry_after: float | None
) -> TooManyRequests:
    """The error for an HTTP 429 answer with `body` and the `Retry-After` header's seconds.

    An eviction refused by a disruption budget (a `Status` whose causes say `DisruptionBudget`)
    concerns that pod only; any other 429 (API Priority and Fairness answers in plain text)
    is the server throttling every caller.
    """
    if _is_disruption_budget(body):
        return TooManyRequests(detail, delay=retry_after)
    pause = retry_after if retry_after is not None else _status_retry_after(body)
    return Throttled(
        detail, delay=retry_after, retry_after_s=THROTTLE_PAUSE_S if pause is None else pause
    )


def _status(body: str | bytes | None) -> dict[str, object]:
    try:
        status = json.loads(body or "")
    except (TypeError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def _is_disruption_budget(body: str | bytes | None) -> bool:
    status = _status(body)
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if isinstance(causes, list) and any(
        isinstance(c, dict) and c.get("reason") == "DisruptionBudget" for c in causes
    ):
        return True
    return "disruption budget" in str(status.get("message") or "").lower()


def _status_retry_after(body: str | bytes | None) -> float | None:
    details = _status(body).get("details")
    seconds = details.get("retryAfterSeconds") if isinstance(details, dict) else None
    return float(seconds) if isinstance(seconds, int | float) and seconds > 0 else None


class ForeignMarker(errors.ProviderPermanent):
    """The object already carries the markers of another drill run."""


class DrainFailed(errors.ProviderPermanent):
    """A node could not be drained within its timeout (a budget never allowed an eviction)."""
