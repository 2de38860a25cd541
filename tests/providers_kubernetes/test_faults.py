"""API faults: SDK errors become ProviderRetryable or ProviderPermanent at the provider edge."""

from __future__ import annotations

import pytest

from orchestrator import context, errors
from orchestrator.providers.kubernetes import connection, network, nodes, objects, probes
from orchestrator.providers.kubernetes import errors as kube_errors
from scenarios import models
from tests.fixtures import kube
from tests.providers_kubernetes import factories

NODE = factories.node("node-us-east-1a-1")


def test_server_errors_are_retryable(fresh_kube: kube.KubeSandbox, ctx: context.RunContext) -> None:
    fresh_kube.server.faults.error_rate = 1.0

    with pytest.raises(errors.ProviderRetryable, match="Internal Server Error"):
        factories.plan(nodes.CordonAction(), ctx, [NODE])


def test_gateway_timeouts_and_dropped_connections_are_retryable(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    fresh_kube.server.faults.timeout_rate = 1.0
    with pytest.raises(errors.ProviderRetryable):
        objects.read(factories.conn_of(ctx), NODE)

    fresh_kube.server.faults.drop_connection_on_timeout = True
    with pytest.raises(errors.ProviderRetryable, match="cannot reach the Kubernetes API server"):
        objects.read(factories.conn_of(ctx), NODE)


def test_endless_conflicts_surface_as_a_retryable_conflict_and_change_nothing(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.CordonAction()
    planned = factories.plan(action, ctx, [NODE])
    before = factories.states_of(ctx, [NODE])
    fresh_kube.server.faults.conflict_rate = 1.0

    with pytest.raises(kube_errors.Conflict) as caught:
        factories.apply_all(action, ctx, planned)

    assert isinstance(caught.value, errors.ProviderRetryable)
    fresh_kube.server.faults.conflict_rate = 0.0
    assert factories.states_of(ctx, [NODE]) == before


def test_some_conflicts_are_absorbed_by_read_modify_write(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.CordonAction()
    planned = factories.plan(action, ctx, [NODE])
    fresh_kube.server.faults.seed = 7
    fresh_kube.server.faults.conflict_rate = 0.5

    tokens = factories.apply_all(action, ctx, planned)
    action.revert(ctx, undo=tokens[0])

    fresh_kube.server.faults.conflict_rate = 0.0
    assert objects.read(factories.conn_of(ctx), NODE)["spec"].get("unschedulable") is None  # type: ignore[index]


def test_client_errors_are_permanent_and_name_the_object(ctx: context.RunContext) -> None:
    probe = probes.PodsReadyProbe()
    with pytest.raises(errors.ProviderPermanent, match="pods in shop: Bad Request"):
        probe.check(ctx, params=probe.parse_params({"namespace": "shop", "selector": "a b c"}))

    body = network._policy(name="x", namespace="nowhere", ctx=ctx, spec={"podSelector": {}})
    with pytest.raises(kube_errors.NotFound, match="networkpolicy nowhere/x"):
        network.create_policy(factories.conn_of(ctx), body, run_id=factories.RUN_ID)


def test_an_environment_without_kubernetes_access_is_refused_with_the_fix() -> None:
    environment = models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "bare"},
            "spec": {},
        }
    )

    with pytest.raises(errors.ProviderPermanent, match=r"spec\.kubernetes is not set"):
        connection.connect(environment)


def test_a_missing_kubeconfig_is_refused_naming_it(tmp_path: object) -> None:
    environment = factories.make_environment(tmp_path / "missing")  # type: ignore[operator]

    with pytest.raises(errors.ProviderPermanent, match="missing"):
        connection.connect(environment)
