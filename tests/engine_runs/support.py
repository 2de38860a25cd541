"""Helpers for end-to-end engine runs: bind a drill, build an engine, snapshot the world.

Snapshots read the sandbox as a person would check it after a drill: Kubernetes objects
without the server's counters (resourceVersion, generation, managedFields), and the AWS
describe-* answers (over HTTP, through boto3) without what moto regenerates on every call.
Two snapshots taken before and after a run must be equal: nothing left behind.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills import binding, settings
from drills.service import catalogs
from orchestrator import engine, journal, planning, registry, states
from sandbox import aws, stack
from sandbox.kubernetes import resources
from scenarios import library

KUBE_SNAPSHOT_TYPES: tuple[resources.ResourceType, ...] = (
    resources.NODES,
    resources.NAMESPACES,
    resources.DEPLOYMENTS,
    resources.POD_DISRUPTION_BUDGETS,
    resources.NETWORK_POLICIES,
    resources.ROLE_BINDINGS,
    resources.CLUSTER_ROLE_BINDINGS,
)
"""What a drill may change in Kubernetes (pods are replaced by controllers, so not listed)."""

SERVER_COUNTERS = ("resourceVersion", "generation", "managedFields")
MARKER_KEYS = frozenset(
    {"stormdrill.dev/run-id", "stormdrill.dev/expires-at", "stormdrill.dev/undo"}
)
"""The marker annotations (and label) a fault leaves on what it changed."""
FAST_SOAK = ("soak=1m",)
"""A one-minute soak is 1.2 s at the sandbox's time scale 0.02."""


def objects(
    world: stack.Sandbox, resource: resources.ResourceType, *, namespace: str | None = None
) -> list[dict[str, Any]]:
    """Copies of the sandbox's stored objects of `resource` (all namespaces by default)."""
    assert world.store is not None
    return [dict(obj) for obj in world.store.list(resource=resource, namespace=namespace)]


def settle(world: stack.Sandbox) -> None:
    """Wait until every deployment has all its replicas Ready (fail the test if never)."""
    if not world.wait_settled(timeout_s=30.0):
        pytest.fail("the sandbox's deployments did not settle within 30s")


def bind(
    world: stack.Sandbox,
    target: str,
    *,
    sets: Sequence[str] = (),
    env: Path | None = None,
    approvals: Sequence[str] = (),
) -> planning.DrillInput:
    """Bind a bundled scenario (or a scenario file) to the sandbox's Environment file."""
    bound = binding.bind(
        target, env=str(env or world.info.environment), sets=list(sets), approvals=approvals
    )
    return bound.drill


def make_engine(
    store: journal.Journal,
    drill: planning.DrillInput,
    *,
    reg: registry.Registry | None = None,
    config: engine.EngineConfig | None = None,
    killswitch_file: Path | None = None,
) -> engine.Engine:
    """An engine with the built-in providers and the Environment's CMDB."""
    catalog = catalogs.catalog_for(settings.Settings.from_env({}), drill.environment, ())
    return engine.Engine(
        store=store,
        reg=reg or binding.make_registry(),
        config=config,
        catalog=catalog,
        killswitch_file=killswitch_file,
    )


def bundled_scenarios() -> list[str]:
    """Every scenario in the bundled library, by name."""
    return sorted(library.names())


def _strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = copy.deepcopy(dict(obj))
    meta = cleaned.get("metadata") or {}
    for key in SERVER_COUNTERS:
        meta.pop(key, None)
    return cleaned


def kube_snapshot(world: stack.Sandbox) -> dict[str, dict[str, Any]]:
    """Every object a drill may change, keyed `plural/namespace/name`, minus server counters.

    Deployments are compared by spec and metadata only (status follows the pods).
    """
    assert world.store is not None
    found: dict[str, dict[str, Any]] = {}
    for resource in KUBE_SNAPSHOT_TYPES:
        for obj in objects(world, resource):
            cleaned = _strip(obj)
            if resource is resources.DEPLOYMENTS or resource is resources.POD_DISRUPTION_BUDGETS:
                cleaned.pop("status", None)
            meta = cleaned.get("metadata") or {}
            key = f"{resource.plural}/{meta.get('namespace', '')}/{meta.get('name')}"
            found[key] = cleaned
    return found


def kube_markers(world: stack.Sandbox) -> list[str]:
    """Objects that still carry a Stormdrill marker (annotation or label)."""
    assert world.store is not None
    left: list[str] = []
    for resource in (*KUBE_SNAPSHOT_TYPES, resources.PODS):
        for obj in objects(world, resource):
            meta = obj.get("metadata") or {}
            keys = [*(meta.get("annotations") or {}), *(meta.get("labels") or {})]
            if MARKER_KEYS.intersection(keys):
                left.append(f"{resource.plural}/{meta.get('namespace', '')}/{meta.get('name')}")
    return left


def deployments_ready(world: stack.Sandbox) -> dict[str, tuple[int, int]]:
    """`namespace/name` → (wanted replicas, ready replicas) of every deployment."""
    assert world.store is not None
    found: dict[str, tuple[int, int]] = {}
    for obj in objects(world, resources.DEPLOYMENTS):
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        found[f"{meta['namespace']}/{meta['name']}"] = (
            int(spec.get("replicas", 1)),
            int(status.get("readyReplicas", 0)),
        )
    return found


def _drop(value: Any, keys: Iterable[str]) -> Any:
    """`value` without `keys` at any depth (moto regenerates some on every describe)."""
    dropped = set(keys)
    if isinstance(value, Mapping):
        return {k: _drop(v, dropped) for k, v in value.items() if k not in dropped}
    if isinstance(value, list):
        return [_drop(v, dropped) for v in value]
    return value


def _sorted_tags(value: Any) -> Any:
    """`value` with the lists whose order AWS does not keep (tags, associations, rules) sorted."""
    if isinstance(value, Mapping):
        out = {k: _sorted_tags(v) for k, v in value.items()}
        if isinstance(out.get("Tags"), list):
            out["Tags"] = sorted(out["Tags"], key=lambda t: (t.get("Key", ""), t.get("Value", "")))
        if isinstance(out.get("Associations"), list):
            out["Associations"] = sorted(out["Associations"], key=lambda a: a.get("SubnetId", ""))
        for rules in ("IpPermissions", "IpPermissionsEgress"):
            if isinstance(out.get(rules), list):
                out[rules] = sorted(out[rules], key=lambda r: json.dumps(r, sort_keys=True))
        return out
    if isinstance(value, list):
        return [_sorted_tags(v) for v in value]
    return value


AWS_VOLATILE = (
    "ResponseMetadata",
    "LaunchTime",
    "StateTransitionReason",
    "StateReason",
    "UsageOperationUpdateTime",
    "AttachTime",
    "LatestRestorableTime",
    "ActivityId",
    "NetworkAclAssociationId",
)
"""Regenerated by AWS (or moto) on every change: a re-made ACL association gets a new id."""


def aws_snapshot(world: stack.Sandbox) -> dict[str, Any]:
    """What the AWS describe-* calls say about the shop (over HTTP to moto)."""
    info = world.info
    session = aws.session(region=info.region)

    def client(name: str) -> Any:
        return session.client(name, endpoint_url=info.aws_endpoint_url)  # type: ignore[call-overload]

    ec2, asg, rds, iam, cw = (client(n) for n in ("ec2", "autoscaling", "rds", "iam", "cloudwatch"))
    instances = [
        {
            "InstanceId": i["InstanceId"],
            "State": i["State"]["Name"],
            "Zone": i["Placement"]["AvailabilityZone"],
            "Tags": i.get("Tags", []),
        }
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    ]
    keys = {
        user: [
            (k["AccessKeyId"], k["Status"])
            for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        ]
        for user in aws.IAM_USERS
    }
    dbs = [
        {
            "id": d["DBInstanceIdentifier"],
            "status": d["DBInstanceStatus"],
            "zone": d.get("AvailabilityZone"),
            "multiAz": d.get("MultiAZ"),
            "tags": sorted((t["Key"], t["Value"]) for t in d.get("TagList", [])),
        }
        for d in rds.describe_db_instances()["DBInstances"]
    ]
    snapshot = {
        "subnets": ec2.describe_subnets()["Subnets"],
        "network_acls": ec2.describe_network_acls()["NetworkAcls"],
        "instances": sorted(instances, key=lambda i: i["InstanceId"]),
        "security_groups": ec2.describe_security_groups()["SecurityGroups"],
        "autoscaling": asg.describe_auto_scaling_groups()["AutoScalingGroups"],
        "db_instances": dbs,
        "access_keys": keys,
        "alarms": [(a["AlarmName"], a["StateValue"]) for a in cw.describe_alarms()["MetricAlarms"]],
    }
    return dict(_sorted_tags(_drop(snapshot, AWS_VOLATILE)))


@dataclasses.dataclass
class Snapshot:
    """The whole sandbox as seen before (or after) a drill."""

    kube: dict[str, dict[str, Any]]
    aws: dict[str, Any]


def snapshot(world: stack.Sandbox) -> Snapshot:
    return Snapshot(kube=kube_snapshot(world), aws=aws_snapshot(world))


def assert_same_world(before: Snapshot, after: Snapshot) -> None:
    """Nothing left behind: every Kubernetes object and every AWS description as before."""
    changed = sorted(
        key
        for key in before.kube.keys() | after.kube.keys()
        if before.kube.get(key) != after.kube.get(key)
    )
    assert changed == [], f"Kubernetes objects differ after the drill: {changed}"
    for part in before.aws:
        assert before.aws[part] == after.aws[part], f"AWS {part} differ after the drill"


def wait_for(
    check: Callable[[], bool], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Poll `check` until it holds; fail the test naming `what` if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    pytest.fail(f"{what} did not hold within {timeout_s:.0f}s")


def step_started(store: journal.Journal, step: str) -> Callable[[], bool]:
    """Whether some run in `store` has started `step` (for threads that act mid-run)."""

    def check() -> bool:
        for run in store.list_runs(limit=5):
            for event in store.events(run.id, kind="step"):
                if event.data.get("step") == step and "started" in event.message:
                    return True
        return False

    return check


def in_background(action: Callable[[], None]) -> threading.Thread:
    """Run `action` on a daemon thread (started); join it after the run."""
    thread = threading.Thread(target=action, daemon=True, name="test-side-action")
    thread.start()
    return thread


def revert_order_per_target(store: journal.Journal, run_id: states.RunId) -> dict[str, list[int]]:
    """For each target, the journal seqs in the order their reverts started."""
    by_seq = {entry.seq: str(entry.target) for entry in store.entries(run_id)}
    order: dict[str, list[int]] = {}
    for event in store.events(run_id, kind="revert"):
        seq = event.data.get("seq")
        assert isinstance(seq, int)
        order.setdefault(by_seq[seq], []).append(seq)
    return order


def entry_histories(store: journal.Journal, run_id: states.RunId) -> dict[int, list[str]]:
    """For each journal seq, the states its `mutation` events went through, in order."""
    histories: dict[int, list[str]] = {}
    for event in store.events(run_id, kind="mutation"):
        seq, state = event.data.get("seq"), event.data.get("state")
        if isinstance(seq, int) and isinstance(state, str):
            histories.setdefault(seq, []).append(state)
    return histories


def write_yaml(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False), encoding="utf-8")
    return path


def environment_variant(
    world: stack.Sandbox, path: Path, change: Callable[[dict[str, Any]], None]
) -> Path:
    """A copy of the sandbox's Environment file changed by `change` (kubeconfig made absolute)."""
    document: dict[str, Any] = yaml.safe_load(world.info.environment.read_text(encoding="utf-8"))
    document["spec"]["kubernetes"]["kubeconfig"] = str(world.info.kubeconfig)
    change(document)
    return write_yaml(path, document)


def scenario_variant(name: str, path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of bundled scenario `name` changed by `change`, written to `path`."""
    source = library.folder() / f"{name}.yaml"
    document: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    change(document)
    return write_yaml(path, document)


def pin_checkout(world: stack.Sandbox, *, zone: str) -> None:
    """Put every checkout replica in `zone` (the misconfiguration the demo's drill catches)."""
    assert world.store is not None
    selector = {"topology.kubernetes.io/zone": zone}
    world.store.patch(
        resource=resources.DEPLOYMENTS,
        namespace="shop",
        name="checkout",
        patch={"spec": {"template": {"spec": {"nodeSelector": selector}}}},
    )
    settle(world)
    wait_for(
        lambda: set(pod_zones(world, "checkout")) == {zone},
        what=f"every checkout pod running in {zone}",
    )


def pod_zones(world: stack.Sandbox, app: str) -> list[str]:
    """The zone of every Ready-or-not pod of `app` in `shop` (by its node's zone label)."""
    assert world.store is not None
    zones = {
        node["metadata"]["name"]: node["metadata"]["labels"]["topology.kubernetes.io/zone"]
        for node in objects(world, resources.NODES)
    }
    found: list[str] = []
    for pod in objects(world, resources.PODS, namespace="shop"):
        labels = pod["metadata"].get("labels") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        if labels.get("app.kubernetes.io/name") == app and node in zones:
            found.append(zones[node])
    return sorted(found)


def node_taints(world: stack.Sandbox) -> dict[str, list[Any]]:
    """Each node's taints (empty lists included)."""
    assert world.store is not None
    return {
        node["metadata"]["name"]: list((node.get("spec") or {}).get("taints") or [])
        for node in objects(world, resources.NODES)
    }


def cli_env(db_url: str) -> dict[str, str]:
    """Environment for an in-process CLI call: the tmp journal, and data/reports beside it."""
    data_dir = Path(db_url.removeprefix("sqlite:///")).parent
    return {
        "STORMDRILL_DATABASE_URL": db_url,
        "STORMDRILL_DATA_DIR": str(data_dir),
        "STORMDRILL_REPORTS_DIR": str(data_dir / "reports"),
        "COLUMNS": "200",
    }
