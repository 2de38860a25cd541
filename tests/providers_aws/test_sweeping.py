"""The AWS sweeper heals every marked fault of a dead run from tags alone (no journal)."""

from __future__ import annotations

from typing import Any

from orchestrator import context
from orchestrator.providers.aws import (
    connecting,
    egress,
    isolating,
    scaling,
    stopping,
    suspending,
    sweeping,
)
from sandbox import aws
from tests.providers_aws import helpers
from tests.providers_aws import test_deny_egress as sg_tests
from tests.providers_aws import test_isolate_subnets as acl_tests
from tests.providers_aws import test_remove_zone as asg_tests
from tests.providers_aws import test_stop_instances as ec2_tests
from tests.providers_aws import test_suspend_access as iam_tests


def world(conn: connecting.AwsConnection, seed: aws.AwsSeed) -> dict[str, Any]:
    group = asg_tests.group(conn)
    group.pop("Instances")
    return {
        "network": acl_tests.network(conn, seed.vpc_id),
        "instances": ec2_tests.instances(conn, list(seed.instance_ids["us-east-1a"])),
        "sg": sg_tests.security_group(conn, seed.security_group_ids[aws.PAYMENTS_SG_NAME]),
        "asg": group,
        "alice": iam_tests.user(conn, "alice"),
    }


def inject_everything(ctx: context.RunContext, seed: aws.AwsSeed) -> None:
    zone = "us-east-1a"
    for name, kind, ids, params in (
        (isolating.NAME, "subnet", [seed.subnet_ids[zone]], {}),
        (stopping.NAME, "instance", list(seed.instance_ids[zone]), {}),
        (
            scaling.NAME,
            "autoscaling-group",
            ["shop-web-asg"],
            {"zone": zone, "suspendProcesses": ["AZRebalance"]},
        ),
        (
            egress.NAME,
            "security-group",
            [seed.security_group_ids[aws.PAYMENTS_SG_NAME]],
            {"cidr": aws.VENDOR_CIDR, "port": 443, "broaderRules": "keep"},
        ),
        (suspending.NAME, "iam-user", ["alice"], {}),
    ):
        act = helpers.action(name)
        helpers.apply_all(
            act, ctx, helpers.plan(act, ctx, [helpers.ref(kind, i) for i in ids], params)
        )


def test_sweep_heals_every_fault_of_an_expired_run_without_the_journal(
    ctx: context.RunContext,
    expired_ctx: context.RunContext,
    conn: connecting.AwsConnection,
    aws_seed: aws.AwsSeed,
) -> None:
    before = world(conn, aws_seed)
    inject_everything(expired_ctx, aws_seed)
    assert world(conn, aws_seed) != before

    findings = sweeping.AwsSweeper().sweep(
        ctx, is_orphan=lambda run_id, _expires_at: run_id == "run-dead", dry_run=False
    )

    kinds = sorted(f.target.kind for f in findings)
    assert kinds == [
        "autoscaling-group",
        "iam-user",
        "instance",
        "instance",
        "network-acl",
        "security-group",
    ]
    assert all(f.healed and f.expired and f.run_id == "run-dead" for f in findings), findings
    assert world(conn, aws_seed) == before
    assert sweeping.AwsSweeper().sweep(ctx, is_orphan=lambda *_: True, dry_run=False) == []


def test_dry_run_and_live_runs_leave_faults_in_place(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    inject_everything(ctx, aws_seed)
    during = world(conn, aws_seed)

    dry = sweeping.AwsSweeper().sweep(ctx, is_orphan=lambda *_: True, dry_run=True)
    alive = sweeping.AwsSweeper().sweep(ctx, is_orphan=lambda *_: False, dry_run=False)

    assert len(dry) == len(alive) == 6
    assert not any(f.healed for f in [*dry, *alive])
    assert not any(f.expired for f in alive)
    assert world(conn, aws_seed) == during
