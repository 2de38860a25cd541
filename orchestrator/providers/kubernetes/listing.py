"""Listing: paginated lists reduced to the facts planning reads, shared within a plan.

Planning a zone drain over 5,000 nodes and 50,000 pods must neither list pods once per node
nor hold 50,000 API objects: it lists nodes once and pods once, page by page, keeps of each
object only what planning reads (`NodeFacts`, `PodFacts`) and indexes pods by node.

Invariants:
- Every list is paginated (`limit=PAGE_SIZE`, then `continue`) and read one page at a time:
  a page's objects are reduced to facts before the next page is asked for, so at most one
  page of full objects is held. The pages of one list are one consistent snapshot (the API
  server serves a continued list at its first page's resourceVersion); a list whose
  snapshot expired mid-way (410 Gone) is listed again from the start, once.
- Facts are frozen and keep only what plans, guardrails and hints read: name, namespace,
  uid, labels, the controller's kind, node, phase, whether the pod is a mirror pod; for
  nodes their labels, `unschedulable` and taints. A pod no controller owns also keeps its
  whole object (`PodFacts.bare`): a drain that deletes it journals its manifest.
- Selectors go to the server where that saves reading: pods on a few nodes by
  `fieldSelector=spec.nodeName=<node>` (at most `FEW_NODES` nodes; above, all pods once,
  indexed by node), a pod target's labels and any target's fields by `labelSelector` /
  `fieldSelector`. Label selectors are equality maps (`labels:` in a target); matched
  client-side (on facts already held) exactly as the API server matches `k=v,k2=v2`.
- Listings are shared only between the calls of one *dry-run* context (`Engine.plan` and
  `stormdrill plan` make a fresh context per plan, so that is one planning pass). They live
  on the context's own connection, keyed on the context object itself (a weak reference: a
  new context starts empty, nothing outlives it, no module-level state). A run's context
  never shares a listing: its step-time planning needs a fresh pre-state.
- A namespace's pods are derived from a shared all-pods listing only when this pass already
  holds one (no new permission is ever needed); otherwise the namespace is listed.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from orchestrator import errors, mutations, registry
from orchestrator.providers.kubernetes import connection, objects

FEW_NODES = 10
"""Up to this many nodes, plans read each node (and its pods) by name; above, they list once."""
PAGE_SIZE = 500
"""Objects per page of a list (kubectl's default chunk size)."""
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

_ALL_PODS = "pods"
_ALL_NODES = "nodes"

T = TypeVar("T")
R = TypeVar("R")
Labels = Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class NodeFacts:
    """What planning reads of a node."""

    name: str
    uid: str | None
    labels: Labels
    unschedulable: bool
    taints: tuple[Mapping[str, Any], ...]
    """The node's taints as the API wrote them (never modified)."""

    @property
    def ref(self) -> mutations.TargetRef:
        return mutations.TargetRef(
            provider=connection.PROVIDER, kind="node", name=self.name, uid=self.uid
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PodFacts:
    """What planning, drain rules and guardrails read of a pod."""

    name: str
    namespace: str | None
    uid: str | None
    labels: Labels
    owner: str | None
    """The kind of the pod's controller (`ownerReferences[].controller`), None if none."""
    node: str | None
    phase: str | None
    mirror: bool
    """A static pod's mirror (annotation `kubernetes.io/config.mirror`)."""
    bare: connection.KubeObject | None = None
    """The whole object, kept only for a pod no controller owns (its manifest is journaled
    when a drain deletes it); None otherwise."""

    @property
    def ref(self) -> mutations.TargetRef:
        return mutations.TargetRef(
            provider=connection.PROVIDER,
            kind="pod",
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
        )

    @property
    def path(self) -> str:
        """`namespace/name`, as plans list evicted pods."""
        return f"{self.namespace}/{self.name}"


class _Shared:
    """Interns what many objects repeat (label maps, namespaces, node names) while parsing."""

    def __init__(self) -> None:
        self._labels: dict[tuple[tuple[str, str], ...], Labels] = {}
        self._last: tuple[Any, Labels] = ({}, types.MappingProxyType({}))
        self.strings: dict[str, str] = {}
        """Each distinct string (namespace, node, phase, owner kind) once."""

    def labels(self, raw: Any) -> Labels:
        raw = raw or {}
        if raw == self._last[0]:  # pods of one workload come one after another
            return self._last[1]
        items = tuple((str(k), str(v)) for k, v in raw.items())
        found = self._labels.get(items)
        if found is None:
            found = types.MappingProxyType(dict(items))
            self._labels[items] = found
        self._last = (raw, found)
        return found

    def string(self, raw: Any) -> str | None:
        if raw is None:
            return None
        text = str(raw)
        return self.strings.setdefault(text, text)


def owner_kind(pod: Mapping[str, Any]) -> str | None:
    """The kind of the controller that owns `pod` (an API object), or None."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("kind"))
    return None


def pod_facts(raw: Mapping[str, Any], shared: _Shared | None = None) -> PodFacts:
    """The facts of one pod as the API serialised it."""
    return PodFacts(*_pod_row(raw, shared or _Shared()))


_PodRow = tuple[
    str,
    str | None,
    str | None,
    Labels,
    str | None,
    str | None,
    str | None,
    bool,
    connection.KubeObject | None,
]


def _pod_row(raw: Mapping[str, Any], shared: _Shared) -> _PodRow:
    meta = raw.get("metadata") or {}
    owner = None
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller"):
            owner = str(ref.get("kind"))
            break
    strings = shared.strings
    namespace = meta.get("namespace")
    node = (raw.get("spec") or {}).get("nodeName")
    phase = (raw.get("status") or {}).get("phase")
    annotations = meta.get("annotations")
    return (
        str(meta.get("name")),
        None if namespace is None else strings.setdefault(namespace, namespace),
        meta.get("uid"),
        shared.labels(meta.get("labels")),
        None if owner is None else strings.setdefault(owner, owner),
        None if node is None else strings.setdefault(node, node),
        None if phase is None else strings.setdefault(phase, phase),
        bool(annotations and MIRROR_ANNOTATION in annotations),
        dict(raw) if owner is None else None,
    )


def _pod_of_row(row: _PodRow) -> PodFacts:
    name, namespace, uid, labels, owner, node, phase, mirror, bare = row
    return PodFacts(
        name=_copy(name) or name,
        namespace=namespace,
        uid=_copy(uid),
        labels=labels,
        owner=owner,
        node=node,
        phase=phase,
        mirror=mirror,
        bare=bare,
    )


def node_facts(raw: Mapping[str, Any], shared: _Shared | None = None) -> NodeFacts:
    """The facts of one node as the API serialised it."""
    shared = shared or _Shared()
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    return NodeFacts(
        name=str(meta.get("name")),
        uid=meta.get("uid"),
        labels=shared.labels(meta.get("labels")),
        unschedulable=bool(spec.get("unschedulable")),
        taints=tuple(spec.get("taints") or ()),
    )


@dataclasses.dataclass(frozen=True)
class PodIndex:
    """Every pod of a listing, and the same pods by node and by namespace (listing order)."""

    pods: tuple[PodFacts, ...]
    by_node: Mapping[str, tuple[PodFacts, ...]]
    by_namespace: Mapping[str, tuple[PodFacts, ...]]

    @classmethod
    def of(cls, pods: Iterable[PodFacts]) -> PodIndex:
        listed = tuple(pods)
        by_node: dict[str, list[PodFacts]] = {}
        by_namespace: dict[str, list[PodFacts]] = {}
        for pod in listed:
            if pod.node is not None:
                by_node.setdefault(pod.node, []).append(pod)
            if pod.namespace is not None:
                by_namespace.setdefault(pod.namespace, []).append(pod)
        return cls(
            pods=listed,
            by_node={k: tuple(v) for k, v in by_node.items()},
            by_namespace={k: tuple(v) for k, v in by_namespace.items()},
        )

    def __len__(self) -> int:
        return len(self.pods)

    def __iter__(self) -> Iterator[PodFacts]:
        return iter(self.pods)


# ----- paginated lists --------------------------------------------------------------------


def pages(
    conn: connection.KubeConnection,
    what: str,
    method: Callable[..., Any],
    *args: str,
    label_selector: str | None = None,
    field_selector: str | None = None,
    limit: int = PAGE_SIZE,
) -> Iterator[list[list[connection.KubeObject]]]:
    """The items of a list, one page at a time (`limit`, then `continue` until none), each
    in a one-item box: `box.pop()` leaves the caller the page's only holder.

    While a page is parsed the next one is already asked for (its continue token is read
    from the top-level `metadata`, which the API server writes before `items`, and checked
    against the parsed page; on any doubt the next page is asked for after parsing).
    """
    base: dict[str, Any] = {"limit": limit}
    if label_selector:
        base["label_selector"] = label_selector
    if field_selector:
        base["field_selector"] = field_selector

    def fetch(token: str | None) -> bytes:
        kwargs = dict(base, _continue=token) if token else dict(base)
        return conn.call_raw(what, method, *args, **kwargs)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ahead:
        body = fetch(None)
        while True:
            text = body.decode()
            peeked = _peek_continue(text)
            following = ahead.submit(fetch, peeked) if peeked else None
            answer = json.loads(text) if text else None
            del body, text
            token = ((answer or {}).get("metadata") or {}).get("continue") or None
            box = [objects.items(answer)]
            del answer
            yield box  # the consumer takes the page out: then only it holds the page
            if token is None:
                return
            if following is not None and token == peeked:
                body = following.result()
            else:
                if following is not None:  # asked with a token the page did not confirm
                    concurrent.futures.wait([following])
                body = fetch(token)


_DECODER = json.JSONDecoder()
_METADATA_KEY = '"metadata":'


def _peek_continue(text: str) -> str | None:
    """The continue token of a list answer, read from its top-level `metadata` only."""
    at = text.find(_METADATA_KEY)
    items = text.find('"items":')
    if at < 0 or (0 <= items < at):
        return None
    try:
        meta, _ = _DECODER.raw_decode(text, at + len(_METADATA_KEY))
    except ValueError:
        return None
    token = meta.get("continue") if isinstance(meta, dict) else None
    return token if isinstance(token, str) and token else None


def collect(
    conn: connection.KubeConnection,
    what: str,
    method: Callable[..., Any],
    *args: str,
    keep: Callable[[connection.KubeObject], R],
    finish: Callable[[R], T],
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> list[T]:
    """`finish(keep(object))` of every object of a paginated list (listed again once on
    410 Gone).

    `keep` takes what survives from an object (references only); `finish` builds the kept
    value once the page is freed, so the survivors fill the page's freed memory densely
    instead of pinning it (CPython frees an arena only when all of it is free).
    """
    for attempt in (1, 2):
        found: list[T] = []
        try:
            for box in pages(
                conn,
                what,
                method,
                *args,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=PAGE_SIZE,
            ):
                page = box.pop()
                rows = [keep(obj) for obj in page]
                del page
                found.extend(finish(row) for row in rows)
                del rows
        except connection.ListExpired:
            if attempt == 2:
                raise
            continue
        return found
    raise AssertionError("unreachable")  # pragma: no cover


def _same(value: T) -> T:
    return value


def _copy(text: str | None) -> str | None:
    """A fresh copy of a string read from a page (the page's own string would pin it)."""
    return None if text is None else text.encode().decode()


def count(
    conn: connection.KubeConnection, what: str, method: Callable[..., Any], *args: str
) -> int:
    """How many objects an unselected list holds: one one-item page when the server says
    how many remain (`remainingItemCount`), else every page counted."""
    answer = conn.call(what, method, *args, limit=1)
    meta = (answer or {}).get("metadata") or {}
    listed = len(objects.items(answer))
    if not meta.get("continue"):
        return listed
    remaining = meta.get("remainingItemCount")
    if isinstance(remaining, int):
        return listed + remaining
    return len(collect(conn, what, method, *args, keep=lambda _: None, finish=_same))


def all_objects(
    conn: connection.KubeConnection,
    what: str,
    method: Callable[..., Any],
    *args: str,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> list[connection.KubeObject]:
    """Every object of a paginated list, whole (for kinds a cluster has few of)."""
    return collect(
        conn,
        what,
        method,
        *args,
        keep=_same,
        finish=_same,
        label_selector=label_selector,
        field_selector=field_selector,
    )


def list_pods(
    conn: connection.KubeConnection,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> list[PodFacts]:
    """The facts of the pods a (paginated, server-side selected) pod list returns."""
    shared = _Shared()
    args: tuple[str, ...] = ()
    if namespace is None:
        what, method = "pods", conn.core.list_pod_for_all_namespaces
    else:
        what, method, args = f"pods in {namespace}", conn.core.list_namespaced_pod, (namespace,)
    if field_selector and field_selector.startswith("spec.nodeName="):
        what = f"pods on node {field_selector.removeprefix('spec.nodeName=')}"
    return collect(
        conn,
        what,
        method,
        *args,
        keep=lambda obj: _pod_row(obj, shared),
        finish=_pod_of_row,
        label_selector=label_selector,
        field_selector=field_selector,
    )


def list_nodes(
    conn: connection.KubeConnection,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> list[NodeFacts]:
    """The facts of the nodes a (paginated, server-side selected) node list returns."""
    shared = _Shared()
    return collect(
        conn,
        "nodes",
        conn.core.list_node,
        keep=lambda obj: node_facts(obj, shared),
        finish=_same,
        label_selector=label_selector,
        field_selector=field_selector,
    )


# ----- sharing within a dry-run pass -----------------------------------------------------


def _listings(
    ctx: registry.ProviderContext, conn: connection.KubeConnection
) -> connection.Listings | None:
    return conn.listings if ctx.dry_run else None


def _held(ctx: registry.ProviderContext, conn: connection.KubeConnection, key: str) -> Any:
    listings = _listings(ctx, conn)
    return listings.get(ctx, key) if listings is not None else None


def _shared(
    ctx: registry.ProviderContext,
    conn: connection.KubeConnection,
    key: str,
    fetch: Callable[[], T],
) -> T:
    listings = _listings(ctx, conn)
    if listings is None:
        return fetch()
    found = listings.get(ctx, key)
    if found is None:
        found = fetch()
        listings.put(ctx, key, found)
    return found  # type: ignore[return-value]


def all_nodes(
    ctx: registry.ProviderContext, conn: connection.KubeConnection
) -> tuple[NodeFacts, ...]:
    """Every node (one paginated list; shared within a dry-run planning pass)."""
    return _shared(ctx, conn, _ALL_NODES, lambda: tuple(list_nodes(conn)))


def all_pods(ctx: registry.ProviderContext, conn: connection.KubeConnection) -> PodIndex:
    """Every pod of every namespace, indexed (one paginated list; shared within a pass)."""
    return _shared(ctx, conn, _ALL_PODS, lambda: PodIndex.of(list_pods(conn)))


def namespace_pods(
    ctx: registry.ProviderContext, conn: connection.KubeConnection, namespace: str
) -> tuple[PodFacts, ...]:
    """The pods of `namespace` (from this pass's all-pod listing when it has one)."""
    everything = _held(ctx, conn, _ALL_PODS)
    if isinstance(everything, PodIndex):
        return everything.by_namespace.get(namespace, ())
    return _shared(
        ctx,
        conn,
        f"pods/{namespace}",
        lambda: tuple(list_pods(conn, namespace=namespace)),
    )


def selected_pods(
    ctx: registry.ProviderContext,
    conn: connection.KubeConnection,
    namespace: str,
    *,
    labels: Labels,
    fields: str = "",
) -> tuple[list[PodFacts], int]:
    """(the pods of `namespace` carrying `labels` and matching `fields`, its pod count).

    From pods this pass already holds when it can; else the server selects (labels and
    fields) and counts the namespace (`count`), so unselected pods are never read.
    """
    if not fields:
        held = _held(ctx, conn, _ALL_PODS)
        in_namespace = (
            held.by_namespace.get(namespace, ())
            if isinstance(held, PodIndex)
            else _held(ctx, conn, f"pods/{namespace}")
        )
        if in_namespace is None and not labels:
            in_namespace = namespace_pods(ctx, conn, namespace)
        if in_namespace is not None:
            return matching(in_namespace, labels), len(in_namespace)
    selected = list_pods(
        conn,
        namespace=namespace,
        label_selector=label_selector(labels) or None,
        field_selector=fields or None,
    )
    population = count(conn, f"pods in {namespace}", conn.core.list_namespaced_pod, namespace)
    return selected, population


def pods_on_nodes(
    ctx: registry.ProviderContext, conn: connection.KubeConnection, nodes: Sequence[str]
) -> dict[str, tuple[PodFacts, ...]]:
    """The pods bound to each of `nodes` (every name present, maybe with no pods).

    At most `FEW_NODES` nodes (and no all-pod listing in this pass): one field-selected
    list per node (each shared within the pass); more: all pods, once, indexed by node.
    """
    held = _held(ctx, conn, _ALL_PODS)
    if len(nodes) <= FEW_NODES and not isinstance(held, PodIndex):
        return {
            node: _shared(
                ctx,
                conn,
                f"pods@{node}",
                lambda node=node: tuple(list_pods(conn, field_selector=f"spec.nodeName={node}")),  # type: ignore[misc]
            )
            for node in nodes
        }
    index = all_pods(ctx, conn)
    return {node: index.by_node.get(node, ()) for node in nodes}


def nodes_named(
    ctx: registry.ProviderContext,
    conn: connection.KubeConnection,
    refs: Sequence[mutations.TargetRef],
) -> dict[str, NodeFacts]:
    """Each node `refs` names, read now; `ProviderPermanent` naming the first one missing.

    At most `FEW_NODES` nodes (and no node listing in this pass): one read each; more: one
    (paginated) list.
    """
    found: dict[str, NodeFacts | None]
    if len(refs) <= FEW_NODES and _held(ctx, conn, _ALL_NODES) is None:
        found = {}
        for ref in refs:
            raw = objects.read(conn, ref)
            found[ref.name] = None if raw is None else node_facts(raw)
    else:
        by_name = {node.name: node for node in all_nodes(ctx, conn)}
        found = {ref.name: by_name.get(ref.name) for ref in refs}
    present: dict[str, NodeFacts] = {}
    for ref in refs:
        node = found.get(ref.name)
        if node is None:
            raise errors.ProviderPermanent(f"{ref}: the node does not exist (was it removed?)")
        present[ref.name] = node
    return present


# ----- selectors ---------------------------------------------------------------------------


def label_selector(labels: Labels) -> str:
    """`k=v,k2=v2` (sorted): the API's form of an equality label selector."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def namespace_of(obj: Mapping[str, Any]) -> str | None:
    namespace = (obj.get("metadata") or {}).get("namespace")
    return str(namespace) if namespace is not None else None


_F = TypeVar("_F", PodFacts, NodeFacts)


def matching(found: Iterable[_F], labels: Labels) -> list[_F]:
    """The facts carrying every label of `labels` with exactly that value."""
    wanted = tuple(labels.items())
    if not wanted:
        return list(found)
    return [item for item in found if all(item.labels.get(k) == v for k, v in wanted)]
