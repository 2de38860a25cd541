"""Targets: a scenario's named selections, resolved once at plan time and frozen.

Invariants:
- A `Selection` is what a target resolved to at plan time; the engine never re-resolves
  during a run (what was planned, checked and approved is what is touched).
- `population` is the size of the pool the selector picked from (all nodes of the cluster,
  all pods of the namespace…), the denominator of percentage blast radii.
- `hints` tell the engine which CMDB services the selection touches (labels, tags, ids);
  mapping them to services is the engine's job, not the provider's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from orchestrator import mutations


@dataclasses.dataclass(frozen=True)
class ServiceHint:
    """Where a touched workload lives, in the terms the CMDB links services by."""

    provider: str
    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    resource_ids: tuple[str, ...] = ()
    zone: str | None = None

    @classmethod
    def of(
        cls,
        *,
        provider: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        resource_ids: tuple[str, ...] = (),
        zone: str | None = None,
    ) -> ServiceHint:
        return cls(
            provider=provider,
            namespace=namespace,
            labels=tuple(sorted((labels or {}).items())),
            tags=tuple(sorted((tags or {}).items())),
            resource_ids=resource_ids,
            zone=zone,
        )


@dataclasses.dataclass(frozen=True)
class Approved:
    """The Kubernetes scope a judged plan reached: namespaces and cluster-wide object keys."""

    namespaces: frozenset[str] = frozenset()
    cluster_keys: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Selection:
    """A target resolved: the things it names, the pool they came from, the services behind."""

    name: str
    provider: str
    kind: str
    refs: tuple[mutations.TargetRef, ...]
    population: int
    hints: tuple[ServiceHint, ...] = ()
    excluded: tuple[tuple[mutations.TargetRef, str], ...] = ()
    """Matched but left out on purpose (the orchestrator's own node, a protected principal)."""
    namespaces: tuple[str, ...] = ()
    """Kubernetes namespaces the target is narrowed to (`namespaces:` of a subject target):
    its mutations leave objects elsewhere, cluster-wide ones included, alone. Empty: any."""
    approved: Approved | None = None
    """What the judged plan lets this selection's mutations touch (set by planning); a
    re-plan at run time that reaches beyond it stops the step."""

    @property
    def count(self) -> int:
        return len(self.refs)

    def percent(self) -> float:
        """The share of the population selected, 0-100 (0 for an empty population)."""
        return 100.0 * self.count / self.population if self.population else 0.0
