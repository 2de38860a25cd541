"""Resolving AWS targets: selectors, populations, exclusions and service hints."""

from __future__ import annotations

from orchestrator import context, targets
from orchestrator.providers.aws import resolving
from sandbox import aws
from tests.providers_aws import helpers


def resolve(ctx: context.RunContext, kind: str, **selector: object) -> targets.Selection:
    return resolving.AwsResolver().resolve(ctx, name="t", target=helpers.target(kind, **selector))


def test_zone_subnets_resolve_within_their_vpc_population(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    sel = resolve(ctx, "subnet", zone="us-east-1a", tags={"stormdrill:allow": "true"})

    assert [r.name for r in sel.refs] == [aws_seed.subnet_ids["us-east-1a"]]
    assert sel.population == 3
    assert sel.hints[0].zone == "us-east-1a"
    assert sel.hints[0].resource_ids == (f"subnet:{aws_seed.subnet_ids['us-east-1a']}",)


def test_instances_without_the_opt_in_tag_are_excluded_with_a_reason(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    sel = resolve(ctx, "instance", zone="us-east-1a", tags={"stormdrill:allow": "true"})

    chosen = {r.name for r in sel.refs}
    assert set(aws_seed.instance_ids["us-east-1a"]) <= chosen
    excluded = {ref.name: why for ref, why in sel.excluded}
    assert "stormdrill:allow=true" in excluded[aws_seed.bastion_id]
    assert aws_seed.bastion_id not in chosen


def test_percent_blast_radius_has_the_region_pool_as_denominator(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    sel = resolve(ctx, "instance", zone="us-east-1a", tags={"app": "checkout"})

    assert sel.count == 2
    # 6 checkout instances, the bastion and the web group's 3 instances.
    assert sel.population == 10
    assert sel.percent() == 20.0
    assert dict(sel.hints[0].tags)["app"] == "checkout"


def test_named_group_and_database_resolve_with_resource_id_hints(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    asg = resolve(ctx, "autoscaling-group", names=["shop-web-asg"])
    db = resolve(ctx, "db-instance", names=["payments-db"])
    sg = resolve(ctx, "security-group", names=["shop-payments"])

    assert asg.hints[0].resource_ids == ("asg:shop-web-asg",)
    assert (db.count, db.hints[0].resource_ids, db.hints[0].zone) == (
        1,
        ("rds:payments-db",),
        "us-east-1a",
    )
    assert [r.name for r in sg.refs] == [aws_seed.security_group_ids["shop-payments"]]


def test_protected_principals_are_excluded_and_entity_refs_name_users(
    ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    sel = resolve(ctx, "iam-user", names=["user:default/alice", "frank"])

    assert [r.name for r in sel.refs] == ["alice"]
    assert [(r.name, "protected" in why) for r, why in sel.excluded] == [("frank", True)]
    assert sel.population == len(aws_seed.iam_users)
