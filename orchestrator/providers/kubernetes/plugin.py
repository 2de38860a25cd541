"""Plugin: registers the Kubernetes provider (connector, actions, probes, resolver, sweeper).

`registry.default_registry()` calls `register(registry)`; nothing happens at import time.
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
