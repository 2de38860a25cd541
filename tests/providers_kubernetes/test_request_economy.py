"""Request economy: a revert is one conditional write; plans list in bulk.

Counts come from the sandbox server's exact request counters; outcomes are checked too.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import pathlib
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import ClassVar

import pytest
import yaml

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


class _HeaderRecorder(http.server.BaseHTTPRequestHandler):
    """An API server that answers every GET with an empty NodeList and keeps the auth headers."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        body = json.dumps({"kind": "NodeList", "apiVersion": "v1", "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def _kubeconfig(path: pathlib.Path, *, server: str, user: Mapping[str, object]) -> pathlib.Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def header_server() -> Iterator[str]:
    _HeaderRecorder.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_static_token_is_sent_on_every_request_without_the_clients_per_request_refresh(
    header_server: str, tmp_path: pathlib.Path
) -> None:
    path = _kubeconfig(tmp_path / "config", server=header_server, user={"token": "t0ken-one"})
    conn = connection.connect(factories.make_environment(path))

    conn.call("nodes", conn.core.list_node)
    conn.call("nodes", conn.core.list_node)

    assert conn.api_client.configuration.refresh_api_key_hook is None
    assert _HeaderRecorder.seen == ["Bearer t0ken-one", "Bearer t0ken-one"]


def test_a_token_with_an_expiry_keeps_the_clients_refresh(
    header_server: str, tmp_path: pathlib.Path
) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "exec-token", "expirationTimestamp": "2099-01-01T00:00:00Z"},
    }
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": ["-c", f"print({json.dumps(json.dumps(credential))})"],
        }
    }
    path = _kubeconfig(tmp_path / "config", server=header_server, user=user)
    conn = connection.connect(factories.make_environment(path))

    conn.call("nodes", conn.core.list_node)

    assert conn.api_client.configuration.refresh_api_key_hook is not None
    assert _HeaderRecorder.seen == ["Bearer exec-token"]
