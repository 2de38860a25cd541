"""Probes: read-only steady-state checks of deployments and pods.

Invariants: probes never write; a missing deployment or namespace is an unhealthy answer
(ok=False, a sentence saying so), while an unreachable API server raises the provider error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pydantic

from orchestrator import mutations, registry
from orchestrator.providers.kubernetes import acting, connection, objects, targets


class DeploymentAvailableParams(acting.Params):
    namespace: str = pydantic.Field(min_length=1)
    name: str = pydantic.Field(min_length=1)
    min_available: int = pydantic.Field(default=1, ge=0)


class DeploymentAvailableProbe(registry.Probe[DeploymentAvailableParams]):
    """OK while the deployment has at least `minAvailable` available replicas."""

    name: ClassVar[str] = "kubernetes.deployment-available"
    params_model: ClassVar[type[pydantic.BaseModel]] = DeploymentAvailableParams
    description: ClassVar[str] = (
        "OK while deployment 'namespace/name' has at least 'minAvailable' available replicas."
    )

    def check(
        self, ctx: registry.ProviderContext, *, params: DeploymentAvailableParams
    ) -> registry.ProbeResult:
        conn = connection.from_context(ctx)
        ref = mutations.TargetRef(
            provider=connection.PROVIDER,
            kind="deployment",
            name=params.name,
            namespace=params.namespace,
        )
        found = objects.read(conn, ref)
        now = datetime.now(UTC)
        if found is None:
            return registry.ProbeResult(
                ok=False,
                value=0,
                message=f"deployment {params.namespace}/{params.name} does not exist",
                at=now,
            )
        available = int((found.get("status") or {}).get("availableReplicas") or 0)
        ok = available >= params.min_available
        return registry.ProbeResult(
            ok=ok,
            value=available,
            message=(
                f"deployment {params.namespace}/{params.name} has {available} available"
                f" replica(s); needs at least {params.min_available}"
            ),
            at=now,
        )


class PodsReadyParams(acting.Params):
    namespace: str = pydantic.Field(min_length=1)
    selector: str = ""
    """A label selector such as `app.kubernetes.io/name=payments` (empty: every pod)."""
    min_ready: int = pydantic.Field(default=1, ge=0)
    zone: str | None = None
    """Count only pods on nodes of this `topology.kubernetes.io/zone`."""


def is_ready(pod: connection.KubeObject) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


class PodsReadyProbe(registry.Probe[PodsReadyParams]):
    """OK while at least `minReady` pods matching `selector` are Ready (optionally in `zone`)."""

    name: ClassVar[str] = "kubernetes.pods-ready"
    params_model: ClassVar[type[pydantic.BaseModel]] = PodsReadyParams
    description: ClassVar[str] = (
        "OK while at least 'minReady' pods in 'namespace' matching the label 'selector' are"
        " Ready (only those on nodes in 'zone', when given)."
    )

    def check(
        self, ctx: registry.ProviderContext, *, params: PodsReadyParams
    ) -> registry.ProbeResult:
        conn = connection.from_context(ctx)
        pods = objects.items(
            conn.call(
                f"pods in {params.namespace}",
                conn.core.list_namespaced_pod,
                params.namespace,
                label_selector=params.selector or None,
            )
        )
        if params.zone is not None:
            zones = targets.zones_of_nodes(conn)
            pods = [
                p
                for p in pods
                if zones.get(str((p.get("spec") or {}).get("nodeName"))) == params.zone
            ]
        ready = sum(1 for pod in pods if is_ready(pod))
        where = f"in {params.namespace}" + (f" (zone {params.zone})" if params.zone else "")
        selected = f" matching {params.selector!r}" if params.selector else ""
        return registry.ProbeResult(
            ok=ready >= params.min_ready,
            value=ready,
            message=(
                f"{ready} of {len(pods)} pod(s){selected} {where} are Ready; needs at least"
                f" {params.min_ready}"
            ),
            at=datetime.now(UTC),
        )
