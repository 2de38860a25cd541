"""Resolving: AWS scenario targets (subnet, instance, autoscaling-group, db-instance,
security-group, iam-user) into frozen `TargetRef`s, with population and service hints.

Invariants:
- Read-only. Every selector criterion given must match (AND): `zone`, `tags`, `ids`,
  `names` (the `Name` tag, or the resource's own name where it has one).
- `population` is the pool of that kind the selector picked from: all of that kind in the
  region, or in the matched resources' VPCs for subnets and security groups.
- Instances must carry the opt-in tag `stormdrill:allow=true` (as AWS FIS requires): those
  matching everything else but the opt-in are listed in `Selection.excluded` with why.
  Protected IAM principals are likewise excluded, never selected.
- Refs name the resource by its id (`subnet-…`, `i-…`, `sg-…`) or name (ASG, DB, user),
  with the region; hints carry tags, `kind:id` resource ids and the zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from orchestrator import errors, mutations, registry, targets
from orchestrator.providers.aws import connecting, markers, suspending, wrapping
from scenarios import models

KINDS: Final = frozenset(
    {"subnet", "instance", "autoscaling-group", "db-instance", "security-group", "iam-user"}
)
_HINT_PREFIX: Final = {
    "subnet": "subnet",
    "instance": "ec2",
    "autoscaling-group": "asg",
    "db-instance": "rds",
    "security-group": "sg",
    "iam-user": "iam",
}


@dataclass(frozen=True)
class Candidate:
    """One resource of the pool, in the terms selectors speak."""

    id: str
    names: frozenset[str]
    tags: Mapping[str, str]
    zone: str | None
    scope: str | None = None
    """VPC id for subnets and security groups (the population's scope)."""


def _name_of(entry: str) -> str:
    """`user:default/alice` -> `alice`; plain names pass through."""
    return entry.rsplit("/", 1)[-1].split(":", 1)[-1] if ":" in entry else entry


def _matches(candidate: Candidate, selector: models.Selector, *, ignore_tags: set[str]) -> bool:
    if selector.zone is not None and candidate.zone != selector.zone:
        return False
    for key, value in selector.tags.items():
        if key not in ignore_tags and candidate.tags.get(key) != value:
            return False
    if selector.ids and candidate.id not in selector.ids:
        return False
    wanted = {_name_of(n) for n in selector.names}
    return not (wanted and not (wanted & (candidate.names | {candidate.id})))


def _subnets(conn: connecting.AwsConnection) -> list[Candidate]:
    found: list[Candidate] = []
    for page in conn.ec2().get_paginator("describe_subnets").paginate():
        for s in page["Subnets"]:
            tags = markers.as_dict(s.get("Tags"))
            names = frozenset({tags["Name"]} if "Name" in tags else set())
            found.append(Candidate(s["SubnetId"], names, tags, s["AvailabilityZone"], s["VpcId"]))
    return found


def _instances(conn: connecting.AwsConnection) -> list[Candidate]:
    found: list[Candidate] = []
    pages = (
        conn.ec2()
        .get_paginator("describe_instances")
        .paginate(
            Filters=[
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped"],
                }
            ]
        )
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for i in reservation.get("Instances", []):
                tags = markers.as_dict(i.get("Tags"))
                names = frozenset({tags["Name"]} if "Name" in tags else set())
                zone = i.get("Placement", {}).get("AvailabilityZone")
                found.append(Candidate(i["InstanceId"], names, tags, zone, i.get("VpcId")))
    return found


def _groups(conn: connecting.AwsConnection) -> list[Candidate]:
    found: list[Candidate] = []
    for page in conn.autoscaling().get_paginator("describe_auto_scaling_groups").paginate():
        for g in page["AutoScalingGroups"]:
            tags = markers.as_dict(g.get("Tags"))
            found.append(
                Candidate(
                    g["AutoScalingGroupName"],
                    frozenset({g["AutoScalingGroupName"]}),
                    tags,
                    None,
                    scope=",".join(g.get("AvailabilityZones", [])),
                )
            )
    return found


def _databases(conn: connecting.AwsConnection) -> list[Candidate]:
    found: list[Candidate] = []
    for page in conn.rds().get_paginator("describe_db_instances").paginate():
        for d in page["DBInstances"]:
            tags = markers.as_dict(d.get("TagList"))
            ident = d["DBInstanceIdentifier"]
            found.append(Candidate(ident, frozenset({ident}), tags, d.get("AvailabilityZone")))
    return found


def _security_groups(conn: connecting.AwsConnection) -> list[Candidate]:
    found: list[Candidate] = []
    for page in conn.ec2().get_paginator("describe_security_groups").paginate():
        for g in page["SecurityGroups"]:
            tags = markers.as_dict(g.get("Tags"))
            names = {g["GroupName"], *([tags["Name"]] if "Name" in tags else [])}
            found.append(Candidate(g["GroupId"], frozenset(names), tags, None, g.get("VpcId")))
    return found


def _users(conn: connecting.AwsConnection) -> list[Candidate]:
    iam = conn.iam()
    found: list[Candidate] = []
    for page in iam.get_paginator("list_users").paginate():
        for u in page["Users"]:
            name = u["UserName"]
            tags = suspending.user_tags(iam, name)
            found.append(Candidate(name, frozenset({name, u["Arn"]}), tags, None))
    return found


_POOLS: Final[Mapping[str, Callable[[connecting.AwsConnection], list[Candidate]]]] = {
    "subnet": _subnets,
    "instance": _instances,
    "autoscaling-group": _groups,
    "db-instance": _databases,
    "security-group": _security_groups,
    "iam-user": _users,
}


def _hint(kind: str, candidate: Candidate) -> targets.ServiceHint:
    tags = {k: v for k, v in candidate.tags.items() if not k.startswith(markers.PREFIX)}
    return targets.ServiceHint.of(
        provider=connecting.PROVIDER,
        tags=tags,
        resource_ids=(f"{_HINT_PREFIX[kind]}:{candidate.id}",),
        zone=candidate.zone,
    )


def _population(kind: str, pool: Iterable[Candidate], chosen: Iterable[Candidate]) -> int:
    pool = list(pool)
    if kind in ("subnet", "security-group"):
        scopes = {c.scope for c in chosen}
        if scopes:
            return sum(1 for c in pool if c.scope in scopes)
    return len(pool)


class AwsResolver(registry.TargetResolver):
    """Resolves every AWS target kind this provider acts on."""

    provider: ClassVar[str] = connecting.PROVIDER
    kinds: ClassVar[frozenset[str]] = KINDS

    def resolve(
        self, ctx: registry.ProviderContext, *, name: str, target: models.Target
    ) -> targets.Selection:
        if target.kind not in KINDS:
            raise errors.ProviderPermanent(
                f"target {name}: the aws provider cannot select kind {target.kind!r} "
                f"(it selects {', '.join(sorted(KINDS))})"
            )
        selector = target.selector
        if selector.zone is not None and target.kind in ("security-group", "iam-user"):
            raise errors.ProviderPermanent(
                f"target {name}: {target.kind} has no zone; drop selector.zone"
            )
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        with wrapping.edge(f"target {name} ({target.kind})"):
            pool = _POOLS[target.kind](conn)
            ignore = {markers.OPT_IN} if target.kind == "instance" else set()
            matched = [c for c in pool if _matches(c, selector, ignore_tags=ignore)]
            if target.kind == "autoscaling-group" and selector.zone is not None:
                matched = [c for c in matched if selector.zone in (c.scope or "").split(",")]
            chosen: list[Candidate] = []
            excluded: list[tuple[mutations.TargetRef, str]] = []
            for candidate in matched:
                why = self._exclusion(conn, target.kind, candidate)
                if why is None:
                    chosen.append(candidate)
                else:
                    excluded.append((self._ref(conn, target.kind, candidate), why))
        return targets.Selection(
            name=name,
            provider=connecting.PROVIDER,
            kind=target.kind,
            refs=tuple(self._ref(conn, target.kind, c) for c in chosen),
            population=_population(target.kind, pool, chosen),
            hints=tuple(_hint(target.kind, c) for c in chosen),
            excluded=tuple(excluded),
        )

    @staticmethod
    def _ref(conn: connecting.AwsConnection, kind: str, c: Candidate) -> mutations.TargetRef:
        return mutations.TargetRef(
            provider=connecting.PROVIDER, kind=kind, name=c.id, region=conn.region
        )

    @staticmethod
    def _exclusion(conn: connecting.AwsConnection, kind: str, c: Candidate) -> str | None:
        if kind == "instance" and c.tags.get(markers.OPT_IN) != "true":
            return f"not opted in to drills (tag {markers.OPT_IN}=true is required)"
        if kind == "iam-user":
            if c.names & set(conn.protected_principals):
                return "protected principal (spec.aws.protectedPrincipals)"
            if c.tags.get(markers.PROTECTED) == "true":
                return f"protected principal (tagged {markers.PROTECTED}=true)"
        return None
