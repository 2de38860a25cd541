"""Plan world: a deterministic sandbox cluster, the scenarios planned over it, plans as JSON.

The golden file `data/plans-before.json` holds the plans the listing code made before plans
paginated and kept slim pod facts (regenerate it only on purpose:
`.venv/bin/python -m tests.providers_kubernetes.plan_world`). `test_plan_equivalence` plans
the same scenarios on the same world with today's code and compares.

The world is the shop (`seed.seed_shop`, store seeded so generated names repeat) plus 24
`big-*` nodes (so a zone has more than `listing.FEW_NODES` nodes and plans list in bulk),
owned pods in `batch`, bare pods in `tools`, a finished and a mirror pod, and a pod in
`legacy`, which has not opted in to drills. No controller runs: nothing changes under a plan.
uids (random per run) are replaced by the kind, namespace and name of their object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import ipaddress
import json
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pydantic
import yaml

from drills import binding, settings
from drills.service import catalogs
from orchestrator import engine, journal, planning
from sandbox import stack
from sandbox.kubernetes import resources, seed, server
from sandbox.kubernetes import store as store_module

SEED = 20261202
GOLDEN = pathlib.Path(__file__).parent / "data" / "plans-before.json"
BIG_NODES = 30
REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[2])
"""Paths in plans (the CMDB's file) are written relative to it: `<repo>/sandbox/…`."""
OPTED_IN = {seed.ALLOW_DRILLS_LABEL: "true"}


@dataclasses.dataclass(frozen=True)
class Planned:
    """One scenario of the world: what `bind` takes."""

    name: str
    target: str
    sets: tuple[str, ...] = ()


def _pod(name: str, namespace: str, *, node: str, phase: str, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}, **meta},
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}], "nodeName": node},
        "status": {"phase": phase},
    }


def build_store() -> store_module.ClusterStore:
    """The world (see the module docstring); the same objects and names on every call."""
    cluster = store_module.ClusterStore(seed=SEED)
    seed.seed_shop(cluster)
    for i in range(BIG_NODES):
        zone = seed.ZONES[i % len(seed.ZONES)]
        name = f"big-{zone}-{i // len(seed.ZONES) + 1}"
        cluster.create(
            resource=resources.NODES, obj=seed.node_object(name, zone=zone, index=100 + i)
        )
    for namespace in ("batch", "tools"):
        seed.ensure_namespace(cluster, namespace, labels=OPTED_IN)
    seed.ensure_namespace(cluster, "legacy")
    seed.seed_pods(
        cluster,
        namespace="batch",
        count=90,
        labels={"app": "batch", "tier": "worker"},
        name_prefix="batch",
        owned=True,
    )
    seed.seed_pods(cluster, namespace="tools", count=4, labels={"app": "tool"}, name_prefix="tool")
    node = "big-us-east-1a-1"
    for pod in (
        _pod("done", "batch", node=node, phase="Succeeded"),
        _pod("failed", "batch", node="big-us-east-1b-1", phase="Failed"),
        _pod(
            "static-web",
            "tools",
            node=node,
            phase="Running",
            annotations={"kubernetes.io/config.mirror": "mirror"},
        ),
        _pod("old-app", "legacy", node="big-us-east-1c-1", phase="Running"),
    ):
        cluster.create(resource=resources.PODS, obj=pod)
    return cluster


def _environment(kubeconfig: pathlib.Path) -> dict[str, Any]:
    return {
        "apiVersion": "stormdrill.dev/v1",
        "kind": "Environment",
        "metadata": {"name": stack.ENVIRONMENT_NAME},
        "spec": {
            "protected": False,
            "timeScale": stack.TIME_SCALE,
            "kubernetes": {
                "kubeconfig": str(kubeconfig),
                "requireNamespaceOptIn": True,
                "allowClusterScope": True,
            },
            "cmdb": {"backstage": [str(stack.catalog_path().parent)]},
            "orchestrator": {
                "namespace": stack.ORCHESTRATOR_NAMESPACE,
                "podName": stack.ORCHESTRATOR_POD,
                "nodeName": stack.ORCHESTRATOR_NODE,
            },
            "parameters": {
                "webHealthUrl": "http://127.0.0.1:9/web",
                "checkoutHealthUrl": "http://127.0.0.1:9/checkout",
            },
        },
    }


def _scenario(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "stormdrill.dev/v1",
        "kind": "Scenario",
        "metadata": {"name": name},
        "spec": {
            "description": f"{name} over the plan world.",
            "failureMode": "availability-zone",
            "hypothesis": "The world survives.",
            "guardrails": {"environments": [stack.ENVIRONMENT_NAME], "maxDuration": "30m"},
            **spec,
        },
    }


def _zone_nodes(zone: str, **selector: Any) -> dict[str, Any]:
    return {
        "provider": "kubernetes",
        "kind": "node",
        "selector": {"labels": {"topology.kubernetes.io/zone": zone}, **selector},
        "blastRadius": {"max": "100%"},
    }


def _custom_scenarios() -> dict[str, dict[str, Any]]:
    drain = {"name": "drain", "action": "kubernetes.nodes.drain", "target": "nodes"}
    return {
        "drain-zone-a-unowned": _scenario(
            "drain-zone-a-unowned",
            {
                "targets": {"nodes": _zone_nodes("us-east-1a")},
                "steps": [{**drain, "with": {"deleteUnownedPods": True, "timeout": "1m"}}],
            },
        ),
        "drain-zone-b-keep-daemonsets": _scenario(
            "drain-zone-b-keep-daemonsets",
            {
                "targets": {"nodes": _zone_nodes("us-east-1b")},
                "steps": [{**drain, "with": {"ignoreDaemonSets": True}}],
            },
        ),
        "drain-zone-c-named": _scenario(
            "drain-zone-c-named",
            {
                "targets": {
                    "nodes": _zone_nodes(
                        "us-east-1c",
                        names=["big-us-east-1c-1", "big-us-east-1c-2", "node-us-east-1c-2"],
                    )
                },
                "steps": [drain],
            },
        ),
        "cordon-by-field": _scenario(
            "cordon-by-field",
            {
                "targets": {
                    "nodes": {
                        "provider": "kubernetes",
                        "kind": "node",
                        "selector": {"fields": {"metadata.name": "big-us-east-1b-3"}},
                    }
                },
                "steps": [
                    {"name": "cordon", "action": "kubernetes.nodes.cordon", "target": "nodes"}
                ],
            },
        ),
        "delete-batch-pods": _scenario(
            "delete-batch-pods",
            {
                "targets": {
                    "workers": {
                        "provider": "kubernetes",
                        "kind": "pod",
                        "namespace": "batch",
                        "selector": {"labels": {"tier": "worker"}},
                        "blastRadius": {"max": "100%"},
                    },
                    "tools": {
                        "provider": "kubernetes",
                        "kind": "pod",
                        "namespace": "tools",
                        "selector": {"labels": {"app": "tool"}},
                        "blastRadius": {"max": "100%"},
                    },
                },
                "steps": [
                    {
                        "name": "delete",
                        "action": "kubernetes.pods.delete",
                        "target": "workers",
                        "with": {"count": 7},
                        "rollback": "none",
                        "irreversible": "a ReplicaSet recreates them",
                    },
                    {
                        "name": "delete-tools",
                        "action": "kubernetes.pods.delete",
                        "target": "tools",
                        "with": {"count": 1},
                        "rollback": "none",
                        "irreversible": "tools are disposable",
                    },
                ],
            },
        ),
    }


def scenarios(directory: pathlib.Path) -> list[Planned]:
    """Bundled scenarios (with parameters that reach the bulk path) and the custom ones."""
    found = [
        Planned("az-failure-kubernetes", "az-failure-kubernetes"),
        Planned(
            "az-failure-kubernetes-1b-all",
            "az-failure-kubernetes",
            ("zone=us-east-1b", "maxNodes=100"),
        ),
        Planned(
            "az-failure-kubernetes-1c-all",
            "az-failure-kubernetes",
            ("zone=us-east-1c", "maxNodes=100"),
        ),
        Planned("az-power-loss-kubernetes", "az-power-loss-kubernetes"),
        Planned("dependency-outage", "dependency-outage"),
    ]
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in _custom_scenarios().items():
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        found.append(Planned(name, str(path)))
    return found


@contextlib.contextmanager
def world(directory: pathlib.Path) -> Iterator[tuple[server.KubeApiServer, pathlib.Path]]:
    """The world served on loopback; (the server, an Environment file reaching it)."""
    directory.mkdir(parents=True, exist_ok=True)
    api = server.KubeApiServer(store=build_store())
    api.start()
    try:
        kubeconfig = api.write_kubeconfig(directory / "kubeconfig")
        env = directory / "environment.yaml"
        env.write_text(yaml.safe_dump(_environment(kubeconfig), sort_keys=False))
        yield api, env
    finally:
        api.stop()


def _uids(api: server.KubeApiServer) -> dict[str, str]:
    found: dict[str, str] = {}
    for resource in api.store.registry.all():
        for obj in api.store.list(resource=resource):
            meta: Any = obj.get("metadata") or {}
            if meta.get("uid"):
                where = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if p)
                found[str(meta["uid"])] = f"<uid {resource.kind} {where}>"
    return found


def _plain(value: Any, uids: Mapping[str, str]) -> Any:
    """JSON of `value` (dataclasses, enums, mappings, sets), uids replaced."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name), uids)
            for f in dataclasses.fields(value)
            if f.name != "drill"
        }
    if isinstance(value, enum.Enum):
        return _plain(value.value, uids)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, uids) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_plain(v, uids) for v in value)
    if isinstance(value, tuple | list):
        return [_plain(v, uids) for v in value]
    if isinstance(value, str):
        return uids.get(value, value).replace(REPO_ROOT, "<repo>")
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, pydantic.BaseModel):
        return _plain(value.model_dump(mode="json"), uids)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    raise TypeError(f"plan_world: no JSON form for {type(value).__name__}")


def canonical(plan: planning.Plan, uids: Mapping[str, str]) -> dict[str, Any]:
    """The plan's content: selections, steps with their mutations, impact, verdicts."""
    return {
        "selections": _plain(dict(plan.selections), uids),
        "steps": [
            {
                "index": step.index,
                "step": step.step.name,
                "selection": step.selection,
                "mutations": _plain(step.mutations, uids),
            }
            for step in plan.steps
        ],
        "impact": _plain(plan.impact, uids),
        "verdicts": _plain(plan.verdicts, uids),
        "refused": plan.refused,
    }


def plan_all(
    directory: pathlib.Path, *, only: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every scenario of the world planned with the code as it is now, as canonical JSON."""
    plans: dict[str, dict[str, Any]] = {}
    with world(directory) as (api, env):
        uids = _uids(api)
        store = journal.open_store(f"sqlite:///{directory / 'journal.db'}")
        try:
            for item in scenarios(directory / "scenarios"):
                if only is not None and item.name not in only:
                    continue
                drill = binding.bind(item.target, env=str(env), sets=list(item.sets)).drill
                catalog = catalogs.catalog_for(
                    settings.Settings.from_env({}), drill.environment, ()
                )
                eng = engine.Engine(store=store, reg=binding.make_registry(), catalog=catalog)
                plans[item.name] = canonical(eng.plan(drill), uids)
        finally:
            store.close()
    return plans


def main() -> None:
    """Regenerate the golden file (only to record a deliberate change of plans)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        plans = plan_all(pathlib.Path(tmp))
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(plans, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
