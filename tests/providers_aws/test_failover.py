"""aws.rds.failover against moto: what moto can show (see docs/aws.md for what it cannot)."""

from __future__ import annotations

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import connecting, failover
from sandbox import aws
from tests.providers_aws import helpers


def test_failover_is_declared_not_revertible() -> None:
    assert helpers.action(failover.NAME).revertible is False


def test_multi_az_instance_is_rebooted_with_failover_and_revert_is_a_no_op(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    act = helpers.action(failover.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("db-instance", aws_seed.rds_id)])
    assert planned[0].pre_state == {"primaryZone": "us-east-1a", "writer": "payments-db"}

    helpers.apply_all(act, ctx, planned)
    act.revert(ctx, undo=planned[0].undo)

    db = conn.rds().describe_db_instances(DBInstanceIdentifier=aws_seed.rds_id)["DBInstances"][0]
    assert db["DBInstanceStatus"] == "available"  # moto accepts the reboot; the AZ stays put


def test_a_database_whose_primary_is_in_another_zone_is_left_alone(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    act = helpers.action(failover.NAME)

    planned = helpers.plan(
        act, ctx, [helpers.ref("db-instance", aws_seed.rds_id)], {"zone": "us-east-1b"}
    )

    assert planned == []


def test_aurora_cluster_member_fails_the_cluster_over_once_and_moto_swaps_the_writer(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
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
    act = helpers.action(failover.NAME)

    planned = helpers.plan(
        act,
        ctx,
        [helpers.ref("db-instance", "orders-1"), helpers.ref("db-instance", "orders-2")],
        {"zone": "us-east-1a"},
    )
    assert len(planned) == 1
    helpers.apply_all(act, ctx, planned)

    members = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"][0]
    writer = [
        m["DBInstanceIdentifier"] for m in members["DBClusterMembers"] if m["IsClusterWriter"]
    ]
    assert writer == ["orders-2"]


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
