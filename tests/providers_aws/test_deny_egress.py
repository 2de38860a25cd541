"""aws.network.deny-egress against moto: vendor rules out and back, descriptions kept."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import connecting, egress, markers
from sandbox import aws
from tests.providers_aws import helpers

VENDOR = {"cidr": aws.VENDOR_CIDR, "port": 443}


def security_group(conn: connecting.AwsConnection, group_id: str) -> dict[str, Any]:
    g = conn.ec2().describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    g = helpers.strip(g)
    g["IpPermissionsEgress"] = sorted(g["IpPermissionsEgress"], key=repr)
    g["Tags"] = sorted(g.get("Tags", []), key=repr)
    return dict(g)


@pytest.fixture
def group_id(conn: connecting.AwsConnection, aws_seed: aws.AwsSeed) -> str:
    """shop-payments as docs/sandbox-world.md has it (the seed drops moto's default allow-all)."""
    return aws_seed.security_group_ids[aws.PAYMENTS_SG_NAME]


def test_deny_egress_revokes_the_vendor_rule_and_undo_restores_it_with_its_description(
    ctx: context.RunContext, conn: connecting.AwsConnection, group_id: str
) -> None:
    before = security_group(conn, group_id)
    act = helpers.action(egress.NAME)

    planned = helpers.plan(act, ctx, [helpers.ref("security-group", group_id)], VENDOR)
    assert security_group(conn, group_id) == before

    (token,) = helpers.apply_all(act, ctx, planned)
    during = security_group(conn, group_id)
    cidrs = {r["CidrIp"] for p in during["IpPermissionsEgress"] for r in p["IpRanges"]}
    assert cidrs == {"0.0.0.0/0"}  # postgres egress stays
    tags = markers.as_dict(during["Tags"])
    assert tags[markers.RUN_ID] == "run-1"
    assert "payprovider" in tags[markers.UNDO]

    act.revert(ctx, undo=token)
    act.revert(ctx, undo=token)

    assert security_group(conn, group_id) == before


def test_undo_of_a_never_applied_revoke_changes_nothing(
    ctx: context.RunContext, conn: connecting.AwsConnection, group_id: str
) -> None:
    act = helpers.action(egress.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("security-group", group_id)], VENDOR)
    conn.ec2().revoke_security_group_egress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": aws.VENDOR_CIDR}],
            }
        ],
    )
    before = security_group(conn, group_id)

    act.revert(ctx, undo=planned[0].undo)

    assert security_group(conn, group_id) == before


def test_a_broader_allow_all_rule_is_refused_unless_the_scenario_chooses(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    gid = aws_seed.security_group_ids[aws.PAYMENTS_SG_NAME]
    conn.ec2().authorize_security_group_egress(  # a broader rule that still reaches the vendor
        GroupId=gid, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    before = security_group(conn, gid)
    act = helpers.action(egress.NAME)
    refs = [helpers.ref("security-group", gid)]

    with pytest.raises(errors.ProviderPermanent, match="broaderRules"):
        helpers.plan(act, ctx, refs, VENDOR)

    kept = helpers.plan(act, ctx, refs, {**VENDOR, "broaderRules": "keep"})
    assert kept[0].pre_state["stillAllowedBy"] == ["-1 all ports to 0.0.0.0/0"]
    revoked = helpers.plan(act, ctx, refs, {**VENDOR, "broaderRules": "revoke"})
    (token,) = helpers.apply_all(act, ctx, revoked)
    assert len(token.data["revoked"]) == 2  # type: ignore[arg-type]
    act.revert(ctx, undo=token)
    assert security_group(conn, gid) == before


def test_params_need_a_vendor_cidr() -> None:
    act = helpers.action(egress.NAME)

    with pytest.raises(errors.InvalidParams, match="cidr"):
        act.parse_params({"port": 443})
