"""A subject revoke is judged by the bindings it edits: namespaces, Stormdrill's, cluster scope."""

from __future__ import annotations

import pytest

from orchestrator import errors, journal, planning
from orchestrator.providers import builtin
from orchestrator.providers.kubernetes import objects
from scenarios import models
from tests.fixtures import kube
from tests.providers_kubernetes import factories
from tests.safety import world

ERIN = "User:erin"


@pytest.fixture
def erin_everywhere(fresh_kube: kube.KubeSandbox) -> kube.KubeSandbox:
    """erin is also bound in `default` (never opted in) and in Stormdrill's own namespace."""
    erin = world.subject("User", "erin")
    world.add_role_binding(fresh_kube.store, "erin-view", namespace="default", subjects=[erin])
    world.add_role_binding(fresh_kube.store, "erin-debug", namespace="stormdrill", subjects=[erin])
    return fresh_kube


def _revoke(*names: str, namespaces: tuple[str, ...] = ()) -> models.Scenario:
    return world.scenario(
        targets={"who": world.subject_target(*names, namespaces=namespaces)},
        steps=[world.revoke()],
    )


def test_a_revoke_reaching_a_namespace_that_never_opted_in_is_refused_naming_the_binding(
    erin_everywhere: kube.KubeSandbox, store: journal.Journal
) -> None:
    writes = erin_everywhere.server.mutating_request_count

    plan = world.plan(store, _revoke(ERIN), world.environment(erin_everywhere.kubeconfig))

    assert plan.refused
    refused = {v.subject: v.message for v in plan.refusals if v.rule == "namespace-opt-in"}
    assert sorted(refused) == ["default", "stormdrill"]
    assert "namespace default has not opted in" in refused["default"]
    assert "rolebinding default/erin-view" in refused["default"]
    assert "rolebinding stormdrill/erin-debug" in refused["stormdrill"]
    edited = sorted(m.target.key for s in plan.steps for m in s.mutations)
    assert "kubernetes:rolebinding::default:erin-view" in edited  # the plan shows it
    assert erin_everywhere.server.mutating_request_count == writes


def test_a_revoke_reaching_stormdrills_own_namespace_is_refused(
    erin_everywhere: kube.KubeSandbox, store: journal.Journal
) -> None:
    plan = world.plan(store, _revoke(ERIN), world.environment(erin_everywhere.kubeconfig))

    refused = world.refusals(plan, "orchestrator-self")
    assert refused and any("erin-debug" in m and "stormdrill" in m for m in refused)


def test_a_narrowed_revoke_edits_only_the_namespaces_it_names(
    erin_everywhere: kube.KubeSandbox, store: journal.Journal
) -> None:
    plan = world.plan(
        store,
        _revoke(ERIN, namespaces=("shop",)),
        world.environment(erin_everywhere.kubeconfig),
    )

    assert not plan.refused, plan.refusals
    edited = [m.target.key for s in plan.steps for m in s.mutations]
    assert edited == ["kubernetes:rolebinding::shop:storefront-deployers"]


def test_a_cluster_role_binding_needs_the_environment_to_allow_cluster_scope(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    alice = _revoke("User:alice")

    closed = world.plan(store, alice, world.environment(fresh_kube.kubeconfig))
    opened = world.plan(
        store, alice, world.environment(fresh_kube.kubeconfig, allowClusterScope=True)
    )

    refused = world.refusals(closed, "cluster-scope")
    assert len(refused) == 1 and "clusterrolebinding shop-admins" in refused[0]
    assert "allowClusterScope" in refused[0]
    assert not opened.refused, opened.refusals


def test_a_binding_created_after_the_plan_outside_it_stops_the_step_untouched(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    env = world.environment(fresh_kube.kubeconfig)
    scenario = _revoke(ERIN)
    plan = world.plan(store, scenario, env)
    assert not plan.refused, plan.refusals
    world.add_role_binding(
        fresh_kube.store,
        "erin-late",
        namespace="default",
        subjects=[world.subject("User", "erin")],
    )
    ctx = factories.make_context(fresh_kube.kubeconfig)
    late = factories.ref("rolebinding", "erin-late", "default")
    before = factories.states_of(ctx, [late])

    with pytest.raises(errors.GuardrailTripped, match="namespace default"):
        planning.plan_action(
            scenario.spec.steps[0],
            reg=builtin.registry_with_builtins(),
            ctx=ctx,
            selections=plan.selections,
        )

    assert factories.states_of(ctx, [late]) == before
    found = objects.read(factories.conn_of(ctx), late)
    assert found is not None and found["subjects"][0]["name"] == "erin"
