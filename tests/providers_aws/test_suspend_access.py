"""aws.iam.suspend-access against moto: keys and deny policy, protected principals."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import connecting, markers, suspending
from sandbox import aws
from tests.providers_aws import helpers


def user(conn: connecting.AwsConnection, name: str) -> dict[str, Any]:
    iam = conn.iam()
    return {
        "keys": sorted(
            (k["AccessKeyId"], k["Status"])
            for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        ),
        "policies": iam.list_user_policies(UserName=name)["PolicyNames"],
        "tags": markers.as_dict(iam.list_user_tags(UserName=name)["Tags"]),
    }


def test_suspend_deactivates_active_keys_and_undo_reactivates_exactly_those(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    iam = conn.iam()
    inactive = iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName="alice", AccessKeyId=inactive, Status="Inactive")
    before = user(conn, "alice")
    act = helpers.action(suspending.NAME)

    planned = helpers.plan(act, ctx, [helpers.ref("iam-user", "alice")])
    assert user(conn, "alice") == before

    (token,) = helpers.apply_all(act, ctx, planned)
    during = user(conn, "alice")
    assert {status for _, status in during["keys"]} == {"Inactive"}
    assert during["policies"] == ["stormdrill-suspended-run-1"]
    assert during["tags"][markers.SUSPENDED_KEYS] == aws_seed.access_key_ids["alice"]
    assert during["tags"][markers.RUN_ID] == "run-1"

    act.revert(ctx, undo=token)
    act.revert(ctx, undo=token)

    assert user(conn, "alice") == before


def test_undo_of_a_never_applied_suspension_changes_nothing(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    act = helpers.action(suspending.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref("iam-user", "bob")])
    conn.iam().update_access_key(
        UserName="bob", AccessKeyId=aws_seed.access_key_ids["bob"], Status="Inactive"
    )
    before = user(conn, "bob")

    act.revert(ctx, undo=planned[0].undo)

    assert user(conn, "bob") == before


def test_a_protected_principal_is_refused_at_plan(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    before = user(conn, "frank")
    act = helpers.action(suspending.NAME)

    with pytest.raises(errors.ProviderPermanent, match="protected principal"):
        helpers.plan(act, ctx, [helpers.ref("iam-user", "frank")])
    assert user(conn, "frank") == before


def test_throttling_while_reactivating_keys_is_retryable(
    fresh_ctx: context.RunContext, aws_seed: aws.AwsSeed
) -> None:
    conn = connecting.of(fresh_ctx.connection("aws"))
    before = user(conn, "carol")
    act = helpers.action(suspending.NAME)
    (token,) = helpers.apply_all(
        act, fresh_ctx, helpers.plan(act, fresh_ctx, [helpers.ref("iam-user", "carol")])
    )
    helpers.Throttle(conn.iam(), "UpdateAccessKey", times=1, code="Throttling")

    with pytest.raises(errors.ProviderRetryable, match="Throttling"):
        act.revert(fresh_ctx, undo=token)
    act.revert(fresh_ctx, undo=token)

    assert user(conn, "carol") == before
