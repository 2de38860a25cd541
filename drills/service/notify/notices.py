"""Notices: what a notification says (kind, severity, who it concerns) and its delivery ids.

A `Notice` is one thing worth telling people, made by a source (`sources`) from what the
store recorded: a run's timeline event, a schedule's skipped fire (or pause), a fire coming
up, a schedule awaiting approval, a game day started or closed. Its `source` key names that
record exactly (`event:1234`, `fire:<schedule>:<nominal time>` (a pause: its first paused
fire's), `upcoming:<schedule>:<nominal time>`, `schedule-approval:<schedule>:<spec hash>`,
`gameday-started:<id>`, `gameday-finished:<id>`), so `delivery_id(source, sink)` is the
same however often the record is read: the outbox's primary key makes a second delivery
impossible.
Invariants: notices are immutable; `payload` is JSON (already redacted by whoever wrote the
record, and again by the collector); severities are ordered info < warning < critical.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import NewType

from orchestrator import mutations, states

DeliveryId = NewType("DeliveryId", str)
SinkName = NewType("SinkName", str)


class Kind(enum.StrEnum):
    """The kinds of notification (the `X-Stormdrill-Event` header, routes' `kinds`)."""

    UPCOMING = "upcoming"
    """A schedule fires soon (T-15 min by default), or will skip that fire (and why)."""
    AWAITING_APPROVAL = "awaiting-approval"
    """A run in a protected environment waits for approvers (again, after a re-plan), or a
    schedule's spec does (once per spec: `stormdrill schedules approve NAME`)."""
    STARTED = "started"
    """A run began planning (it was claimed and, if protected, approved)."""
    GUARDRAIL_TRIPPED = "guardrail-tripped"
    """A guardrail refused a plan, vetoed a start, or aborted a running drill."""
    ABORTED = "aborted"
    """A run ended ABORTED (guardrail, operator, rejection, refusal)."""
    ROLLBACK_FAILED = "rollback-failed"
    """Rollback left faults in place: a human must look (the paging kind)."""
    FINISHED = "finished"
    """A run ended COMPLETED or FAILED (with its verdict and report link)."""
    FIRE_SKIPPED = "fire-skipped"
    """A schedule's fire was skipped (blackout, kill switch, …) with its reason; a paused
    schedule once per pause (info)."""
    GAMEDAY_STARTED = "gameday-started"
    """A game day started (`gamedays.start`): its window, drills and channel."""
    GAMEDAY_FINISHED = "gameday-finished"
    """A game day was closed (`gamedays.close`) with its verdict and each drill's."""


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclasses.dataclass(frozen=True)
class Notice:
    """One notification before routing: what happened, to what, and who it concerns."""

    source: str
    """The record it comes from (unique per notice): the delivery id is derived from it."""
    kind: Kind
    severity: Severity
    occurred_at: datetime
    summary: str
    """One line a person reads (Slack's text, an email subject)."""
    run_id: states.RunId | None = None
    environment: str | None = None
    teams: tuple[str, ...] = ()
    """CMDB owners (`group:default/payments`) of the services concerned."""
    services: tuple[str, ...] = ()
    """CMDB service refs concerned (`component:default/checkout`)."""
    details: Mapping[str, mutations.JsonValue] = dataclasses.field(default_factory=dict)
    """Kind-specific facts (run, verdict, report link, leftovers, reason, schedule…)."""

    def payload(self) -> dict[str, mutations.JsonValue]:
        """The JSON stored in the outbox and sent (the webhook body, less the delivery id)."""
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "occurredAt": self.occurred_at.isoformat(),
            "summary": self.summary,
            "runId": self.run_id,
            "environment": self.environment,
            "teams": list(self.teams),
            "services": list(self.services),
            "details": dict(self.details),
        }


def delivery_id(source: str, sink: SinkName) -> DeliveryId:
    """The delivery id of `source` to `sink`: the same on every collection (`dlv-<32 hex>`)."""
    digest = hashlib.sha256(f"{source}\x00{sink}".encode()).hexdigest()
    return DeliveryId(f"dlv-{digest[:32]}")
