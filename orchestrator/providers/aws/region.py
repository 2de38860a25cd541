"""Region: `aws.network.isolate-region`, every subnet of the selected VPCs cut off at once.

A thin action over `isolating` (`aws.network.isolate-subnets`): it lists the subnets of
the selected VPCs and hands them to the subnet isolation, whose mutations, deny-all ACLs,
markers, undo and sweep it reuses unchanged.

Invariants:
- Targets are VPCs (kind `vpc`) of the run's region (the connection's); `region`, when
  given, must be that region, so a scenario written for one region never cuts another.
- One mutation per (VPC, zone), exactly as isolate-subnets plans them (target
  `aws subnet <region>/<vpc>/<zone>`, original associations in the blocking ACL's tags);
  only the action name differs, so the journal and `stormdrill actions` tell them apart.
- Destructive, like isolate-subnets: the VPC target needs a `blastRadius`, counted in
  VPCs of the region. A VPC without subnets is refused (isolating it proves nothing), as
  is a subnet already isolated by another run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import ClassVar, Final

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, isolating, wrapping

log = logging.getLogger(__name__)

NAME: Final = "aws.network.isolate-region"
KIND: Final = "vpc"


class RegionParams(pydantic.BaseModel):
    """`region`: the region the VPCs are in (checked against the Environment's; optional)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    region: str | None = None


def subnets_of(conn: connecting.AwsConnection, vpc_ids: Sequence[str]) -> dict[str, list[str]]:
    """vpc -> its subnet ids (sorted), as AWS has them now."""
    found: dict[str, list[str]] = {vpc: [] for vpc in vpc_ids}
    if not vpc_ids:
        return found
    pages = (
        conn.ec2()
        .get_paginator("describe_subnets")
        .paginate(Filters=[{"Name": "vpc-id", "Values": list(vpc_ids)}])
    )
    for page in pages:
        for subnet in page["Subnets"]:
            found.setdefault(subnet["VpcId"], []).append(subnet["SubnetId"])
    return {vpc: sorted(ids) for vpc, ids in found.items()}


def _renamed(
    mutation: mutations.PlannedMutation, params: RegionParams
) -> mutations.PlannedMutation:
    return dataclasses.replace(
        mutation,
        step=NAME,
        action=NAME,
        params=params.model_dump(),
        undo=mutations.UndoToken(action=NAME, data=mutation.undo.data),
    )


class IsolateRegion(registry.Action[RegionParams]):
    """Isolate every subnet of the selected VPCs (deny-all ACLs, per VPC and zone)."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = RegionParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({KIND})
    description: ClassVar[str] = (
        "Isolate a region: every subnet of the selected VPCs goes onto a deny-all network "
        "ACL (one per VPC and zone, as isolate-subnets); undo restores the original "
        "associations."
    )
    destructive: ClassVar[bool] = True

    def __init__(self) -> None:
        self._subnets = isolating.IsolateSubnets()

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: RegionParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        if params.region is not None and params.region != conn.region:
            raise errors.ProviderPermanent(
                f"{NAME}: the step isolates {params.region}, but the environment connects to "
                f"{conn.region}; bind the drill to an environment of {params.region}"
            )
        vpc_ids = sorted({t.name for t in targets})
        with wrapping.edge(f"{NAME} VPCs {', '.join(vpc_ids)} in {conn.region}"):
            members = subnets_of(conn, vpc_ids)
        empty = [vpc for vpc in vpc_ids if not members.get(vpc)]
        if empty:
            raise errors.ProviderPermanent(
                f"{NAME}: VPC {', '.join(empty)} has no subnets in {conn.region}; "
                "drop it from the target's selector"
            )
        refs = [
            mutations.TargetRef(
                provider=connecting.PROVIDER, kind="subnet", name=subnet, region=conn.region
            )
            for vpc in vpc_ids
            for subnet in members[vpc]
        ]
        planned = self._subnets.plan(ctx, targets=refs, params=isolating.IsolateParams())
        log.info(
            "%s: %d subnet(s) of %d VPC(s) in %s, in %d (VPC, zone) group(s)",
            NAME,
            len(refs),
            len(vpc_ids),
            conn.region,
            len(planned),
        )
        return [_renamed(m, params) for m in planned]

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        refined = self._subnets.apply(ctx, mutation=mutation)
        return None if refined is None else mutations.UndoToken(action=NAME, data=refined.data)

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        self._subnets.revert(ctx, undo=undo)
