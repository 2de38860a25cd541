"""Harness: the test side of the crash-safety suite — driver client, kill points, world snapshots.

- `Driver` talks to `python -m tests.crash_safety.driver serve` (one per test): `drill(...)`
  forks a drill child and reports how it ended; `cli(...)` runs `stormdrill ARGS` in a fork.
- `RequestKiller` is the sandbox's `FaultConfig.on_request` hook: it SIGKILLs the drill child
  when the Nth mutating Kubernetes request arrives (then lets it through, or drops it).
- `choose_points` draws kill points with a seeded `random.Random` over (kind, N), N bounded by
  what a calibration run counted.
- `kube_world` / `aws_world` are the comparable pre/post-drill states; `diff` names what differs.
- `kill_problems` checks that a kill landed where it was meant to: the kill record (written by
  the driver child, or by `RequestKiller`) names the point, and the store after the death holds
  exactly the journal position the process had reached: the write that triggered the kill is
  durable with its state, and nothing was journaled after it.
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
AWS_KINDS = ("aws-before", "aws-after")


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
        record: pathlib.Path | None = None,
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
                "record": str(record) if record else None,
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
    """`FaultConfig.on_request`: SIGKILL `pid` when the `n`th mutating request arrives.

    Before the kill it notes the request and the journal position the drill had reached
    (read from `db`, the drill's store) in `record`, the kill record of the case.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pid: int | None = None
        self.n = 0
        self.drop = False
        self.count = 0
        self.db: str | None = None
        self.record: dict[str, Any] | None = None

    def arm(self, pid: int, *, n: int, drop: bool, db: str | None = None) -> None:
        with self._lock:
            self.pid, self.n, self.drop, self.count = pid, n, drop, 0
            self.db, self.record = db, None

    def disarm(self) -> int:
        with self._lock:
            self.pid = None
            return self.count

    def __call__(self, method: str, path: str) -> bool:
        if method not in MUTATING:
            return False
        with self._lock:
            if self.pid is None:
                return False
            self.count += 1
            if self.count != self.n:
                return False
            pid, drop, db, n = self.pid, self.drop, self.db, self.n
        found: dict[str, Any] = {
            "reason": f"{method} {path} (mutating request #{n}{', dropped' if drop else ''})",
            "wrote": {"kind": "request-drop" if drop else "request", "method": method},
            "position": position_of(db) if db is not None else None,
        }
        os.kill(pid, signal.SIGKILL)
        with self._lock:
            self.record = found
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


def position_of(db: str, run_id: str | None = None) -> dict[str, Any]:
    """The journal position of run `run_id` (default: the newest run) as the driver records it."""
    with journal.open_store(db) as store:
        runs = (
            [store.get_run(states.RunId(run_id))]
            if run_id is not None
            else store.list_runs(limit=1)
        )
        if not runs:
            return {"run": None, "run_state": None, "entries": {}, "last_event": 0}
        run = runs[0]
        events = store.events(run.id)
        return {
            "run": str(run.id),
            "run_state": run.state.value,
            "entries": {str(e.seq): e.state.value for e in store.entries(run.id)},
            "last_event": max((e.seq for e in events), default=0),
        }


_SETTLED_BY_ROLLBACK = frozenset({"reverted", "revert_failed"})


def read_record(path: pathlib.Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return found


def kill_problems(db: str, point: str, found: Mapping[str, Any] | None) -> list[str]:
    """Why the kill at `point` did not land where it was meant to (empty: it did).

    `found` is the case's kill record. Checked against the store after the death: the
    record names `point`; the write that triggered the kill is durable with its state; the
    run's state and its entry count are what the process had reached (nothing journaled
    after the kill); each entry is in the state the process last saw, or, in a rollback
    (whose reverts run concurrently), already reverted.
    """
    kind = point.rpartition(":")[0]
    if found is None:
        return [f"{point}: the drill died but left no kill record: it was not killed at its point"]
    problems: list[str] = []
    if kind not in REQUEST_KINDS and found.get("point") != point:
        problems.append(f"{point}: the kill record names {found.get('point')!r}")
    wrote = dict(found.get("wrote") or {})
    if wrote.get("kind") != kind:
        problems.append(f"{point}: killed by {wrote.get('kind')!r}, not {kind!r}")
    seen = found.get("position")
    if not isinstance(seen, Mapping) or seen.get("run") is None:
        return [*problems, f"{point}: the kill record has no journal position: {found}"]
    now = position_of(db, str(seen["run"]))
    if now["run_state"] != seen["run_state"]:
        problems.append(
            f"{point}: the run is {now['run_state']} after the kill, {seen['run_state']} at it"
        )
    if len(now["entries"]) != len(seen["entries"]):
        problems.append(
            f"{point}: {len(now['entries'])} journal entries after the kill, "
            f"{len(seen['entries'])} at it: {now['entries']} vs {seen['entries']}"
        )
    for seq, state in dict(seen["entries"]).items():
        after = now["entries"].get(seq)
        moved_by_rollback = seen["run_state"] == "rolling_back" and after in _SETTLED_BY_ROLLBACK
        if after != state and not moved_by_rollback:
            problems.append(f"{point}: entry #{seq} was {state} at the kill, {after} after it")
    if now["last_event"] < seen["last_event"]:
        problems.append(
            f"{point}: event #{seen['last_event']} was written before the kill but is not durable"
        )
    if kind in ("intent", "applied", "reverted"):
        durable = now["entries"].get(str(wrote.get("seq")))
        if durable != wrote.get("state"):
            problems.append(f"{point}: the {kind} write #{wrote.get('seq')} is {durable} after it")
    elif kind == "event" and now["last_event"] < int(wrote.get("seq") or 0):
        problems.append(f"{point}: event #{wrote.get('seq')} is not durable")
    elif kind.startswith("state:") and now["run_state"] != kind.partition(":")[2]:
        problems.append(f"{point}: the run is {now['run_state']}, not {kind.partition(':')[2]}")
    elif kind in AWS_KINDS and not str(wrote.get("operation") or ""):
        problems.append(f"{point}: no AWS operation in the kill record")
    elif kind in REQUEST_KINDS:
        if wrote.get("method") not in MUTATING:
            problems.append(f"{point}: killed on a {wrote.get('method')} request")
        if seen["run_state"] not in ("injecting", "rolling_back") or not seen["entries"]:
            problems.append(
                f"{point}: a mutating request came with the run {seen['run_state']} and "
                f"{len(seen['entries'])} journal entries: no durable intent before it"
            )
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
        assert world.wait_settled(timeout_s=30), (
            "the sandbox's deployments did not settle within 30s: "
            + ", ".join(
                f"{_key(d)} {_replicas(d.get('status'))}"
                for d in cluster.list(resource=resources.DEPLOYMENTS)
            )
        )
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
