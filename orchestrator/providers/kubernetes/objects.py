"""Objects: reading, patching and deleting the object a `TargetRef` names, conflict-safely.

Invariants:
- `update` is read-modify-write: the patch carries the resourceVersion it was computed from,
  so a concurrent change answers 409 and the change is recomputed from a fresh read (a few
  times, then `kube_errors.Conflict`, which is retryable). A caller that has just read the
  object passes it (`current=`) to save the first read; the precondition still guards it.
- Patches are JSON merge patches (`null` removes a key; lists are replaced whole), except
  `json_patch`: a JSON Patch (RFC 6902) whose `test` operations make it a conditional write
  in one request. The server applies all of it or none; it refuses it with 422 when an
  operation cannot be applied (a test fails, a path is missing), which is `PatchRefused`.
- `delete_exact` deletes with uid and resourceVersion preconditions in one request; a failed
  precondition (409) answers None rather than being looked into.
- `object_state` is the object minus what the server changes by itself (resourceVersion,
  managedFields, generation, observedGeneration, status timestamps), with empty label and
  annotation maps dropped (the API server omits them): before/after comparisons are exact.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator import errors, mutations
from orchestrator.providers.kubernetes import connection
from orchestrator.providers.kubernetes import errors as kube_errors

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
UNPROCESSABLE = 422
UPDATE_ATTEMPTS = 6
KubeObject = connection.KubeObject


@dataclasses.dataclass(frozen=True)
class KindApi:
    """How to reach one kind: its API group accessor and method name stem."""

    group: str
    stem: str
    namespaced: bool


KINDS: Mapping[str, KindApi] = {
    "node": KindApi("core", "node", False),
    "namespace": KindApi("core", "namespace", False),
    "pod": KindApi("core", "namespaced_pod", True),
    "deployment": KindApi("apps", "namespaced_deployment", True),
    "statefulset": KindApi("apps", "namespaced_stateful_set", True),
    "networkpolicy": KindApi("networking", "namespaced_network_policy", True),
    "rolebinding": KindApi("rbac", "namespaced_role_binding", True),
    "clusterrolebinding": KindApi("rbac", "cluster_role_binding", False),
}


def _api(conn: connection.KubeConnection, ref: mutations.TargetRef) -> tuple[Any, KindApi]:
    spec = KINDS.get(ref.kind)
    if spec is None:
        raise errors.ProviderPermanent(
            f"{ref}: the kubernetes provider cannot address objects of kind {ref.kind!r}"
            f" (known: {', '.join(sorted(KINDS))})"
        )
    if spec.namespaced and not ref.namespace:
        raise errors.ProviderPermanent(f"{ref}: a {ref.kind} needs a namespace")
    return getattr(conn, spec.group), spec


def _args(spec: KindApi, ref: mutations.TargetRef) -> tuple[str, ...]:
    return (ref.name, ref.namespace or "") if spec.namespaced else (ref.name,)


def read(conn: connection.KubeConnection, ref: mutations.TargetRef) -> KubeObject | None:
    """The object, or None when it does not exist."""
    api, spec = _api(conn, ref)
    try:
        found: KubeObject = conn.call(
            str(ref), getattr(api, f"read_{spec.stem}"), *_args(spec, ref)
        )
    except kube_errors.NotFound:
        return None
    return found


def patch(
    conn: connection.KubeConnection, ref: mutations.TargetRef, body: Mapping[str, Any]
) -> KubeObject:
    """Merge-patch the object (a `metadata.resourceVersion` in `body` is a precondition)."""
    api, spec = _api(conn, ref)
    result: KubeObject = conn.call(
        str(ref),
        getattr(api, f"patch_{spec.stem}"),
        *_args(spec, ref),
        dict(body),
        _content_type=MERGE_PATCH,
    )
    return result


class PatchRefused(errors.ProviderPermanent):
    """The API server would not apply a JSON Patch (422): a `test` failed or a path is gone.

    The server says no more than that (its message names neither), and nothing was changed.
    """


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of the SDK error `connection.call` translated into `exc`."""
    status = getattr(exc.__cause__, "status", None)
    return status if isinstance(status, int) else None


def json_patch(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    operations: Sequence[Mapping[str, Any]],
) -> bool:
    """Apply a JSON Patch in one request: True applied, False the object does not exist.

    `PatchRefused` when the server refuses it (a `test` failed: nothing was changed). The
    object the server sends back is not parsed: a revert needs only to know it was applied.
    """
    api, spec = _api(conn, ref)
    try:
        conn.call_raw(
            str(ref),
            getattr(api, f"patch_{spec.stem}"),
            *_args(spec, ref),
            [dict(op) for op in operations],
            _content_type=JSON_PATCH,
        )
    except kube_errors.NotFound:
        return False
    except errors.ProviderPermanent as exc:
        if _status_code(exc) == UNPROCESSABLE:
            raise PatchRefused(
                f"{ref}: the API server refused the conditional patch (a test failed): {exc}"
            ) from exc
        raise
    return True


def delete_exact(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    *,
    uid: str,
    resource_version: str | None = None,
) -> bool | None:
    """Delete this incarnation (`uid`), unchanged since `resource_version` when given, in one
    request: True deleted, False already gone, None a precondition failed (409: replaced or
    changed since; the caller looks into it)."""
    api, spec = _api(conn, ref)
    preconditions = {"uid": uid}
    if resource_version:
        preconditions["resourceVersion"] = resource_version
    try:
        conn.call(
            str(ref),
            getattr(api, f"delete_{spec.stem}"),
            *_args(spec, ref),
            body={"preconditions": preconditions},
        )
    except kube_errors.NotFound:
        return False
    except kube_errors.Conflict:
        return None
    return True


def delete(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    *,
    uid: str | None = None,
    grace_period_s: int | None = None,
) -> bool:
    """Delete the object (only the incarnation `uid` when given); False if it was already gone."""
    api, spec = _api(conn, ref)
    body: dict[str, Any] = {}
    if uid:
        body["preconditions"] = {"uid": uid}
    if grace_period_s is not None:
        body["gracePeriodSeconds"] = grace_period_s
    try:
        conn.call(
            str(ref), getattr(api, f"delete_{spec.stem}"), *_args(spec, ref), body=body or None
        )
    except kube_errors.NotFound:
        return False
    except kube_errors.Conflict:
        if uid is None:
            raise
        # 409 is either the uid precondition failing (a newer incarnation holds the name: ours
        # is gone) or a transient conflict on our own object (it is still there: retry).
        current = read(conn, ref)
        if current is not None and str((current.get("metadata") or {}).get("uid")) == uid:
            raise
        return False
    return True


def resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def update(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    change: Callable[[KubeObject], dict[str, Any] | None],
    *,
    current: KubeObject | None = None,
) -> KubeObject | None:
    """Read, compute `change(obj)` (a merge patch, or None for nothing to do), write; on 409 redo.

    `current`, when given, is the object the caller has just read: the first attempt uses it
    instead of reading again (one read and one conditional write). It is still only a
    starting point: the write carries its resourceVersion, so if it is stale the server
    answers 409 and the change is recomputed from a fresh read.

    Returns the object as written (or as read when nothing changed), None if it does not exist.
    """
    for attempt in range(1, UPDATE_ATTEMPTS + 1):
        if attempt > 1 or current is None:
            current = read(conn, ref)
        if current is None:
            return None
        body = change(current)
        if body is None:
            return current
        body = dict(body)
        metadata = dict(body.get("metadata") or {})
        metadata["resourceVersion"] = resource_version(current)
        body["metadata"] = metadata
        try:
            return patch(conn, ref, body)
        except kube_errors.NotFound:
            return None
        except kube_errors.Conflict as exc:
            if attempt == UPDATE_ATTEMPTS:
                raise
            log.info(
                "%s changed while we updated it (%s); re-reading (attempt %d)", ref, exc, attempt
            )
    return None  # unreachable


_SERVER_FIELDS = ("resourceVersion", "managedFields", "generation")


def _without_timestamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_timestamps(item)
            for key, item in value.items()
            if not (key.endswith("Time") or key.endswith("Timestamp") or key == "startedAt")
            and key != "observedGeneration"
        }
    if isinstance(value, list):
        return [_without_timestamps(item) for item in value]
    return value


def normalized(obj: Mapping[str, Any]) -> KubeObject:
    """`obj` as `object_state` compares it (see the module docstring)."""
    state = dict(obj)
    meta = {k: v for k, v in dict(state.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    for key in ("labels", "annotations"):
        if not meta.get(key):
            meta.pop(key, None)
    state["metadata"] = meta
    if "status" in state:
        state["status"] = _without_timestamps(state["status"])
    return state


def object_state(conn: connection.KubeConnection, ref: mutations.TargetRef) -> KubeObject | None:
    """The object named by `ref`, normalised for exact before/after comparison (None: absent)."""
    found = read(conn, ref)
    return None if found is None else normalized(found)


def ref_of(obj: Mapping[str, Any], *, kind: str) -> mutations.TargetRef:
    """The `TargetRef` of an object read from the API."""
    meta = obj.get("metadata") or {}
    return mutations.TargetRef(
        provider=connection.PROVIDER,
        kind=kind,
        name=str(meta.get("name")),
        namespace=meta.get("namespace") if KINDS[kind].namespaced else None,
        uid=meta.get("uid"),
    )


def items(answer: Any) -> list[KubeObject]:
    """The `items` of a list answer."""
    found = (answer or {}).get("items") or []
    return [item for item in found if isinstance(item, dict)]


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in ((obj.get("metadata") or {}).get("labels") or {}).items()}


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def read_scale(conn: connection.KubeConnection, ref: mutations.TargetRef) -> KubeObject | None:
    """The `scale` subresource of a deployment or statefulset, or None if it does not exist."""
    api, spec = _api(conn, ref)
    try:
        found: KubeObject = conn.call(
            f"{ref} (scale)", getattr(api, f"read_{spec.stem}_scale"), *_args(spec, ref)
        )
    except kube_errors.NotFound:
        return None
    return found


def set_replicas(conn: connection.KubeConnection, ref: mutations.TargetRef, replicas: int) -> bool:
    """Set spec.replicas through the scale subresource (409-safe); False if the object is gone."""
    api, spec = _api(conn, ref)
    for attempt in range(1, UPDATE_ATTEMPTS + 1):
        scale = read_scale(conn, ref)
        if scale is None:
            return False
        if int((scale.get("spec") or {}).get("replicas", 0)) == replicas:
            return True
        body = {
            "apiVersion": scale.get("apiVersion", "autoscaling/v1"),
            "kind": "Scale",
            "metadata": {
                "name": ref.name,
                "namespace": ref.namespace,
                "resourceVersion": resource_version(scale),
            },
            "spec": {"replicas": replicas},
        }
        try:
            conn.call(
                f"{ref} (scale)",
                getattr(api, f"replace_{spec.stem}_scale"),
                *_args(spec, ref),
                body,
            )
            return True
        except kube_errors.NotFound:
            return False
        except kube_errors.Conflict:
            if attempt == UPDATE_ATTEMPTS:
                raise
            log.info("%s scale changed while we set it; re-reading (attempt %d)", ref, attempt)
    return False  # unreachable
