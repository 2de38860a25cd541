"""Egress: `aws.network.deny-egress`, revoking a security group's egress to a vendor.

Invariants:
- A rule "reaches" the vendor when its protocol and ports cover the vendor's and its IPv4
  range overlaps a vendor CIDR. Rules inside the vendor's range are revoked; *broader*
  rules (0.0.0.0/0, the default allow-all) would keep the vendor reachable, so by default
  the plan refuses (`broaderRules: refuse`), `keep` proceeds knowingly (a partial outage),
  `revoke` revokes them too (everything they allowed is cut).
- Before revoking, the group is tagged `stormdrill:run-id`, `stormdrill:expires-at` and
  `stormdrill:undo` (compact JSON of the exact rules, descriptions included, split over
  numbered tags if long). Undo, gated on this run's marker, re-authorises exactly those
  rules (one at a time; "already there" is success), then removes the marker.
- IPv6 ranges, prefix lists and group references are never touched.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import pydantic
from pydantic import alias_generators

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, fields, markers, wrapping

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import IpPermissionTypeDef, SecurityGroupTypeDef

log = logging.getLogger(__name__)

NAME = "aws.network.deny-egress"


class BroaderRules(enum.StrEnum):
    REFUSE = "refuse"
    KEEP = "keep"
    REVOKE = "revoke"


class DenyEgressParams(pydantic.BaseModel):
    """The vendor: `cidr`/`cidrs`, `port`/`ports` (none: all), `protocol`; `broaderRules`."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    cidr: str | None = None
    cidrs: tuple[str, ...] = ()
    port: int | None = pydantic.Field(default=None, ge=0, le=65535)
    ports: tuple[int, ...] = ()
    protocol: Literal["tcp", "udp", "-1"] = "tcp"
    broader_rules: BroaderRules = BroaderRules.REFUSE

    @pydantic.model_validator(mode="after")
    def _check(self) -> DenyEgressParams:
        if not self.all_cidrs():
            raise ValueError("give the vendor's address range as 'cidr' or 'cidrs'")
        for cidr in self.all_cidrs():
            try:
                ipaddress.IPv4Network(cidr)
            except ValueError as exc:
                raise ValueError(f"'{cidr}' is not an IPv4 CIDR such as 203.0.113.0/24") from exc
        return self

    def all_cidrs(self) -> tuple[str, ...]:
        return (*((self.cidr,) if self.cidr else ()), *self.cidrs)

    def all_ports(self) -> tuple[int, ...]:
        return (*((self.port,) if self.port is not None else ()), *self.ports)


@dataclass(frozen=True)
class Rule:
    """One IPv4 egress rule: protocol, ports (-1/-1 for all), range and description."""

    protocol: str
    from_port: int
    to_port: int
    cidr: str
    description: str | None

    def to_json(self) -> list[mutations.JsonValue]:
        return [self.protocol, self.from_port, self.to_port, self.cidr, self.description]

    @classmethod
    def from_json(cls, raw: object) -> Rule:
        if not isinstance(raw, list) or len(raw) != 5:
            raise errors.ProviderPermanent(f"{NAME}: damaged rule in undo data: {raw!r}")
        protocol, low, high, cidr, description = raw
        return cls(str(protocol), int(low), int(high), str(cidr), description)

    def permission(self) -> IpPermissionTypeDef:
        ip_range: dict[str, str] = {"CidrIp": self.cidr}
        if self.description:
            ip_range["Description"] = self.description
        permission: dict[str, object] = {"IpProtocol": self.protocol, "IpRanges": [ip_range]}
        if self.protocol not in ("-1", "all"):
            permission["FromPort"] = self.from_port
            permission["ToPort"] = self.to_port
        return permission  # type: ignore[return-value]

    def __str__(self) -> str:
        ports = "all ports" if self.protocol == "-1" else f"{self.from_port}-{self.to_port}"
        return f"{self.protocol} {ports} to {self.cidr}"


def egress_rules(group: SecurityGroupTypeDef) -> list[Rule]:
    rules: list[Rule] = []
    for permission in group.get("IpPermissionsEgress", []):
        protocol = permission.get("IpProtocol", "-1")
        low = permission.get("FromPort", -1)
        high = permission.get("ToPort", -1)
        for ip_range in permission.get("IpRanges", []):
            rules.append(Rule(protocol, low, high, ip_range["CidrIp"], ip_range.get("Description")))
    return rules


def _reaches(rule: Rule, params: DenyEgressParams, vendor: ipaddress.IPv4Network) -> bool:
    if rule.protocol not in ("-1", params.protocol) and params.protocol != "-1":
        return False
    try:
        network = ipaddress.IPv4Network(rule.cidr, strict=False)
    except ValueError:
        return False
    if not network.overlaps(vendor):
        return False
    if rule.protocol == "-1" or not params.all_ports():
        return True
    return any(rule.from_port <= port <= rule.to_port for port in params.all_ports())


def matching(
    group: SecurityGroupTypeDef, params: DenyEgressParams
) -> tuple[list[Rule], list[Rule]]:
    """(rules inside the vendor's range, broader rules) that let traffic reach the vendor."""
    inside: list[Rule] = []
    broader: list[Rule] = []
    for rule in egress_rules(group):
        for cidr in params.all_cidrs():
            vendor = ipaddress.IPv4Network(cidr, strict=False)
            if not _reaches(rule, params, vendor):
                continue
            if ipaddress.IPv4Network(rule.cidr, strict=False).subnet_of(vendor):
                inside.append(rule)
            else:
                broader.append(rule)
            break
    return inside, broader


def describe(ec2: EC2Client, group_id: str) -> SecurityGroupTypeDef | None:
    try:
        groups = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    except wrapping.ClientError as exc:
        if wrapping.code(exc) == "InvalidGroup.NotFound":
            return None
        raise
    return groups[0] if groups else None


def reauthorize(ec2: EC2Client, group: SecurityGroupTypeDef, rules: Sequence[Rule]) -> None:
    """Authorise `rules` again (already present is fine), then drop the markers."""
    group_id = group["GroupId"]
    present = set(egress_rules(group))
    for rule in rules:
        if rule in present:
            continue
        try:
            ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[rule.permission()])
        except wrapping.ClientError as exc:
            if wrapping.code(exc) != "InvalidPermission.Duplicate":
                raise
    keys = markers.stormdrill_keys(markers.as_dict(group.get("Tags")))
    if keys:
        ec2.delete_tags(Resources=[group_id], Tags=[{"Key": k} for k in keys])


def rules_from_tags(group: SecurityGroupTypeDef) -> list[Rule] | None:
    raw = markers.join(markers.as_dict(group.get("Tags")), markers.UNDO)
    if raw is None:
        return None
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        raise errors.ProviderPermanent(
            f"security group {group['GroupId']}: unreadable {markers.UNDO} tag: {exc}"
        ) from exc
    return [Rule.from_json(item) for item in decoded.get("revoked", [])]


class DenyEgress(registry.Action[DenyEgressParams]):
    """Cut a security group's egress to a vendor's address range."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = DenyEgressParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"security-group"})
    description: ClassVar[str] = (
        "Revoke security-group egress rules that reach a vendor's CIDRs/ports; undo "
        "re-authorises exactly the revoked rules, descriptions included."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: DenyEgressParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        planned: list[mutations.PlannedMutation] = []
        for target in targets:
            with wrapping.edge(target):
                group = describe(conn.ec2(), target.name)
            if group is None:
                raise errors.ProviderPermanent(f"{target}: no such security group")
            marker = markers.read(markers.as_dict(group.get("Tags")))
            if marker is not None:
                raise errors.ProviderPermanent(
                    f"{target}: already changed by run {marker.run_id}; undo that run first "
                    "(`stormdrill recover`)"
                )
            inside, broader = matching(group, params)
            if broader and params.broader_rules is BroaderRules.REFUSE:
                raise errors.ProviderPermanent(
                    f"{target}: the vendor stays reachable through broader egress rules "
                    f"({'; '.join(map(str, broader))}); remove them, or set broaderRules: keep "
                    "(partial outage) or broaderRules: revoke (cuts everything they allow)"
                )
            if broader and params.broader_rules is BroaderRules.KEEP:
                log.warning(
                    "%s: vendor still reachable via %s (broaderRules: keep)",
                    target,
                    "; ".join(map(str, broader)),
                )
            revoke = inside + (broader if params.broader_rules is BroaderRules.REVOKE else [])
            if not revoke:
                log.info("%s: no egress rule reaches the vendor; nothing to revoke", target)
                continue
            planned.append(
                mutations.PlannedMutation(
                    step=NAME,
                    target=target,
                    action=NAME,
                    params=params.model_dump(by_alias=True, mode="json"),
                    pre_state={
                        "egress": [r.to_json() for r in egress_rules(group)],
                        "stillAllowedBy": [str(r) for r in broader]
                        if params.broader_rules is BroaderRules.KEEP
                        else [],
                    },
                    undo=mutations.UndoToken(
                        action=NAME,
                        data={
                            "runId": str(ctx.run_id),
                            "region": conn.region,
                            "groupId": target.name,
                            "revoked": [r.to_json() for r in revoke],
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
        group_id = fields.text(data, "groupId", owner=NAME)
        planned = data.get("revoked")
        wanted = [Rule.from_json(item) for item in (planned if isinstance(planned, list) else [])]
        with wrapping.edge(mutation.target):
            group = describe(ec2, group_id)
            if group is None:
                raise errors.ProviderPermanent(f"{mutation.target}: no such security group")
            present = set(egress_rules(group))
            revoke = [r for r in wanted if r in present]
            undo_json = markers.dumps({"revoked": [r.to_json() for r in revoke]})
            tags = markers.fault_tags(
                run_id=str(ctx.run_id), expires_at=ctx.expires_at, extra={markers.UNDO: undo_json}
            )
            ec2.create_tags(Resources=[group_id], Tags=markers.as_list(tags))  # type: ignore[arg-type]
            for rule in revoke:
                ec2.revoke_security_group_egress(
                    GroupId=group_id, IpPermissions=[rule.permission()]
                )
        log.info("%s: revoked %s", mutation.target, "; ".join(map(str, revoke)) or "nothing")
        return mutations.UndoToken(
            action=NAME, data={**data, "revoked": [r.to_json() for r in revoke]}
        )

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        ec2 = connecting.of(ctx.connection(connecting.PROVIDER)).ec2()
        group_id = fields.text(undo.data, "groupId", owner=NAME)
        run_id = fields.text(undo.data, "runId", owner=NAME)
        where = f"aws security-group {group_id}"
        with wrapping.edge(where):
            group = describe(ec2, group_id)
            if group is None:
                log.warning("%s is gone; nothing to re-authorise", where)
                return
            marker = markers.read(markers.as_dict(group.get("Tags")))
            if marker is None or marker.run_id != run_id:
                log.info("%s carries no marker of run %s; nothing to undo", where, run_id)
                return
            rules = rules_from_tags(group)
            if rules is None:
                planned = undo.data.get("revoked")
                rules = [Rule.from_json(i) for i in (planned if isinstance(planned, list) else [])]
            reauthorize(ec2, group, rules)
        log.info("%s: re-authorised %s", where, "; ".join(map(str, rules)) or "nothing")
