"""Plugin: registers the AWS provider (connector, actions, probes, resolvers, sweepers).

Invariant: registering has no side effect beyond the given registry; nothing connects
until a run asks for the "aws" connection.
"""

from __future__ import annotations

from orchestrator import registry as registries
from orchestrator.providers.aws import (
    alarms,
    answering,
    connecting,
    egress,
    failover,
    global_failover,
    isolating,
    region,
    resolving,
    route53,
    scaling,
    selecting,
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
    route53.FailHealthCheck,
    region.IsolateRegion,
    global_failover.GlobalFailover,
)
PROBES = (alarms.CloudWatchAlarm, answering.Route53Resolve)


def register(registry: registries.Registry) -> None:
    """Add the AWS provider to `registry` (called by `builtin.registry_with_builtins()`)."""
    registry.register_connector(connecting.PROVIDER, connecting.connect)
    registry.register(*ACTIONS, *PROBES)
    registry.register_resolver(resolving.AwsResolver())
    registry.register_resolver(selecting.RegionResolver())
    registry.register_sweeper(sweeping.AwsSweeper())
    registry.register_sweeper(route53.Route53Sweeper())
