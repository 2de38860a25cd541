"""Harness: the test side of the crash-safety suite — driver client, kill points, world snapshots.

- `Driver` talks to `python -m tests.crash_safety.driver serve` (one per test): `drill(...)`
  forks a drill child and reports how it ended; `cli(...)` runs `stormdrill ARGS` in a fork.
- `RequestKiller` is the sandbox's `FaultConfig.on_request` hook: it SIGKILLs the drill child
  when the Nth mutating Kubernetes request arrives (then lets it through, or drops it).
- `choose_points` draws kill points with a seeded `random.Random` over (kind, N), N bounded by
  what a calibration run counted.
- `kube_world` / `aws_world` are the comparable pre/post-drill states; `diff` names what differs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import boto3

from orchestrator import journal, states
from sandbox import stack
from sandbox.kubernetes import resources

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED_ENV = "STORMDRILL_CRASH_SEED"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REQUEST_KINDS = ("request", "request-drop")


@dataclasses.dataclass(frozen=True)
class Ended:
    """How a forked child ended: killed by `signal`, or exited with `code`."""

    pid: int
    signal: int | None
    code: int | None
    log: pathlib.Path

    @property
    def killed(self) -> bool:
        return self.signal == signal.SIGKILL

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


class Driver:
    """One `driver serve` process; requests are served one at a time."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.workdir = workdir
        self._n = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_safety.driver", "serve"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        ready = self._read()
        assert ready.get("event") == "ready", ready

    def _write(self, message: Mapping[str, object]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the crash-safety driver exited ({self.proc.poll()})")
        found: dict[str, Any] = json.loads(line)
        return found

    def _log(self, what: str) -> pathlib.Path:
        self._n += 1
        return self.workdir / f"{self._n:03d}-{what}.log"

    def drill(
        self,
        *,
        scenario: pathlib.Path,
        env: pathlib.Path,
        db: str,
        kill: str | None,
        counts: pathlib.Path | None = None,
        on_start: Callable[[int], None] = lambda _pid: None,
    ) -> Ended:
        log = self._log("drill")
        self._write(
            {
                "op": "drill",
                "scenario": str(scenario),
                "env": str(env),
                "db": db,
                "kill": kill,
                "counts": str(counts) if counts else None,
                "log": str(log),
            }
        )
        started = self._read()
        pid = int(started["pid"])
        on_start(pid)
        self._write({"op": "go"})
        ended = self._read()
        return Ended(pid=pid, signal=ended["signal"], code=ended["code"], log=log)

    def cli(self, args: Sequence[str], *, db: str) -> Ended:
        """`python -m drills.cli ARGS` (forked from the pre-imported driver) against `db`."""
        log = self._log("cli")
        self._write(
            {
                "op": "cli",
                "args": list(args),
                "environ": {"STORMDRILL_DATABASE_URL": db},
                "log": str(log),
            }
        )
        ended = self._read()
        return Ended(pid=int(ended["pid"]), signal=ended["signal"], code=ended["code"], log=log)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cli_subprocess(args: Sequence[str], *, db: str) -> subprocess.CompletedProcess[str]:
    """`python -m drills.cli ARGS` as a brand-new interpreter (no fork), against `db`."""
    environ = {**os.environ, "STORMDRILL_DATABASE_URL": db}
    return subprocess.run(
        [sys.executable, "-m", "drills.cli", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


class RequestKiller:
    """`FaultConfig.on_request`: SIGKILL `pid` when the `n`th mutating request arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pid: int | None = None
        self.n = 0
        self.drop = False
        self.count = 0

    def arm(self, pid: int, *, n: int, drop: bool) -> None:
        with self._lock:
            self.pid, self.n, self.drop, self.count = pid, n, drop, 0

    def disarm(self) -> int:
        with self._lock:
            self.pid = None
            return self.count

    def __call__(self, method: str, _path: str) -> bool:
        if method not in MUTATING:
            return False
        with self._lock:
            if self.pid is None:
                return False
            self.count += 1
            if self.count != self.n:
                return False
            pid, drop = self.pid, self.drop
        os.kill(pid, signal.SIGKILL)
        return drop


def seed_from_env() -> int:
    raw = os.environ.get(SEED_ENV)
    return int(raw) if raw else random.SystemRandom().randrange(1, 2**31)


def choose_points(
    rng: random.Random,
    counts: Mapping[str, int],
    *,
    how_many: int,
    groups: Sequence[Sequence[str]],
) -> list[str]:
    """`how_many` kill points `kind:N` (1 <= N <= counted).

    A group (e.g. every `state:*` kind) is drawn as one: first each group once, then groups
    at random; within a group the kind is random, then N is random up to what was counted.
    """
    usable = [[k for k in group if counts.get(k, 0) > 0] for group in groups]
    usable = [group for group in usable if group]
    assert usable, f"calibration counted none of {groups}: {dict(counts)}"
    chosen: list[str] = []
    for i in range(how_many):
        group = usable[i] if i < len(usable) else rng.choice(usable)
        kind = rng.choice(group)
        chosen.append(f"{kind}:{rng.randint(1, counts[kind])}")
    rng.shuffle(chosen)
    return chosen


# ----- the store ---------------------------------------------------------------------------


def store_problems(db: str) -> list[str]:
    """What recovery should have left settled: unfinished runs, failed rollbacks, held locks."""
    problems: list[str] = []
    with journal.open_store(db) as store:
        for run in store.list_runs(limit=None):
            if run.state in states.IN_FLIGHT or run.state is states.RunState.ROLLBACK_FAILED:
                problems.append(f"run {run.id} is {run.state.value}: {run.reason}")
            held = store.held_targets(run.id)
            if held:
                problems.append(f"run {run.id} ({run.state.value}) still holds locks {held}")
    return problems


# ----- world snapshots -------------------------------------------------------------------


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if not (k.endswith(("Time", "Timestamp")) or k in ("observedGeneration", "startedAt"))
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _object(obj: Mapping[str, Any], *, status: Callable[[Any], Any] = _strip) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in dict(obj.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields", "generation")
    }
    found: dict[str, Any] = {**dict(obj), "metadata": meta}
    if "status" in found:
        found["status"] = status(found["status"])
    return found


def _replicas(status: Any) -> Any:
    wanted = ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas")
    return {k: status.get(k) for k in wanted} if isinstance(status, dict) else status


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def kube_world(world: stack.Sandbox, *, settle: bool = True) -> dict[str, Any]:
    """Nodes, deployments (ready replicas after settling), NetworkPolicies and bindings."""
    cluster = world.store
    assert cluster is not None
    if settle:
        world.wait_settled(timeout_s=30)
    return {
        "nodes": {_key(o): _object(o) for o in cluster.list(resource=resources.NODES)},
        "deployments": {
            _key(o): _object(o, status=_replicas)
            for o in cluster.list(resource=resources.DEPLOYMENTS)
        },
        "networkpolicies": {
            _key(o): _object(o) for o in cluster.list(resource=resources.NETWORK_POLICIES)
        },
        "rolebindings": {
            _key(o): _object(o) for o in cluster.list(resource=resources.ROLE_BINDINGS)
        },
        "clusterrolebindings": {
            _key(o): _object(o) for o in cluster.list(resource=resources.CLUSTER_ROLE_BINDINGS)
        },
    }


@functools.cache
def _aws_clients(endpoint_url: str, region: str) -> tuple[Any, Any, Any]:
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=region,
    )
    return (
        session.client("ec2", endpoint_url=endpoint_url),
        session.client("autoscaling", endpoint_url=endpoint_url),
        session.client("iam", endpoint_url=endpoint_url),
    )


def aws_clients(world: stack.Sandbox) -> tuple[Any, Any, Any]:
    """EC2, Auto Scaling and IAM clients on the sandbox's moto (made once per endpoint)."""
    return _aws_clients(world.info.aws_endpoint_url, world.info.region)


def _tags(raw: Any) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in raw or []}


def aws_world(world: stack.Sandbox) -> dict[str, Any]:
    """The describe-* state of everything the AWS drill touches (ids, never association ids)."""
    ec2, asg, iam = aws_clients(world)
    acls = {}
    associations = {}
    for acl in ec2.describe_network_acls()["NetworkAcls"]:
        acls[acl["NetworkAclId"]] = {
            "default": acl.get("IsDefault"),
            "entries": sorted(json.dumps(e, sort_keys=True) for e in acl.get("Entries", [])),
            "tags": _tags(acl.get("Tags")),
        }
        for assoc in acl.get("Associations", []):
            associations[assoc["SubnetId"]] = acl["NetworkAclId"]
    instances = {
        i["InstanceId"]: {"state": i["State"]["Name"], "tags": _tags(i.get("Tags"))}
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    groups = {
        g["AutoScalingGroupName"]: {
            "subnets": sorted(s for s in g.get("VPCZoneIdentifier", "").split(",") if s),
            "zones": sorted(g.get("AvailabilityZones", [])),
            "suspended": sorted(p["ProcessName"] for p in g.get("SuspendedProcesses", [])),
            "size": [g["MinSize"], g["MaxSize"], g["DesiredCapacity"]],
            "tags": {t["Key"]: t.get("Value", "") for t in g.get("Tags", [])},
        }
        for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]
    }
    security_groups = {
        g["GroupId"]: {
            "egress": sorted(json.dumps(p, sort_keys=True) for p in g["IpPermissionsEgress"]),
            "ingress": sorted(json.dumps(p, sort_keys=True) for p in g["IpPermissions"]),
            "tags": _tags(g.get("Tags")),
        }
        for g in ec2.describe_security_groups()["SecurityGroups"]
    }
    users = {}
    for user in iam.list_users()["Users"]:
        name = user["UserName"]
        users[name] = {
            "keys": sorted(
                (k["AccessKeyId"], k["Status"])
                for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
            ),
            "policies": sorted(iam.list_user_policies(UserName=name)["PolicyNames"]),
            "tags": _tags(iam.list_user_tags(UserName=name)["Tags"]),
        }
    return {
        "acls": acls,
        "associations": associations,
        "instances": instances,
        "groups": groups,
        "security_groups": security_groups,
        "users": users,
    }


def diff(before: Any, after: Any, path: str = "") -> Iterator[str]:
    """Every place where `after` differs from `before`, as readable lines."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                yield f"{where}: gone (was {json.dumps(before[key], default=str)[:300]})"
            elif key not in before:
                yield f"{where}: new {json.dumps(after[key], default=str)[:300]}"
            else:
                yield from diff(before[key], after[key], where)
    elif before != after:
        yield (
            f"{path}: {json.dumps(before, default=str)[:300]} -> "
            f"{json.dumps(after, default=str)[:300]}"
        )
