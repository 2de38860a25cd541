"""Impact: the services a failure reaches, and the services concrete targets belong to.

`impact` walks the reverse dependency graph (who depends on whom) breadth-first from
the targeted services, so every impacted service carries its shortest path from a
target; cycles end the walk at services already reached. `services_for_kubernetes`
and `services_for_aws` map workloads and AWS resources to the services they belong to;
`services_for_addresses` maps the addresses a network fault cuts (`cidr`/`cidrs`,
`port`/`ports` in an action's parameters) to the vendors reached there.
Invariants: pure functions of the catalog; results are sorted (tier, then distance,
then ref), so the same catalog and targets always give the same answer.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping

from orchestrator.cmdb import errors, models

ASG_NAME_TAG = "aws:autoscaling:groupName"
"""The tag AWS puts on instances of an Auto Scaling group; it names the `asg:` resource."""


@dataclasses.dataclass(frozen=True)
class ImpactedService:
    """A service reached by the failure, with how it was reached."""

    service: models.Service
    distance: int
    """0 for a targeted service, 1 for a direct dependent, …"""
    path: tuple[models.EntityRef, ...]
    """From the target to this service, both included."""
    via: models.DependencyType | None = None
    """The relation of the last hop (None for a target)."""

    @property
    def ref(self) -> models.EntityRef:
        return self.service.ref

    @property
    def tier(self) -> int:
        return self.service.tier

    @property
    def owner(self) -> models.EntityRef:
        return self.service.owner

    @property
    def objectives(self) -> models.Objectives:
        return self.service.objectives


@dataclasses.dataclass(frozen=True)
class Impact:
    """The targeted services plus everything depending on them, transitively."""

    targets: tuple[models.EntityRef, ...]
    services: tuple[ImpactedService, ...]

    @property
    def refs(self) -> tuple[models.EntityRef, ...]:
        return tuple(s.ref for s in self.services)

    @property
    def owners(self) -> tuple[models.EntityRef, ...]:
        """Owner teams of the impacted services, most critical first."""
        return tuple(dict.fromkeys(s.owner for s in self.services))

    def get(self, ref: models.EntityRef) -> ImpactedService | None:
        return next((s for s in self.services if s.ref == ref), None)


def impact(catalog: models.Catalog, targeted: Iterable[models.EntityRef]) -> Impact:
    """The impact of losing `targeted`: services, APIs (their providers) or systems (members).

    Raises `UnknownRef` for a target the catalog does not hold.
    """
    targets = tuple(dict.fromkeys(targeted))
    start = [ref for target in targets for ref in _expand(catalog, target)]
    dependents = _reverse_graph(catalog)
    reached: dict[models.EntityRef, ImpactedService] = {}
    queue: collections.deque[models.EntityRef] = collections.deque()
    for ref in sorted(dict.fromkeys(start)):
        reached[ref] = ImpactedService(catalog.services[ref], 0, (ref,))
        queue.append(ref)
    while queue:
        current = reached[queue.popleft()]
        for dependent, relation in dependents[current.ref]:
            if dependent in reached:
                continue
            reached[dependent] = ImpactedService(
                catalog.services[dependent],
                current.distance + 1,
                (*current.path, dependent),
                via=relation,
            )
            queue.append(dependent)
    ordered = sorted(reached.values(), key=lambda s: (s.tier, s.distance, s.ref))
    return Impact(targets=targets, services=tuple(ordered))


def _expand(catalog: models.Catalog, target: models.EntityRef) -> list[models.EntityRef]:
    if target in catalog.services:
        return [target]
    if target in catalog.apis:
        return list(catalog.apis[target].providers)
    if target in catalog.systems:
        return sorted(s.ref for s in catalog.services.values() if s.system == target)
    raise errors.UnknownRef(
        str(target),
        suggestions=models.close_matches(
            str(target), [*catalog.services, *catalog.apis, *catalog.systems]
        ),
        what="service, API or system",
    )


def _reverse_graph(
    catalog: models.Catalog,
) -> Mapping[models.EntityRef, list[tuple[models.EntityRef, models.DependencyType]]]:
    dependents: dict[models.EntityRef, list[tuple[models.EntityRef, models.DependencyType]]] = (
        collections.defaultdict(list)
    )
    for service in sorted(catalog.services.values(), key=lambda s: s.ref):
        for dependency in service.dependencies:
            if dependency.ref in catalog.services:
                dependents[dependency.ref].append((service.ref, dependency.type))
    return dependents


def services_for_kubernetes(
    catalog: models.Catalog,
    *,
    namespace: str,
    labels: Mapping[str, str],
    cluster: str | None = None,
) -> list[models.Service]:
    """Services whose Kubernetes placement selects a workload in `namespace` with `labels`.

    For a node, call it once per pod on the node. `cluster` narrows to services that
    list that cluster (or list none).
    """
    return _sorted(
        s
        for s in catalog.services.values()
        if s.kubernetes.matches(namespace=namespace, labels=labels, cluster=cluster)
    )


def services_for_aws(
    catalog: models.Catalog,
    *,
    tags: Mapping[str, str] | None = None,
    resource_ids: Iterable[models.AwsResourceId] = (),
    region: str | None = None,
    zone: str | None = None,
) -> list[models.Service]:
    """Services an AWS resource belongs to, by its tags or its id.

    A service matches when all its `stormdrill.dev/aws-tags` are among `tags` (an
    instance's tags), or when it names one of `resource_ids` (`rds:payments-db`); an
    instance tagged `aws:autoscaling:groupName=X` also matches services naming `asg:X`.
    `region`/`zone` narrow to services that list them (or list none).
    """
    given_tags = dict(tags or {})
    ids = set(resource_ids)
    if ASG_NAME_TAG in given_tags:
        ids.add(models.AwsResourceId(models.AwsResourceType.ASG, given_tags[ASG_NAME_TAG]))
    matches = []
    for service in catalog.services.values():
        placement = service.aws
        by_tags = bool(placement.tags) and all(
            given_tags.get(k) == v for k, v in placement.tags.items()
        )
        by_id = any(r in ids for r in placement.resources)
        if not (by_tags or by_id):
            continue
        if region is not None and placement.regions and region not in placement.regions:
            continue
        if zone is not None and placement.zones and zone not in placement.zones:
            continue
        matches.append(service)
    return _sorted(matches)


def services_for_addresses(
    catalog: models.Catalog, *, cidrs: Iterable[str], ports: Iterable[int] = ()
) -> list[models.Service]:
    """Vendors (`stormdrill.dev/vendor-cidrs`) reached at `cidrs` on `ports`.

    A vendor matches when one of its CIDR blocks overlaps one of `cidrs` (so cutting
    `0.0.0.0/0` reaches every IPv4 vendor) and, when both sides name ports, they share
    one. Text that is not a CIDR block is ignored (the action validates its own input).
    """
    networks = []
    for raw in cidrs:
        try:
            networks.append(ipaddress.ip_network(str(raw).strip(), strict=False))
        except ValueError:
            continue
    wanted_ports = set(ports)
    matches = []
    for service in catalog.services.values():
        vendor = service.vendor
        if vendor is None or not vendor.cidrs:
            continue
        if wanted_ports and vendor.ports and not wanted_ports.intersection(vendor.ports):
            continue
        if any(
            mine.version == theirs.version and mine.overlaps(theirs)
            for mine in networks
            for theirs in vendor.cidrs
        ):
            matches.append(service)
    return _sorted(matches)


def addresses_in(params: Mapping[str, object]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The (CIDR blocks, ports) an action's parameters name (`cidr`, `cidrs`, `port`, `ports`).

    Every network action of the built-in providers takes its addresses under these keys;
    anything else in `params` is not an address and is ignored.
    """
    cidrs = [str(v).strip() for v in _values(params, "cidr", "cidrs") if isinstance(v, str)]
    ports: list[int] = []
    for value in _values(params, "port", "ports"):
        if isinstance(value, int) and not isinstance(value, bool):
            ports.append(value)
        elif isinstance(value, str) and value.strip().isdigit():
            ports.append(int(value))
    return tuple(c for c in cidrs if c), tuple(ports)


def _values(params: Mapping[str, object], *keys: str) -> list[object]:
    found: list[object] = []
    for key in keys:
        value = params.get(key)
        if isinstance(value, list | tuple):
            found.extend(value)
        elif value is not None:
            found.append(value)
    return found


def _sorted(services: Iterable[models.Service]) -> list[models.Service]:
    return sorted(services, key=lambda s: (s.tier, s.ref))
