"""A drain names every pod it evicts; unowned pods and pods of namespaces that never opted in."""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator import context, journal, planning
from orchestrator.providers.kubernetes import nodes, objects
from scenarios import models
from tests.fixtures import kube
from tests.providers_kubernetes import factories
from tests.safety import world

NODE = "node-us-east-1a-1"


def _json(value: object) -> Any:
    """A JSON value from a plan, to index freely in assertions."""
    return value


def _drain(**params: Any) -> models.Scenario:
    return world.scenario(
        targets={
            "node": {
                "provider": "kubernetes",
                "kind": "node",
                "selector": {"names": [NODE]},
                "blastRadius": {"max": 1},
            }
        },
        steps=[
            {
                "name": "drain",
                "action": "kubernetes.nodes.drain",
                "target": "node",
                "with": {"timeout": "20s", **params},
            }
        ],
    )


def _evicted(plan: planning.Plan) -> list[str]:
    return sorted(
        f"{t['namespace']}/{t['name']}"
        for s in plan.steps
        for m in s.mutations
        for t in _json(m.pre_state.get("touches")) or []
    )


def test_a_drain_that_would_lose_an_unowned_pod_is_refused_naming_it(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    world.add_bare_pod(fresh_kube.store, "scratch", namespace="shop", node=NODE)
    writes = fresh_kube.server.mutating_request_count

    plan = world.plan(store, _drain(), world.environment(fresh_kube.kubeconfig))

    refused = world.refusals(plan, "unowned-pods")
    assert len(refused) == 1 and "pod shop/scratch" in refused[0]
    assert "deleteUnownedPods: true" in refused[0]
    assert "shop/scratch" in _evicted(plan)  # the plan lists every pod the drain evicts
    assert fresh_kube.server.mutating_request_count == writes


def test_a_drain_evicting_pods_of_a_namespace_that_never_opted_in_is_refused(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    world.add_bare_pod(fresh_kube.store, "scratch", namespace="default", node=NODE)

    plan = world.plan(
        store, _drain(deleteUnownedPods=True), world.environment(fresh_kube.kubeconfig)
    )

    refused = {v.subject: v.message for v in plan.refusals if v.rule == "namespace-opt-in"}
    assert list(refused) == ["default"]
    assert "pod default/scratch" in refused["default"]


def test_the_environment_may_allow_evictions_in_a_namespace_that_never_opted_in(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    world.add_bare_pod(fresh_kube.store, "scratch", namespace="default", node=NODE)
    env = world.environment(fresh_kube.kubeconfig, allowEvictionIn=["default"])

    plan = world.plan(store, _drain(deleteUnownedPods=True), env)

    assert not plan.refused, plan.refusals
    assert "default/scratch" in _evicted(plan)


def test_the_services_of_the_evicted_pods_count_towards_max_services(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    env = world.environment(fresh_kube.kubeconfig)
    scenario = _drain()
    scenario = scenario.model_copy(
        update={
            "spec": scenario.spec.model_copy(
                update={
                    "guardrails": scenario.spec.guardrails.model_copy(update={"max_services": 1})
                }
            )
        }
    )

    plan = world.plan(store, scenario, env, catalog=world.sandbox_catalog())

    assert plan.impact is not None
    reached = {str(s.service.ref) for s in plan.impact.services if s.distance == 0}
    evicted_apps = {p.split("/")[1].split("-")[0] for p in _evicted(plan)}
    assert {f"component:default/{app}" for app in evicted_apps} <= reached
    assert world.refusals(plan, "max-services")


def _pod(ctx: context.RunContext, name: str, namespace: str) -> dict[str, Any] | None:
    return objects.read(factories.conn_of(ctx), factories.ref("pod", name, namespace))


def test_a_drain_never_evicts_an_unowned_pod_it_was_not_told_to_delete(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    world.add_bare_pod(fresh_kube.store, "scratch", namespace="shop", node=NODE)
    action = nodes.DrainAction()
    planned = factories.plan(action, ctx, [factories.node(NODE)], {"timeout": "20s"})
    assert len(planned) == 1

    tokens = factories.apply_all(action, ctx, planned)  # the guardrails are bypassed here

    assert _pod(ctx, "scratch", "shop") is not None
    factories.revert_all(action, ctx, tokens)


def test_delete_unowned_pods_journals_the_manifest_and_the_undo_recreates_the_pod(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    world.add_bare_pod(
        fresh_kube.store, "scratch", namespace="shop", node=NODE, labels={"app": "scratch"}
    )
    action = nodes.DrainAction()

    planned = factories.plan(
        action, ctx, [factories.node(NODE)], {"timeout": "20s", "deleteUnownedPods": True}
    )

    bare = [m for m in planned if m.target.kind == "pod"]
    assert [m.target.name for m in bare] == ["scratch"]
    assert planned[-1] is bare[0]  # deleted after the node is cordoned and drained
    manifest = _json(bare[0].undo.data["manifest"])
    assert isinstance(manifest, dict)
    assert manifest["metadata"]["labels"] == {"app": "scratch"}
    assert manifest["spec"]["nodeName"] == NODE

    tokens = factories.apply_all(action, ctx, planned)
    assert _pod(ctx, "scratch", "shop") is None

    factories.revert_all(action, ctx, tokens)
    back = _pod(ctx, "scratch", "shop")
    assert back is not None
    assert back["metadata"]["labels"] == {"app": "scratch"}
    assert back["metadata"]["annotations"] == {"team": "qa"}
    assert back["spec"]["containers"][0]["image"] == "registry.example/scratch:1"
    node = objects.read(factories.conn_of(ctx), factories.node(NODE))
    assert node is not None and not node["spec"].get("unschedulable")

    factories.revert_all(action, ctx, tokens)  # twice is harmless
    assert _pod(ctx, "scratch", "shop") is not None


def test_the_nodes_own_drain_evicts_only_pods_of_namespaces_its_plan_named(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.DrainAction()
    planned = factories.plan(action, ctx, [factories.node(NODE)], {"timeout": "20s"})
    shop_pods = list(_json(planned[0].pre_state["pods"]))
    assert shop_pods and all(str(p).startswith("shop/") for p in shop_pods)
    # As if the judged plan had named no namespace (a pod arrived after it was judged):
    narrowed = dataclasses.replace(planned[0], pre_state={**planned[0].pre_state, "touches": []})

    tokens = factories.apply_all(action, ctx, [narrowed])

    assert tokens[0].data["evicted"] == []
    for pod in shop_pods:
        namespace, name = str(pod).split("/")
        assert _pod(ctx, name, namespace) is not None
    factories.revert_all(action, ctx, tokens)
