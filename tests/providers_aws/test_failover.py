"""aws.rds.failover against moto: what moto can show (see docs/aws.md for what it cannot).

What a failover changed is asserted three ways: the calls that reached moto (recorded with
a botocore event hook on a fresh client, never a patch), the state moto describes (the
Aurora writer), and the journal entry a run keeps (a real SQLite journal). Its "undo" must
change nothing and send nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import context, errors, journal, mutations, registry, states
from orchestrator.providers.aws import connecting, failover
from sandbox import aws
from tests.engine_core import factories
from tests.providers_aws import helpers

_READS = ("Describe", "List")


class Calls:
    """Every non-read RDS call the client sends, as (operation, parameters)."""

    def __init__(self, conn: connecting.AwsConnection) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        conn.rds().meta.events.register("provide-client-params.rds.*", self._hook)

    def _hook(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not str(model.name).startswith(_READS):
            self.sent.append((str(model.name), dict(params)))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        taken, self.sent = self.sent, []
        return taken


def _rds_state(conn: connecting.AwsConnection) -> dict[str, Any]:
    """Every DB instance and cluster as moto describes them, less the clock-driven fields."""
    rds = conn.rds()
    return {
        "instances": [_unclocked(db) for db in rds.describe_db_instances()["DBInstances"]],
        "clusters": [_unclocked(c) for c in rds.describe_db_clusters()["DBClusters"]],
    }


def _unclocked(described: Any) -> dict[str, Any]:
    """A describe item without `*RestorableTime` (moto stamps it with now on every call)."""
    return {k: v for k, v in helpers.strip(described).items() if not k.endswith("RestorableTime")}


def _writers(conn: connecting.AwsConnection, cluster: str) -> list[str]:
    found = conn.rds().describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
    return [m["DBInstanceIdentifier"] for m in found["DBClusterMembers"] if m["IsClusterWriter"]]


def _journaled(
    tmp_path: Path,
    act: registry.Action[Any],
    ctx: context.RunContext,
    planned: list[mutations.PlannedMutation],
) -> list[mutations.JournalEntry]:
    """Apply `planned` the engine's way (intent, apply, applied); the entries read back."""
    with journal.open_store(f"sqlite:///{tmp_path / 'journal.db'}") as store:
        run = store.create_run(
            factories.make_run(run_id=str(ctx.run_id), state=states.RunState.INJECTING)
        )
        for mutation in planned:
            entry = store.record_intent(run.id, mutation)
            store.mark_applied(entry.seq, undo=act.apply(ctx, mutation=mutation))
        return store.entries(run.id)


def test_failover_is_declared_not_revertible() -> None:
    assert helpers.action(failover.NAME).revertible is False


def test_multi_az_instance_is_rebooted_with_failover_and_revert_is_a_no_op(
    tmp_path: Path, fresh_ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    conn = connecting.of(fresh_ctx.connection("aws"))
    calls = Calls(conn)
    act = helpers.action(failover.NAME)
    planned = helpers.plan(act, fresh_ctx, [helpers.ref("db-instance", aws_seed.rds_id)])
    assert planned[0].pre_state == {"primaryZone": "us-east-1a", "writer": "payments-db"}
    assert calls.take() == []  # planning only reads

    entries = _journaled(tmp_path, act, fresh_ctx, planned)

    assert calls.take() == [
        ("RebootDBInstance", {"DBInstanceIdentifier": aws_seed.rds_id, "ForceFailover": True})
    ]
    [entry] = entries
    assert entry.state is mutations.EntryState.APPLIED
    assert (entry.action, entry.target.name) == (failover.NAME, aws_seed.rds_id)
    assert entry.pre_state == {"primaryZone": "us-east-1a", "writer": "payments-db"}
    assert dict(entry.undo.data) == {
        "kind": "instance",
        "instance": aws_seed.rds_id,
        "irreversible": True,
        "region": "us-east-1",
    }
    db = conn.rds().describe_db_instances(DBInstanceIdentifier=aws_seed.rds_id)["DBInstances"][0]
    assert db["DBInstanceStatus"] == "available"  # moto accepts the reboot; the AZ stays put
    before_undo = _rds_state(conn)

    act.revert(fresh_ctx, undo=entry.undo)

    assert calls.take() == []
    assert _rds_state(conn) == before_undo


def test_a_database_whose_primary_is_in_another_zone_is_left_alone(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    act = helpers.action(failover.NAME)

    planned = helpers.plan(
        act, ctx, [helpers.ref("db-instance", aws_seed.rds_id)], {"zone": "us-east-1b"}
    )

    assert planned == []


def test_aurora_cluster_member_fails_the_cluster_over_once_and_moto_swaps_the_writer(
    tmp_path: Path, fresh_ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    conn = connecting.of(fresh_ctx.connection("aws"))
    rds = conn.rds()
    rds.create_db_cluster(
        DBClusterIdentifier="orders",
        Engine="aurora-postgresql",
        MasterUsername="orders",
        MasterUserPassword="sandbox-password",
        DBSubnetGroupName=aws_seed.db_subnet_group,
    )
    for name, zone in (("orders-1", "us-east-1a"), ("orders-2", "us-east-1b")):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBClusterIdentifier="orders",
            Engine="aurora-postgresql",
            DBInstanceClass="db.r5.large",
            AvailabilityZone=zone,
        )
    assert _writers(conn, "orders") == ["orders-1"]
    calls = Calls(conn)
    act = helpers.action(failover.NAME)

    planned = helpers.plan(
        act,
        fresh_ctx,
        [helpers.ref("db-instance", "orders-1"), helpers.ref("db-instance", "orders-2")],
        {"zone": "us-east-1a"},
    )
    assert len(planned) == 1
    entries = _journaled(tmp_path, act, fresh_ctx, planned)

    assert _writers(conn, "orders") == ["orders-2"]
    assert calls.take() == [("FailoverDBCluster", {"DBClusterIdentifier": "orders"})]
    [entry] = entries
    assert entry.state is mutations.EntryState.APPLIED
    assert entry.pre_state == {"primaryZone": "us-east-1a", "writer": "orders-1"}
    assert dict(entry.undo.data) == {
        "kind": "cluster",
        "cluster": "orders",
        "irreversible": True,
        "region": "us-east-1",
    }
    before_undo = _rds_state(conn)

    act.revert(fresh_ctx, undo=entry.undo)

    assert calls.take() == []
    assert _rds_state(conn) == before_undo
    assert _writers(conn, "orders") == ["orders-2"]


def test_a_single_az_instance_cannot_fail_over(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    conn.rds().create_db_instance(
        DBInstanceIdentifier="reports-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="reports",
        MasterUserPassword="sandbox-password",
        MultiAZ=False,
        DBSubnetGroupName=aws_seed.db_subnet_group,
    )
    act = helpers.action(failover.NAME)

    with pytest.raises(errors.ProviderPermanent, match="not Multi-AZ"):
        helpers.plan(act, ctx, [helpers.ref("db-instance", "reports-db")])
