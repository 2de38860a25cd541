"""aws.network.isolate-subnets against moto: plan, apply, undo, markers, drift."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import connecting, isolating, markers
from sandbox import aws
from tests.providers_aws import helpers

ZONE = "us-east-1a"


def network(conn: connecting.AwsConnection, vpc_id: str) -> dict[str, Any]:
    """The VPC's ACLs and which ACL each subnet uses (association ids change on replace)."""
    acls = conn.ec2().describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    return {
        "acls": sorted(
            (
                acl["NetworkAclId"],
                acl["IsDefault"],
                repr(sorted(acl["Entries"], key=repr)),
                repr(sorted(acl.get("Tags", []), key=repr)),
            )
            for acl in acls["NetworkAcls"]
        ),
        "subnets": sorted(
            (a["SubnetId"], a["NetworkAclId"])
            for acl in acls["NetworkAcls"]
            for a in acl["Associations"]
        ),
    }


def blocking_acls(conn: connecting.AwsConnection) -> list[Any]:
    return conn.ec2().describe_network_acls(
        Filters=[{"Name": "tag-key", "Values": [markers.RUN_ID]}]
    )["NetworkAcls"]


def subnet_acl(conn: connecting.AwsConnection, subnet_id: str) -> str:
    return isolating.current_associations(conn.ec2(), [subnet_id])[subnet_id][0]


def test_plan_touches_nothing_and_groups_subnets_by_vpc_and_zone(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    before = network(conn, aws_seed.vpc_id)
    act = helpers.action(isolating.NAME)
    refs = [helpers.ref("subnet", aws_seed.subnet_ids[z]) for z in ("us-east-1a", "us-east-1b")]

    planned = helpers.plan(act, ctx, refs)

    assert [m.target.name for m in planned] == ["us-east-1a", "us-east-1b"]
    assert planned[0].undo.data["original"] == {
        aws_seed.subnet_ids[ZONE]: aws_seed.default_network_acl_id
    }
    assert network(conn, aws_seed.vpc_id) == before


def test_apply_moves_subnets_to_a_tagged_deny_all_acl_and_undo_restores_everything(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    subnet = aws_seed.subnet_ids[ZONE]
    before = network(conn, aws_seed.vpc_id)
    act = helpers.action(isolating.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("subnet", subnet)])

    (token,) = helpers.apply_all(act, ctx, planned)

    (acl,) = blocking_acls(conn)
    tags = markers.as_dict(acl["Tags"])
    assert tags[markers.RUN_ID] == "run-1"
    assert markers.EXPIRES_AT in tags
    assert isolating.decode_associations(tags[markers.ORIGINAL_ASSOCIATIONS]) == {
        subnet: aws_seed.default_network_acl_id
    }
    assert subnet_acl(conn, subnet) == acl["NetworkAclId"]
    denies = {(e["Egress"], e["RuleAction"], e["CidrBlock"]) for e in acl["Entries"]}
    assert denies == {(True, "deny", "0.0.0.0/0"), (False, "deny", "0.0.0.0/0")}
    assert token.data["blockingAclId"] == acl["NetworkAclId"]

    act.revert(ctx, undo=token)

    assert network(conn, aws_seed.vpc_id) == before
    assert blocking_acls(conn) == []
    act.revert(ctx, undo=token)  # twice is harmless
    assert network(conn, aws_seed.vpc_id) == before


def test_undo_with_the_planned_token_finds_the_acl_by_its_tags(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    before = network(conn, aws_seed.vpc_id)
    act = helpers.action(isolating.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("subnet", aws_seed.subnet_ids[ZONE])])
    act.apply(ctx, mutation=planned[0])

    act.revert(ctx, undo=planned[0].undo)  # as if we crashed before refining the token

    assert network(conn, aws_seed.vpc_id) == before


def test_undo_of_a_never_applied_isolation_changes_nothing(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    before = network(conn, aws_seed.vpc_id)
    act = helpers.action(isolating.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("subnet", aws_seed.subnet_ids[ZONE])])

    act.revert(ctx, undo=planned[0].undo)

    assert network(conn, aws_seed.vpc_id) == before


def test_undo_leaves_a_subnet_someone_moved_meanwhile_where_it_is(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    ec2 = conn.ec2()
    moved, kept = aws_seed.subnet_ids["us-east-1a"], aws_seed.subnet_ids["us-east-1b"]
    act = helpers.action(isolating.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("subnet", moved), helpers.ref("subnet", kept)])
    tokens = helpers.apply_all(act, ctx, planned)
    human_acl = ec2.create_network_acl(VpcId=aws_seed.vpc_id)["NetworkAcl"]["NetworkAclId"]
    association = isolating.current_associations(ec2, [moved])[moved][1]
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=human_acl)

    for token in tokens:
        act.revert(ctx, undo=token)

    assert subnet_acl(conn, moved) == human_acl
    assert subnet_acl(conn, kept) == aws_seed.default_network_acl_id
    assert blocking_acls(conn) == []


def test_a_subnet_already_isolated_by_another_run_is_refused_at_plan(
    ctx: context.RunContext, expired_ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    act = helpers.action(isolating.NAME)
    refs = [helpers.ref("subnet", aws_seed.subnet_ids[ZONE])]
    helpers.apply_all(act, expired_ctx, helpers.plan(act, expired_ctx, refs))

    with pytest.raises(errors.ProviderPermanent, match="already isolated by run run-dead"):
        helpers.plan(act, ctx, refs)


def test_long_original_associations_are_split_over_numbered_tags() -> None:
    mapping = {f"subnet-{n:017x}": f"acl-{n:017x}" for n in range(12)}
    encoded = isolating.encode_associations(mapping)

    tags = markers.split(markers.ORIGINAL_ASSOCIATIONS, encoded)

    assert len(tags) > 1
    assert all(len(v) <= markers.TAG_VALUE_MAX for v in tags.values())
    assert (
        isolating.decode_associations(markers.join(tags, markers.ORIGINAL_ASSOCIATIONS) or "")
        == mapping
    )


def test_throttling_while_undoing_is_retryable_and_a_retry_finishes_the_undo(
    fresh_ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    ctx = fresh_ctx
    conn = connecting.of(ctx.connection("aws"))
    before = network(conn, aws_seed.vpc_id)
    act = helpers.action(isolating.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("subnet", aws_seed.subnet_ids[ZONE])])
    (token,) = helpers.apply_all(act, ctx, planned)
    throttle = helpers.Throttle(
        conn.ec2(), "ReplaceNetworkAclAssociation", times=2, code="RequestLimitExceeded"
    )

    for _ in range(2):
        with pytest.raises(errors.ProviderRetryable, match="RequestLimitExceeded"):
            act.revert(ctx, undo=token)
    act.revert(ctx, undo=token)

    assert throttle.calls == 3
    assert network(conn, aws_seed.vpc_id) == before
