"""Cluster store: the thread-safe, in-memory single source of truth of the sandbox cluster.

Invariants:
- Objects go in and come out as deep copies; stored objects are never modified in place (each
  write stores a new object), so event-log entries can share them safely.
- Every write bumps the store-wide resourceVersion and records a watch event (ADDED, MODIFIED,
  DELETED) in a bounded log; `wait_for_change` wakes watchers and the controller.
- Writes that carry a `metadata.resourceVersion` different from the stored one raise `Conflict`.
- For types with a status subresource, writes to the main resource keep the stored status and
  status writes keep everything else, as the real API server does.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import builtins
import collections
import dataclasses
import datetime
import json
import random
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.kubernetes import disruption, errors, patching, resources, selectors

ResourceType = resources.ResourceType
KubeObject = dict[str, object]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Upstream's DNS1123SubdomainErrorMsg with its RegexError suffix, word for word.
_DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex"
    " used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
_LATEST = -1  # a continue token's resourceVersion meaning "at the latest version"
_TOO_OLD = "The resourceVersion for the provided list is too old."
_INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can"
    " start a new list without the continue parameter, or use the continue token in this"
    " response to retrieve the remainder of the results. Continuing with the provided token"
    " results in an inconsistent list - objects that were created, modified, or deleted"
    " between the time the first chunk was returned and now may show up in the list."
)


def clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes it."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One change; `object` is the stored (shared, read-only) object after the change."""

    type: str  # ADDED | MODIFIED | DELETED
    resource: resources.ResourceType
    object: Mapping[str, Any]
    resource_version: int


@dataclasses.dataclass(frozen=True)
class ListPage:
    """One page of a list: items (copies), the list's resourceVersion and the continue token."""

    items: list[KubeObject]
    resource_version: str
    continue_token: str
    remaining: int | None


def _matches(
    obj: Mapping[str, Any], labels: selectors.LabelSelector, fields: selectors.FieldSelector
) -> bool:
    return labels.matches(_meta(obj).get("labels") or {}) and fields.matches(obj)


def _drop_empty_meta(meta: dict[str, Any]) -> None:
    """Drop empty metadata maps and lists: Go's `omitempty` never writes them on the wire."""
    for field in ("labels", "annotations", "finalizers", "ownerReferences", "managedFields"):
        if field in meta and not meta[field]:
            del meta[field]


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


class ClusterStore:
    """Objects by type and (namespace, name); see the module docstring for the invariants."""

    def __init__(
        self,
        *,
        registry: resources.ResourceRegistry | None = None,
        event_log_size: int = 200_000,
        clock: Callable[[], datetime.datetime] | None = None,
        seed: int | None = None,
    ) -> None:
        self.registry = registry if registry is not None else resources.ResourceRegistry()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._keys: dict[tuple[str, str], builtins.list[tuple[str, str]]] = {}
        """Each bucket's keys, sorted; dropped when a key is added or removed (`_commit`)."""
        self._pods_by_node: dict[str, set[tuple[str, str]]] = {}
        """spec.nodeName → the keys of the pods bound to it ("" for unbound pods)."""
        self._encoded: dict[tuple[str, str, str], tuple[Mapping[str, Any], bytes]] = {}
        """(apiVersion/kind, namespace, name) → (the stored object, its JSON): `encoded`."""
        self._rv = 1
        self._log: collections.deque[WatchEvent] = collections.deque(maxlen=event_log_size)
        self._log_floor = 0  # events at or below this resourceVersion may have been dropped
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._random = random.Random(seed)
        self._listeners: list[Callable[[WatchEvent], None]] = []

    # ----- types -------------------------------------------------------------------------
    def register_type(self, resource: resources.ResourceType) -> None:
        """Serve a new (custom) resource type from now on."""
        self.registry.register(resource)

    def resource_type(self, name: str) -> resources.ResourceType:
        """Look a type up by plural, kind, or short name (`pods`, `Pod`, `po`)."""
        lowered = name.lower()
        for resource in self.registry.all():
            if lowered in (resource.plural, resource.kind.lower(), *resource.short_names):
                return resource
        raise errors.NotFound(f"the server doesn't have a resource type {name!r}")

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    # ----- reads -------------------------------------------------------------------------
    def _bucket(self, resource: resources.ResourceType) -> dict[tuple[str, str], dict[str, Any]]:
        return self._objects.setdefault((resource.group, resource.plural), {})

    @staticmethod
    def _key(resource: resources.ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if resource.namespaced else "", name)

    def _get_ref(
        self, resource: resources.ResourceType, namespace: str | None, name: str
    ) -> dict[str, Any]:
        found = self._bucket(resource).get(self._key(resource, namespace, name))
        if found is None:
            raise errors.NotFound(
                f'{resource} "{name}" not found',
                kind=resource.plural,
                name=name,
                group=resource.group,
            )
        return found

    def get(
        self, *, resource: resources.ResourceType, namespace: str | None, name: str
    ) -> KubeObject:
        """A copy of one object; raises `errors.NotFound`."""
        with self._lock:
            return clone(self._get_ref(resource, namespace, name))  # type: ignore[no-any-return]

    def _sorted_keys(self, resource: resources.ResourceType) -> builtins.list[tuple[str, str]]:
        """The keys of `resource`, sorted (kept until a key is added or removed)."""
        bucket_id = (resource.group, resource.plural)
        found = self._keys.get(bucket_id)
        if found is None:
            found = sorted(self._bucket(resource))
            self._keys[bucket_id] = found
        return found

    def _select(
        self,
        resource: resources.ResourceType,
        namespace: str | None,
        label_selector: str,
        field_selector: str,
    ) -> builtins.list[tuple[tuple[str, str], dict[str, Any]]]:
        labels = selectors.parse_label_selector(label_selector)
        fields = selectors.parse_field_selector(field_selector)
        bucket = self._bucket(resource)
        return [
            (key, bucket[key])
            for key in self._in_namespace(self._sorted_keys(resource), resource, namespace)
            if _matches(bucket[key], labels, fields)
        ]

    def _candidates(
        self, resource: resources.ResourceType, fields: selectors.FieldSelector
    ) -> builtins.list[tuple[str, str]]:
        """Sorted keys that may match `fields`: a pod list by `spec.nodeName=` reads the
        node's pods only (the real API server indexes pods by node the same way)."""
        if resource == resources.PODS:
            for req in fields.requirements:
                if req.equal and req.path == ("spec", "nodeName"):
                    return sorted(self._pods_by_node.get(req.value, ()))
        return self._sorted_keys(resource)

    @staticmethod
    def _in_namespace(
        keys: builtins.list[tuple[str, str]],
        resource: resources.ResourceType,
        namespace: str | None,
        *,
        after: tuple[str, str] | None = None,
    ) -> builtins.list[tuple[str, str]]:
        """The sorted `keys` in `namespace` (all: None, or a cluster-scoped type), past `after`."""
        lo, hi = 0, len(keys)
        if resource.namespaced and namespace:
            lo = bisect.bisect_left(keys, (namespace, ""))
            hi = bisect.bisect_left(keys, (namespace + "\x00", ""))
        if after is not None:
            lo = max(lo, bisect.bisect_right(keys, after))
        return keys[lo:hi]

    def list(
        self,
        *,
        resource: resources.ResourceType,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[KubeObject]:
        """Copies of matching objects sorted by (namespace, name); namespace None means all."""
        with self._lock:
            return [
                clone(obj)
                for _, obj in self._select(resource, namespace, label_selector, field_selector)
            ]

    def list_page(
        self,
        *,
        resource: resources.ResourceType,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
        copies: bool = True,
    ) -> ListPage:
        """One page (`limit` 0 = everything) of a list, as the real API server pages it.

        With `copies=False` the items are the stored objects themselves (read-only: for
        `encoded`, which serialises each stored object once).

        A list without `continue` is served at the latest resourceVersion (or, with
        `resource_version_match="Exact"`, at `resource_version`); a continued list is served
        from the snapshot of its first page (objects changed since then are shown as they
        were), so its pages add up to one consistent list. A snapshot older than the event
        log (compacted) is `errors.Gone` with a token that continues at the latest version.
        """
        labels = selectors.parse_label_selector(label_selector)
        fields = selectors.parse_field_selector(field_selector)
        start, list_rv = self._decode_continue(continue_token)
        with self._lock:
            if not continue_token:
                list_rv = self._requested_rv(resource_version, resource_version_match)
            elif resource_version not in ("", "0") or resource_version_match:
                raise errors.BadRequest(
                    "specifying resource version is not allowed when using continue"
                )
            # A snapshot compacted away (the event log stands for etcd's history) is 410, with
            # a token that continues at the latest version for a continued list, as upstream.
            expired = errors.Gone(
                _INCONSISTENT_CONTINUE if continue_token else _TOO_OLD,
                list_continue=(
                    self._encode_continue(start, _LATEST)
                    if continue_token and start is not None
                    else ""
                ),
            )
            if list_rv not in (0, _LATEST) and 0 < list_rv < self._log_floor:
                raise expired
            rv = self._rv if list_rv in (0, _LATEST) else list_rv
            try:
                state = self._state_at(resource, rv)
            except errors.Gone:
                raise expired from None
            keys = self._candidates(resource, fields)
            if state:
                keys = sorted(set(keys) | set(state))
            bucket = self._bucket(resource)
            chosen: builtins.list[tuple[tuple[str, str], dict[str, Any]]] = []
            more = False
            window = self._in_namespace(keys, resource, namespace, after=start)
            for key in window:
                obj = state[key] if key in state else bucket.get(key)
                if obj is None or not _matches(obj, labels, fields):
                    continue
                if 0 < limit <= len(chosen):
                    more = True
                    break
                chosen.append((key, obj))
            items = [clone(obj) for _, obj in chosen] if copies else [obj for _, obj in chosen]
            if not more:
                return ListPage(items, str(rv), "", None)
            token = self._encode_continue(chosen[-1][0], rv)
            remaining = None
            if not label_selector and not field_selector:
                position = bisect.bisect_right(window, chosen[-1][0])
                remaining = len(window) - position
                if state:  # keys of objects created since the snapshot do not count
                    remaining -= sum(1 for key in window[position:] if state.get(key, 1) is None)
            return ListPage(items, str(rv), token, remaining)

    def encoded(self, obj: Mapping[str, Any]) -> bytes:
        """The compact JSON of a stored object (from `list_page(copies=False)`), cached.

        Stored objects are never modified in place, so each is serialised once; the cache
        keeps one entry per stored key and is checked by identity.
        """
        meta = _meta(obj)
        key = (
            f"{obj.get('apiVersion')}/{obj.get('kind')}",
            str(meta.get("namespace") or ""),
            str(meta.get("name")),
        )
        cached = self._encoded.get(key)
        if cached is not None and cached[0] is obj:
            return cached[1]
        payload = json.dumps(obj, separators=(",", ":")).encode()
        self._encoded[key] = (obj, payload)
        return payload

    def _requested_rv(self, resource_version: str, match: str) -> int:
        """The resourceVersion a fresh list is served at (0: the latest)."""
        if match and not resource_version:
            raise errors.BadRequest(
                "resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        if match not in ("", "Exact", "NotOlderThan"):
            raise errors.BadRequest(
                f'resourceVersionMatch: Unsupported value: "{match}": supported values:'
                ' "Exact", "NotOlderThan"'
            )
        if resource_version in ("", "0"):
            return 0
        try:
            wanted = int(resource_version)
        except ValueError as exc:
            raise errors.BadRequest(
                f"resourceVersion={resource_version!r}: pass a resourceVersion the server gave"
            ) from exc
        if wanted > self._rv:
            raise errors.GatewayTimeout(
                f"Too large resource version: {wanted}, current: {self._rv}",
                retry_after_s=1,
            )
        return wanted if match == "Exact" else 0

    def _state_at(
        self, resource: resources.ResourceType, rv: int
    ) -> dict[tuple[str, str], dict[str, Any] | None]:
        """The objects of `resource` changed after `rv`, as they were at `rv` (None: absent).

        Read from the event log, newest first; a change whose state at `rv` the log no longer
        holds is `errors.Gone` (upstream: the etcd revision was compacted).
        """
        if rv >= self._rv:
            return {}
        changed: dict[tuple[str, str], str] = {}  # key → type of its oldest event after rv
        found: dict[tuple[str, str], dict[str, Any] | None] = {}
        for event in reversed(self._log):
            if event.resource != resource:
                continue
            meta = _meta(event.object)
            key = self._key(resource, meta.get("namespace"), str(meta.get("name")))
            if event.resource_version > rv:
                changed[key] = event.type
            elif key in changed and key not in found:
                found[key] = None if event.type == "DELETED" else dict(event.object)
                if len(found) == len(changed):
                    break
        for key, oldest in changed.items():
            if key in found:
                continue
            if oldest != "ADDED" and self._log_floor > 0:
                raise errors.Gone(_TOO_OLD)
            found[key] = None
        return found

    @staticmethod
    def _encode_continue(key: tuple[str, str], rv: int) -> str:
        raw = json.dumps({"rv": rv, "start": list(key)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str) -> tuple[tuple[str, str] | None, int]:
        if not token:
            return None, 0
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            return (str(data["start"][0]), str(data["start"][1])), int(data["rv"])
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
            raise errors.BadRequest(
                f"invalid continue token {token!r}: pass the token from the previous list response"
            ) from exc

    # ----- writes ------------------------------------------------------------------------
    def _commit(
        self, resource: resources.ResourceType, event_type: str, obj: dict[str, Any]
    ) -> dict[str, Any]:
        """Bump the resourceVersion, stamp it, store or drop the object, log and notify."""
        self._rv += 1
        meta = _meta(obj)
        meta["resourceVersion"] = str(self._rv)
        key = self._key(resource, meta.get("namespace"), str(meta.get("name")))
        bucket = self._bucket(resource)
        if resource == resources.PODS:
            self._index_node(key, bucket.get(key), None if event_type == "DELETED" else obj)
        if event_type == "DELETED":
            if bucket.pop(key, None) is not None:
                self._keys.pop((resource.group, resource.plural), None)
            self._encoded.pop((f"{resource.api_version}/{resource.kind}", *key), None)
        else:
            if key not in bucket:
                self._keys.pop((resource.group, resource.plural), None)
            bucket[key] = obj
        event = WatchEvent(event_type, resource, obj, self._rv)
        if self._log.maxlen is not None and len(self._log) == self._log.maxlen:
            self._log_floor = self._log[0].resource_version
        self._log.append(event)
        self._changed.notify_all()
        for listener in list(self._listeners):
            listener(event)
        return obj

    def _index_node(
        self, key: tuple[str, str], old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> None:
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            node = str((obj.get("spec") or {}).get("nodeName") or "")
            keys = self._pods_by_node.setdefault(node, set())
            if add:
                keys.add(key)
            else:
                keys.discard(key)
                if not keys:
                    del self._pods_by_node[node]

    def _validate(self, resource: resources.ResourceType, obj: dict[str, Any]) -> None:
        meta = _meta(obj)
        name = str(meta.get("name", ""))
        causes: list[tuple[str, str, str]] = []
        if not _NAME.match(name) or len(name) > 253:
            causes.append(
                (
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(name)}: {_DNS1123_SUBDOMAIN_MESSAGE}",
                    "metadata.name",
                )
            )
        for field in ("labels", "annotations"):
            mapping = meta.get(field) or {}
            if not isinstance(mapping, dict):
                causes.append(("FieldValueInvalid", f"{field} must be a map", f"metadata.{field}"))
                continue
            for key, value in mapping.items():
                if not _LABEL_KEY.match(str(key)):
                    causes.append(
                        (
                            "FieldValueInvalid",
                            f"Invalid value: {json.dumps(key)}: not a valid key",
                            f"metadata.{field}",
                        )
                    )
                if not isinstance(value, str):
                    causes.append(
                        (
                            "FieldValueInvalid",
                            f"Invalid value: {json.dumps(value)}: must be a string",
                            f"metadata.{field}",
                        )
                    )
                elif field == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                    causes.append(
                        (
                            "FieldValueInvalid",
                            f"Invalid value: {json.dumps(value)}: not a valid label value",
                            "metadata.labels",
                        )
                    )
        replicas = (
            (obj.get("spec") or {}).get("replicas") if isinstance(obj.get("spec"), dict) else None
        )
        if replicas is not None and (
            not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0
        ):
            causes.append(
                (
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
                    "spec.replicas",
                )
            )
        if causes:
            raise invalid(resource.kind, resource.group, name, tuple(causes))

    def _check_envelope(self, resource: resources.ResourceType, obj: Mapping[str, Any]) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind not in (None, "", resource.kind) or api_version not in (
            None,
            "",
            resource.api_version,
        ):
            raise errors.BadRequest(
                f"the body is {api_version}/{kind} but the URL is for {resource.api_version}"
                f" {resource.kind}; send a {resource.kind} to /{resource.plural}"
            )

    def _new_name(self, prefix: str, resource: resources.ResourceType, namespace: str) -> str:
        while True:
            name = prefix + "".join(self._random.choice(_SUFFIX_ALPHABET) for _ in range(5))
            if self._key(resource, namespace, name) not in self._bucket(resource):
                return name

    def create(
        self,
        *,
        resource: resources.ResourceType,
        obj: Mapping[str, object],
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """Store a new object (201 semantics): uid, creationTimestamp, generation, resourceVersion.

        `namespace` defaults to the object's own; namespaced objects need an existing namespace.
        Raises `AlreadyExists`, `NotFound` (namespace), `Invalid`, `BadRequest`. With `dry_run`
        (`?dryRun=All`) everything is checked and the answer built, but nothing is stored.
        """
        new: dict[str, Any] = clone(dict(obj))
        self._check_envelope(resource, new)
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        meta = new.setdefault("metadata", {})
        with self._lock:
            if resource.namespaced:
                ns = namespace or meta.get("namespace") or "default"
                if meta.get("namespace") not in (None, "", ns):
                    raise errors.BadRequest(
                        f"the namespace of the object ({meta['namespace']}) does not match the"
                        f" namespace on the request ({ns})"
                    )
                meta["namespace"] = ns
                if self._key(resources.NAMESPACES, None, ns) not in self._bucket(
                    resources.NAMESPACES
                ):
                    raise errors.NotFound(
                        f'namespaces "{ns}" not found', kind="namespaces", name=ns
                    )
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._new_name(
                    str(meta["generateName"]), resource, meta.get("namespace", "")
                )
            _drop_empty_meta(meta)
            self._validate(resource, new)
            key = self._key(resource, meta.get("namespace"), meta["name"])
            if key in self._bucket(resource):
                raise errors.AlreadyExists(
                    f'{resource} "{meta["name"]}" already exists',
                    kind=resource.plural,
                    name=meta["name"],
                    group=resource.group,
                )
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = timestamp(self._clock())
            meta["generation"] = 1
            meta.pop("deletionTimestamp", None)
            self._defaults(resource, new)
            if dry_run:
                return clone(new)  # type: ignore[no-any-return]
            self._commit(resource, "ADDED", new)
            if resource == resources.CUSTOM_RESOURCE_DEFINITIONS:
                self._register_crd(new)
            return clone(new)  # type: ignore[no-any-return]

    @staticmethod
    def _defaults(resource: resources.ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if resource == resources.NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
        elif resource == resources.PODS:
            obj.setdefault("status", {}).setdefault("phase", "Pending")
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("schedulerName", "default-scheduler")
        elif resource == resources.NODES:
            obj.setdefault("spec", {})

    def _register_crd(self, crd: Mapping[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        storage = next((v for v in versions if v.get("storage")), versions[0] if versions else None)
        if storage is None or not names.get("plural") or not names.get("kind"):
            return
        self.register_type(
            resources.ResourceType(
                group=str(spec.get("group", "")),
                version=str(storage.get("name")),
                plural=str(names["plural"]),
                kind=str(names["kind"]),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
            )
        )

    def _write(
        self,
        resource: resources.ResourceType,
        current: dict[str, Any],
        new: dict[str, Any],
        *,
        subresource: str,
        check_resource_version: bool,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace `current` with `new` under the lock (the shared end of update and patch)."""
        self._check_envelope(resource, new)
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        meta = new.setdefault("metadata", {})
        old_meta = _meta(current)
        sent_rv = meta.get("resourceVersion")
        if check_resource_version and sent_rv and str(sent_rv) != old_meta.get("resourceVersion"):
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {resource} "{old_meta.get("name")}": the object'
                " has been modified; please apply your changes to the latest version and try again",
                kind=resource.plural,
                name=str(old_meta.get("name")),
                group=resource.group,
            )
        if meta.get("name") != old_meta.get("name"):
            raise errors.BadRequest(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL"
                f" ({old_meta.get('name')})"
            )
        if subresource == "status":
            kept = clone(current)
            kept["status"] = new.get("status", {})
            new = kept
            meta = new["metadata"]
        elif resource.has_subresource("status") and subresource == "":
            if "status" in current:
                new["status"] = clone(current["status"])
            else:
                new.pop("status", None)
        for field in ("uid", "creationTimestamp", "namespace", "generation"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if new.get("spec") != current.get("spec"):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        _drop_empty_meta(meta)
        self._validate(resource, new)
        if dry_run:
            meta["resourceVersion"] = old_meta.get("resourceVersion")
            return new
        return self._commit(resource, "MODIFIED", new)

    def update(
        self,
        *,
        resource: resources.ResourceType,
        obj: Mapping[str, object],
        namespace: str | None = None,
        subresource: str = "",
        check_resource_version: bool = True,
        dry_run: bool = False,
    ) -> KubeObject:
        """Replace (PUT) the object named in `obj`; a stale resourceVersion → `Conflict`."""
        new: dict[str, Any] = clone(dict(obj))
        meta = _meta(new)
        with self._lock:
            current = self._get_ref(
                resource, namespace or meta.get("namespace"), str(meta.get("name"))
            )
            return clone(  # type: ignore[no-any-return]
                self._write(
                    resource,
                    current,
                    new,
                    subresource=subresource,
                    check_resource_version=check_resource_version,
                    dry_run=dry_run,
                )
            )

    def patch(
        self,
        *,
        resource: resources.ResourceType,
        namespace: str | None,
        name: str,
        patch: object,
        content_type: str = patching.MERGE_PATCH,
        subresource: str = "",
        dry_run: bool = False,
    ) -> KubeObject:
        """Apply a merge, strategic-merge or JSON patch atomically.

        A `metadata.resourceVersion` in the patch is a precondition (→ `Conflict`).
        """
        with self._lock:
            current = self._get_ref(resource, namespace, name)
            new = patching.apply_patch(target=current, patch=patch, content_type=content_type)
            if not isinstance(new, dict):
                raise errors.BadRequest(f"the patch turned {resource} {name!r} into a non-object")
            return clone(  # type: ignore[no-any-return]
                self._write(
                    resource,
                    current,
                    new,
                    subresource=subresource,
                    check_resource_version=True,
                    dry_run=dry_run,
                )
            )

    def apply(
        self,
        *,
        resource: resources.ResourceType,
        namespace: str | None,
        name: str,
        config: Mapping[str, Any],
        field_manager: str,
        dry_run: bool = False,
    ) -> tuple[KubeObject, bool]:
        """Server-side apply, simplified: create when missing, else merge `config` into the
        live object (strategic merge); returns (object, created).

        Not modelled (see docs/sandbox-world.md): managedFields, field ownership and conflicts
        between managers, and removing fields a manager stops applying.
        """
        where = f'{resource} "{name}"'
        if not field_manager:
            raise errors.BadRequest(f"{where}: fieldManager is required for apply requests")
        for field in ("apiVersion", "kind"):
            if not config.get(field):
                raise errors.BadRequest(f"{where}: {field} must be set in an apply request")
        sent_name = _meta(config).get("name")
        if sent_name not in (None, name):
            raise errors.BadRequest(
                f"the name of the object ({sent_name}) does not match the name on the URL ({name})"
            )
        with self._lock:
            if self._key(resource, namespace, name) not in self._bucket(resource):
                new = clone(dict(config))
                new.setdefault("metadata", {})["name"] = name
                created = self.create(
                    resource=resource, obj=new, namespace=namespace, dry_run=dry_run
                )
                return created, True
            current = self._get_ref(resource, namespace, name)
            merged = patching.strategic_merge_patch(current, clone(dict(config)))
            written = self._write(
                resource,
                current,
                merged,
                subresource="",
                check_resource_version=True,
                dry_run=dry_run,
            )
            return clone(written), False

    def update_status(
        self,
        *,
        resource: resources.ResourceType,
        namespace: str | None,
        name: str,
        status: Mapping[str, object],
    ) -> KubeObject:
        """Set `status` unconditionally (controller writes); no write when nothing changed."""
        with self._lock:
            current = self._get_ref(resource, namespace, name)
            if current.get("status") == status:
                return clone(current)  # type: ignore[no-any-return]
            new = dict(current)
            new["metadata"] = dict(current["metadata"])
            new["status"] = clone(dict(status))
            return clone(self._commit(resource, "MODIFIED", new))  # type: ignore[no-any-return]

    def delete(
        self,
        *,
        resource: resources.ResourceType,
        namespace: str | None,
        name: str,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: str = "Background",
        dry_run: bool = False,
    ) -> KubeObject:
        """Delete now (no grace period); `uid`/`resource_version` are preconditions (→ Conflict).

        `propagation` is the DeleteOptions' propagationPolicy: `Background` leaves dependents
        to the controller's garbage collection; `Foreground` first marks the object (a
        deletionTimestamp and the `foregroundDeletion` finalizer), deletes its dependents
        (by ownerReferences, depth first), then the object; `Orphan` strips the owner reference
        from its dependents. Returns the object as it was last seen (marked, for Foreground).
        """
        if propagation not in PROPAGATION_POLICIES:
            raise invalid(
                "DeleteOptions",
                "",
                "",
                (
                    (
                        "FieldValueNotSupported",
                        f"Unsupported value: {json.dumps(propagation)}: supported values:"
                        + ", ".join(f' "{p}"' for p in PROPAGATION_POLICIES),
                        "propagationPolicy",
                    ),
                ),
            )
        with self._lock:
            current = self._get_ref(resource, namespace, name)
            meta = _meta(current)
            for field, wanted in (("uid", uid), ("resourceVersion", resource_version)):
                if wanted and meta.get(field) != wanted:
                    raise errors.Conflict(
                        f"Precondition failed: {field} in precondition: {wanted}, {field} in object"
                        f" meta: {meta.get(field)}",
                        kind=resource.plural,
                        name=name,
                        group=resource.group,
                    )
            gone = clone(current)
            gone["metadata"]["deletionTimestamp"] = timestamp(self._clock())
            if dry_run:
                return gone  # type: ignore[no-any-return]
            if propagation == "Foreground":
                gone["metadata"]["deletionGracePeriodSeconds"] = 0
                finalizers = gone["metadata"].setdefault("finalizers", [])
                if "foregroundDeletion" not in finalizers:
                    finalizers.append("foregroundDeletion")
                marked = self._commit(resource, "MODIFIED", clone(gone))
                for dependent_type, dependent in self._dependents(resource, current):
                    dep_meta = _meta(dependent)
                    self.delete(
                        resource=dependent_type,
                        namespace=dep_meta.get("namespace"),
                        name=str(dep_meta.get("name")),
                        propagation="Foreground",
                    )
                gone = clone(marked)
            elif propagation == "Orphan":
                for dependent_type, dependent in self._dependents(resource, current):
                    freed = clone(dependent)
                    freed["metadata"]["ownerReferences"] = [
                        ref
                        for ref in freed["metadata"].get("ownerReferences") or []
                        if ref.get("uid") != meta.get("uid")
                    ]
                    if not freed["metadata"]["ownerReferences"]:
                        del freed["metadata"]["ownerReferences"]
                    self._commit(dependent_type, "MODIFIED", freed)
            self._commit(resource, "DELETED", clone(gone))
            if resource == resources.NAMESPACES:
                for other in self.registry.all():
                    if other.namespaced:
                        for key in [k for k in self._bucket(other) if k[0] == name]:
                            dead = clone(self._bucket(other)[key])
                            self._commit(other, "DELETED", dead)
            return clone(gone)  # type: ignore[no-any-return]

    def _dependents(
        self, owner_type: resources.ResourceType, owner: Mapping[str, Any]
    ) -> builtins.list[tuple[resources.ResourceType, dict[str, Any]]]:
        """Stored objects with an ownerReference to `owner`'s uid (its namespace, or anywhere)."""
        owner_meta = _meta(owner)
        owner_uid = owner_meta.get("uid")
        found = []
        for other in self.registry.all():
            for key, obj in list(self._bucket(other).items()):
                if owner_type.namespaced and key[0] != owner_meta.get("namespace"):
                    continue
                refs = _meta(obj).get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in refs):
                    found.append((other, obj))
        return found

    # ----- policy ------------------------------------------------------------------------
    def _controller_scale(self, ref: Mapping[str, Any], namespace: str) -> int | None:
        kinds = {
            "ReplicaSet": resources.REPLICA_SETS,
            "Deployment": resources.DEPLOYMENTS,
            "StatefulSet": resources.STATEFUL_SETS,
        }
        resource = kinds.get(str(ref.get("kind")))
        if resource is None:
            return None
        owner = self._bucket(resource).get((namespace, str(ref.get("name"))))
        if owner is None:
            return None
        replicas = (owner.get("spec") or {}).get("replicas", 1)
        return int(replicas)

    def pdb_status(self, *, namespace: str, name: str) -> dict[str, object]:
        """The PodDisruptionBudget's status computed from the pods stored now."""
        with self._lock:
            pdb = self._get_ref(resources.POD_DISRUPTION_BUDGETS, namespace, name)
            return self._pdb_status(pdb)

    def _pdb_status(self, pdb: Mapping[str, Any]) -> dict[str, Any]:
        namespace = str(_meta(pdb).get("namespace"))
        pods = [obj for key, obj in self._bucket(resources.PODS).items() if key[0] == namespace]
        status = disruption.compute_status(
            pdb, pods, controller_scale=lambda ref: self._controller_scale(ref, namespace)
        )
        for condition in (pdb.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "DisruptionAllowed":
                status["conditions"] = [condition]
        allowed = status["disruptionsAllowed"] > 0
        previous = status.get("conditions", [{}])[0]
        if previous.get("status") != ("True" if allowed else "False"):
            status["conditions"] = [
                {
                    "type": "DisruptionAllowed",
                    "status": "True" if allowed else "False",
                    "reason": "SufficientPods" if allowed else "InsufficientPods",
                    "message": "",
                    "observedGeneration": status["observedGeneration"],
                    "lastTransitionTime": timestamp(self._clock()),
                }
            ]
        return status

    def refresh_pdb_statuses(self, namespace: str | None = None) -> None:
        """Recompute every PodDisruptionBudget's status (in `namespace`, or everywhere)."""
        with self._lock:
            for key, pdb in list(self._bucket(resources.POD_DISRUPTION_BUDGETS).items()):
                if namespace is None or key[0] == namespace:
                    status = self._pdb_status(pdb)
                    self.update_status(
                        resource=resources.POD_DISRUPTION_BUDGETS,
                        namespace=key[0],
                        name=key[1],
                        status=status,
                    )

    def evict(self, *, namespace: str, name: str) -> None:
        """The `pods/eviction` subresource: delete the pod unless a PDB forbids it.

        Raises `NotFound`, `TooManyRequests` (budget would be violated) or `InternalError` (more
        than one budget selects the pod, as upstream).
        """
        with self._lock:
            pod = self._get_ref(resources.PODS, namespace, name)
            pdbs = disruption_budgets_for(
                pod, list(self._bucket(resources.POD_DISRUPTION_BUDGETS).values())
            )
            if len(pdbs) > 1:
                raise errors.InternalError(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource"
                    " does not support."
                )
            if pdbs and disruption.is_pod_ready(pod):
                status = self._pdb_status(pdbs[0])
                if status["disruptionsAllowed"] <= 0:
                    pdb_name = _meta(pdbs[0]).get("name")
                    raise errors.TooManyRequests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        causes=(
                            (
                                "DisruptionBudget",
                                f"The disruption budget {pdb_name} needs"
                                f" {status['desiredHealthy']} healthy pods and has"
                                f" {status['currentHealthy']} currently",
                                "",
                            ),
                        ),
                    )
            self.delete(resource=resources.PODS, namespace=namespace, name=name)
            self.refresh_pdb_statuses(namespace)

    # ----- notifications -----------------------------------------------------------------
    def events_since(
        self,
        resource_version: int,
        *,
        resource: resources.ResourceType | None = None,
        namespace: str | None = None,
    ) -> builtins.list[WatchEvent]:
        """Events after `resource_version` (oldest first); `Gone` if the log no longer has them."""
        with self._lock:
            if resource_version < self._log_floor:
                raise errors.Gone(
                    f"too old resource version: {resource_version} ({self._log_floor})"
                )
            found: builtins.list[WatchEvent] = []
            for event in reversed(self._log):
                if event.resource_version <= resource_version:
                    break
                if resource is not None and (event.resource.group, event.resource.plural) != (
                    resource.group,
                    resource.plural,
                ):
                    continue
                if namespace and _meta(event.object).get("namespace") != namespace:
                    continue
                found.append(event)
            found.reverse()
            return found

    def wait_for_change(self, since: int, *, timeout_s: float) -> int:
        """Block until the resourceVersion passes `since` or the timeout ends; returns it."""
        with self._changed:
            self._changed.wait_for(lambda: self._rv > since, timeout=timeout_s)
            return self._rv

    def subscribe(self, listener: Callable[[WatchEvent], None]) -> Callable[[], None]:
        """Call `listener` on every change (under the store lock: keep it short).

        Returns the function that unsubscribes it.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe


def invalid(
    kind: str, group: str, name: str, causes: tuple[tuple[str, str, str], ...]
) -> errors.Invalid:
    """A 422 shaped like the API server's `NewInvalid`: `Kind.group "name" is invalid: …`.

    One cause reads `field: message`; several read `[field: message, field: message]`.
    """
    qualified = f"{kind}.{group}" if group else kind
    listed = [f"{field}: {message}" for _, message, field in causes]
    summary = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
    return errors.Invalid(
        f'{qualified} "{name}" is invalid: {summary}',
        kind=kind,
        name=name,
        group=group,
        causes=causes,
    )


def disruption_budgets_for(
    pod: Mapping[str, Any], pdbs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The budgets (of the pod's namespace) whose selector selects the pod."""
    return [pdb for pdb in pdbs if disruption.matching_pods(pdb, [pod])]
