"""Markers: the annotations (and labels) a drill leaves on every object it changes.

Every changed object carries `stormdrill.dev/run-id`, `stormdrill.dev/expires-at` (RFC 3339
UTC) and `stormdrill.dev/undo`: compact JSON mapping an *entry key* (one fault on this object:
`cordon`, `taint:<key>:<effect>`, `scale`, `revoke:<Kind>:<name>`, `created`) to what healing
that fault needs. With them the sweeper heals an object without the journal.

Invariants:
- One run's markers per object: adding an entry for another run raises `ForeignMarker`.
- Entries keep their insertion order; healing all of them goes newest first.
- Objects we create also carry the label `stormdrill.dev/run-id` (label-selector sweeps).
- Removing the last entry removes every marker (annotations, and our label if present).
  `remove_entries` says it as a merge patch, `remove_entries_ops` as JSON Patch operations
  (for the one-request revert in `healing`): applied to the same object, both leave the same.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator import mutations
from orchestrator.providers.kubernetes import errors as kube_errors

log = logging.getLogger(__name__)

RUN_ID = "stormdrill.dev/run-id"
EXPIRES_AT = "stormdrill.dev/expires-at"
UNDO = "stormdrill.dev/undo"
ANNOTATIONS: tuple[str, ...] = (RUN_ID, EXPIRES_AT, UNDO)
LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclasses.dataclass(frozen=True)
class Marker:
    """The markers found on one object."""

    run_id: str
    expires_at: datetime
    entries: Mapping[str, Mapping[str, mutations.JsonValue]]

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, second precision (`2025-01-01T12:00:00Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """The moment in an `expires-at` annotation; unreadable text counts as long expired."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return LONG_AGO
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def label_value(run_id: str) -> str:
    """`run_id` as a valid label value (at most 63 characters, safe characters only)."""
    cleaned = _LABEL_UNSAFE.sub("-", run_id).strip("-_.")[:63].strip("-_.")
    return cleaned or "unknown"


def short_run_id(run_id: str) -> str:
    """Eight lower-case characters naming the run inside object names."""
    cleaned = re.sub(r"[^a-z0-9]", "", run_id.lower())
    return cleaned[-8:] or "run"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(_meta(obj).get("annotations") or {})


def read(obj: Mapping[str, Any]) -> Marker | None:
    """The markers on `obj`, or None when it carries no run id."""
    annotations = annotations_of(obj)
    run_id = annotations.get(RUN_ID)
    if not run_id:
        return None
    entries: dict[str, Mapping[str, mutations.JsonValue]] = {}
    raw = annotations.get(UNDO, "")
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {}
        log.warning(
            "%s: unreadable %s annotation %r; nothing to heal from it", _name(obj), UNDO, raw
        )
    if isinstance(parsed, dict):
        entries = {str(k): v for k, v in parsed.items() if isinstance(v, dict)}
    return Marker(
        run_id=run_id,
        expires_at=parse_time(annotations.get(EXPIRES_AT, "")),
        entries=entries,
    )


def _name(obj: Mapping[str, Any]) -> str:
    meta = _meta(obj)
    namespace = meta.get("namespace")
    return f"{obj.get('kind', 'object')} {namespace + '/' if namespace else ''}{meta.get('name')}"


def _dump(entries: Mapping[str, Any]) -> str:
    return json.dumps(entries, separators=(",", ":"))


def entry(obj: Mapping[str, Any], *, run_id: str, key: str) -> Mapping[str, Any] | None:
    """This run's entry `key` on `obj`, or None."""
    marker = read(obj)
    if marker is None or marker.run_id != run_id:
        return None
    return marker.entries.get(key)


def check_free(obj: Mapping[str, Any], *, run_id: str) -> None:
    """Raise `ForeignMarker` when `obj` carries another run's markers."""
    marker = read(obj)
    if marker is not None and marker.run_id != run_id and marker.entries:
        raise kube_errors.ForeignMarker(
            f"{_name(obj)} carries a fault of drill run {marker.run_id} (expires"
            f" {format_time(marker.expires_at)}); wait for that run to finish or run"
            " `stormdrill recover` to heal it first"
        )


def add_entry(
    obj: Mapping[str, Any],
    *,
    run_id: str,
    expires_at: datetime,
    key: str,
    data: Mapping[str, mutations.JsonValue],
) -> dict[str, Any]:
    """The `metadata` patch that records entry `key` on `obj` (keeping earlier entries)."""
    check_free(obj, run_id=run_id)
    marker = read(obj)
    entries: dict[str, Any] = (
        dict(marker.entries) if marker is not None and marker.run_id == run_id else {}
    )
    entries[key] = dict(data)
    return {
        "annotations": {
            RUN_ID: run_id,
            EXPIRES_AT: format_time(expires_at),
            UNDO: _dump(entries),
        }
    }


def remove_entries(obj: Mapping[str, Any], *, keys: set[str]) -> dict[str, Any]:
    """The `metadata` patch that drops `keys` (and every marker once no entry is left)."""
    marker = read(obj)
    remaining = {k: v for k, v in (marker.entries if marker else {}).items() if k not in keys}
    if remaining:
        return {"annotations": {UNDO: _dump(remaining)}}
    annotations = annotations_of(obj)
    leftover = {k: v for k, v in annotations.items() if k not in ANNOTATIONS}
    patch: dict[str, Any] = {
        "annotations": None if not leftover else dict.fromkeys(ANNOTATIONS),
    }
    labels = dict(_meta(obj).get("labels") or {})
    if RUN_ID in labels:
        patch["labels"] = None if len(labels) == 1 else {RUN_ID: None}
    return patch


def pointer(*parts: str) -> str:
    """The JSON Pointer (RFC 6901) to `parts`: `pointer("metadata", "annotations", RUN_ID)`
    is `/metadata/annotations/stormdrill.dev~1run-id`."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def remove_entries_ops(obj: Mapping[str, Any], *, keys: set[str]) -> list[dict[str, Any]]:
    """The JSON Patch operations doing to `obj` what `remove_entries(obj, keys=keys)` does.

    They assume `obj` is what the server holds (the caller's `test` operations make sure):
    a `remove` of a marker the object no longer carries fails the whole patch.
    """
    marker = read(obj)
    remaining = {k: v for k, v in (marker.entries if marker else {}).items() if k not in keys}
    if remaining:
        path = pointer("metadata", "annotations", UNDO)
        return [{"op": "replace", "path": path, "value": _dump(remaining)}]
    annotations = annotations_of(obj)
    ops: list[dict[str, Any]] = [
        {"op": "remove", "path": pointer("metadata", "annotations", key)}
        for key in ANNOTATIONS
        if key in annotations
    ]
    if RUN_ID in (_meta(obj).get("labels") or {}):
        ops.append({"op": "remove", "path": pointer("metadata", "labels", RUN_ID)})
    return ops


def created_metadata(*, run_id: str, expires_at: datetime) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations for an object the drill creates (healed by deleting it)."""
    labels = {RUN_ID: label_value(run_id)}
    annotations = {
        RUN_ID: run_id,
        EXPIRES_AT: format_time(expires_at),
        UNDO: _dump({"created": {}}),
    }
    return labels, annotations
