"""Request economy: a revert is one conditional write; plans list in bulk.

Counts come from the sandbox server's exact request counters; outcomes are checked too.
"""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator import context, engine, errors
from orchestrator.providers.kubernetes import connection, listing, nodes, objects
from tests.fixtures import kube
from tests.providers_kubernetes import factories

NODE = "node-us-east-1a-1"


def _all_nodes(ctx: context.RunContext) -> list[str]:
    conn = factories.conn_of(ctx)
    return sorted(objects.name_of(n) for n in objects.items(conn.call("n", conn.core.list_node)))


def test_reverting_a_cordon_is_one_conditional_patch_and_reverting_it_again_writes_nothing(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.CordonAction()
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    tokens = factories.apply_all(action, ctx, factories.plan(action, ctx, [target]))
    requests = fresh_kube.server.request_count

    action.revert(ctx, undo=tokens[0])

    assert fresh_kube.server.request_count - requests == 1
    assert factories.states_of(ctx, [target]) == before
    requests = fresh_kube.server.request_count
    writes = fresh_kube.server.mutating_request_count
    action.revert(ctx, undo=tokens[0])  # already undone: the patch is refused, then one read
    assert fresh_kube.server.request_count - requests == 2
    assert fresh_kube.server.mutating_request_count - writes == 1  # the refused patch
    assert factories.states_of(ctx, [target]) == before


def test_a_drain_plan_over_many_nodes_lists_pods_once_and_plans_what_per_node_reads_plan(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    action = nodes.DrainAction()
    refs = [factories.node(name) for name in _all_nodes(ctx)]
    one_by_one = factories.plan(action, ctx, refs)
    monkeypatch.setattr(listing, "FEW_NODES", 0)
    requests = fresh_kube.server.request_count

    in_bulk = factories.plan(action, ctx, refs)

    assert fresh_kube.server.request_count - requests == 2  # all nodes, then all pods
    assert in_bulk == one_by_one
    assert any(m.pre_state["pods"] for m in in_bulk)


def test_a_missing_node_is_named_whether_plans_read_one_by_one_or_in_bulk(
    ctx: context.RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = [factories.node(NODE), factories.node("node-gone")]
    with pytest.raises(errors.ProviderPermanent, match="node-gone: the node does not exist"):
        factories.plan(nodes.CordonAction(), ctx, refs)
    monkeypatch.setattr(listing, "FEW_NODES", 0)
    with pytest.raises(errors.ProviderPermanent, match="node-gone: the node does not exist"):
        factories.plan(nodes.CordonAction(), ctx, refs)


def test_a_dry_run_context_lists_once_and_a_new_context_or_a_run_lists_afresh(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    dry = dataclasses.replace(ctx, dry_run=True)
    conn = factories.conn_of(ctx)
    requests = fresh_kube.server.request_count
    first = listing.all_pods(dry, conn)
    again = listing.all_pods(dry, conn)
    in_shop = listing.namespace_pods(dry, conn, "shop")
    assert fresh_kube.server.request_count - requests == 1
    assert again is first
    assert in_shop and all(p.namespace == "shop" for p in in_shop)

    other = dataclasses.replace(ctx, dry_run=True)
    requests = fresh_kube.server.request_count
    listing.all_pods(other, conn)
    listing.all_pods(ctx, conn)  # a run's context: never shared
    listing.all_pods(ctx, conn)
    assert fresh_kube.server.request_count - requests == 3


def test_the_connection_pool_holds_more_connections_than_rollback_runs_reverts_at_once(
    ctx: context.RunContext,
) -> None:
    conn = factories.conn_of(ctx)
    assert isinstance(conn, connection.KubeConnection)
    pool_kw = conn.api_client.rest_client.pool_manager.connection_pool_kw
    assert pool_kw["maxsize"] >= engine.EngineConfig().rollback_concurrency
