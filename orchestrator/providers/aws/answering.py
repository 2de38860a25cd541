"""Answering: the `aws.route53.resolve` probe — which target a DNS record resolves to now.

Invariants:
- Read-only: `ListHostedZonesByName` (when the zone is given by name),
  `ListResourceRecordSets` from the record's name and type, and for failover records
  `GetHealthCheck`, `ListTagsForResource` and `GetHealthCheckStatus` of their health checks.
- The answer is worked out from the record sets and the health checks' state, as Route 53
  answers a failover query: PRIMARY while its health check is healthy (a record without
  one counts as healthy), else SECONDARY while it is healthy; both unhealthy is PRIMARY.
  A simple record (no routing policy) answers itself. Other routing policies (weighted,
  latency, geolocation, multivalue) are refused: their answer depends on who asks.
- (`TestDNSAnswer` would ask Route 53 itself, but the stand-in every test runs on, moto,
  does not implement it; the record sets work the same against real AWS.)
- The probe holds when `expect` is one of the answer's names: its `SetIdentifier`, its
  failover role (`PRIMARY`/`SECONDARY`), its `Region`, a value of its records, or its alias
  target's DNS name (compared without the trailing dot, case-insensitively).
- A zone or record that does not exist is a configuration error: `ProviderPermanent`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import pydantic
from pydantic import alias_generators

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, route53, wrapping

NAME: Final = "aws.route53.resolve"
PRIMARY: Final = "PRIMARY"
SECONDARY: Final = "SECONDARY"


class ResolveParams(pydantic.BaseModel):
    """`recordName`, `hostedZoneId` or `zoneName`, `recordType` (A), and `expect`."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    record_name: str = pydantic.Field(min_length=1)
    expect: str = pydantic.Field(min_length=1)
    hosted_zone_id: str | None = None
    zone_name: str | None = None
    record_type: str = "A"

    @pydantic.model_validator(mode="after")
    def _one_zone(self) -> ResolveParams:
        if (self.hosted_zone_id is None) == (self.zone_name is None):
            raise ValueError("name the record's zone with 'hostedZoneId' or 'zoneName' (one)")
        return self


def _fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def _plain(name: str) -> str:
    return name.rstrip(".").lower()


@dataclasses.dataclass(frozen=True)
class Answer:
    """The record set a query gets now, and the health of the checks that decided it."""

    set_identifier: str | None
    failover: str | None
    region: str | None
    values: tuple[str, ...]
    health: Mapping[str, bool]

    def names(self) -> frozenset[str]:
        """Everything `expect` may name this answer by (lower case, no trailing dot)."""
        found = {self.set_identifier, self.failover, self.region, *self.values}
        return frozenset(_plain(n) for n in found if n)

    def label(self) -> str:
        return self.set_identifier or self.failover or ", ".join(self.values) or "(no value)"

    def as_json(self) -> mutations.JsonValue:
        return {
            "setIdentifier": self.set_identifier,
            "failover": self.failover,
            "region": self.region,
            "values": list(self.values),
            "healthChecks": dict(self.health),
        }


def _zone_id(r53: Any, params: ResolveParams) -> str:
    if params.hosted_zone_id is not None:
        return params.hosted_zone_id.removeprefix("/hostedzone/")
    wanted = _fqdn(params.zone_name or "")
    answer = r53.list_hosted_zones_by_name(DNSName=wanted, MaxItems="1")
    for zone in answer.get("HostedZones", []):
        if _fqdn(str(zone["Name"])) == wanted:
            return str(zone["Id"]).removeprefix("/hostedzone/")
    raise errors.ProviderPermanent(
        f"{NAME}: no hosted zone named {wanted}; check the probe's zoneName"
    )


def _record_sets(r53: Any, *, zone_id: str, name: str, kind: str) -> list[Mapping[str, Any]]:
    """The record sets of exactly (`name`, `kind`), paging while the names still match."""
    found: list[Mapping[str, Any]] = []
    try:
        pages = r53.get_paginator("list_resource_record_sets").paginate(
            HostedZoneId=zone_id, StartRecordName=name, StartRecordType=kind
        )
        for page in pages:
            for record in page.get("ResourceRecordSets", []):
                if _fqdn(str(record["Name"])) != name:
                    return found
                if record.get("Type") == kind:
                    found.append(record)
    except wrapping.ClientError as exc:
        if wrapping.code(exc) == "NoSuchHostedZone":
            raise errors.ProviderPermanent(
                f"{NAME}: no hosted zone {zone_id}; check the probe's hostedZoneId"
            ) from exc
        raise
    return found


def _values(record: Mapping[str, Any]) -> tuple[str, ...]:
    alias = record.get("AliasTarget")
    if alias:
        return (_plain(str(alias.get("DNSName", ""))),)
    return tuple(str(r.get("Value", "")) for r in record.get("ResourceRecords", []))


def _healthy(r53: Any, check_id: str | None, health: dict[str, bool]) -> bool:
    if not check_id:
        return True
    if check_id not in health:
        check = route53.describe(r53, check_id)
        if check is None:
            raise errors.ProviderPermanent(
                f"{NAME}: the record's health check {check_id} does not exist; fix the record"
            )
        health[check_id] = route53.healthy(r53, check)
    return health[check_id]


def answer(r53: Any, *, records: Sequence[Mapping[str, Any]], where: str) -> Answer:
    """The record set Route 53 answers with among `records` (all of one name and type)."""
    if not records:
        raise errors.ProviderPermanent(f"{where}: no such record; check recordName/recordType")
    health: dict[str, bool] = {}
    if len(records) == 1 and not records[0].get("SetIdentifier"):
        chosen = records[0]
    else:
        roles = {str(r.get("Failover", "")): r for r in records}
        if set(roles) != {PRIMARY, SECONDARY} or len(records) != 2:
            policies = sorted({_policy(r) for r in records})
            raise errors.ProviderPermanent(
                f"{where}: routing policy {', '.join(policies)} is not evaluated by {NAME} "
                "(it answers simple and failover records); probe a failover record"
            )
        primary, secondary = roles[PRIMARY], roles[SECONDARY]
        if _healthy(r53, primary.get("HealthCheckId"), health):
            chosen = primary
        elif _healthy(r53, secondary.get("HealthCheckId"), health):
            chosen = secondary
        else:
            chosen = primary  # Route 53 answers the primary when both are unhealthy
    return Answer(
        set_identifier=chosen.get("SetIdentifier"),
        failover=chosen.get("Failover"),
        region=chosen.get("Region"),
        values=_values(chosen),
        health=health,
    )


def _policy(record: Mapping[str, Any]) -> str:
    for key, policy in (
        ("Failover", "failover"),
        ("Weight", "weighted"),
        ("Region", "latency"),
        ("GeoLocation", "geolocation"),
        ("MultiValueAnswer", "multivalue"),
    ):
        if record.get(key) is not None:
            return policy
    return "simple (several sets)"


class Route53Resolve(registry.Probe[ResolveParams]):
    """Holds while a DNS record resolves to the expected target (failover-aware)."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = ResolveParams
    description: ClassVar[str] = (
        "Holds while a Route 53 record resolves to 'expect' (its set identifier, failover "
        "role, region or value), worked out from the record sets and their health checks."
    )

    def check(
        self, ctx: registry.ProviderContext, *, params: ResolveParams
    ) -> registry.ProbeResult:
        r53 = route53.client(connecting.of(ctx.connection(connecting.PROVIDER)))
        name, kind = _fqdn(params.record_name), params.record_type.upper()
        where = f"{NAME} {name} {kind}"
        with wrapping.edge(where):
            zone_id = _zone_id(r53, params)
            records = _record_sets(r53, zone_id=zone_id, name=name, kind=kind)
            found = answer(r53, records=records, where=where)
        ok = _plain(params.expect) in found.names()
        verdict = "resolves to" if ok else f"does not resolve to {params.expect}: it resolves to"
        return registry.ProbeResult(
            ok=ok,
            value=found.as_json(),
            message=f"{name} {kind} {verdict} {found.label()}",
            at=datetime.now(UTC),
        )
