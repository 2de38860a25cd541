"""Plugin: registers the AWS provider (connector, actions, probe, resolver, sweeper).

Invariant: registering has no side effect beyond the given registry; nothing connects
until a run asks for the "aws" connection.
"""

from __future__ import annotations

from orchestrator import registry as registries
from orchestrator.providers.aws import (
    alarms,
    connecting,
    egress,
    failover,
    isolating,
    resolving,
    scaling,
    stopping,
    suspending,
    sweeping,
)

ACTIONS = (
    isolating.IsolateSubnets,
    stopping.StopInstances,
    scaling.RemoveZone,
    failover.Failover,
    egress.DenyEgress,
    suspending.SuspendAccess,
)
PROBES = (alarms.CloudWatchAlarm,)


def register(registry: registries.Registry) -> None:
    """Add the AWS provider to `registry` (called by `builtin.registry_with_builtins()`)."""
    registry.register_connector(connecting.PROVIDER, connecting.connect)
    registry.register(*ACTIONS, *PROBES)
    registry.register_resolver(resolving.AwsResolver())
    registry.register_sweeper(sweeping.AwsSweeper())
