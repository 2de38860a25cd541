"""Annotations Stormdrill reads on catalog entities: their names and value parsers.

Invariants: every parser takes the annotation text exactly as written and either
returns a typed value or raises `ValueError` with a message a person can act on;
none of them reads files or state. Lists are comma-separated.
"""

from __future__ import annotations

import datetime
import ipaddress
import re

from orchestrator.cmdb import models

PREFIX = "stormdrill.dev/"

TIER = "stormdrill.dev/tier"
RTO = "stormdrill.dev/rto"
RPO = "stormdrill.dev/rpo"
VENDOR_CIDRS = "stormdrill.dev/vendor-cidrs"
VENDOR_PORTS = "stormdrill.dev/vendor-ports"
AWS_TAGS = "stormdrill.dev/aws-tags"
AWS_REGIONS = "stormdrill.dev/aws-regions"
AWS_ZONES = "stormdrill.dev/aws-zones"
AWS_RESOURCES = "stormdrill.dev/aws-resources"
KUBERNETES_CLUSTERS = "stormdrill.dev/kubernetes-clusters"
BREAK_GLASS = "stormdrill.dev/break-glass"
RUNBOOK_OWNER = "stormdrill.dev/runbook-owner"
RUNBOOK_EDITORS = "stormdrill.dev/runbook-editors"
REPO_PATH = "stormdrill.dev/repo-path"

KUBERNETES_LABEL_SELECTOR = "backstage.io/kubernetes-label-selector"
KUBERNETES_ID = "backstage.io/kubernetes-id"
KUBERNETES_NAMESPACE = "backstage.io/kubernetes-namespace"
KUBERNETES_ID_LABEL = "backstage.io/kubernetes-id"
"""A `kubernetes-id` annotation `x` means the label selector `backstage.io/kubernetes-id=x`."""

KNOWN = frozenset(
    {
        TIER,
        RTO,
        RPO,
        VENDOR_CIDRS,
        VENDOR_PORTS,
        AWS_TAGS,
        AWS_REGIONS,
        AWS_ZONES,
        AWS_RESOURCES,
        KUBERNETES_CLUSTERS,
        BREAK_GLASS,
        RUNBOOK_OWNER,
        RUNBOOK_EDITORS,
        REPO_PATH,
    }
)

MIN_TIER = 1
MAX_TIER = 4

OBJECTIVE = re.compile(
    r"^stormdrill\.dev/(?P<which>rto|rpo)(?:\.(?P<mode>[a-z0-9]+(?:-[a-z0-9]+)*))?$"
)
"""`stormdrill.dev/rto`, `stormdrill.dev/rpo.availability-zone`, …"""

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def is_objective(key: str) -> bool:
    return OBJECTIVE.match(key) is not None


def split_list(raw: str) -> tuple[str, ...]:
    """`a, b,,c` → `("a", "b", "c")`."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_tier(raw: str) -> int:
    """A tier from 1 (most critical) to 4."""
    text = raw.strip()
    if not text.isdigit() or not MIN_TIER <= int(text) <= MAX_TIER:
        raise ValueError(f"tier must be a whole number from {MIN_TIER} to {MAX_TIER}, not {raw!r}")
    return int(text)


def parse_duration(raw: str) -> datetime.timedelta:
    """`30s`, `15m`, `1h`, `1h30m`, `2d`, `0s`."""
    text = raw.strip()
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{raw!r} is not a duration (write it like 30s, 15m, 1h or 1h30m)")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    return datetime.timedelta(
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )


def parse_cidrs(raw: str) -> tuple[models.IPNetwork, ...]:
    """`203.0.113.0/24, 2001:db8::/32` (a bare address is a /32 or /128)."""
    networks = []
    for part in split_list(raw):
        try:
            networks.append(ipaddress.ip_network(part, strict=True))
        except ValueError as exc:
            raise ValueError(f"{part!r} is not a CIDR block: {exc}") from None
    if not networks:
        raise ValueError("no CIDR block given (write e.g. 203.0.113.0/24)")
    return tuple(networks)


def parse_ports(raw: str) -> tuple[int, ...]:
    """`443, 8443`."""
    ports = []
    for part in split_list(raw):
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise ValueError(f"{part!r} is not a TCP/UDP port (1-65535)")
        ports.append(int(part))
    if not ports:
        raise ValueError('no port given (write e.g. "443")')
    return tuple(ports)


def parse_tags(raw: str) -> dict[str, str]:
    """`app=checkout, team=payments`."""
    tags: dict[str, str] = {}
    for part in split_list(raw):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{part!r} must be 'key=value'")
        tags[key.strip()] = value.strip()
    if not tags:
        raise ValueError("no tag given (write e.g. app=checkout)")
    return tags


def parse_resources(raw: str) -> tuple[models.AwsResourceId, ...]:
    """`rds:payments-db, asg:shop-web-asg`."""
    resources = tuple(models.AwsResourceId.parse(part) for part in split_list(raw))
    if not resources:
        raise ValueError("no resource given (write e.g. rds:payments-db)")
    return resources


def parse_names(raw: str) -> tuple[str, ...]:
    """A non-empty comma-separated list of names (regions, zones, clusters, namespaces)."""
    names = split_list(raw)
    if not names:
        raise ValueError("no value given")
    return names
