"""aws.autoscaling.remove-zone against moto: subnets and processes out and back."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import connecting, markers, scaling
from sandbox import aws
from tests.providers_aws import helpers

ZONE = "us-east-1a"


def group(conn: connecting.AwsConnection) -> dict[str, Any]:
    answer = conn.autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=["shop-web-asg"])
    g = helpers.strip(answer["AutoScalingGroups"][0])
    g["SuspendedProcesses"] = sorted(p["ProcessName"] for p in g["SuspendedProcesses"])
    g["Tags"] = sorted(g["Tags"], key=lambda t: t["Key"])
    return dict(g)


def test_remove_zone_then_undo_restores_the_exact_subnet_list_and_processes(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    conn.autoscaling().suspend_processes(
        AutoScalingGroupName="shop-web-asg", ScalingProcesses=["Launch"]
    )
    before = group(conn)
    act = helpers.action(scaling.NAME)
    params = {"zone": ZONE, "suspendProcesses": ["AZRebalance", "Launch"]}

    planned = helpers.plan(act, ctx, [helpers.ref("autoscaling-group", "shop-web-asg")], params)
    assert group(conn) == before
    assert planned[0].undo.data["suspended"] == ["AZRebalance"]

    (token,) = helpers.apply_all(act, ctx, planned)
    during = group(conn)
    assert aws_seed.subnet_ids[ZONE] not in during["VPCZoneIdentifier"]
    assert during["SuspendedProcesses"] == ["AZRebalance", "Launch"]
    tags = {t["Key"]: t["Value"] for t in during["Tags"]}
    assert tags[markers.RUN_ID] == "run-1"
    assert tags[markers.PREVIOUS_SUBNETS] == before["VPCZoneIdentifier"].replace(",", "/")

    act.revert(ctx, undo=token)
    act.revert(ctx, undo=token)

    after = group(conn)
    after.pop("Instances"), before.pop("Instances")  # moto does not move instances either way
    assert after == before


def test_undo_of_a_never_applied_zone_removal_changes_nothing(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    before = group(conn)
    act = helpers.action(scaling.NAME)
    planned = helpers.plan(
        act, ctx, [helpers.ref("autoscaling-group", "shop-web-asg")], {"zone": ZONE}
    )

    act.revert(ctx, undo=planned[0].undo)

    assert group(conn) == before


def test_removing_the_only_zone_of_a_group_is_refused(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    conn.autoscaling().update_auto_scaling_group(
        AutoScalingGroupName="shop-web-asg", VPCZoneIdentifier=aws_seed.subnet_ids[ZONE]
    )
    act = helpers.action(scaling.NAME)

    with pytest.raises(errors.ProviderPermanent, match="nowhere to run"):
        helpers.plan(act, ctx, [helpers.ref("autoscaling-group", "shop-web-asg")], {"zone": ZONE})
