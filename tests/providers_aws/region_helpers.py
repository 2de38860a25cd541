"""Helpers for the region-drill tests: Route 53 health checks and failover records in moto,
snapshots of a health check, and a scenario target of a kind the language may not list yet."""

from __future__ import annotations

import uuid
from typing import Any

from orchestrator.providers.aws import connecting, route53
from scenarios import models

ZONE_NAME = "shop.example"
RECORD = "www.shop.example"
PRIMARY_IP = "198.51.100.10"
SECONDARY_IP = "203.0.113.20"


def r53(conn: connecting.AwsConnection) -> Any:
    return route53.client(conn)


def health_check(
    conn: connecting.AwsConnection,
    *,
    fqdn: str = "east.shop.example",
    tags: dict[str, str] | None = None,
    inverted: bool = False,
    disabled: bool = False,
) -> str:
    """A new HTTPS health check (tagged `tags`); its id."""
    config: dict[str, Any] = {
        "Type": "HTTPS",
        "FullyQualifiedDomainName": fqdn,
        "Port": 443,
        "ResourcePath": "/healthz",
        "Inverted": inverted,
        "Disabled": disabled,
    }
    check_id = str(
        r53(conn).create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig=config)[
            "HealthCheck"
        ]["Id"]
    )
    if tags:
        r53(conn).change_tags_for_resource(
            ResourceType="healthcheck",
            ResourceId=check_id,
            AddTags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    return check_id


def snapshot(conn: connecting.AwsConnection, check_id: str) -> dict[str, Any]:
    """A health check's configuration and tags as Route 53 describes them."""
    client = r53(conn)
    found = client.get_health_check(HealthCheckId=check_id)["HealthCheck"]
    tags = client.list_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id)
    return {
        "config": found["HealthCheckConfig"],
        "tags": sorted((t["Key"], t["Value"]) for t in tags["ResourceTagSet"].get("Tags", [])),
    }


def inverted(conn: connecting.AwsConnection, check_id: str) -> bool:
    config = r53(conn).get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"]
    return bool(config["Inverted"])


def tags(conn: connecting.AwsConnection, check_id: str) -> dict[str, str]:
    answer = r53(conn).list_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id)
    return {t["Key"]: t["Value"] for t in answer["ResourceTagSet"].get("Tags", [])}


def hosted_zone(conn: connecting.AwsConnection, name: str = ZONE_NAME) -> str:
    """A new public hosted zone; its id (without `/hostedzone/`)."""
    zone = r53(conn).create_hosted_zone(Name=name, CallerReference=str(uuid.uuid4()))
    return str(zone["HostedZone"]["Id"]).removeprefix("/hostedzone/")


def upsert(conn: connecting.AwsConnection, zone_id: str, *records: dict[str, Any]) -> None:
    r53(conn).change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record} for record in records]
        },
    )


def failover_record(
    role: str, *, set_identifier: str, ip: str, check_id: str | None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Name": RECORD,
        "Type": "A",
        "SetIdentifier": set_identifier,
        "Failover": role,
        "TTL": 60,
        "ResourceRecords": [{"Value": ip}],
    }
    if check_id is not None:
        record["HealthCheckId"] = check_id
    return record


def unlisted_target(kind: str, *, blast_max: int | None = None, **selector: Any) -> models.Target:
    """A scenario target of `kind` (e.g. `health-check`, `global-cluster`), validated as a
    scenario file's target is."""
    data: dict[str, Any] = {"provider": "aws", "kind": kind, "selector": selector}
    if blast_max is not None:
        data["blastRadius"] = {"max": blast_max}
    return models.Target.model_validate(data)
