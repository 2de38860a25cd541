"""Markers: the `stormdrill:*` tags a fault carries in AWS, so a sweep can heal it alone.

Invariants:
- Every resource an action changes carries `stormdrill:run-id` and `stormdrill:expires-at`
  while the fault is in effect; they are written *before* the change and removed *after*
  the undo, so "marker present" means "maybe changed" and "marker absent" means "ours is
  undone (or never happened)".
- A tag value holds at most 256 characters: longer values are split over numbered keys
  (`key`, `key:2`, `key:3`, ...) and joined back on reading.
- IAM, Auto Scaling and RDS tag values allow only letters, digits, spaces and `_.:/=+-@`,
  so undo data there is written as `/`-separated lists, never JSON; EC2 allows any
  character, so EC2 resources carry `stormdrill:undo` as compact JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from orchestrator import mutations

RUN_ID: Final = "stormdrill:run-id"
EXPIRES_AT: Final = "stormdrill:expires-at"
UNDO: Final = "stormdrill:undo"
ZONE: Final = "stormdrill:zone"
ORIGINAL_ASSOCIATIONS: Final = "stormdrill:original-associations"
SUSPENDED_KEYS: Final = "stormdrill:suspended-keys"
PREVIOUS_SUBNETS: Final = "stormdrill:previous-subnets"
SUSPENDED_PROCESSES: Final = "stormdrill:suspended-processes"
OPT_IN: Final = "stormdrill:allow"
PROTECTED: Final = "stormdrill:protected"
PREFIX: Final = "stormdrill:"
SUSPENDED_POLICY_PREFIX: Final = "stormdrill-suspended-"

TAG_VALUE_MAX: Final = 256
_POLICY_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


@dataclass(frozen=True)
class Marker:
    """Whose fault this is and when anyone may heal it."""

    run_id: str
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or datetime.now(UTC))


def timestamp(moment: datetime) -> str:
    """`2026-03-01T10:00:00Z` (UTC, seconds): valid in every service's tag values."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(raw: str) -> datetime:
    """The inverse of `timestamp`; an unreadable value counts as already expired."""
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def split(key: str, value: str) -> dict[str, str]:
    """`value` spread over `key`, `key:2`, ... in chunks of at most 256 characters."""
    chunks = [value[i : i + TAG_VALUE_MAX] for i in range(0, len(value), TAG_VALUE_MAX)] or [""]
    return {(key if n == 0 else f"{key}:{n + 1}"): chunk for n, chunk in enumerate(chunks)}


def join(tags: Mapping[str, str], key: str) -> str | None:
    """The value `split` spread over numbered keys, or None when `key` is absent."""
    if key not in tags:
        return None
    parts = [tags[key]]
    n = 2
    while f"{key}:{n}" in tags:
        parts.append(tags[f"{key}:{n}"])
        n += 1
    return "".join(parts)


def stormdrill_keys(tags: Mapping[str, str]) -> list[str]:
    """Every `stormdrill:*` key except the opt-in and protection tags people set."""
    return sorted(k for k in tags if k.startswith(PREFIX) and k not in (OPT_IN, PROTECTED))


def fault_tags(
    *, run_id: str, expires_at: datetime, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The marker tags of a fault, plus `extra` values split to fit."""
    tags = {RUN_ID: run_id, EXPIRES_AT: timestamp(expires_at)}
    for key, value in (extra or {}).items():
        tags.update(split(key, value))
    return tags


def read(tags: Mapping[str, str]) -> Marker | None:
    """The marker in `tags`, or None when the resource carries none."""
    run_id = tags.get(RUN_ID)
    if run_id is None:
        return None
    return Marker(run_id=run_id, expires_at=parse_timestamp(tags.get(EXPIRES_AT, "")))


def as_dict(tags: Iterable[Mapping[str, object]] | None) -> dict[str, str]:
    """AWS `[{"Key": k, "Value": v}]` tag lists as a dict."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or ()}


def as_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def dumps(value: mutations.JsonValue) -> str:
    """Compact JSON for EC2's `stormdrill:undo`."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def policy_name(run_id: str) -> str:
    """`stormdrill-suspended-<run>` with characters IAM refuses replaced, at most 128 long."""
    return (SUSPENDED_POLICY_PREFIX + _POLICY_NAME_UNSAFE.sub("-", run_id))[:128]


def words(raw: str | None) -> list[str]:
    """A `/`-separated list written into a restricted tag value."""
    return [part for part in (raw or "").split("/") if part]
