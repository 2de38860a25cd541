"""Isolating: `aws.network.isolate-subnets`, one deny-all network ACL per VPC and zone.

Invariants:
- One mutation per (VPC, zone) of the selected subnets; its target is
  `aws subnet <region>/<vpc>/<zone>` and its undo data lists the subnets.
- The blocking ACL is created with its markers in the same call (`TagSpecifications`):
  `stormdrill:run-id`, `stormdrill:expires-at`, `stormdrill:zone` and
  `stormdrill:original-associations` (`subnet=acl,...`, split over numbered tags), so a
  blocking ACL always knows how to undo itself, journal or not.
- Undo re-reads the current association ids (they change on every replace), moves only
  subnets still on the blocking ACL back to their original ACL, reports subnets someone
  moved meanwhile (never clobbers them), then deletes the blocking ACL once nothing uses it
  (AWS refuses to delete an ACL a subnet still uses, so the delete is not preceded by a read;
  only a refusal reads it, to name those subnets).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, fields, markers, wrapping

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import NetworkAclTypeDef, TagSpecificationTypeDef

log = logging.getLogger(__name__)

NAME = "aws.network.isolate-subnets"


class IsolateParams(pydantic.BaseModel):
    """No parameters: the target's subnets are isolated in both directions."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def encode_associations(associations: Mapping[str, str]) -> str:
    """`subnet-a=acl-x,subnet-b=acl-y` (sorted): the compact original-associations tag."""
    return ",".join(f"{subnet}={acl}" for subnet, acl in sorted(associations.items()))


def decode_associations(raw: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {pair[0]: pair[1] for pair in pairs}


def _group_target(*, region: str, vpc_id: str, zone: str) -> mutations.TargetRef:
    return mutations.TargetRef(
        provider=connecting.PROVIDER, kind="subnet", name=zone, namespace=vpc_id, region=region
    )


def current_associations(ec2: EC2Client, subnet_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """subnet -> (ACL id, association id) as AWS has it now."""
    found: dict[str, tuple[str, str]] = {}
    if not subnet_ids:
        return found
    pages = ec2.get_paginator("describe_network_acls").paginate(
        Filters=[{"Name": "association.subnet-id", "Values": list(subnet_ids)}]
    )
    for page in pages:
        for acl in page["NetworkAcls"]:
            for assoc in acl.get("Associations", []):
                subnet = assoc.get("SubnetId", "")
                if subnet in subnet_ids:
                    found[subnet] = (acl["NetworkAclId"], assoc["NetworkAclAssociationId"])
    return found


def _find_acl(ec2: EC2Client, filters: Mapping[str, str]) -> NetworkAclTypeDef | None:
    answer = ec2.describe_network_acls(
        Filters=[{"Name": name, "Values": [value]} for name, value in filters.items()]
    )["NetworkAcls"]
    return answer[0] if answer else None


_ACL_NOT_FOUND = frozenset(
    # moto answers a missing ACL id with the route-table code; real AWS with the ACL one.
    {"InvalidNetworkAclID.NotFound", "InvalidRouteTableID.NotFound"}
)


_IN_USE = "DependencyViolation"
"""DeleteNetworkAcl's answer while a subnet is still associated with the ACL."""


def acl_by_id(ec2: EC2Client, acl_id: str) -> NetworkAclTypeDef | None:
    """The ACL `acl_id`, or None when it does not exist (any more)."""
    try:
        answer = ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"]
    except wrapping.ClientError as exc:
        if wrapping.code(exc) in _ACL_NOT_FOUND:
            return None
        raise
    return answer[0] if answer else None


def find_blocking_acl(
    ec2: EC2Client, *, run_id: str, vpc_id: str, zone: str, acl_id: str | None
) -> NetworkAclTypeDef | None:
    """The blocking ACL of this run for (VPC, zone), by id when known, else by its tags."""
    if acl_id is not None:
        return acl_by_id(ec2, acl_id)
    return _find_acl(
        ec2,
        {"vpc-id": vpc_id, f"tag:{markers.RUN_ID}": run_id, f"tag:{markers.ZONE}": zone},
    )


def _default_acl(ec2: EC2Client, vpc_id: str) -> str | None:
    acl = _find_acl(ec2, {"vpc-id": vpc_id, "default": "true"})
    return acl["NetworkAclId"] if acl else None


def _delete_unused(ec2: EC2Client, acl_id: str) -> None:
    """Delete the blocking ACL, which AWS refuses while a subnet still uses it (a conditional
    delete: no read first); refused, name those subnets for a person."""
    try:
        ec2.delete_network_acl(NetworkAclId=acl_id)
        return
    except wrapping.ClientError as exc:
        if wrapping.code(exc) in _ACL_NOT_FOUND:
            return
        if wrapping.code(exc) != _IN_USE:
            raise
    remaining = acl_by_id(ec2, acl_id)
    still = [a.get("SubnetId", "") for a in (remaining or {}).get("Associations", [])]
    raise errors.ProviderPermanent(
        f"blocking network ACL {acl_id} is still associated with {', '.join(still) or 'a subnet'};"
        " move those subnets to their own ACL, then run `stormdrill recover` to delete it"
    )


def restore(ec2: EC2Client, acl: NetworkAclTypeDef, *, fallback: Mapping[str, str]) -> list[str]:
    """Move the blocking ACL's subnets back and delete it; returns notes for a person.

    The original associations come from the ACL's own tag (written atomically with it),
    else from `fallback` (the journal's undo data).
    """
    acl_id = acl["NetworkAclId"]
    tags = markers.as_dict(acl.get("Tags"))
    raw = markers.join(tags, markers.ORIGINAL_ASSOCIATIONS)
    original = decode_associations(raw) if raw is not None else dict(fallback)
    notes: list[str] = []
    now = current_associations(ec2, sorted(original))
    for subnet, original_acl in sorted(original.items()):
        current = now.get(subnet)
        if current is None:
            notes.append(f"{subnet}: no longer exists or has no ACL association; left alone")
            continue
        current_acl, association_id = current
        if current_acl != acl_id:
            if current_acl != original_acl:
                notes.append(
                    f"{subnet}: moved to {current_acl} by someone else during the drill "
                    f"(was {original_acl}); left alone"
                )
            continue
        destination = original_acl
        if acl_by_id(ec2, original_acl) is None:
            default = _default_acl(ec2, acl["VpcId"])
            if default is None:
                notes.append(f"{subnet}: original {original_acl} is gone and no default ACL")
                continue
            notes.append(f"{subnet}: original {original_acl} is gone; moved to default {default}")
            destination = default
        ec2.replace_network_acl_association(AssociationId=association_id, NetworkAclId=destination)
    _delete_unused(ec2, acl_id)
    for note in notes:
        log.warning("undoing isolation by %s: %s", acl_id, note)
    return notes


class IsolateSubnets(registry.Action[IsolateParams]):
    """Swap a zone's subnets onto a deny-all network ACL (both directions)."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = IsolateParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"subnet"})
    description: ClassVar[str] = (
        "Isolate subnets: associate them with a new deny-all network ACL (one per VPC and "
        "zone, explicit deny in and out); undo restores the original associations."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: IsolateParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        ec2 = conn.ec2()
        ids = sorted({t.name for t in targets})
        if not ids:
            return []
        with wrapping.edge(f"{NAME} subnets {', '.join(ids)}"):
            subnets = ec2.describe_subnets(SubnetIds=ids)["Subnets"]
            now = current_associations(ec2, ids)
            blocking = {
                acl["NetworkAclId"]: markers.as_dict(acl.get("Tags")).get(markers.RUN_ID)
                for acl in ec2.describe_network_acls(
                    Filters=[{"Name": "association.subnet-id", "Values": ids}]
                )["NetworkAcls"]
            }
        groups: dict[tuple[str, str], list[str]] = {}
        for subnet in subnets:
            groups.setdefault((subnet["VpcId"], subnet["AvailabilityZone"]), []).append(
                subnet["SubnetId"]
            )
        planned: list[mutations.PlannedMutation] = []
        for (vpc_id, zone), members in sorted(groups.items()):
            original: dict[str, str] = {}
            for subnet_id in sorted(members):
                acl_id = now[subnet_id][0] if subnet_id in now else ""
                other_run = blocking.get(acl_id)
                if other_run is not None:
                    raise errors.ProviderPermanent(
                        f"{NAME}: subnet {subnet_id} is already isolated by run {other_run} "
                        f"(ACL {acl_id}); undo that run first (`stormdrill recover`)"
                    )
                original[subnet_id] = acl_id
            target = _group_target(region=conn.region, vpc_id=vpc_id, zone=zone)
            planned.append(
                mutations.PlannedMutation(
                    step=NAME,
                    target=target,
                    action=NAME,
                    params=params.model_dump(),
                    pre_state={"associations": dict(original)},
                    undo=mutations.UndoToken(
                        action=NAME,
                        data={
                            "runId": str(ctx.run_id),
                            "region": conn.region,
                            "vpcId": vpc_id,
                            "zone": zone,
                            "original": dict(original),
                            "blockingAclId": None,
                        },
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        ec2 = connecting.of(ctx.connection(connecting.PROVIDER)).ec2()
        data = mutation.undo.data
        vpc_id = fields.text(data, "vpcId", owner=NAME)
        zone = fields.text(data, "zone", owner=NAME)
        run_id = fields.text(data, "runId", owner=NAME)
        planned = fields.text_map(data, "original", owner=NAME)
        with wrapping.edge(mutation.target):
            acl = find_blocking_acl(ec2, run_id=run_id, vpc_id=vpc_id, zone=zone, acl_id=None)
            now = current_associations(ec2, sorted(planned))
            if acl is None:
                original = {s: now[s][0] if s in now else acl_id for s, acl_id in planned.items()}
                acl_id = self._create_blocking_acl(
                    ec2, ctx=ctx, vpc_id=vpc_id, zone=zone, original=original
                )
            else:
                acl_id = acl["NetworkAclId"]
                raw = markers.join(markers.as_dict(acl.get("Tags")), markers.ORIGINAL_ASSOCIATIONS)
                original = decode_associations(raw) if raw is not None else planned
            for subnet_id in sorted(original):
                if subnet_id not in now:
                    raise errors.ProviderPermanent(
                        f"{mutation.target}: subnet {subnet_id} has no network ACL association"
                    )
                current_acl, association_id = now[subnet_id]
                if current_acl != acl_id:
                    ec2.replace_network_acl_association(
                        AssociationId=association_id, NetworkAclId=acl_id
                    )
        log.info("%s: subnets %s now on deny-all ACL %s", mutation.target, sorted(original), acl_id)
        return mutations.UndoToken(
            action=NAME, data={**data, "original": dict(original), "blockingAclId": acl_id}
        )

    def _create_blocking_acl(
        self,
        ec2: EC2Client,
        *,
        ctx: registry.ProviderContext,
        vpc_id: str,
        zone: str,
        original: Mapping[str, str],
    ) -> str:
        tags = markers.fault_tags(
            run_id=str(ctx.run_id),
            expires_at=ctx.expires_at,
            extra={markers.ORIGINAL_ASSOCIATIONS: encode_associations(original)},
        )
        tags.update({"Name": f"stormdrill-isolate-{zone}", markers.ZONE: zone})
        spec: TagSpecificationTypeDef = {
            "ResourceType": "network-acl",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        acl_id = ec2.create_network_acl(VpcId=vpc_id, TagSpecifications=[spec])["NetworkAcl"][
            "NetworkAclId"
        ]
        vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
        has_ipv6 = bool(vpc.get("Ipv6CidrBlockAssociationSet"))
        for egress in (False, True):
            ec2.create_network_acl_entry(
                NetworkAclId=acl_id,
                RuleNumber=1,
                Protocol="-1",
                RuleAction="deny",
                Egress=egress,
                CidrBlock="0.0.0.0/0",
            )
            if has_ipv6:
                ec2.create_network_acl_entry(
                    NetworkAclId=acl_id,
                    RuleNumber=2,
                    Protocol="-1",
                    RuleAction="deny",
                    Egress=egress,
                    Ipv6CidrBlock="::/0",
                )
        return acl_id

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        ec2 = connecting.of(ctx.connection(connecting.PROVIDER)).ec2()
        data = undo.data
        vpc_id = fields.text(data, "vpcId", owner=NAME)
        zone = fields.text(data, "zone", owner=NAME)
        with wrapping.edge(f"{NAME} {vpc_id}/{zone}"):
            acl = find_blocking_acl(
                ec2,
                run_id=fields.text(data, "runId", owner=NAME),
                vpc_id=vpc_id,
                zone=zone,
                acl_id=fields.optional_text(data, "blockingAclId", owner=NAME),
            )
            if acl is None:
                log.info("%s %s/%s: no blocking ACL; nothing to undo", NAME, vpc_id, zone)
                return
            restore(ec2, acl, fallback=fields.text_map(data, "original", owner=NAME))
