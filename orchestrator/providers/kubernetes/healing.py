"""Healing: undo faults from the `stormdrill.dev/undo` entries an object carries.

Both `revert` (one entry, the one its undo token names) and the sweeper (every entry of an
orphaned run, newest first) go through `heal`, so the journal and the markers can never
disagree about what undoing means.

Entries (see `markers`):
- `cordon` {by}: remove `spec.unschedulable`.
- `taint:<key>:<effect>` {by, taint, replaced}: remove our taint (only if it is still ours);
  put back the taint we replaced when nothing holds its key and effect now.
- `scale` {by, replicas}: set the replica count we saw, through the scale subresource.
- `revoke:<Kind>:<name>` {by, subjects, removed}: when the subjects are still exactly what we
  left, restore the original list (order included); otherwise re-add only what we removed.
- `created` {}: delete the object (this incarnation only).

Invariants: idempotent. Markers of another run, or a missing entry, mean "nothing to do".
One read and one conditional write per heal: the object read to check the markers is the one
the patch is computed from, and the patch carries its resourceVersion (a concurrent change
answers 409 and the change is recomputed from a fresh read).

One request per revert (`heal_at_once`): at apply time each action keeps a `snapshot` of the
object right after its change (uid, marker annotations, our label, and the fields the undo
reads) in its undo token. Reverting sends ONE JSON Patch computed from that snapshot exactly
as `heal` would compute its patch from the object: its first operations `test` the uid, the
run-id and undo annotations and those fields, so the server applies it only if the object is
still as the apply left it, in which case `heal` would have made the very same change. A
created object is deleted with uid and resourceVersion preconditions instead. When the server
refuses (422: a test failed; 409) the caller falls back to `heal`, which reads the object and
says what happened as it always has (someone else changed it, already undone, replaced).
Rollback reverts the entries of one target newest first, one at a time, so the undo
annotation an apply recorded is exactly what the object carries when that entry is reverted.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Mapping
from typing import Any

from orchestrator import mutations
from orchestrator.providers.kubernetes import connection, markers, objects
from orchestrator.providers.kubernetes import errors as kube_errors

log = logging.getLogger(__name__)

CORDON = "cordon"
SCALE = "scale"
CREATED = "created"
SNAPSHOT = "fast"
"""Undo-token key holding the `snapshot` that lets `heal_at_once` revert in one request."""


def taint_key(taint: Mapping[str, Any]) -> str:
    return f"taint:{taint.get('key')}:{taint.get('effect')}"


def subject_key(subject: Mapping[str, Any]) -> str:
    namespace = subject.get("namespace")
    name = f"{namespace}/{subject.get('name')}" if namespace else str(subject.get("name"))
    return f"revoke:{subject.get('kind')}:{name}"


def same_taint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (a.get("key"), a.get("effect"), a.get("value") or "") == (
        b.get("key"),
        b.get("effect"),
        b.get("value") or "",
    )


def same_subject(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (a.get("kind"), a.get("name"), a.get("namespace") or "") == (
        b.get("kind"),
        b.get("name"),
        b.get("namespace") or "",
    )


def _taints(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(t) for t in ((obj.get("spec") or {}).get("taints") or [])]


def _heal_taint(taints: list[dict[str, Any]], data: Mapping[str, Any]) -> list[dict[str, Any]]:
    ours = data.get("taint")
    if not isinstance(ours, Mapping):
        return taints
    kept = [t for t in taints if not same_taint(t, ours)]
    replaced = data.get("replaced")
    if isinstance(replaced, Mapping) and not any(
        t.get("key") == replaced.get("key") and t.get("effect") == replaced.get("effect")
        for t in kept
    ):
        kept.append(dict(replaced))
    return kept


def _heal_subjects(subjects: list[dict[str, Any]], data: Mapping[str, Any]) -> list[dict[str, Any]]:
    original = [dict(s) for s in data.get("subjects") or [] if isinstance(s, Mapping)]
    removed = [dict(s) for s in data.get("removed") or [] if isinstance(s, Mapping)]
    left = [s for s in original if not any(same_subject(s, r) for r in removed)]
    if subjects == left:
        return original
    missing = [r for r in removed if not any(same_subject(r, s) for s in subjects)]
    return subjects + missing


def _body(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    obj: Mapping[str, Any],
    chosen: list[tuple[str, Mapping[str, Any]]],
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    taints = _taints(obj)
    subjects = [dict(s) for s in obj.get("subjects") or []]
    touched_taints = touched_subjects = False
    for key, data in chosen:
        if key == CORDON:
            body.setdefault("spec", {})["unschedulable"] = None
        elif key.startswith("taint:"):
            taints, touched_taints = _heal_taint(taints, data), True
        elif key == SCALE:
            replicas = data.get("replicas")
            if isinstance(replicas, int):
                objects.set_replicas(conn, ref, replicas)
        elif key.startswith("revoke:"):
            subjects, touched_subjects = _heal_subjects(subjects, data), True
        else:
            log.warning("%s: unknown undo entry %r left in place", ref, key)
    if touched_taints:
        body.setdefault("spec", {})["taints"] = taints or None
    if touched_subjects:
        body["subjects"] = subjects
    return body


def heal(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    *,
    run_id: str,
    keys: Collection[str] | None = None,
    step: str | None = None,
) -> list[str]:
    """Undo this run's entries on `ref` (`keys`, or all; only those set by `step` when given).

    Returns the entry keys healed (empty: nothing of ours was there).
    """
    healed: list[str] = []

    def wanted(key: str, data: Mapping[str, Any]) -> bool:
        return (keys is None or key in keys) and (step is None or data.get("by") in (None, step))

    current = objects.read(conn, ref)
    if current is None:
        return healed
    marker = markers.read(current)
    if marker is None or marker.run_id != run_id:
        return healed
    if CREATED in marker.entries and wanted(CREATED, marker.entries[CREATED]):
        uid = (current.get("metadata") or {}).get("uid")
        objects.delete(conn, ref, uid=str(uid) if uid else None)
        return [CREATED]

    def change(obj: connection.KubeObject) -> dict[str, Any] | None:
        healed.clear()
        found = markers.read(obj)
        if found is None or found.run_id != run_id:
            return None
        chosen = [
            (key, data) for key, data in reversed(list(found.entries.items())) if wanted(key, data)
        ]
        if not chosen:
            return None
        body = _body(conn, ref, obj, chosen)
        body["metadata"] = markers.remove_entries(obj, keys={key for key, _ in chosen})
        healed.extend(key for key, _ in chosen)
        return body

    objects.update(conn, ref, change, current=current)
    if healed:
        log.info("%s: healed %s of run %s", ref, ", ".join(healed), run_id)
    return healed


class AtOnce(enum.Enum):
    """How a one-request revert (`heal_at_once`) ended."""

    HEALED = "healed"
    """Undone by that one request."""
    ABSENT = "absent"
    """The object does not exist: nothing to undo (as `heal` finds)."""
    FALL_BACK = "fall back"
    """Nothing was changed: the object is not as the apply left it, or the snapshot cannot
    say how to undo the entry; `heal` must read the object and decide."""


def snapshot(
    obj: Mapping[str, Any] | None, *, key: str | None
) -> dict[str, mutations.JsonValue] | None:
    """What reverting entry `key` in one request needs from `obj`, the object right after
    the apply that recorded the entry (None: the entry is not on it; revert will read).

    Kept: the uid, the marker annotations (exact values) and our label, plus what the undo
    reads: `spec.unschedulable` (cordon), `spec.taints` (taint), `subjects` (revoke; the
    resourceVersion when none are left), the resourceVersion of a created object.
    """
    if obj is None or key is None:
        return None
    meta = obj.get("metadata") or {}
    marker = markers.read(obj)
    if not meta.get("uid") or marker is None or key not in marker.entries:
        return None
    annotations = markers.annotations_of(obj)
    found: dict[str, mutations.JsonValue] = {
        "uid": str(meta["uid"]),
        "annotations": {k: annotations[k] for k in markers.ANNOTATIONS if k in annotations},
    }
    label = (meta.get("labels") or {}).get(markers.RUN_ID)
    if label is not None:
        found["label"] = str(label)
    spec = obj.get("spec") or {}
    if key == CORDON:
        if spec.get("unschedulable") is not True:
            return None
        found["unschedulable"] = True
    elif key.startswith("taint:"):
        if not spec.get("taints"):
            return None
        found["taints"] = _taints(obj)
    elif key.startswith("revoke:"):
        if obj.get("subjects"):
            found["subjects"] = [dict(s) for s in obj["subjects"]]
        else:
            found["resourceVersion"] = objects.resource_version(obj)
    elif key == CREATED:
        found["resourceVersion"] = objects.resource_version(obj)
    elif key != SCALE:
        return None
    return mutations.freeze_json(found, what=f"snapshot of {markers.UNDO} entry {key}")


def _recorded(snap: Mapping[str, Any]) -> dict[str, Any]:
    """The object as far as `snapshot` kept it."""
    meta: dict[str, Any] = {
        "uid": snap.get("uid"),
        "annotations": dict(snap.get("annotations") or {}),
    }
    if snap.get("label") is not None:
        meta["labels"] = {markers.RUN_ID: snap["label"]}
    if snap.get("resourceVersion"):
        meta["resourceVersion"] = snap["resourceVersion"]
    found: dict[str, Any] = {"metadata": meta}
    spec = {field: snap[field] for field in ("unschedulable", "taints") if field in snap}
    if spec:
        found["spec"] = spec
    if "subjects" in snap:
        found["subjects"] = snap["subjects"]
    return found


def _test(path: str, value: Any) -> dict[str, Any]:
    return {"op": "test", "path": path, "value": value}


def _undo_ops(obj: Mapping[str, Any], key: str, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The operations that undo entry `key` on `obj` as `_body` would, each guarded by a
    `test` of what it reads (empty: it cannot be said as a JSON Patch)."""
    spec = obj.get("spec") or {}
    if key == CORDON and spec.get("unschedulable") is True:
        return [_test("/spec/unschedulable", True), {"op": "remove", "path": "/spec/unschedulable"}]
    if key.startswith("taint:") and spec.get("taints"):
        taints = _taints(obj)
        kept = _heal_taint(taints, data)
        write = (
            {"op": "replace", "path": "/spec/taints", "value": kept}
            if kept
            else {"op": "remove", "path": "/spec/taints"}
        )
        return [_test("/spec/taints", taints), write]
    if key == SCALE:
        replicas = data.get("replicas")
        if isinstance(replicas, int) and not isinstance(replicas, bool):
            # `heal` sets the count seen before whatever the count is now: nothing to test.
            return [{"op": "replace", "path": "/spec/replicas", "value": replicas}]
        return []
    if key.startswith("revoke:"):
        if "subjects" in obj:
            subjects = [dict(s) for s in obj["subjects"]]
            guard = _test("/subjects", subjects)
        elif objects.resource_version(obj):
            subjects, guard = [], _test("/metadata/resourceVersion", objects.resource_version(obj))
        else:
            return []
        return [guard, {"op": "add", "path": "/subjects", "value": _heal_subjects(subjects, data)}]
    return []


def revert_ops(
    snap: Mapping[str, Any], *, run_id: str, key: str, step: str | None = None
) -> list[dict[str, Any]] | None:
    """The JSON Patch undoing entry `key` in one request, from its `snapshot` (None: it
    cannot be said as one: `heal` must read the object).

    Its first operations test the uid and the run-id and undo annotations; then come the
    undo's own tests and writes (`_undo_ops`) and the marker removal (`markers.remove_entries_ops`).
    """
    obj = _recorded(snap)
    marker = markers.read(obj)
    if marker is None or marker.run_id != run_id or not obj["metadata"]["uid"]:
        return None
    data = marker.entries.get(key)
    if data is None or (step is not None and data.get("by") not in (None, step)):
        return None
    undo = _undo_ops(obj, key, data)
    if not undo:
        return None
    annotations = obj["metadata"]["annotations"]
    return [
        _test("/metadata/uid", obj["metadata"]["uid"]),
        _test(markers.pointer("metadata", "annotations", markers.RUN_ID), run_id),
        _test(markers.pointer("metadata", "annotations", markers.UNDO), annotations[markers.UNDO]),
        *undo,
        *markers.remove_entries_ops(obj, keys={key}),
    ]


def heal_at_once(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    *,
    run_id: str,
    key: str,
    snap: Mapping[str, Any],
    step: str | None = None,
) -> AtOnce:
    """Undo this run's entry `key` on `ref` in one request, from the apply's `snapshot`.

    `AtOnce.FALL_BACK` (nothing changed) when the object is not as the apply left it (the
    server refused: 422 or 409) or the snapshot cannot say how: the caller then calls `heal`.
    """
    if key == CREATED:
        return _delete_at_once(conn, ref, run_id=run_id, snap=snap)
    ops = revert_ops(snap, run_id=run_id, key=key, step=step)
    if ops is None:
        return AtOnce.FALL_BACK
    try:
        applied = objects.json_patch(conn, ref, ops)
    except (objects.PatchRefused, kube_errors.Conflict) as exc:
        log.info("%s is not as the apply left it (%s); reading it to undo %s", ref, exc, key)
        return AtOnce.FALL_BACK
    if not applied:
        return AtOnce.ABSENT
    log.info("%s: healed %s of run %s", ref, key, run_id)
    return AtOnce.HEALED


def _delete_at_once(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    *,
    run_id: str,
    snap: Mapping[str, Any],
) -> AtOnce:
    marker = markers.read(_recorded(snap))
    uid = str(snap.get("uid") or "")
    if not uid or marker is None or marker.run_id != run_id or CREATED not in marker.entries:
        return AtOnce.FALL_BACK
    version = snap.get("resourceVersion")
    done = objects.delete_exact(
        conn, ref, uid=uid, resource_version=str(version) if version else None
    )
    if done is None:
        log.info("%s was replaced or changed since we created it; reading it to delete it", ref)
        return AtOnce.FALL_BACK
    if done:
        log.info("%s: healed %s of run %s", ref, CREATED, run_id)
    return AtOnce.HEALED if done else AtOnce.ABSENT
