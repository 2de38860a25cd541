"""Kubernetes provider errors: the API's answers mapped onto the orchestrator's error tree.

Invariants: every class derives from `orchestrator.errors.ProviderRetryable` (try again:
conflicts, throttling, server and network trouble) or `ProviderPermanent` (retrying will not
help: forbidden, invalid, not found). Messages name the object and the API's reason.
"""

from __future__ import annotations

from orchestrator import errors


class NotFound(errors.ProviderPermanent):
    """The object does not exist (HTTP 404)."""


class Conflict(errors.ProviderRetryable):
    """The object changed under us (HTTP 409): re-read it and apply the change again."""


class AlreadyExists(Conflict):
    """A create found an object of that name (HTTP 409, reason AlreadyExists)."""


class TooManyRequests(errors.ProviderRetryable):
    """Throttled, or an eviction a PodDisruptionBudget forbids for now (HTTP 429)."""


class ForeignMarker(errors.ProviderPermanent):
    """The object already carries the markers of another drill run."""


class DrainFailed(errors.ProviderPermanent):
    """A node could not be drained within its timeout (a budget never allowed an eviction)."""
