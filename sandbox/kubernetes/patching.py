"""Patching: JSON merge patch (RFC 7386), a strategic-merge subset, and JSON patch (RFC 6902).

All functions are pure: they return a new document and never modify their inputs. Malformed
patches raise `errors.BadRequest`/`errors.Invalid`, like the API server.

A JSON patch is all or nothing: an operation that cannot be applied (a `test` that fails, a
path that does not exist) refuses the whole patch with 422 Invalid and the real API server's
message, which names neither the operation nor the path ("the server rejected our request due
to an error in our request"); the sandbox logs which operation failed. `test` compares JSON
values exactly, as the server's json-patch library does: `true` is not `1`, `1` is not `1.0`.

Strategic merge covers what drills and kubectl send: maps merge recursively, `null` deletes,
`$patch: replace|delete` on maps, `$setElementOrder/…` and `$retainKeys` ignored,
`$deleteFromPrimitiveList/…`,
and lists merged by key for the few fields Kubernetes declares with a merge key (containers, env,
conditions, tolerations are replaced like upstream, taints are replaced, ...).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from sandbox.kubernetes import errors

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_REFUSED = "the server rejected our request due to an error in our request"
"""The message of the API server's 422 for a JSON patch it could not apply."""

log = logging.getLogger(__name__)

# field name → merge key, for lists that strategic merge merges element-wise.
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "addresses": "type",
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` removes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, *, field: str = "") -> Any:
    """Apply a strategic merge patch (the subset described in the module docstring)."""
    if isinstance(patch, list):
        return _strategic_list(target, patch, field=field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [item for item in result[name] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = strategic_merge_patch(result.get(key), value, field=key)
        if merged is None and isinstance(value, dict) and value.get("$patch") == "delete":
            result.pop(key, None)
        else:
            result[key] = merged
    return result


def _strategic_list(target: Any, patch: list[Any], *, field: str) -> list[Any]:
    key = _MERGE_KEYS.get(field)
    if key is None or not isinstance(target, list):
        return [item for item in copy.deepcopy(patch) if not _is_directive(item)]
    result: list[Any] = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            if isinstance(item, dict) and item.get("$patch") == "replace":
                return [i for i in copy.deepcopy(patch) if not _is_directive(i)]
            continue
        index = next(
            (
                i
                for i, existing in enumerate(result)
                if isinstance(existing, dict) and existing.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            result[index] = strategic_merge_patch(result[index], item, field="")
    return result


def _is_directive(item: Any) -> bool:
    return isinstance(item, dict) and "$patch" in item and len(item) == 1


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.BadRequest(f"json patch: path {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> Any:
    current = doc
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise errors.Invalid(f"json patch: path {path!r} does not exist")
    return current


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise errors.Invalid(f"json patch: index {last!r} out of range at {path!r}")
    else:
        raise errors.Invalid(f"json patch: {path!r} has no container to add into")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise errors.Invalid("json patch: cannot remove the whole document")
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise errors.Invalid(f"json patch: path {path!r} does not exist")
    return doc


def same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are equal, types included (`true` != `1`, `1` != `1.0`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test; all or nothing (module docstring)."""
    if not isinstance(operations, list):
        raise errors.BadRequest("json patch: the body must be a JSON array of operations")
    try:
        return _json_patch(copy.deepcopy(target), operations)
    except errors.Invalid as exc:
        log.info("json patch refused (422): %s", exc)
        raise errors.Invalid(PATCH_REFUSED) from exc


def _json_patch(doc: Any, operations: list[Any]) -> Any:
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise errors.BadRequest(f"json patch: malformed operation {op!r} (needs op and path)")
        path = str(op["path"])
        parts = _pointer(path)
        match op["op"]:
            case "add":
                doc = _add(doc, parts, copy.deepcopy(op.get("value")), path)
            case "remove":
                doc = _remove(doc, parts, path)
            case "replace":
                _resolve(doc, parts, path)
                doc = _add(
                    _remove(doc, parts, path) if parts else doc,
                    parts,
                    copy.deepcopy(op.get("value")),
                    path,
                )
            case "move" | "copy":
                source = str(op.get("from", ""))
                value = copy.deepcopy(_resolve(doc, _pointer(source), source))
                if op["op"] == "move":
                    doc = _remove(doc, _pointer(source), source)
                doc = _add(doc, parts, value, path)
            case "test":
                if not same_json(_resolve(doc, parts, path), op.get("value")):
                    raise errors.Invalid(f"json patch: test failed at {path!r}")
            case other:
                raise errors.BadRequest(f"json patch: unknown operation {other!r}")
    return doc


def apply_patch(*, target: Any, patch: Any, content_type: str) -> Any:
    """Dispatch on the request's Content-Type."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == MERGE_PATCH:
        return merge_patch(target, patch)
    if media == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(target, patch)
    if media == JSON_PATCH:
        return json_patch(target, patch)
    raise errors.UnsupportedMediaType(
        f"the patch content type {content_type!r} is not supported; use {MERGE_PATCH},"
        f" {STRATEGIC_MERGE_PATCH} or {JSON_PATCH}"
    )
