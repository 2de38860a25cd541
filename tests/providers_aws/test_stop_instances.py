"""aws.ec2.stop-instances against moto: opt-in, apply, exact undo, markers."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import connecting, markers, stopping
from sandbox import aws
from tests.providers_aws import helpers

ZONE = "us-east-1a"


def instances(conn: connecting.AwsConnection, ids: list[str]) -> list[Any]:
    answer = conn.ec2().describe_instances(InstanceIds=ids)
    found = [i for r in answer["Reservations"] for i in r["Instances"]]
    return list(helpers.strip(sorted(found, key=lambda i: i["InstanceId"])))


def test_stop_then_undo_starts_exactly_the_instances_that_were_running(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    running, already_stopped = aws_seed.instance_ids[ZONE]
    conn.ec2().stop_instances(InstanceIds=[already_stopped])
    ids = [running, already_stopped]
    before = instances(conn, ids)
    act = helpers.action(stopping.NAME)

    planned = helpers.plan(act, ctx, [helpers.ref("instance", i) for i in ids])
    assert instances(conn, ids) == before
    assert [m.target.name for m in planned] == [running]

    tokens = helpers.apply_all(act, ctx, planned)
    stopped = instances(conn, [running])[0]
    assert stopped["State"]["Name"] == "stopped"
    tags = markers.as_dict(stopped["Tags"])
    assert tags[markers.RUN_ID] == "run-1" and markers.EXPIRES_AT in tags
    assert tags[markers.UNDO] == '{"start":true}'

    for token in tokens:
        act.revert(ctx, undo=token)
        act.revert(ctx, undo=token)
    assert instances(conn, ids) == before


def test_undo_of_a_never_applied_stop_does_not_start_an_instance_stopped_by_someone_else(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    instance = aws_seed.instance_ids[ZONE][0]
    act = helpers.action(stopping.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("instance", instance)])
    conn.ec2().stop_instances(InstanceIds=[instance])
    before = instances(conn, [instance])

    act.revert(ctx, undo=planned[0].undo)

    assert instances(conn, [instance]) == before


def test_an_instance_without_the_opt_in_tag_is_refused_at_plan(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    act = helpers.action(stopping.NAME)

    with pytest.raises(errors.ProviderPermanent, match="stormdrill:allow=true"):
        helpers.plan(act, ctx, [helpers.ref("instance", aws_seed.bastion_id)])
