"""Plugin: registers the Kubernetes provider (connector, actions, probes, resolver, sweeper).

`orchestrator.providers.builtin.registry_with_builtins()` calls `register(registry)`;
registering has no side effect beyond the given registry and nothing connects until a run
asks for the "kubernetes" connection; nothing happens at import time.
"""

from __future__ import annotations

from orchestrator import registry as registries
from orchestrator.providers.kubernetes import (
    connection,
    network,
    nodes,
    probes,
    rbac,
    sweeping,
    targets,
    workloads,
)

ACTIONS: tuple[registries.ActionClass, ...] = (
    nodes.CordonAction,
    nodes.DrainAction,
    nodes.TaintAction,
    workloads.DeletePodsAction,
    workloads.ScaleAction,
    network.DenyEgressAction,
    network.PartitionAction,
    rbac.RevokeSubjectAction,
)
PROBES: tuple[registries.ProbeClass, ...] = (
    probes.DeploymentAvailableProbe,
    probes.PodsReadyProbe,
)


def register(registry: registries.Registry) -> None:
    """Register everything the Kubernetes provider offers on `registry`."""
    registry.register_connector(connection.PROVIDER, connection.connect)
    registry.register(*ACTIONS, *PROBES)
    registry.register_resolver(targets.KubernetesResolver())
    registry.register_sweeper(sweeping.KubernetesSweeper())
    registry.register_namespace_opt_in(targets.opted_in_namespaces)
