"""Plugin: registers the people provider (connector, actions, resolver).

Invariant: registering has no side effect beyond the given registry; the CMDB is loaded
only when a run first asks for the "people" connection.
"""

from __future__ import annotations

from orchestrator import registry as registries
from orchestrator.providers.people import absence, analysing, connecting, resolving

ACTIONS: tuple[registries.ActionClass, ...] = (
    analysing.AnalyseAbsence,
    absence.MarkUnavailable,
)


def register(registry: registries.Registry) -> None:
    """Register everything the people provider offers on `registry`."""
    registry.register_connector(connecting.PROVIDER, connecting.connect)
    registry.register(*ACTIONS)
    registry.register_resolver(resolving.PeopleResolver())
