"""Dispatching: send the outbox's due deliveries, retry with backoff, give up visibly.

`dispatch_once(store, config, now=…)` is one pass: claim up to `delivery.batch` due pending
deliveries (`outbox.claim_due`), send each to its sink (`sinks`), and mark it: delivered,
pending again at `now + backoff` (exponential: `backoff * 2**(attempt-1)`, capped at
`maxBackoff`, with jitter drawn from [half, all] of it; a server's `Retry-After` is taken
when longer), or failed once `maxAttempts` are spent or the receiver refused it for good
(a 4xx other than 408/425/429; for email an SMTP 5xx, see `sinks`). A failed delivery keeps
its last error and stays in the outbox. A delivery that reached only some of its email
recipients counts as delivered and its refused recipients are logged as a warning. Nothing
blocks between attempts: the next attempt is a later pass.

Guarantee, stated plainly: each delivery id is marked delivered in one transaction, by the
claim that sent it, and is never claimed again after that. Delivery is at-least-once: a
process that dies after the receiver answered 2xx but before that commit leaves the row
pending, and once its claim's hold passes another pass sends it again, with the same
`X-Stormdrill-Delivery` id and the same body and signature. Receivers dedupe on that header
(the standard webhook contract); an email resent so carries the same `Message-ID`. Two
dispatchers never hold one delivery at once: a claim takes as many rows as worst-case sends
fit in about two minutes (`claim_size`) and holds them for that long plus a margin
(`hold_s`, also how soon a crashed pass's rows are due again), and a pass stops sending,
and gives the rest back, before its hold could run out.

`run_pass(store, config)` is the periodic work (collect, then dispatch); `job(store,
config)` wraps it as the lease holder's housekeeping job (`Housekeeper.add_job`), its
writes fenced with the tenure's epoch (`leases.fence`). Nothing here runs at import time;
the HTTP client is made per pass (or passed in by tests).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from drills.service import leases
from drills.service.notify import outbox, routing, sinks, sources
from orchestrator import journal
from scenarios import secrets

log = logging.getLogger(__name__)

HOLD_MARGIN_S = 30.0
"""How much longer than the sends it covers a claim holds its rows."""
CLAIM_SPAN_S = 120.0
"""About how long the sends of one claim may take: a claim takes as many rows as fit."""


@dataclasses.dataclass(frozen=True)
class DispatchFigures:
    """What one dispatch pass did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    """Claimed but given back unsent (the claim's hold was running out)."""
    lost: int = 0
    """Sent, but the claim was gone when marking (another pass took the row): at-least-once."""


@dataclasses.dataclass(frozen=True)
class JobFigures:
    collected: sources.Collected
    dispatched: DispatchFigures


def backoff_s(
    policy: routing.DeliveryPolicy, attempt: int, *, rng: Callable[[], float] = random.random
) -> float:
    """The delay after the `attempt`-th failed attempt (1-based): exponential, capped, jittered."""
    ceiling = min(policy.max_backoff_s, policy.backoff_s * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


def worst_send_s(policy: routing.DeliveryPolicy) -> float:
    """The longest one send can take: connect, write, read and pool are each bounded (an
    email's whole SMTP exchange is held to this as its deadline)."""
    return 4 * policy.timeout_s


def claim_size(policy: routing.DeliveryPolicy) -> int:
    """How many rows one claim takes: as many worst-case sends as fit in `CLAIM_SPAN_S`."""
    return max(1, min(policy.batch, int(CLAIM_SPAN_S // worst_send_s(policy))))


def hold_s(policy: routing.DeliveryPolicy) -> float:
    """How long a claim holds its rows (a crashed pass's rows are due again after it)."""
    return claim_size(policy) * worst_send_s(policy) + HOLD_MARGIN_S


def dispatch_once(
    store: journal.Journal,
    config: routing.Config,
    *,
    now: datetime | None = None,
    fence: outbox.Fence | None = None,
    client: httpx.Client | None = None,
    rng: Callable[[], float] = random.random,
) -> DispatchFigures:
    """One dispatch pass (see the module doc); `fence` guards each claim's transaction.

    `now` fixes the pass's clock (tests); by default each claim and mark reads the time.
    """

    def clock() -> datetime:
        return now if now is not None else datetime.now(UTC)

    policy = config.delivery
    redactor = store.redactor.with_secrets(config.secrets())
    figures = DispatchFigures()
    own = client or httpx.Client(timeout=httpx.Timeout(policy.timeout_s), follow_redirects=False)
    try:
        while figures.claimed < policy.batch:
            wanted = min(claim_size(policy), policy.batch - figures.claimed)
            token, claimed = outbox.claim_due(
                store,
                now=clock(),
                limit=wanted,
                hold=timedelta(seconds=hold_s(policy)),
                fence=fence,
            )
            if not claimed:
                break
            figures = _send_claimed(
                store,
                config,
                token,
                claimed,
                client=own,
                redactor=redactor,
                clock=clock,
                rng=rng,
                figures=dataclasses.replace(figures, claimed=figures.claimed + len(claimed)),
            )
            if len(claimed) < wanted:
                break
    finally:
        if client is None:
            own.close()
    return figures


def _send_claimed(
    store: journal.Journal,
    config: routing.Config,
    token: str,
    claimed: list[outbox.Delivery],
    *,
    client: httpx.Client,
    redactor: secrets.Redactor,
    clock: Callable[[], datetime],
    rng: Callable[[], float],
    figures: DispatchFigures,
) -> DispatchFigures:
    started = time.monotonic()
    policy = config.delivery
    for index, delivery in enumerate(claimed):
        if time.monotonic() - started + worst_send_s(policy) + HOLD_MARGIN_S / 2 > hold_s(policy):
            rest = [d.delivery_id for d in claimed[index:]]
            released = outbox.release(store, token, rest, now=clock())
            log.warning("notifications: gave %d claimed deliveries back unsent", released)
            return dataclasses.replace(figures, released=figures.released + released)
        counted = _deliver(
            store, config, delivery, client=client, redactor=redactor, now=clock, rng=rng
        )
        figures = dataclasses.replace(figures, **{counted: getattr(figures, counted) + 1})
    return figures


def _deliver(
    store: journal.Journal,
    config: routing.Config,
    delivery: outbox.Delivery,
    *,
    client: httpx.Client,
    redactor: secrets.Redactor,
    now: Callable[[], datetime],
    rng: Callable[[], float],
) -> str:
    """Send one claimed delivery and mark it; the name of the figure it adds to."""
    policy = config.delivery
    sink = config.sinks.get(delivery.sink)
    if sink is None:
        outcome = sinks.Outcome(
            False,
            retryable=True,
            error=f"no sink named {delivery.sink!r} in {config.source or 'the notifications file'}",
        )
    else:
        outcome = sinks.deliver(
            client,
            sink,
            delivery,
            redactor=redactor,
            timeout_s=policy.timeout_s,
            deadline_s=worst_send_s(policy),
        )
    if outcome.delivered:
        if outcome.error:
            log.warning(
                "notification %s (%s) to %s: %s",
                delivery.delivery_id,
                delivery.kind.value,
                delivery.sink,
                outcome.error,
            )
        if outbox.mark_delivered(store, delivery, now=now()):
            log.info(
                "notification %s (%s) delivered to %s after %d attempt(s)",
                delivery.delivery_id,
                delivery.kind.value,
                delivery.sink,
                delivery.attempts,
            )
            return "delivered"
        log.warning(
            "notification %s was delivered to %s but another pass holds it now; it may be"
            " sent again with the same delivery id",
            delivery.delivery_id,
            delivery.sink,
        )
        return "lost"
    if not outcome.retryable or delivery.attempts >= policy.max_attempts:
        error = (
            f"refused: {outcome.error}"
            if not outcome.retryable
            else f"gave up after {delivery.attempts} attempt(s): {outcome.error}"
        )
        outbox.mark_failed(store, delivery, now=now(), error=error)
        log.error(
            "notification %s (%s) to %s failed for good: %s",
            delivery.delivery_id,
            delivery.kind.value,
            delivery.sink,
            error,
        )
        return "failed"
    delay = backoff_s(policy, delivery.attempts, rng=rng)
    if outcome.retry_after_s is not None:
        delay = max(delay, min(outcome.retry_after_s, policy.max_backoff_s))
    at = now()
    outbox.mark_retry(
        store, delivery, now=at, at=at + timedelta(seconds=delay), error=outcome.error
    )
    log.warning(
        "notification %s (%s) to %s: attempt %d failed: %s; retrying in %.1fs",
        delivery.delivery_id,
        delivery.kind.value,
        delivery.sink,
        delivery.attempts,
        outcome.error,
        delay,
    )
    return "retried"


def run_pass(
    store: journal.Journal,
    config: routing.Config,
    *,
    now: datetime | None = None,
    fence: outbox.Fence | None = None,
    cursor: str = sources.DEFAULT_CURSOR,
) -> JobFigures:
    """One round of the notification work: collect new notices, then dispatch the due ones."""
    collected = sources.collect(store, cursor, config, now=now, fence=fence)
    dispatched = dispatch_once(store, config, now=now, fence=fence)
    if collected.deliveries or dispatched.claimed:
        log.info(
            "notifications: %d new deliveries; %d sent, %d to retry, %d failed",
            len(collected.deliveries),
            dispatched.delivered,
            dispatched.retried,
            dispatched.failed,
        )
    return JobFigures(collected, dispatched)


def job(store: journal.Journal, config: routing.Config) -> Callable[[leases.Held], None]:
    """The housekeeping job (`Housekeeper.add_job("notifications", interval_s, job(...))`):
    each call is one `run_pass`, its writes fenced by the tenure it is handed."""

    def notifications(held: leases.Held) -> None:
        def fence(conn: sa.Connection) -> None:
            leases.fence(conn, held)

        run_pass(store, config, fence=fence)

    return notifications
