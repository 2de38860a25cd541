"""Global failover: `aws.rds.global-failover`, an Aurora global database's writer moves to a
secondary region (not revertible).

Invariants:
- Targets are global clusters (kind `global-cluster`, by identifier) or DB instances (kind
  `db-instance`) whose Aurora cluster belongs to one; each global cluster is failed over
  once, however many of its members were selected.
- Plan refuses, with the fix: a global cluster that does not exist, a DB instance outside
  any global cluster, a global cluster with no secondary region (or with several and no
  `targetRegion`), and a `targetRegion` holding no secondary.
- `mode: switchover` (the default) is `SwitchoverGlobalCluster`, the planned move without
  data loss; `mode: failover` is `FailoverGlobalCluster(AllowDataLoss=true)`, the move a
  region outage forces. Either is sent to the secondary's region (its endpoint is up when
  the primary's is not) and names the secondary cluster by ARN.
- Applying again once the secondary is the writer sends nothing.
- There is no undo: `revertible=False`, `revert` does nothing, nothing is tagged (there is
  nothing for a sweep to heal). Lint requires `rollback: none` and a fail-back step under
  `spec.rollback` (or `irreversible: <why>`), as for `aws.rds.failover`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Final, Literal

import pydantic
from pydantic import alias_generators

from orchestrator import errors, lazy, mutations, registry
from orchestrator.providers.aws import connecting, fields, wrapping

if TYPE_CHECKING:
    from botocore import parsers as botocore_parsers
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_rds.type_defs import GlobalClusterTypeDef
else:  # imported when an answer cannot be parsed (`stormdrill validate` never does)
    botocore_parsers = lazy.Module("botocore.parsers")

log = logging.getLogger(__name__)

NAME: Final = "aws.rds.global-failover"
KIND: Final = "global-cluster"
Mode = Literal["failover", "switchover"]


class GlobalFailoverParams(pydantic.BaseModel):
    """`mode` (switchover | failover) and `targetRegion` (needed with several secondaries)."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    mode: Mode = "switchover"
    target_region: str | None = None


@dataclasses.dataclass(frozen=True)
class Topology:
    """A global cluster's members: the writer and the secondaries, by cluster ARN."""

    identifier: str
    writer: str
    secondaries: tuple[str, ...]

    @property
    def members(self) -> tuple[str, ...]:
        return (self.writer, *self.secondaries)


def region_of(arn: str) -> str:
    """`arn:aws:rds:us-west-2:123:cluster:x` -> `us-west-2`."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def topology(cluster: GlobalClusterTypeDef) -> Topology:
    members = cluster.get("GlobalClusterMembers", [])
    writers = [m["DBClusterArn"] for m in members if m.get("IsWriter")]
    return Topology(
        identifier=cluster["GlobalClusterIdentifier"],
        writer=writers[0] if writers else "",
        secondaries=tuple(sorted(m["DBClusterArn"] for m in members if not m.get("IsWriter"))),
    )


def describe(rds: RDSClient, identifier: str) -> Topology | None:
    """The global cluster `identifier`, or None when RDS does not know it."""
    try:
        found = rds.describe_global_clusters(GlobalClusterIdentifier=identifier)["GlobalClusters"]
    except wrapping.ClientError as exc:
        if wrapping.code(exc) == "GlobalClusterNotFoundFault":
            return None
        raise
    # Matched here too: moto ignores the identifier and answers every global cluster.
    wanted = identifier.lower()
    for cluster in found:
        if cluster["GlobalClusterIdentifier"].lower() == wanted:
            return topology(cluster)
    return None


def _global_of_instance(rds: RDSClient, instance: str, *, where: object) -> str:
    try:
        db = rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]
    except wrapping.ClientError as exc:
        if wrapping.code(exc) == "DBInstanceNotFound":
            raise errors.ProviderPermanent(f"{where}: no such DB instance") from exc
        raise
    cluster_id = db.get("DBClusterIdentifier")
    if cluster_id:
        cluster = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
        arn = cluster.get("DBClusterArn", "")
        for page in rds.get_paginator("describe_global_clusters").paginate():
            for candidate in page["GlobalClusters"]:
                if arn in topology(candidate).members:
                    return candidate["GlobalClusterIdentifier"]
    raise errors.ProviderPermanent(
        f"{where}: not in an Aurora global database, so there is no other region to fail "
        "over to; use aws.rds.failover for a failover inside the region"
    )


def choose_secondary(found: Topology, *, target_region: str | None, where: object) -> str:
    """The secondary cluster ARN to promote, or a refusal naming the fix."""
    if not found.secondaries:
        raise errors.ProviderPermanent(
            f"{where}: global database {found.identifier} has no secondary region (only "
            f"{region_of(found.writer) or 'no writer'}); add a secondary cluster in another "
            "region before drilling a region failover"
        )
    regions = {arn: region_of(arn) for arn in found.secondaries}
    if target_region is None:
        if len(found.secondaries) > 1:
            raise errors.ProviderPermanent(
                f"{where}: global database {found.identifier} has secondaries in "
                f"{', '.join(sorted(regions.values()))}; say which with 'targetRegion'"
            )
        return found.secondaries[0]
    matching = [arn for arn, region in regions.items() if region == target_region]
    if not matching:
        primary = region_of(found.writer)
        why = "is its primary" if primary == target_region else "holds no secondary of it"
        raise errors.ProviderPermanent(
            f"{where}: targetRegion {target_region} {why} (global database "
            f"{found.identifier}: primary {primary}, secondaries "
            f"{', '.join(sorted(regions.values()))}); pick a secondary's region"
        )
    return matching[0]


def regional(conn: connecting.AwsConnection, region: str) -> connecting.AwsConnection:
    """A connection like `conn` (same credentials and endpoint) in `region`."""
    if region == conn.region:
        return conn
    return connecting.AwsConnection(
        conn.session,
        region=region,
        endpoint_url=conn.endpoint_url,
        protected_principals=conn.protected_principals,
    )


class GlobalFailover(registry.Action[GlobalFailoverParams]):
    """Move an Aurora global database's writer to a secondary region (not revertible)."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = GlobalFailoverParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({KIND, "db-instance"})
    description: ClassVar[str] = (
        "Fail an Aurora global database over to a secondary region: SwitchoverGlobalCluster "
        "(mode switchover, no data loss) or FailoverGlobalCluster with AllowDataLoss (mode "
        "failover). Cannot be undone: fail back with a second step."
    )
    revertible: ClassVar[bool] = False

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: GlobalFailoverParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        rds = conn.rds()
        planned: list[mutations.PlannedMutation] = []
        seen: set[str] = set()
        for target in targets:
            with wrapping.edge(target):
                identifier = (
                    target.name
                    if target.kind == KIND
                    else _global_of_instance(rds, target.name, where=target)
                )
                found = describe(rds, identifier)
            if found is None:
                raise errors.ProviderPermanent(f"{target}: no such Aurora global database")
            if found.identifier in seen:
                continue
            seen.add(found.identifier)
            secondary = choose_secondary(found, target_region=params.target_region, where=target)
            data: dict[str, mutations.JsonValue] = {
                "irreversible": True,
                "region": conn.region,
                "globalCluster": found.identifier,
                "mode": params.mode,
                "fromCluster": found.writer,
                "fromRegion": region_of(found.writer),
                "toCluster": secondary,
                "toRegion": region_of(secondary),
            }
            planned.append(
                mutations.PlannedMutation(
                    step=NAME,
                    target=target,
                    action=NAME,
                    params=params.model_dump(by_alias=True),
                    pre_state={
                        "writer": found.writer,
                        "writerRegion": region_of(found.writer),
                        "secondaries": list(found.secondaries),
                    },
                    undo=mutations.UndoToken(action=NAME, data=data),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        data: Mapping[str, mutations.JsonValue] = mutation.undo.data
        identifier = fields.text(data, "globalCluster", owner=NAME)
        to_cluster = fields.text(data, "toCluster", owner=NAME)
        mode = fields.text(data, "mode", owner=NAME)
        rds = regional(conn, fields.text(data, "toRegion", owner=NAME)).rds()
        operation = "FailoverGlobalCluster" if mode == "failover" else "SwitchoverGlobalCluster"
        with wrapping.edge(mutation.target):
            now = describe(rds, identifier)
            if now is not None and now.writer == to_cluster:
                log.info(
                    "%s: %s is the writer already; nothing to send", mutation.target, to_cluster
                )
                return None
            try:
                if mode == "failover":
                    rds.failover_global_cluster(
                        GlobalClusterIdentifier=identifier,
                        TargetDbClusterIdentifier=to_cluster,
                        AllowDataLoss=True,
                    )
                else:
                    rds.switchover_global_cluster(
                        GlobalClusterIdentifier=identifier, TargetDbClusterIdentifier=to_cluster
                    )
            except botocore_parsers.ResponseParserError as exc:
                raise errors.ProviderPermanent(
                    f"{mutation.target}: the answer to {operation} is not an AWS answer "
                    f"({str(exc).splitlines()[0]}); if spec.aws.endpointUrl points at a "
                    "stand-in, it does not implement this call (moto 5.x does not)"
                ) from exc
        log.info(
            "%s: %s of %s to %s sent", mutation.target, operation, identifier, region_of(to_cluster)
        )
        return None

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        del ctx  # nothing to call: a failover has no undo
        log.info("%s cannot be undone (%s); fail back with a second step", NAME, dict(undo.data))
