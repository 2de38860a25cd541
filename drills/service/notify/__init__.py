"""Notifications: an outbox filled from what the store records, delivered by the lease holder.

`sources.collect` turns new timeline events (and, where part B's tables exist, skipped
schedule fires and upcoming fires) into deliveries, one per notice and sink, with ids
derived from both; `dispatching.dispatch_once` sends the due ones (webhook with an HMAC
signature, Slack, email over SMTP), retrying with backoff and giving up visibly;
`dispatching.run_pass` is both, and `dispatching.job` the lease holder's housekeeping job
around it. `routing` reads the notifications file (`STORMDRILL_NOTIFICATIONS`). This file
only re-exports.
"""

from __future__ import annotations

from drills.service.notify.dispatching import (
    DispatchFigures,
    JobFigures,
    dispatch_once,
    job,
    run_pass,
)
from drills.service.notify.notices import DeliveryId, Kind, Notice, Severity, SinkName
from drills.service.notify.outbox import Delivery, DeliveryState, Fence, deliveries
from drills.service.notify.routing import (
    Config,
    NotificationsInvalid,
    NotifySettings,
    from_settings,
    load,
)
from drills.service.notify.sources import Collected, collect

__all__ = [
    "Collected",
    "Config",
    "Delivery",
    "DeliveryId",
    "DeliveryState",
    "DispatchFigures",
    "Fence",
    "JobFigures",
    "Kind",
    "Notice",
    "NotificationsInvalid",
    "NotifySettings",
    "Severity",
    "SinkName",
    "collect",
    "deliveries",
    "dispatch_once",
    "from_settings",
    "job",
    "load",
    "run_pass",
]
