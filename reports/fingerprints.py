"""Fingerprints: a content hash of a CMDB service entry, to tell when it changed.

Coverage calls a pass stale "by change" when the service's entry changed after the run.
We hash what a drill's outcome depends on — tier, owner, system, dependencies, APIs,
vendors, objectives, Kubernetes and AWS placement, people — as canonical JSON with
SHA-256 (first 16 hex digits). The source file and line are left out: moving an entity
between files, reformatting or adding a comment does not invalidate a pass. The hash of
every impacted service is stored with each run (`writing.write_for_run`).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import ipaddress
import json
from collections.abc import Mapping

from orchestrator.cmdb import models

_IGNORED = frozenset({"source", "title", "description"})


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in _IGNORED
        }
    if isinstance(value, models.EntityRef):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, tuple | list | frozenset | set):
        items = [_plain(v) for v in value]
        if isinstance(value, frozenset | set):
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return items
    return value


def of_service(service: models.Service) -> str:
    """`sha256:<16 hex>` of the service's drill-relevant content."""
    canonical = json.dumps(_plain(service), sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
