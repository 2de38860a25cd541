"""Protected principals: break-glass holders, listed principals and system subjects keep access."""

from __future__ import annotations

import pathlib

import pytest

from orchestrator import journal
from orchestrator.cmdb import backstage
from scenarios import models
from tests.fixtures import kube
from tests.safety import world


def _revoke(*names: str) -> models.Scenario:
    return world.scenario(
        targets={"who": world.subject_target(*names, namespaces=("shop",))},
        steps=[world.revoke()],
    )


def test_revoking_the_cmdb_break_glass_holder_is_refused(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    env = world.environment(fresh_kube.kubeconfig, allowClusterScope=True)
    writes = fresh_kube.server.mutating_request_count

    plan = world.plan(store, _revoke("User:frank"), env, catalog=world.sandbox_catalog())

    refused = world.refusals(plan, "protected-principal")
    assert len(refused) == 1 and "User:frank" in refused[0]
    assert "break-glass holder in the CMDB" in refused[0]
    assert fresh_kube.server.mutating_request_count == writes


def test_a_person_target_of_the_break_glass_holder_is_refused_through_its_bindings(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    scenario = world.scenario(
        targets={
            "who": {
                "provider": "people",
                "kind": "person",
                "selector": {"refs": ["user:default/frank"]},
                "blastRadius": {"max": 1},
            }
        },
        steps=[world.revoke()],
    )
    env = world.environment(fresh_kube.kubeconfig, cmdb=True, allowClusterScope=True)

    plan = world.plan(store, scenario, env, catalog=world.sandbox_catalog())

    assert any("User:frank" in m for m in world.refusals(plan, "protected-principal"))


def test_the_environments_kubernetes_protected_principals_are_refused(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    env = world.environment(fresh_kube.kubeconfig, protectedPrincipals=["dave"])

    plan = world.plan(store, _revoke("User:dave"), env)

    refused = world.refusals(plan, "protected-principal")
    assert len(refused) == 1 and "spec.kubernetes.protectedPrincipals" in refused[0]


@pytest.mark.parametrize(
    ("subject", "raw", "why"),
    [
        ("Group:system:masters", world.subject("Group", "system:masters"), "system subject"),
        (
            "ServiceAccount:kube-system/replicaset-controller",
            world.subject("ServiceAccount", "replicaset-controller", "kube-system"),
            "ServiceAccount of kube-system",
        ),
        (
            "ServiceAccount:stormdrill/stormdrill",
            world.subject("ServiceAccount", "stormdrill", "stormdrill"),
            "Stormdrill's own namespace",
        ),
    ],
)
def test_system_subjects_are_always_protected(
    fresh_kube: kube.KubeSandbox,
    store: journal.Journal,
    subject: str,
    raw: dict[str, str],
    why: str,
) -> None:
    world.add_role_binding(fresh_kube.store, "system-view", namespace="shop", subjects=[raw])

    plan = world.plan(store, _revoke(subject), world.environment(fresh_kube.kubeconfig))

    refused = world.refusals(plan, "protected-principal")
    assert len(refused) == 1 and why in refused[0], plan.refusals
    assert [m.target.name for s in plan.steps for m in s.mutations] == ["system-view"]


def test_an_ordinary_subject_is_not_protected(
    fresh_kube: kube.KubeSandbox, store: journal.Journal
) -> None:
    plan = world.plan(
        store,
        _revoke("User:erin"),
        world.environment(fresh_kube.kubeconfig),
        catalog=world.sandbox_catalog(),
    )

    assert not plan.refused, plan.refusals
    verdicts = [v for v in plan.verdicts if v.rule == "protected-principal"]
    assert [(v.ok, v.subject) for v in verdicts] == [(True, "kubernetes User:erin")]


def test_a_break_glass_holder_of_an_entity_the_cmdb_refused_stays_protected(
    fresh_kube: kube.KubeSandbox, store: journal.Journal, tmp_path: pathlib.Path
) -> None:
    # A lenient (Backstage-like) load leaves a bad entity out; its break-glass holder must
    # not lose protection because of a typo elsewhere in that entity.
    (tmp_path / "catalog-info.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\n"
        "kind: Component\n"
        "metadata:\n"
        "  name: vault\n"
        "  annotations:\n"
        "    stormdrill.dev/tier: seven\n"
        "    stormdrill.dev/break-glass: user:default/dave, erin\n"
        "spec: {type: service, lifecycle: production, owner: group:team-x}\n"
        "---\n"
        "apiVersion: backstage.io/v1alpha1\n"
        "kind: Group\n"
        "metadata: {name: team-x}\n"
        "spec: {type: team, children: []}\n",
        encoding="utf-8",
    )
    catalog = backstage.load_catalog([tmp_path])
    assert [r.break_glass for r in catalog.refused] == [("dave", "erin")]
    env = world.environment(fresh_kube.kubeconfig)

    plan = world.plan(store, _revoke("User:dave"), env, catalog=catalog)

    refused = world.refusals(plan, "protected-principal")
    assert len(refused) == 1 and "User:dave" in refused[0]
    assert "refused by the CMDB loader" in refused[0]
