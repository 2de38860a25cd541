"""aws.network.isolate-region against moto: every subnet of a VPC, through isolate-subnets."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from orchestrator import context, errors, guardrails
from orchestrator.providers.aws import (
    connecting,
    isolating,
    markers,
    region,
    selecting,
    sweeping,
)
from sandbox import aws
from scenarios import models
from tests.providers_aws import helpers


def network(conn: connecting.AwsConnection, vpc_id: str) -> dict[str, Any]:
    """The VPC's ACLs (entries, tags) and which ACL each subnet uses."""
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


def vpc_target(*, blast_max: int | None = None, **selector: Any) -> models.Target:
    raw: dict[str, Any] = {"provider": "aws", "kind": region.KIND, "selector": selector}
    if blast_max is not None:
        raw["blastRadius"] = {"max": blast_max}
    return models.Target.model_validate(raw)


def test_plan_covers_every_subnet_of_the_vpc_per_zone_and_touches_nothing(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    before = network(conn, aws_seed.vpc_id)
    act = helpers.action(region.NAME)

    planned = helpers.plan(act, ctx, [helpers.ref(region.KIND, aws_seed.vpc_id)])

    assert [(m.action, m.target.kind, m.target.name) for m in planned] == [
        (region.NAME, "subnet", zone) for zone in sorted(aws_seed.subnet_ids)
    ]
    assert {m.undo.action for m in planned} == {region.NAME}
    covered = {s for m in planned for s in m.undo.data["original"]}  # type: ignore[union-attr]
    assert covered == set(aws_seed.subnet_ids.values())
    assert network(conn, aws_seed.vpc_id) == before


def test_apply_isolates_every_subnet_with_marked_acls_and_undo_restores_the_vpc(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    before = network(conn, aws_seed.vpc_id)
    act = helpers.action(region.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref(region.KIND, aws_seed.vpc_id)], {})

    tokens = helpers.apply_all(act, ctx, planned)

    acls = blocking_acls(conn)
    assert len(acls) == len(aws_seed.subnet_ids)
    for acl in acls:
        tags = markers.as_dict(acl["Tags"])
        assert tags[markers.RUN_ID] == "run-1" and markers.EXPIRES_AT in tags
        assert markers.ORIGINAL_ASSOCIATIONS in tags
    blocking = {acl["NetworkAclId"] for acl in acls}
    assert {subnet_acl(conn, s) for s in aws_seed.subnet_ids.values()} == blocking
    assert {t.action for t in tokens} == {region.NAME}

    for token in tokens:
        act.revert(ctx, undo=token)

    assert network(conn, aws_seed.vpc_id) == before
    assert blocking_acls(conn) == []
    for token in tokens:
        act.revert(ctx, undo=token)  # twice is harmless
    assert network(conn, aws_seed.vpc_id) == before


def test_a_subnet_someone_moved_during_the_drill_is_left_where_it_is(
    ctx: context.RunContext,
    conn: connecting.AwsConnection,
    aws_seed: aws.AwsSeed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ec2 = conn.ec2()
    moved = aws_seed.subnet_ids["us-east-1a"]
    act = helpers.action(region.NAME)
    tokens = helpers.apply_all(
        act, ctx, helpers.plan(act, ctx, [helpers.ref(region.KIND, aws_seed.vpc_id)])
    )
    human_acl = ec2.create_network_acl(VpcId=aws_seed.vpc_id)["NetworkAcl"]["NetworkAclId"]
    association = isolating.current_associations(ec2, [moved])[moved][1]
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=human_acl)

    with caplog.at_level(logging.WARNING, logger=isolating.__name__):
        for token in tokens:
            act.revert(ctx, undo=token)

    assert subnet_acl(conn, moved) == human_acl
    others = [s for zone, s in aws_seed.subnet_ids.items() if zone != "us-east-1a"]
    assert {subnet_acl(conn, s) for s in others} == {aws_seed.default_network_acl_id}
    assert blocking_acls(conn) == []
    assert f"{moved}: moved to {human_acl} by someone else" in caplog.text


def test_a_step_for_another_region_is_refused_before_anything_is_read(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    act = helpers.action(region.NAME)

    with pytest.raises(
        errors.ProviderPermanent, match=r"isolates us-west-2.*connects to us-east-1"
    ):
        helpers.plan(act, ctx, [helpers.ref(region.KIND, aws_seed.vpc_id)], {"region": "us-west-2"})


def test_a_vpc_without_subnets_is_refused(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    empty = conn.ec2().create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    act = helpers.action(region.NAME)

    with pytest.raises(errors.ProviderPermanent, match=f"VPC {empty} has no subnets"):
        helpers.plan(act, ctx, [helpers.ref(region.KIND, empty)])


def test_a_vpc_with_a_subnet_isolated_by_another_run_is_refused(
    ctx: context.RunContext, expired_ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    subnets = helpers.action(isolating.NAME)
    refs = [helpers.ref("subnet", aws_seed.subnet_ids["us-east-1b"])]
    helpers.apply_all(subnets, expired_ctx, helpers.plan(subnets, expired_ctx, refs))
    act = helpers.action(region.NAME)

    with pytest.raises(errors.ProviderPermanent, match="already isolated by run run-dead"):
        helpers.plan(act, ctx, [helpers.ref(region.KIND, aws_seed.vpc_id)])


def test_vpcs_are_selected_by_tag_and_more_than_the_blast_radius_is_refused(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    ec2 = conn.ec2()
    second = ec2.create_vpc(CidrBlock="10.98.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[second], Tags=[{"Key": "Name", "Value": "shop"}])
    resolver = selecting.RegionResolver()
    one = vpc_target(ids=[aws_seed.vpc_id], blast_max=1)
    both = vpc_target(tags={"Name": "shop"}, blast_max=1)

    picked = resolver.resolve(ctx, name="one", target=one)
    too_many = resolver.resolve(ctx, name="both", target=both)

    assert [r.name for r in picked.refs] == [aws_seed.vpc_id]
    assert picked.hints[0].resource_ids == (f"vpc:{aws_seed.vpc_id}",)
    assert [v.ok for v in guardrails.check_blast_radius(picked, one, destructive=True)] == [True]
    (verdict,) = guardrails.check_blast_radius(too_many, both, destructive=True)
    assert not verdict.ok and "more than blastRadius.max 1" in verdict.message
    (unlimited,) = guardrails.check_blast_radius(
        picked, vpc_target(ids=[aws_seed.vpc_id]), destructive=True
    )
    assert not unlimited.ok and "no blastRadius" in unlimited.message
    assert helpers.registry_with_aws().catalog().actions[region.NAME].destructive


def test_a_vpc_selector_with_a_zone_is_refused(ctx: context.RunContext) -> None:
    with pytest.raises(errors.ProviderPermanent, match=r"drop selector\.zone"):
        selecting.RegionResolver().resolve(
            ctx, name="vpc", target=vpc_target(zone="us-east-1a", tags={"Name": "shop"})
        )


def test_an_orphaned_region_isolation_is_healed_by_the_sweep_from_its_tags(
    expired_ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    conn = connecting.of(expired_ctx.connection("aws"))
    before = network(conn, aws_seed.vpc_id)
    act = helpers.action(region.NAME)
    helpers.apply_all(
        act,
        expired_ctx,
        helpers.plan(act, expired_ctx, [helpers.ref(region.KIND, aws_seed.vpc_id)]),
    )

    findings = sweeping.AwsSweeper().sweep(expired_ctx, is_orphan=lambda *_: True, dry_run=False)

    acl_findings = [f for f in findings if f.target.kind == "network-acl"]
    assert len(acl_findings) == len(aws_seed.subnet_ids)
    assert all(f.healed for f in acl_findings)
    assert network(conn, aws_seed.vpc_id) == before
