"""Extra objects the safety tests add to their own sandbox clusters, and plan helpers.

The shared seed (docs/sandbox-world.md) stays as it is: bindings in namespaces that never
opted in, bindings naming system subjects and bare pods are added here, per test cluster.
"""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator import engine, journal, planning
from orchestrator.cmdb import backstage
from orchestrator.cmdb import models as cmdb_models
from orchestrator.providers import builtin
from sandbox import stack
from sandbox.kubernetes import resources
from sandbox.kubernetes import store as store_module
from scenarios import models

RBAC_GROUP = "rbac.authorization.k8s.io"


def subject(kind: str, name: str, namespace: str | None = None) -> dict[str, str]:
    found = {"kind": kind, "name": name}
    if kind == "ServiceAccount":
        found["namespace"] = namespace or "default"
    else:
        found["apiGroup"] = RBAC_GROUP
    return found


def add_role_binding(
    cluster: store_module.ClusterStore,
    name: str,
    *,
    namespace: str,
    subjects: Sequence[Mapping[str, str]],
) -> None:
    cluster.create(
        resource=resources.ROLE_BINDINGS,
        obj={
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [dict(s) for s in subjects],
        },
    )


def add_bare_pod(
    cluster: store_module.ClusterStore,
    name: str,
    *,
    namespace: str,
    node: str,
    labels: Mapping[str, str] | None = None,
) -> None:
    """A Running pod no controller owns, bound to `node`."""
    cluster.create(
        resource=resources.PODS,
        obj={
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels or {"app": name}),
                "annotations": {"team": "qa"},
            },
            "spec": {
                "nodeName": node,
                "containers": [{"name": "main", "image": "registry.example/scratch:1"}],
            },
            "status": {"phase": "Running"},
        },
    )


def pod_names(cluster: store_module.ClusterStore, namespace: str) -> set[str]:
    return {
        str(p["metadata"]["name"])  # type: ignore[index]
        for p in cluster.list(resource=resources.PODS, namespace=namespace)
    }


def sandbox_catalog() -> cmdb_models.Catalog:
    """The sandbox world's CMDB (frank holds break-glass for every shop service)."""
    return backstage.load_catalog([stack.catalog_path()])


def environment(
    kubeconfig: pathlib.Path, *, cmdb: bool = False, **kubernetes: Any
) -> models.Environment:
    """The sandbox Environment shape over `kubeconfig`, with `kubernetes` fields merged in
    (and the sandbox CMDB when `cmdb`)."""
    extra: dict[str, Any] = {"cmdb": {"backstage": [str(stack.catalog_path())]}} if cmdb else {}
    return models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "sandbox"},
            "spec": {
                **extra,
                "kubernetes": {
                    "kubeconfig": str(kubeconfig),
                    "requireNamespaceOptIn": True,
                    **kubernetes,
                },
                "orchestrator": {
                    "namespace": "stormdrill",
                    "podName": "stormdrill-0",
                    "nodeName": "node-us-east-1c-2",
                },
            },
        }
    )


def scenario(
    *,
    targets: Mapping[str, Any],
    steps: Sequence[Mapping[str, Any]],
    guardrails: Mapping[str, Any] | None = None,
) -> models.Scenario:
    return models.Scenario.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Scenario",
            "metadata": {"name": "safety-probe"},
            "spec": {
                "description": "A scenario the safety tests plan.",
                "failureMode": "custom",
                "hypothesis": "Nothing outside the blast radius is touched.",
                "targets": copy.deepcopy(dict(targets)),
                "guardrails": {
                    "environments": ["sandbox"],
                    "maxDuration": "30m",
                    **(guardrails or {}),
                },
                "steps": [dict(s) for s in steps],
            },
        }
    )


def subject_target(*names: str, namespaces: Sequence[str] = ()) -> dict[str, Any]:
    found: dict[str, Any] = {
        "provider": "kubernetes",
        "kind": "subject",
        "selector": {"names": list(names)},
        "blastRadius": {"max": len(names)},
    }
    if namespaces:
        found["namespaces"] = list(namespaces)
    return found


def revoke(target: str = "who") -> dict[str, Any]:
    return {"name": "revoke", "action": "kubernetes.rbac.revoke-subject", "target": target}


def drill(scenario_doc: models.Scenario, env: models.Environment) -> planning.DrillInput:
    return planning.DrillInput(
        scenario=scenario_doc,
        scenario_source="safety-probe.yaml",
        environment=env,
        environment_source="environment.yaml",
        parameters={},
    )


def plan(
    store: journal.Journal,
    scenario_doc: models.Scenario,
    env: models.Environment,
    *,
    catalog: cmdb_models.Catalog | None = None,
) -> planning.Plan:
    """Plan as `stormdrill plan` does (real registry, real opt-in lookup); touches nothing."""
    eng = engine.Engine(store=store, reg=builtin.registry_with_builtins(), catalog=catalog)
    return eng.plan(drill(scenario_doc, env))


def refusals(found: planning.Plan, rule: str) -> list[str]:
    return [v.message for v in found.refusals if v.rule == rule]
