"""Listing: paginated, server-side selected lists reduced to facts, against the sandbox.

Request counts come from the sandbox server's exact counters; outcomes are compared with
what per-node and whole-namespace reads return.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Iterator

import pytest

from orchestrator import context
from orchestrator.providers.kubernetes import connection, listing
from sandbox.kubernetes import resources, seed, server
from sandbox.kubernetes import store as store_module
from tests.fixtures import kube
from tests.providers_kubernetes import factories


def _dry(ctx: context.RunContext) -> context.RunContext:
    return dataclasses.replace(ctx, dry_run=True)


def _paths(pods: object) -> list[str]:
    return [p.path for p in pods]  # type: ignore[attr-defined]


def test_a_page_boundary_inside_a_nodes_pods_groups_them_as_per_node_reads_do(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = factories.conn_of(ctx)
    nodes = sorted(n.name for n in listing.list_nodes(conn))
    monkeypatch.setattr(listing, "FEW_NODES", 100)
    one_by_one = listing.pods_on_nodes(_dry(ctx), conn, nodes)
    total = sum(len(pods) for pods in one_by_one.values())
    busiest = max(one_by_one.values(), key=len)
    assert len(busiest) >= 3, "the world has a node with several pods"
    monkeypatch.setattr(listing, "FEW_NODES", 0)
    monkeypatch.setattr(listing, "PAGE_SIZE", 2)
    requests = fresh_kube.server.request_count

    in_bulk = listing.pods_on_nodes(_dry(ctx), conn, nodes)

    assert fresh_kube.server.request_count - requests == math.ceil(total / 2)
    assert {n: _paths(p) for n, p in in_bulk.items()} == {
        n: _paths(p) for n, p in one_by_one.items()
    }
    assert in_bulk == one_by_one


def test_a_pod_target_is_selected_by_the_server_and_its_namespace_counted(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    conn = factories.conn_of(ctx)
    everything = listing.list_pods(conn, namespace="shop")
    wanted = {"app.kubernetes.io/name": "web"}
    requests = fresh_kube.server.request_count

    selected, population = listing.selected_pods(_dry(ctx), conn, "shop", labels=wanted)

    assert fresh_kube.server.request_count - requests == 2  # the selection, then a count
    assert selected == listing.matching(everything, wanted)
    assert selected and all(p.labels["app.kubernetes.io/name"] == "web" for p in selected)
    assert population == len(everything)


def test_a_pod_target_derives_from_the_pods_a_pass_already_holds(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    dry = _dry(ctx)
    conn = factories.conn_of(ctx)
    held = listing.all_pods(dry, conn)
    requests = fresh_kube.server.request_count

    selected, population = listing.selected_pods(
        dry, conn, "shop", labels={"app.kubernetes.io/name": "checkout"}
    )
    fielded, _ = listing.selected_pods(
        dry, conn, "shop", labels={}, fields="spec.nodeName=node-us-east-1a-1"
    )

    assert fresh_kube.server.request_count - requests == 2  # only the field selector is asked
    assert population == len(held.by_namespace["shop"])
    assert [p.name for p in selected] == [
        p.name for p in held.by_namespace["shop"] if "checkout" in p.name
    ]
    assert fielded == [p for p in held.by_namespace["shop"] if p.node == "node-us-east-1a-1"]


def test_facts_keep_what_plans_read_and_the_whole_object_only_for_unowned_pods() -> None:
    owned = {
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "u-1",
            "labels": {"app": "web"},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "web", "controller": False},
                {"kind": "DaemonSet", "name": "agent", "controller": True},
            ],
            "annotations": {listing.MIRROR_ANNOTATION: "x"},
        },
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    bare = {"metadata": {"name": "tool", "namespace": "ops"}, "spec": {}, "status": {}}

    facts, lonely = listing.pod_facts(owned), listing.pod_facts(bare)

    assert (facts.owner, facts.node, facts.phase, facts.mirror, facts.bare) == (
        "DaemonSet",
        "n1",
        "Running",
        True,
        None,
    )
    assert facts.ref.uid == "u-1" and facts.path == "shop/web-1"
    assert dict(facts.labels) == {"app": "web"}
    assert lonely.owner is None and lonely.bare == bare and lonely.node is None
    with pytest.raises(TypeError):
        facts.labels["app"] = "other"  # type: ignore[index]


@pytest.fixture
def compacting(
    tmp_path: pathlib.Path,
) -> Iterator[tuple[store_module.ClusterStore, server.KubeApiServer, context.RunContext]]:
    """A 12-node cluster whose event log holds 4 changes, and a run context over it."""
    st = store_module.ClusterStore(event_log_size=4)
    seed.seed_nodes(st, count=12, zones=seed.ZONES)
    api = server.KubeApiServer(store=st)
    api.start()
    ctx = factories.make_context(api.write_kubeconfig(tmp_path / "kubeconfig"))
    yield st, api, ctx
    factories.conn_of(ctx).close()
    api.stop()


def _touch_nodes(st: store_module.ClusterStore, mark: str) -> None:
    for obj in st.list(resource=resources.NODES)[:5]:
        obj["metadata"]["labels"]["touched"] = mark  # type: ignore[index]
        st.update(resource=resources.NODES, obj=obj)


def test_a_list_whose_snapshot_expires_midway_is_listed_again_from_the_start(
    compacting: tuple[store_module.ClusterStore, server.KubeApiServer, context.RunContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    st, api, ctx = compacting
    monkeypatch.setattr(listing, "PAGE_SIZE", 5)
    seen: list[str] = []

    def after_first_page(method: str, path: str) -> bool:
        seen.append(f"{method} {path}")
        if len(seen) == 2:  # the first continued page: the snapshot is compacted away
            _touch_nodes(st, "yes")
        return False

    api.faults.on_request = after_first_page
    found = listing.list_nodes(factories.conn_of(ctx))

    assert len(seen) == 2 + 3  # first page, its 410, then three pages from the start
    assert [n.name for n in found] == [
        n["metadata"]["name"]  # type: ignore[index]
        for n in st.list(resource=resources.NODES)
    ]
    assert sum(1 for n in found if n.labels.get("touched") == "yes") == 5


def test_a_list_that_keeps_expiring_is_a_retryable_error_naming_the_list(
    compacting: tuple[store_module.ClusterStore, server.KubeApiServer, context.RunContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    st, api, ctx = compacting
    monkeypatch.setattr(listing, "PAGE_SIZE", 5)
    calls: list[int] = []

    def always(method: str, path: str) -> bool:
        del method, path
        calls.append(1)
        if len(calls) % 2 == 0:
            _touch_nodes(st, str(len(calls)))
        return False

    api.faults.on_request = always
    with pytest.raises(connection.ListExpired, match=r"nodes: .*list again"):
        listing.list_nodes(factories.conn_of(ctx))
    assert len(calls) == 4
