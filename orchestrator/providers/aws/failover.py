"""Failover: `aws.rds.failover`, moving a database primary to its standby (not revertible).

Invariants:
- A Multi-AZ DB instance fails over with `reboot_db_instance(ForceFailover=True)`; an
  Aurora cluster member fails its cluster over with `failover_db_cluster` (once per
  cluster, however many members were selected).
- With `zone` given, only databases whose primary (writer) is in that zone are touched.
- A single-AZ, non-Aurora instance cannot fail over: refused at plan time.
- There is no undo: the action is `revertible=False` and `revert` does nothing; a
  scenario says `rollback: none` and fails back with a second failover step.
  Nothing is tagged, since there is nothing for a sweep to heal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, fields, wrapping

log = logging.getLogger(__name__)

NAME = "aws.rds.failover"


class FailoverParams(pydantic.BaseModel):
    """`zone`: fail over only databases whose primary is in this zone (default: all)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    zone: str | None = None


class Failover(registry.Action[FailoverParams]):
    """Force an RDS Multi-AZ failover, or an Aurora cluster failover."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = FailoverParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"db-instance"})
    description: ClassVar[str] = (
        "Fail a database over to its standby: reboot with ForceFailover for Multi-AZ "
        "instances, failover_db_cluster for Aurora. Cannot be undone (fail over again)."
    )
    revertible: ClassVar[bool] = False

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: FailoverParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        rds = conn.rds()
        planned: list[mutations.PlannedMutation] = []
        clusters: set[str] = set()
        for target in targets:
            with wrapping.edge(target):
                try:
                    db = rds.describe_db_instances(DBInstanceIdentifier=target.name)["DBInstances"][
                        0
                    ]
                except wrapping.ClientError as exc:
                    if wrapping.code(exc) == "DBInstanceNotFound":
                        raise errors.ProviderPermanent(
                            f"{target}: no such DB instance in {conn.region}"
                        ) from exc
                    raise
                cluster_id = db.get("DBClusterIdentifier")
                if cluster_id:
                    cluster = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)[
                        "DBClusters"
                    ][0]
                    writer = next(
                        (
                            m["DBInstanceIdentifier"]
                            for m in cluster.get("DBClusterMembers", [])
                            if m.get("IsClusterWriter")
                        ),
                        target.name,
                    )
                    if writer != target.name:
                        writer_db = rds.describe_db_instances(DBInstanceIdentifier=writer)[
                            "DBInstances"
                        ][0]
                    else:
                        writer_db = db
                    primary_zone = writer_db.get("AvailabilityZone", "")
                else:
                    writer = target.name
                    primary_zone = db.get("AvailabilityZone", "")
            if params.zone is not None and primary_zone != params.zone:
                log.info(
                    "%s: primary in %s, not %s; not failing over", target, primary_zone, params.zone
                )
                continue
            if cluster_id:
                if cluster_id in clusters:
                    continue
                clusters.add(cluster_id)
                data: dict[str, mutations.JsonValue] = {"kind": "cluster", "cluster": cluster_id}
            elif db.get("MultiAZ"):
                data = {"kind": "instance", "instance": target.name}
            else:
                raise errors.ProviderPermanent(
                    f"{target}: not Multi-AZ and not in an Aurora cluster, so it has no standby "
                    "to fail over to; enable Multi-AZ or drop the step"
                )
            planned.append(
                mutations.PlannedMutation(
                    step=NAME,
                    target=target,
                    action=NAME,
                    params=params.model_dump(),
                    pre_state={"primaryZone": primary_zone, "writer": writer},
                    undo=mutations.UndoToken(
                        action=NAME, data={**data, "irreversible": True, "region": conn.region}
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        rds = connecting.of(ctx.connection(connecting.PROVIDER)).rds()
        data = mutation.undo.data
        with wrapping.edge(mutation.target):
            if data.get("kind") == "cluster":
                cluster = fields.text(data, "cluster", owner=NAME)
                rds.failover_db_cluster(DBClusterIdentifier=cluster)
                log.info("%s: failed over Aurora cluster %s", mutation.target, cluster)
            else:
                instance = fields.text(data, "instance", owner=NAME)
                rds.reboot_db_instance(DBInstanceIdentifier=instance, ForceFailover=True)
                log.info("%s: rebooted with failover", mutation.target)
        return None

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        del ctx  # nothing to call: a failover has no undo
        log.info("%s cannot be undone (%s); fail over again to move back", NAME, dict(undo.data))
