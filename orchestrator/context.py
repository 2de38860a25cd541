"""Run context: what the engine hands every action, probe, resolver and sweeper call.

Invariants:
- Provider connections (a Kubernetes `ApiClient`, a boto3 session) are opened lazily, once
  per run, by the factory each provider registers; the engine never imports an SDK.
- `expires_at` is the moment after which any marker this run leaves behind may be healed by
  anyone (`stormdrill recover` sweeps expired markers even when the journal is lost).
- `time_scale` (0 < x <= 1) shrinks waits, intervals and timeouts; it comes from the
  Environment and is recorded with the run so reports can state it openly.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from orchestrator import errors, states
from scenarios import models

ConnectionFactory = Callable[[models.Environment], object]
"""Opens a provider's connection for an Environment (e.g. an ApiClient from its kubeconfig)."""


class Connections:
    """Lazily opened provider connections for one Environment, safe to share across threads."""

    def __init__(
        self, environment: models.Environment, factories: Mapping[str, ConnectionFactory]
    ) -> None:
        self._environment = environment
        self._factories = dict(factories)
        self._opened: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, provider: str) -> object:
        """The provider's connection, opened on first use; `ProviderPermanent` if unavailable."""
        with self._lock:
            if provider not in self._opened:
                factory = self._factories.get(provider)
                if factory is None:
                    raise errors.ProviderPermanent(
                        f"no connection factory is registered for provider {provider!r}"
                    )
                self._opened[provider] = factory(self._environment)
            return self._opened[provider]


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Everything a provider call may need about the run it serves (implements ProviderContext)."""

    run_id: states.RunId
    environment: models.Environment
    connections: Connections
    expires_at: datetime
    dry_run: bool = False
    time_scale: float = 1.0

    def connection(self, provider: str) -> object:
        """The open connection of `provider` (see `Connections.get`)."""
        return self.connections.get(provider)

    def scaled(self, seconds: float) -> float:
        """A real-world duration shrunk by the environment's time scale."""
        return seconds * self.time_scale
