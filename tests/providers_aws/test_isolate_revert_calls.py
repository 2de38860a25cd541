"""Undoing an isolation deletes the blocking ACL without reading it first (AWS refuses to
delete an ACL a subnet still uses); only a refusal reads it, to name those subnets.

Calls are counted with a botocore `before-call` event hook on the run's EC2 client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import connecting, isolating, markers
from sandbox import aws
from tests.providers_aws import helpers

ZONE = "us-east-1a"


@contextlib.contextmanager
def ec2_calls(client: Any) -> Iterator[list[str]]:
    """The EC2 operations `client` makes inside the block, in order (the client is shared by
    the session, so the hook is removed again)."""
    names: list[str] = []

    def hook(model: Any, **_: Any) -> None:
        names.append(str(model.name))

    client.meta.events.register("before-call.ec2", hook, unique_id="test-ec2-calls")
    try:
        yield names
    finally:
        client.meta.events.unregister("before-call.ec2", unique_id="test-ec2-calls")


def _blocking_acls(conn: connecting.AwsConnection) -> list[Any]:
    return conn.ec2().describe_network_acls(
        Filters=[{"Name": "tag-key", "Values": [markers.RUN_ID]}]
    )["NetworkAcls"]


def test_undo_moves_the_subnet_back_then_deletes_the_acl_without_reading_it_again(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    act = helpers.action(isolating.NAME)
    subnet = aws_seed.subnet_ids[ZONE]
    (token,) = helpers.apply_all(act, ctx, helpers.plan(act, ctx, [helpers.ref("subnet", subnet)]))
    with ec2_calls(conn.ec2()) as calls:
        act.revert(ctx, undo=token)

    assert calls[-2:] == ["ReplaceNetworkAclAssociation", "DeleteNetworkAcl"]
    assert isolating.current_associations(conn.ec2(), [subnet])[subnet][0] == (
        aws_seed.default_network_acl_id
    )
    assert _blocking_acls(conn) == []


def test_an_acl_someone_put_another_subnet_on_is_kept_and_the_subnet_named(
    ctx: context.RunContext, conn: connecting.AwsConnection, aws_seed: aws.AwsSeed
) -> None:
    ec2 = conn.ec2()
    act = helpers.action(isolating.NAME)
    ours, theirs = aws_seed.subnet_ids[ZONE], aws_seed.subnet_ids["us-east-1b"]
    (token,) = helpers.apply_all(act, ctx, helpers.plan(act, ctx, [helpers.ref("subnet", ours)]))
    (acl,) = _blocking_acls(conn)
    association = isolating.current_associations(ec2, [theirs])[theirs][1]
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl["NetworkAclId"])

    with pytest.raises(errors.ProviderPermanent, match=f"still associated with {theirs}"):
        act.revert(ctx, undo=token)

    assert isolating.current_associations(ec2, [ours])[ours][0] == aws_seed.default_network_acl_id
    assert [a["NetworkAclId"] for a in _blocking_acls(conn)] == [acl["NetworkAclId"]]
