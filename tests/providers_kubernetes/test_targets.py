"""Resolver: selectors, populations, the orchestrator's exclusion, hints and namespace opt-in."""

from __future__ import annotations

import pytest

from orchestrator import context, errors
from orchestrator.providers.kubernetes import targets
from scenarios import models
from tests.fixtures import kube
from tests.providers_kubernetes import factories


def _target(raw: dict[str, object]) -> models.Target:
    return models.Target.model_validate({"provider": "kubernetes", **raw})


def _resolve(ctx: context.RunContext, raw: dict[str, object]) -> object:
    return targets.KubernetesResolver().resolve(ctx, name="t", target=_target(raw))


def test_zone_nodes_are_selected_by_label_out_of_every_node(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    writes = fresh_kube.server.mutating_request_count

    found = targets.KubernetesResolver().resolve(
        ctx,
        name="zone-nodes",
        target=_target(
            {"kind": "node", "selector": {"labels": {targets.ZONE_LABEL: "us-east-1a"}}}
        ),
    )

    assert fresh_kube.server.mutating_request_count == writes
    assert [r.name for r in found.refs] == ["node-us-east-1a-1", "node-us-east-1a-2"]
    assert found.population == 6
    assert {h.zone for h in found.hints} == {"us-east-1a"}
    assert any(
        h.namespace == "shop" and ("app.kubernetes.io/name", "web") in h.labels for h in found.hints
    )
    assert all(("pod-template-hash" not in dict(h.labels)) for h in found.hints)


def test_the_orchestrators_own_node_is_excluded_with_a_reason(ctx: context.RunContext) -> None:
    found = targets.KubernetesResolver().resolve(
        ctx,
        name="zone-nodes",
        target=_target(
            {"kind": "node", "selector": {"labels": {targets.ZONE_LABEL: "us-east-1c"}}}
        ),
    )

    assert [r.name for r in found.refs] == ["node-us-east-1c-1"]
    ((ref, why),) = found.excluded
    assert ref.name == factories.ORCHESTRATOR_NODE
    assert "orchestrator" in why


def test_nodes_by_name_and_pods_by_labels_in_a_namespace(ctx: context.RunContext) -> None:
    by_name = targets.KubernetesResolver().resolve(
        ctx,
        name="n",
        target=_target({"kind": "node", "selector": {"names": ["node-us-east-1b-2"]}}),
    )
    pods = targets.KubernetesResolver().resolve(
        ctx,
        name="p",
        target=_target(
            {
                "kind": "pod",
                "namespace": "shop",
                "selector": {"labels": {"app.kubernetes.io/name": "payments"}},
            }
        ),
    )

    assert [r.name for r in by_name.refs] == ["node-us-east-1b-2"]
    assert pods.count == 2 and pods.population == 10
    assert all(r.namespace == "shop" and r.uid for r in pods.refs)
    assert {h.zone for h in pods.hints} <= {"us-east-1a", "us-east-1b", "us-east-1c"}


def test_the_orchestrators_own_pod_is_excluded(ctx: context.RunContext) -> None:
    found = targets.KubernetesResolver().resolve(
        ctx,
        name="p",
        target=_target(
            {
                "kind": "pod",
                "namespace": "stormdrill",
                "selector": {"labels": {"app.kubernetes.io/name": "stormdrill"}},
            }
        ),
    )

    assert found.refs == ()
    assert found.excluded[0][0].name == "stormdrill-0"


def test_deployments_resolve_with_their_template_labels(ctx: context.RunContext) -> None:
    found = targets.KubernetesResolver().resolve(
        ctx,
        name="inventory",
        target=_target(
            {
                "kind": "deployment",
                "namespace": "shop",
                "selector": {"labels": {"app.kubernetes.io/name": "inventory"}},
            }
        ),
    )

    assert [r.name for r in found.refs] == ["inventory"]
    assert found.population == 4
    assert found.hints[0].namespace == "shop"
    assert ("app.kubernetes.io/name", "inventory") in found.hints[0].labels


def test_pod_targets_without_a_namespace_are_refused_with_the_fix(
    ctx: context.RunContext,
) -> None:
    with pytest.raises(errors.ProviderPermanent, match="namespace: shop"):
        targets.KubernetesResolver().resolve(
            ctx, name="p", target=_target({"kind": "pod", "selector": {"labels": {"a": "b"}}})
        )


def test_subjects_resolve_by_name_out_of_every_bound_subject(ctx: context.RunContext) -> None:
    found = targets.KubernetesResolver().resolve(
        ctx,
        name="absent",
        target=_target({"kind": "subject", "selector": {"names": ["alice", "Group:nobody"]}}),
    )

    assert [r.name for r in found.refs] == ["User:alice"]
    assert found.population == 6
    assert {h.namespace for h in found.hints} == {"shop", None}


def test_only_opted_in_namespaces_take_drills(ctx: context.RunContext) -> None:
    assert targets.namespace_opted_in(factories.conn_of(ctx), "shop")
    assert targets.opted_out_namespaces(ctx, ["shop", "default", "kube-system", "nope"]) == [
        "default",
        "kube-system",
        "nope",
    ]
