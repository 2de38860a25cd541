"""Listing: nodes and pods listed once and grouped client-side, for planning over big clusters.

Planning a zone drain over 1,000 nodes and 10,000 pods must not list pods once per node, nor
list every pod again for each target: it lists nodes once and pods once, and groups them here.

Invariants:
- Listings are shared only between the calls of one *dry-run* context (`Engine.plan` and
  `stormdrill plan` make a fresh context per plan, so that is one planning pass). They live on
  the context's own connection, keyed on the context object itself (a weak reference: a new
  context starts empty, nothing outlives it, no module-level state). A run's context never
  shares a listing: its step-time planning needs a fresh pre-state.
- A namespace's pods are derived from a shared all-namespaces listing only when this pass
  already holds one (no new permission is ever needed); otherwise the namespace is listed.
- Label selectors are equality maps (`labels:` in a target), matched client-side exactly as
  the API server matches `k=v,k2=v2`.
- Few targets (at most `FEW_NODES`) are still read one by one (a field selector per node):
  a one-node drain does not list the whole cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from orchestrator import errors, mutations, registry
from orchestrator.providers.kubernetes import connection, objects

FEW_NODES = 10
"""Up to this many nodes, plans read each node (and its pods) by name; above, they list once."""

_ALL_PODS = "pods"
_ALL_NODES = "nodes"


def _listings(
    ctx: registry.ProviderContext, conn: connection.KubeConnection
) -> connection.Listings | None:
    return conn.listings if ctx.dry_run else None


def _shared(
    ctx: registry.ProviderContext,
    conn: connection.KubeConnection,
    key: str,
    fetch: Callable[[], list[connection.KubeObject]],
) -> list[connection.KubeObject]:
    listings = _listings(ctx, conn)
    if listings is None:
        return fetch()
    found = listings.get(ctx, key)
    if found is None:
        found = fetch()
        listings.put(ctx, key, found)
    return found


def all_nodes(
    ctx: registry.ProviderContext, conn: connection.KubeConnection
) -> list[connection.KubeObject]:
    """Every node (one list call; shared within a dry-run planning pass)."""
    return _shared(
        ctx, conn, _ALL_NODES, lambda: objects.items(conn.call("nodes", conn.core.list_node))
    )


def all_pods(
    ctx: registry.ProviderContext, conn: connection.KubeConnection
) -> list[connection.KubeObject]:
    """Every pod of every namespace (one list call; shared within a dry-run planning pass)."""
    return _shared(
        ctx,
        conn,
        _ALL_PODS,
        lambda: objects.items(conn.call("pods", conn.core.list_pod_for_all_namespaces)),
    )


def namespace_pods(
    ctx: registry.ProviderContext, conn: connection.KubeConnection, namespace: str
) -> list[connection.KubeObject]:
    """The pods of `namespace` (from this pass's all-pod listing when it has one)."""
    listings = _listings(ctx, conn)
    everything = listings.get(ctx, _ALL_PODS) if listings is not None else None
    if everything is not None:
        return [pod for pod in everything if namespace_of(pod) == namespace]
    return _shared(
        ctx,
        conn,
        f"pods/{namespace}",
        lambda: objects.items(
            conn.call(f"pods in {namespace}", conn.core.list_namespaced_pod, namespace)
        ),
    )


def pods_on_nodes(
    ctx: registry.ProviderContext, conn: connection.KubeConnection, nodes: Sequence[str]
) -> dict[str, list[connection.KubeObject]]:
    """The pods bound to each of `nodes` (every name present, maybe with no pods).

    At most `FEW_NODES` nodes: one field-selected list per node; more: all pods, once.
    """
    if len(nodes) <= FEW_NODES and _listings_hold(ctx, conn, _ALL_PODS) is None:
        return {
            node: objects.items(
                conn.call(
                    f"pods on node {node}",
                    conn.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={node}",
                )
            )
            for node in nodes
        }
    grouped: dict[str, list[connection.KubeObject]] = {node: [] for node in nodes}
    for pod in all_pods(ctx, conn):
        node_name = (pod.get("spec") or {}).get("nodeName")
        if isinstance(node_name, str) and node_name in grouped:
            grouped[node_name].append(pod)
    return grouped


def nodes_named(
    ctx: registry.ProviderContext,
    conn: connection.KubeConnection,
    refs: Sequence[mutations.TargetRef],
) -> dict[str, connection.KubeObject]:
    """Each node `refs` names, read now; `ProviderPermanent` naming the first one missing.

    At most `FEW_NODES` nodes (and no listing in this pass): one read each; more: one list.
    """
    if len(refs) <= FEW_NODES and _listings_hold(ctx, conn, _ALL_NODES) is None:
        found = {ref.name: objects.read(conn, ref) for ref in refs}
    else:
        by_name = {objects.name_of(node): node for node in all_nodes(ctx, conn)}
        found = {ref.name: by_name.get(ref.name) for ref in refs}
    present: dict[str, connection.KubeObject] = {}
    for ref in refs:
        node = found.get(ref.name)
        if node is None:
            raise errors.ProviderPermanent(f"{ref}: the node does not exist (was it removed?)")
        present[ref.name] = node
    return present


def _listings_hold(
    ctx: registry.ProviderContext, conn: connection.KubeConnection, key: str
) -> list[connection.KubeObject] | None:
    listings = _listings(ctx, conn)
    return listings.get(ctx, key) if listings is not None else None


def namespace_of(obj: Mapping[str, Any]) -> str | None:
    namespace = (obj.get("metadata") or {}).get("namespace")
    return str(namespace) if namespace is not None else None


def matching(
    found: Iterable[connection.KubeObject], labels: Mapping[str, str]
) -> list[connection.KubeObject]:
    """The objects carrying every label of `labels` with exactly that value."""
    wanted = dict(labels)
    if not wanted:
        return list(found)
    return [
        obj
        for obj in found
        if all(objects.labels_of(obj).get(key) == value for key, value in wanted.items())
    ]
