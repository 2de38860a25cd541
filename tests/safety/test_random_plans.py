"""Property: whatever a scenario asks, an accepted plan mutates only inside its blast radius.

Seeded random scenarios (actions, targets, selectors, namespaces, narrowing, drain options)
and Environments (cluster scope, eviction allowances, protected principals) are planned
against one sandbox shop with extra bindings and bare pods in every namespace. A plan may
be refused (fine); an accepted one must keep every mutation — its object and every pod it
evicts — inside a namespace that opted in (or one the Environment allows evictions in), out
of Stormdrill's namespace, off protected subjects, off cluster-wide RBAC unless allowed, and
off unowned pods unless the drain said `deleteUnownedPods` (a `kubernetes.pods.delete` that
names a pod deletes it on purpose). The oracle reads the cluster store directly, not the
guardrails.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import errors, journal, planning
from orchestrator.cmdb import models as cmdb_models
from sandbox.kubernetes import resources
from scenarios import models
from tests.fixtures import kube
from tests.safety import world

SEED = 20260309
ITERATIONS = 120
NAMESPACES = ("shop", "default", "stormdrill", "kube-system")
NODES = tuple(f"node-us-east-1{z}-{i}" for z in "abc" for i in (1, 2))
SUBJECTS = (
    "User:alice",
    "User:bob",
    "User:dave",
    "User:erin",
    "User:frank",
    "User:grace",
    "Group:team-payments",
    "Group:system:masters",
    "User:system:kube-scheduler",
    "ServiceAccount:kube-system/replicaset-controller",
    "ServiceAccount:stormdrill/stormdrill",
    "ServiceAccount:shop/app",
)
SERVICES = ("web", "checkout", "payments", "inventory")


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube.KubeSandbox]:
    """The shop plus bindings and bare pods in every namespace (this module's own cluster)."""
    sandbox = kube.start_sandbox(tmp_path_factory.mktemp("crowded"))
    s = world.subject
    extra = {
        "default": [s("User", "erin"), s("User", "alice"), s("Group", "system:masters")],
        "stormdrill": [s("User", "erin"), s("ServiceAccount", "stormdrill", "stormdrill")],
        "kube-system": [
            s("ServiceAccount", "replicaset-controller", "kube-system"),
            s("User", "dave"),
        ],
        "shop": [
            s("User", "frank"),
            s("User", "grace"),
            s("ServiceAccount", "app", "shop"),
            s("User", "system:kube-scheduler"),
        ],
    }
    for namespace, subjects in extra.items():
        world.add_role_binding(
            sandbox.store, f"extra-{namespace}", namespace=namespace, subjects=subjects
        )
    for namespace, node in (
        ("shop", "node-us-east-1a-1"),
        ("default", "node-us-east-1b-1"),
        ("stormdrill", "node-us-east-1a-2"),
        ("kube-system", "node-us-east-1c-1"),
    ):
        world.add_bare_pod(sandbox.store, f"bare-{namespace}", namespace=namespace, node=node)
    yield sandbox
    kube.stop_sandbox(sandbox)


def _target(rng: random.Random) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(target, action, with) for one random step."""
    kind = rng.choice(("subject", "node", "node", "pod", "deployment"))
    radius = {"max": rng.choice((1, 2, 6, "100%"))}
    if kind == "subject":
        target = world.subject_target(*rng.sample(SUBJECTS, rng.randint(1, 3)))
        target["blastRadius"] = radius
        if rng.random() < 0.5:
            target["namespaces"] = rng.sample(NAMESPACES, rng.randint(1, 2))
        return target, "kubernetes.rbac.revoke-subject", {}
    if kind == "node":
        selector: dict[str, Any] = (
            {"names": rng.sample(NODES, rng.randint(1, 3))}
            if rng.random() < 0.6
            else {"labels": {"topology.kubernetes.io/zone": f"us-east-1{rng.choice('abc')}"}}
        )
        action = rng.choice(
            ("kubernetes.nodes.drain", "kubernetes.nodes.drain", "kubernetes.nodes.cordon")
        )
        params: dict[str, Any] = {}
        if action == "kubernetes.nodes.drain":
            params = {"timeout": "10s", "deleteUnownedPods": rng.random() < 0.5}
        return (
            {"provider": "kubernetes", "kind": "node", "selector": selector, "blastRadius": radius},
            action,
            params,
        )
    namespace = rng.choice(NAMESPACES)
    labels = (
        {"app.kubernetes.io/name": rng.choice(SERVICES)}
        if rng.random() < 0.7
        else {"app": f"bare-{rng.choice(NAMESPACES)}"}
    )
    target = {
        "provider": "kubernetes",
        "kind": kind,
        "namespace": namespace,
        "selector": {"labels": labels},
        "blastRadius": radius,
    }
    if kind == "pod":
        return target, "kubernetes.pods.delete", {}
    return target, "kubernetes.deployment.scale", {"replicas": 0}


def _scenario(rng: random.Random) -> models.Scenario:
    targets: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    for index in range(rng.randint(1, 3)):
        target, action, params = _target(rng)
        name = f"t{index}"
        targets[name] = target
        steps.append({"name": f"s{index}", "action": action, "target": name, "with": params})
    return world.scenario(targets=targets, steps=steps)


def _environment(rng: random.Random, kubeconfig: Path) -> models.Environment:
    return world.environment(
        kubeconfig,
        allowClusterScope=rng.random() < 0.5,
        allowEvictionIn=rng.sample(NAMESPACES[1:], rng.randint(0, 2)),
        protectedPrincipals=rng.sample(
            ["erin", "Group:team-payments", "User:grace"], rng.randint(0, 2)
        ),
    )


class Oracle:
    """What may be touched, read from the cluster store and the CMDB, not from guardrails."""

    def __init__(self, sandbox: kube.KubeSandbox, catalog: cmdb_models.Catalog) -> None:
        namespaces: list[Any] = list(sandbox.store.list(resource=resources.NAMESPACES))
        pods: list[Any] = list(sandbox.store.list(resource=resources.PODS))
        self.opted_in = {
            str(ns["metadata"]["name"])
            for ns in namespaces
            if (ns["metadata"].get("labels") or {}).get("stormdrill.dev/allow-drills") == "true"
        }
        self.owned = {
            (str(p["metadata"]["namespace"]), str(p["metadata"]["name"])): bool(
                p["metadata"].get("ownerReferences")
            )
            for p in pods
        }
        self.break_glass = {
            person.name for svc in catalog.services.values() for person in svc.people.break_glass
        }

    def protected(self, subject: str, env: models.Environment) -> bool:
        kind, _, rest = subject.partition(":")
        access = env.spec.kubernetes
        listed = {
            p if ":" in p else f"User:{p}" for p in (access.protected_principals if access else ())
        }
        return (
            rest.startswith("system:")
            or (kind == "ServiceAccount" and rest.split("/")[0] in ("kube-system", "stormdrill"))
            or (kind == "User" and rest in self.break_glass)
            or subject in listed
        )

    def violations(self, plan: planning.Plan) -> list[str]:
        env = plan.drill.environment
        access = env.spec.kubernetes
        assert access is not None
        evictable = self.opted_in | set(access.allow_eviction_in)
        found: list[str] = []
        for step in plan.steps:
            delete_unowned = bool(step.step.params.get("deleteUnownedPods"))
            for m in step.mutations:
                ref = m.target
                where = f"step {step.step.name}: {m.action} on {ref}"
                if (
                    ref.kind in ("clusterrolebinding", "clusterrole")
                    and not access.allow_cluster_scope
                ):
                    found.append(f"{where}: cluster-wide without allowClusterScope")
                if ref.namespace:
                    drained = m.action == "kubernetes.nodes.drain"
                    allowed = evictable if drained else self.opted_in
                    if ref.namespace not in allowed or ref.namespace == "stormdrill":
                        found.append(f"{where}: namespace {ref.namespace} is outside")
                    drained_bare = ref.kind == "pod" and m.action == "kubernetes.nodes.drain"
                    if drained_bare and not delete_unowned:
                        found.append(f"{where}: unowned pod without deleteUnownedPods")
                subject = m.pre_state.get("subject")
                if isinstance(subject, str) and self.protected(subject, env):
                    found.append(f"{where}: protected subject {subject}")
                touches: Any = m.pre_state.get("touches") or []
                for t in touches:
                    ns, name = str(t["namespace"]), str(t["name"])
                    if ns not in evictable or ns == "stormdrill":
                        found.append(f"{where}: evicts {ns}/{name} outside")
                    if not self.owned.get((ns, name), True) and not delete_unowned:
                        found.append(f"{where}: evicts unowned {ns}/{name}")
        return found


def test_no_accepted_plan_mutates_outside_the_blast_radius(
    crowded: kube.KubeSandbox, sqlite_url: str
) -> None:
    rng = random.Random(SEED)
    catalog = world.sandbox_catalog()
    oracle = Oracle(crowded, catalog)
    writes = crowded.server.mutating_request_count
    accepted = refused = 0
    with journal.open_store(sqlite_url) as store:
        for iteration in range(ITERATIONS):
            scenario = _scenario(rng)
            env = _environment(rng, crowded.kubeconfig)
            try:
                plan = world.plan(store, scenario, env, catalog=catalog)
            except errors.StormdrillError:
                refused += 1
                continue
            if plan.refused:
                refused += 1
                continue
            accepted += 1
            bad = oracle.violations(plan)
            assert not bad, (iteration, scenario.spec.model_dump(by_alias=True), bad)
    assert crowded.server.mutating_request_count == writes  # planning never writes
    assert accepted >= 10 and refused >= 10, (accepted, refused)
