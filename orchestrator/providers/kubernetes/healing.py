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
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from orchestrator import mutations
from orchestrator.providers.kubernetes import connection, markers, objects

log = logging.getLogger(__name__)

CORDON = "cordon"
SCALE = "scale"
CREATED = "created"


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
