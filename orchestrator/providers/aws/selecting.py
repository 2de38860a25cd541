"""Selecting: the region-drill target kinds (vpc, health-check, global-cluster) resolved into
frozen `TargetRef`s, with population and service hints.

Invariants:
- Read-only. Every selector criterion given must match (AND): `tags`, `ids`, `names` (the
  `Name` tag, or the resource's identifier). None of these kinds has a zone: a selector
  with `zone` is refused, naming the fix.
- `population` is every resource of that kind the connection sees: the region's VPCs,
  the account's health checks (Route 53 is global), the global clusters.
- Refs name the resource by id (`vpc-…`, the health check id, the global cluster
  identifier) with the run's region; hints carry tags (minus `stormdrill:*`) and
  `kind:id` resource ids (`vpc:…`, `route53-health-check:…`, `rds-global:…`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, Final

from orchestrator import errors, mutations, registry, targets
from orchestrator.providers.aws import (
    connecting,
    global_failover,
    markers,
    region,
    resolving,
    route53,
    wrapping,
)
from scenarios import models

_HINT_PREFIX: Final = {
    region.KIND: "vpc",
    route53.KIND: "route53-health-check",
    global_failover.KIND: "rds-global",
}
KINDS: Final = frozenset(_HINT_PREFIX)


def _vpcs(conn: connecting.AwsConnection) -> list[resolving.Candidate]:
    found: list[resolving.Candidate] = []
    for page in conn.ec2().get_paginator("describe_vpcs").paginate():
        for vpc in page["Vpcs"]:
            tags = markers.as_dict(vpc.get("Tags"))
            names = frozenset({tags["Name"]} if "Name" in tags else set())
            found.append(resolving.Candidate(vpc["VpcId"], names, tags, None))
    return found


def _health_checks(conn: connecting.AwsConnection) -> list[resolving.Candidate]:
    found: list[resolving.Candidate] = []
    for check in route53.list_all(route53.client(conn)):
        names = frozenset({check.tags["Name"]} if "Name" in check.tags else set())
        found.append(resolving.Candidate(check.id, names, check.tags, None))
    return found


def _global_clusters(conn: connecting.AwsConnection) -> list[resolving.Candidate]:
    found: list[resolving.Candidate] = []
    for page in conn.rds().get_paginator("describe_global_clusters").paginate():
        for cluster in page["GlobalClusters"]:
            ident = cluster["GlobalClusterIdentifier"]
            tags = markers.as_dict(cluster.get("TagList"))
            found.append(resolving.Candidate(ident, frozenset({ident}), tags, None))
    return found


_POOLS: Final[Mapping[str, Callable[[connecting.AwsConnection], list[resolving.Candidate]]]] = {
    region.KIND: _vpcs,
    route53.KIND: _health_checks,
    global_failover.KIND: _global_clusters,
}


def _matches(candidate: resolving.Candidate, selector: models.Selector) -> bool:
    if any(candidate.tags.get(key) != value for key, value in selector.tags.items()):
        return False
    if selector.ids and candidate.id not in selector.ids:
        return False
    wanted = set(selector.names)
    return not (wanted and not (wanted & (candidate.names | {candidate.id})))


class RegionResolver(registry.TargetResolver):
    """Resolves the target kinds of region drills."""

    provider: ClassVar[str] = connecting.PROVIDER
    kinds: ClassVar[frozenset[str]] = KINDS

    def resolve(
        self, ctx: registry.ProviderContext, *, name: str, target: models.Target
    ) -> targets.Selection:
        if target.kind not in KINDS:
            raise errors.ProviderPermanent(
                f"target {name}: this resolver selects {', '.join(sorted(KINDS))}, not "
                f"{target.kind!r}"
            )
        if target.selector.zone is not None:
            raise errors.ProviderPermanent(
                f"target {name}: a {target.kind} has no zone; drop selector.zone"
            )
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        with wrapping.edge(f"target {name} ({target.kind})"):
            pool = _POOLS[target.kind](conn)
        chosen = [c for c in pool if _matches(c, target.selector)]
        return targets.Selection(
            name=name,
            provider=connecting.PROVIDER,
            kind=target.kind,
            refs=tuple(
                mutations.TargetRef(
                    provider=connecting.PROVIDER, kind=target.kind, name=c.id, region=conn.region
                )
                for c in chosen
            ),
            population=len(pool),
            hints=tuple(
                targets.ServiceHint.of(
                    provider=connecting.PROVIDER,
                    tags={k: v for k, v in c.tags.items() if not k.startswith(markers.PREFIX)},
                    resource_ids=(f"{_HINT_PREFIX[target.kind]}:{c.id}",),
                )
                for c in chosen
            ),
        )
