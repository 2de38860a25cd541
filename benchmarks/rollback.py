"""Rollback benchmark: rollback wall time against the physical limit, abort latency, a peer.

Run it as `.venv/bin/python -m benchmarks.rollback` (every row, about 20 minutes with the
peer), `--quick` (N=100 at c=1 and 16, 5 abort trials) or one row:
`--n 1000 --concurrency 16 [--repeats 3] [--results DIR]`. It prints a table and writes
`benchmarks/results/rollback-<date>.json` and `rollback-latest.json`.

What it measures (benchmarks/README.md says how to read the figures):
- Rollback rows (N x c): the Kubernetes sandbox API server runs in its own process
  (`sandbox.kubernetes.standalone`, seeded there with the nodes). For each repetition N nodes
  are cordoned for real through the Kubernetes provider's cordon action, journalled in a
  SQLite journal as the engine does (intent, apply, applied), with no latency; then the
  server's latency is set to 20 ms and `rollback.revert_run` undoes the run at concurrency c.
  The API requests are counted by the server and read back from its control endpoint. A
  repetition counts only if every revert succeeded, every node is schedulable again with no
  drill marker (read through the API) and the journal has nothing left to undo.
- The journal floor: the same `revert_run` over N journalled no-op mutations (no API calls).
- Chaos Toolkit (when `benchmarks/peers/.venv` exists): the same N and latency through
  `benchmarks.peers.chaostoolkit`, timed from its own journal.
- Abort latency: the real engine (`Engine.run`) on a one-node cordon scenario whose `http`
  probe (interval 1 s, tolerance 0, in abortWhen) starts failing at a known instant; the
  latency runs to the server applying the uncordon (its store's change time, CLOCK_MONOTONIC).

Invariants: a figure is never reported for a wrong result (each phase checks its outcome and
raises `BenchmarkFailed`); everything listens on 127.0.0.1 with ephemeral ports; all state
lives in a temporary directory; the sandbox process ends with the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.server
import json
import logging
import math
import os
import pathlib
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pydantic
import yaml

from benchmarks.peers import chaostoolkit
from drills import binding
from orchestrator import (
    context,
    engine,
    journal,
    mutations,
    planning,
    registry,
    rollback,
    states,
)
from orchestrator.providers.kubernetes import acting, markers
from orchestrator.providers.kubernetes import nodes as kube_nodes
from sandbox.kubernetes import standalone
from scenarios import errors as scenario_errors
from scenarios import loading, models

log = logging.getLogger(__name__)

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
ENVIRONMENT_NAME = "bench"
ABORT_NODE = "node-us-east-1a-1"
SETUP_WORKERS = 16
"""Threads cordoning the nodes before each repetition (untimed set-up)."""
BASELINE_CONCURRENCY = 1
HEADLINE_CONCURRENCY = 16


class BenchmarkFailed(scenario_errors.StormdrillError):
    """A benchmark phase produced a wrong result, so its timing means nothing."""


# ---- configuration and figures ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """What to measure. The defaults are the issue's rows; `quick()` is the smoke run."""

    sizes: tuple[int, ...] = (100, 1000, 3000)
    concurrencies: tuple[int, ...] = (1, 16, 64)
    repeats: int = 3
    latency_s: float = 0.02
    node_count: int = 0
    """Nodes seeded in the sandbox; 0 means the largest N."""
    abort_trials: int = 20
    probe_interval_s: float = 1.0
    peer: bool = True
    """Measure Chaos Toolkit for each N when its side venv exists."""
    peer_venv: pathlib.Path = chaostoolkit.VENV
    journal_floor: bool = True
    seed: int = 20250101

    @classmethod
    def quick(cls) -> Config:
        return cls(sizes=(100,), concurrencies=(1, 16), abort_trials=5)

    @property
    def nodes(self) -> int:
        return self.node_count or max(self.sizes, default=0)


Load = tuple[float, float, float]


def load_now() -> Load:
    """`os.getloadavg()`: the 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return (one, five, fifteen)


@dataclasses.dataclass(frozen=True)
class RollbackRun:
    """Repetitions of one row: N cordons rolled back at concurrency c."""

    n: int
    concurrency: int
    walls_s: tuple[float, ...]
    """`revert_run`'s wall time of each repetition."""
    client_cpu_s: tuple[float, ...]
    """CPU seconds this (the rolling-back) process used during each repetition."""
    server_cpu_s: tuple[float, ...]
    """CPU seconds the sandbox API server process used during each repetition."""
    api_calls: int
    """Requests the server received during the slowest-calling repetition."""
    api_calls_per_revert: float
    limit_stated_s: float
    """The physical limit: ceil(N / c) x latency, one API request per revert."""
    limit_per_call_s: float
    """ceil(N / c) x calls per revert x latency: the limit of the calls actually made."""
    journal_floor_s: float | None
    """The same revert_run over N no-op mutations: the journal writes alone (None: skipped)."""
    load_start: Load
    load_end: Load

    @property
    def wall_s(self) -> float:
        """The row's figure: the median of the repetitions."""
        return statistics.median(self.walls_s)

    @property
    def wall_min_s(self) -> float:
        return min(self.walls_s)

    @property
    def limit_s(self) -> float:
        return self.limit_stated_s

    @property
    def ratio_to_limit(self) -> float:
        """Median wall time over the physical limit (1.0 would be the limit itself)."""
        return self.wall_s / self.limit_stated_s

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "concurrency": self.concurrency,
            "wall_s": self.wall_s,
            "wall_min_s": self.wall_min_s,
            "wall_median_s": self.wall_s,
            "walls_s": list(self.walls_s),
            "repeats": len(self.walls_s),
            "client_cpu_s": statistics.median(self.client_cpu_s),
            "server_cpu_s": statistics.median(self.server_cpu_s),
            "api_calls": self.api_calls,
            "api_calls_per_revert": self.api_calls_per_revert,
            "limit_stated_s": self.limit_stated_s,
            "limit_s": self.limit_s,
            "limit_per_call_s": self.limit_per_call_s,
            "ratio_to_limit": self.ratio_to_limit,
            "ratio_to_limit_min": self.wall_min_s / self.limit_stated_s,
            "journal_floor_s": self.journal_floor_s,
            "load_start": list(self.load_start),
            "load_end": list(self.load_end),
        }


@dataclasses.dataclass(frozen=True)
class RollbackFigures:
    """Every row of one N, and the peer's figure for the same N and latency."""

    n: int
    latency_s: float
    runs: tuple[RollbackRun, ...]
    peer: chaostoolkit.PeerFigures | None = None

    def at(self, concurrency: int) -> RollbackRun | None:
        return next((run for run in self.runs if run.concurrency == concurrency), None)

    def speedup_over_baseline(self, run: RollbackRun) -> float | None:
        """Median at c=1 over this row's median; None without a c=1 row."""
        base = self.at(BASELINE_CONCURRENCY)
        if base is None or run.concurrency == BASELINE_CONCURRENCY:
            return None
        return base.wall_s / run.wall_s

    @property
    def speedup(self) -> float | None:
        """c=16 against c=1 (medians); None unless both rows were measured."""
        top = self.at(HEADLINE_CONCURRENCY)
        return None if top is None else self.speedup_over_baseline(top)

    def vs_peer(self, run: RollbackRun) -> float | None:
        """How many times faster than Chaos Toolkit (its median over this row's median)."""
        return None if self.peer is None else self.peer.median_s / run.wall_s

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "latency_s": self.latency_s,
            "speedup": self.speedup,
            "runs": [
                {
                    **run.to_json(),
                    "speedup_vs_c1": self.speedup_over_baseline(run),
                    "vs_chaostoolkit": self.vs_peer(run),
                }
                for run in self.runs
            ],
            "chaostoolkit": None if self.peer is None else self.peer.to_json(),
        }


@dataclasses.dataclass(frozen=True)
class AbortFigures:
    """Breach to first revert, over the trials (seconds)."""

    trials: int
    probe_interval_s: float
    time_scale: float
    to_patch_s: tuple[float, ...]
    """Breach to the sandbox applying the uncordon (the headline figure)."""
    to_revert_event_s: tuple[float, ...]
    """Breach to the journal's first `revert` event (the engine starting the revert)."""

    @property
    def target_s(self) -> float:
        return self.probe_interval_s + 0.2

    @property
    def median_s(self) -> float:
        return statistics.median(self.to_patch_s)

    @property
    def max_s(self) -> float:
        return max(self.to_patch_s)

    def to_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "median_s": self.median_s,
            "max_s": self.max_s,
            "target_s": self.target_s,
        }


@dataclasses.dataclass(frozen=True)
class Check:
    """One of the issue's targets: `measured <= bound`, or `>=` with `at_least`."""

    name: str
    measured: float
    bound: float
    unit: str = "s"
    at_least: bool = False

    @property
    def met(self) -> bool:
        return self.measured >= self.bound if self.at_least else self.measured <= self.bound

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "met": self.met}


@dataclasses.dataclass(frozen=True)
class Results:
    """Everything one benchmark run measured, and where."""

    started_at: str
    quick: bool
    partial: bool
    """Only some rows were asked for (`--n`/`--concurrency`)."""
    host: Mapping[str, str | int | None]
    load_start: Load
    load_end: Load
    latency_s: float
    rollback: tuple[RollbackFigures, ...]
    abort: AbortFigures | None
    peer_note: str
    """Why Chaos Toolkit was not measured ("" when it was)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON written to benchmarks/results (figures plus the targets they meet or not)."""
        return {
            "benchmark": "rollback",
            "started_at": self.started_at,
            "quick": self.quick,
            "partial": self.partial,
            "host": dict(self.host),
            "load_start": list(self.load_start),
            "load_end": list(self.load_end),
            "latency_s": self.latency_s,
            "sandbox": "separate process (sandbox.kubernetes.standalone)",
            "rollback": [fig.to_json() for fig in self.rollback],
            "abort": None if self.abort is None else self.abort.to_json(),
            "peer_note": self.peer_note,
            "targets": [check.to_json() for check in self.checks()],
        }

    def checks(self) -> list[Check]:
        """The issue's targets, each with the measured figure and whether it is met."""
        found: list[Check] = []
        for fig in self.rollback:
            top = fig.at(HEADLINE_CONCURRENCY)
            if top is None:
                continue
            found.append(
                Check(
                    f"rollback N={fig.n} c={top.concurrency} median <= 1.5x limit",
                    top.wall_s,
                    1.5 * top.limit_stated_s,
                )
            )
            if fig.speedup is not None:
                found.append(
                    Check(
                        f"rollback N={fig.n} c={top.concurrency} >= 14x faster than c=1",
                        fig.speedup,
                        14.0,
                        unit="x",
                        at_least=True,
                    )
                )
            peer_ratio = fig.vs_peer(top)
            if peer_ratio is not None:
                found.append(
                    Check(
                        f"rollback N={fig.n} c={top.concurrency} >= 12x faster than Chaos Toolkit",
                        peer_ratio,
                        12.0,
                        unit="x",
                        at_least=True,
                    )
                )
        if self.abort is not None:
            found.append(
                Check(
                    "abort latency max <= interval + 0.2 s", self.abort.max_s, self.abort.target_s
                )
            )
        return found


# ---- the sandbox -----------------------------------------------------------------------------


@dataclasses.dataclass
class Cluster:
    """The sandbox API server in its own process, and an Environment file for it."""

    server: standalone.StandaloneServer
    environment_path: pathlib.Path

    def nodes(self) -> list[Mapping[str, Any]]:
        """Every node, read through the API (one list request)."""
        request = urllib.request.Request(
            f"{self.server.url}/api/v1/nodes",
            headers={"Authorization": "Bearer sandbox-token", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = json.loads(answer.read())
        items: list[Mapping[str, Any]] = body["items"]
        return items

    def node_names(self) -> list[str]:
        return [_name(node) for node in self.nodes()]

    def cordoned(self) -> list[str]:
        """Nodes that are unschedulable or still carry a drill marker."""
        return [_name(node) for node in self.nodes() if _dirty(node)]

    def set_latency(self, seconds: float) -> None:
        self.server.set_faults(latency_s=seconds)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process has used so far."""
        return process_cpu_s(self.server.process.pid)

    def request_count(self) -> int:
        return self.server.stats().requests


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process `pid`, from /proc/<pid>/stat."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _unschedulable(obj: Mapping[str, Any]) -> bool:
    spec = obj.get("spec")
    return bool(spec.get("unschedulable")) if isinstance(spec, Mapping) else False


def _dirty(obj: Mapping[str, Any]) -> bool:
    """Unschedulable, or carrying a drill marker (annotation or run-id label)."""
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    return (
        _unschedulable(obj)
        or any(key in annotations for key in markers.ANNOTATIONS)
        or markers.RUN_ID in labels
    )


@contextlib.contextmanager
def cluster(workdir: pathlib.Path, *, nodes: int, name: str = "cluster") -> Iterator[Cluster]:
    """A sandbox process with `nodes` Ready nodes over three zones, and its Environment file."""
    folder = workdir / name
    with standalone.start(folder, nodes=nodes) as server:
        environment = folder / "environment.yaml"
        _write_yaml(
            environment,
            {
                "apiVersion": "stormdrill.dev/v1",
                "kind": "Environment",
                "metadata": {"name": ENVIRONMENT_NAME},
                "spec": {"timeScale": 1.0, "kubernetes": {"kubeconfig": str(server.kubeconfig)}},
            },
        )
        yield Cluster(server=server, environment_path=environment)


def _write_yaml(path: pathlib.Path, document: Mapping[str, Any]) -> None:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))


def _environment(path: pathlib.Path) -> models.Environment:
    return loading.load_environment(path).model


def _open_journal(path: pathlib.Path) -> journal.Journal:
    return journal.open_store(f"sqlite:///{path}")


def _new_run(store: journal.Journal, *, label: str) -> states.Run:
    now = datetime.now(UTC)
    run = states.new_run(
        id=states.new_run_id(now),
        scenario=f"bench-{label}",
        environment=ENVIRONMENT_NAME,
        environment_source="benchmarks/rollback.py",
        owner=states.Owner.current(),
        at=now,
    )
    return store.create_run(run)


def _context(
    reg: registry.Registry, environment_path: pathlib.Path, run_id: states.RunId
) -> context.RunContext:
    environment = _environment(environment_path)
    return context.RunContext(
        run_id=run_id,
        environment=environment,
        connections=context.Connections(environment, reg.connectors()),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


def _live_view() -> engine.Listener:
    """A `revert_run` listener like the engine's during rollback: the live view only."""
    heard: list[str] = []

    def listen(kind: str, message: str, data: Mapping[str, mutations.JsonValue]) -> None:
        del message, data
        heard.append(kind)

    return listen


# ---- rollback --------------------------------------------------------------------------------


class _NoopParams(pydantic.BaseModel):
    pass


class _NoopAction(registry.Action[_NoopParams]):
    """A mutation that touches nothing: `revert_run` over it costs only the journal writes."""

    name: ClassVar[str] = "bench.noop"
    params_model: ClassVar[type[pydantic.BaseModel]] = _NoopParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"thing"})
    description: ClassVar[str] = "does nothing (benchmark journal floor)"

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: _NoopParams,
    ) -> list[mutations.PlannedMutation]:
        del ctx, params
        return [
            mutations.PlannedMutation(
                step="noop",
                target=ref,
                action=self.name,
                params={},
                pre_state={},
                undo=mutations.UndoToken(action=self.name, data={}),
            )
            for ref in targets
        ]

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        del ctx, mutation
        return None

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        del ctx, undo


def _cordon(
    store: journal.Journal,
    reg: registry.Registry,
    ctx: context.RunContext,
    names: Sequence[str],
) -> None:
    """Cordon `names` for real, each journalled as the engine does (intent, apply, applied)."""
    action = reg.get_action(kube_nodes.CordonAction.name)()
    refs = [mutations.TargetRef(provider="kubernetes", kind="node", name=name) for name in names]

    def cordon_one(planned: mutations.PlannedMutation) -> None:
        mutation = dataclasses.replace(planned, step="cordon")
        entry = store.record_intent(ctx.run_id, mutation)
        undo = action.apply(ctx, mutation=mutation)
        store.mark_applied(entry.seq, undo=undo)

    planned = action.plan(ctx, targets=refs, params=acting.NoParams())
    with futures.ThreadPoolExecutor(SETUP_WORKERS, thread_name_prefix="bench-cordon") as pool:
        for done in pool.map(cordon_one, planned):
            del done


def _journal_floor(workdir: pathlib.Path, *, n: int, concurrency: int) -> float:
    """`revert_run` wall time over `n` no-op mutations (journal writes only)."""
    reg = registry.Registry()
    reg.register(_NoopAction)
    store = _open_journal(workdir / f"floor-{n}-{concurrency}.db")
    try:
        run = _new_run(store, label="floor")
        stub = _environment_stub()
        ctx = context.RunContext(
            run_id=run.id,
            environment=stub,
            connections=context.Connections(stub, {}),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        refs = [mutations.TargetRef(provider="bench", kind="thing", name=f"t{i}") for i in range(n)]
        action = _NoopAction()
        for mutation in action.plan(ctx, targets=refs, params=_NoopParams()):
            entry = store.record_intent(run.id, mutation)
            store.mark_applied(entry.seq)
        started = time.perf_counter()
        outcome = rollback.revert_run(
            store=store,
            reg=reg,
            ctx=ctx,
            run_id=run.id,
            concurrency=concurrency,
            listener=_live_view(),
        )
        elapsed = time.perf_counter() - started
        if not outcome.ok or len(outcome.reverted) != n or store.undo_plan(run.id):
            raise BenchmarkFailed(f"journal floor N={n} c={concurrency}: not every entry reverted")
        return elapsed
    finally:
        store.close()


def _environment_stub() -> models.Environment:
    return models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": ENVIRONMENT_NAME},
            "spec": {},
        }
    )


def _rollback_once(
    workdir: pathlib.Path,
    sandbox: Cluster,
    *,
    names: Sequence[str],
    concurrency: int,
    latency_s: float,
    repeat: int,
) -> tuple[float, int, float, float]:
    """Cordon `names`, roll them back at `concurrency`, check.

    Returns (wall seconds, API calls, this process's CPU seconds, the server's CPU seconds).
    """
    n = len(names)
    reg = binding.make_registry()
    store = _open_journal(workdir / f"rollback-{n}-{concurrency}-{repeat}.db")
    try:
        run = _new_run(store, label=f"rollback-{n}-{concurrency}")
        ctx = _context(reg, sandbox.environment_path, run.id)
        sandbox.set_latency(0.0)
        _cordon(store, reg, ctx, names)
        cordoned = sandbox.cordoned()
        if len(cordoned) != n:
            raise BenchmarkFailed(f"rollback N={n}: {len(cordoned)} nodes cordoned, expected {n}")
        sandbox.set_latency(latency_s)
        calls_before = sandbox.request_count()
        server_cpu, client_cpu = sandbox.cpu_s(), process_cpu_s(os.getpid())
        started = time.perf_counter()
        outcome = rollback.revert_run(
            store=store,
            reg=reg,
            ctx=ctx,
            run_id=run.id,
            concurrency=concurrency,
            listener=_live_view(),
        )
        wall = time.perf_counter() - started
        server_cpu = sandbox.cpu_s() - server_cpu
        client_cpu = process_cpu_s(os.getpid()) - client_cpu
        calls = sandbox.request_count() - calls_before
        sandbox.set_latency(0.0)
        left = sandbox.cordoned()
        undo_left = store.undo_plan(run.id)
        if not outcome.ok or len(outcome.reverted) != n or left or undo_left:
            reasons = "; ".join(error for _, error in outcome.failed[:3])
            raise BenchmarkFailed(
                f"rollback N={n} c={concurrency}: {len(outcome.reverted)} of {n} reverted, "
                f"{len(outcome.failed)} failed ({reasons}), {len(left)} nodes still cordoned or "
                f"marked ({', '.join(left[:5])}), {len(undo_left)} journal entries left to undo"
            )
    finally:
        store.close()
    return wall, calls, client_cpu, server_cpu


def measure_row(
    workdir: pathlib.Path, sandbox: Cluster, *, n: int, concurrency: int, config: Config
) -> RollbackRun:
    """`config.repeats` rollbacks of N cordons at `concurrency`, every one checked."""
    names = sandbox.node_names()[:n]
    if len(names) < n:
        raise BenchmarkFailed(f"rollback N={n}: the sandbox has only {len(names)} nodes")
    load_start = load_now()
    walls: list[float] = []
    calls_seen: list[int] = []
    client_cpu: list[float] = []
    server_cpu: list[float] = []
    for repeat in range(config.repeats):
        wall, calls, client, server = _rollback_once(
            workdir,
            sandbox,
            names=names,
            concurrency=concurrency,
            latency_s=config.latency_s,
            repeat=repeat,
        )
        walls.append(wall)
        calls_seen.append(calls)
        client_cpu.append(client)
        server_cpu.append(server)
        log.info("rollback N=%d c=%d #%d: %.3fs, %d API calls", n, concurrency, repeat, wall, calls)
    load_end = load_now()
    calls = max(calls_seen)
    per_revert = calls / n
    waves = math.ceil(n / concurrency)
    return RollbackRun(
        n=n,
        concurrency=concurrency,
        walls_s=tuple(walls),
        client_cpu_s=tuple(client_cpu),
        server_cpu_s=tuple(server_cpu),
        api_calls=calls,
        api_calls_per_revert=per_revert,
        limit_stated_s=waves * config.latency_s,
        limit_per_call_s=waves * per_revert * config.latency_s,
        journal_floor_s=(
            _journal_floor(workdir, n=n, concurrency=concurrency) if config.journal_floor else None
        ),
        load_start=load_start,
        load_end=load_end,
    )


def measure_rollback(
    workdir: pathlib.Path, sandbox: Cluster, *, n: int, config: Config
) -> RollbackFigures:
    """Every concurrency of `config` for N, then the peer for the same N (if set up)."""
    runs = tuple(
        measure_row(workdir, sandbox, n=n, concurrency=c, config=config)
        for c in config.concurrencies
    )
    peer = None
    if config.peer and chaostoolkit.chaos_executable(config.peer_venv) is not None:
        peer = chaostoolkit.measure(
            n=n,
            latency_s=config.latency_s,
            repeats=config.repeats,
            workdir=workdir / "peer",
            venv=config.peer_venv,
        )
    return RollbackFigures(n=n, latency_s=config.latency_s, runs=runs, peer=peer)


# ---- abort latency ---------------------------------------------------------------------------


class _ProbeTarget:
    """A loopback HTTP endpoint answering 200 or 503, switched by the benchmark."""

    def __init__(self) -> None:
        self.healthy = True
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = 200 if target.healthy else 503
                payload = b"ok" if code == 200 else b"down"
                self.send_response(code)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/healthz"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> _ProbeTarget:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _abort_scenario(path: pathlib.Path, *, url: str, interval_s: float) -> None:
    _write_yaml(
        path,
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Scenario",
            "metadata": {"name": "bench-abort"},
            "spec": {
                "description": "Cordon one node and hold it while a health probe watches.",
                "failureMode": "custom",
                "hypothesis": "The shop stays healthy with one node cordoned.",
                "targets": {
                    "one-node": {
                        "provider": "kubernetes",
                        "kind": "node",
                        "selector": {"labels": {"kubernetes.io/hostname": ABORT_NODE}},
                        "blastRadius": {"max": 1},
                    }
                },
                "steadyState": [
                    {
                        "name": "shop-healthy",
                        "type": "http",
                        "with": {"url": url, "expectStatus": 200},
                        "interval": f"{interval_s}s",
                        "timeout": "1s",
                        "tolerance": 0,
                    }
                ],
                "guardrails": {
                    "environments": [ENVIRONMENT_NAME],
                    "maxDuration": "10m",
                    "abortWhen": [{"probe": "shop-healthy"}],
                },
                "steps": [
                    {
                        "name": "cordon-one",
                        "action": kube_nodes.CordonAction.name,
                        "target": "one-node",
                    },
                    {"name": "hold", "wait": "5m"},
                ],
            },
        },
    )


def _wait_node(
    sandbox: Cluster, *, after: int, unschedulable: bool, timeout_s: float
) -> standalone.Change | None:
    """The first change of the abort node after `after` with `unschedulable` as given."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        changes = sandbox.server.changes(
            resource="nodes", name=ABORT_NODE, after=after, timeout_s=min(left, 5.0)
        )
        for change in changes:
            if _unschedulable(change.object) is unschedulable:
                return change
            after = change.seq
    return None


def measure_abort(workdir: pathlib.Path, *, config: Config) -> AbortFigures:
    """Run the engine `abort_trials` times; breach the probe at a random phase each time."""
    rng = random.Random(config.seed)
    folder = workdir / "abort"
    folder.mkdir(parents=True, exist_ok=True)
    to_patch: list[float] = []
    to_event: list[float] = []
    with cluster(workdir, nodes=6, name="abort-cluster") as sandbox, _ProbeTarget() as probe:
        scenario_path = folder / "scenario.yaml"
        _abort_scenario(scenario_path, url=probe.url, interval_s=config.probe_interval_s)
        bound = binding.bind(str(scenario_path), env=str(sandbox.environment_path), sets=[])
        store = _open_journal(folder / "journal.db")
        try:
            eng = engine.Engine(
                store=store,
                reg=binding.make_registry(),
                config=engine.EngineConfig(stability_window_s=0.0),
            )
            for trial in range(config.abort_trials):
                latency, event_latency = _abort_trial(
                    eng, bound.drill, sandbox, probe, rng=rng, config=config, trial=trial
                )
                to_patch.append(latency)
                to_event.append(event_latency)
                log.info("abort trial %d: %.3fs to the uncordon", trial, latency)
        finally:
            store.close()
    return AbortFigures(
        trials=config.abort_trials,
        probe_interval_s=config.probe_interval_s,
        time_scale=1.0,
        to_patch_s=tuple(to_patch),
        to_revert_event_s=tuple(to_event),
    )


def _abort_trial(
    eng: engine.Engine,
    drill: planning.DrillInput,
    sandbox: Cluster,
    probe: _ProbeTarget,
    *,
    rng: random.Random,
    config: Config,
    trial: int,
) -> tuple[float, float]:
    probe.healthy = True
    outcomes: list[engine.RunOutcome] = []
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            outcomes.append(eng.run(drill))
        except BaseException as exc:  # reported below, in the benchmark's thread
            failures.append(exc)

    runner = threading.Thread(target=drive, name=f"bench-abort-{trial}", daemon=True)
    uncordon: standalone.Change | None = None
    try:
        since = sandbox.server.stats().seq
        runner.start()
        cordon = _wait_node(sandbox, after=since, unschedulable=True, timeout_s=30)
        if cordon is None:
            raise BenchmarkFailed(
                f"abort trial {trial}: the node was never cordoned ({failures[:1]})"
            )
        time.sleep(rng.uniform(0.0, config.probe_interval_s))
        breach_at = time.monotonic()
        breach_wall = datetime.now(UTC)
        probe.healthy = False
        uncordon = _wait_node(sandbox, after=cordon.seq, unschedulable=False, timeout_s=60)
        probe.healthy = True  # the fault is gone: let verify pass at once
        runner.join(60)
    finally:
        probe.healthy = True
    if failures:
        raise BenchmarkFailed(f"abort trial {trial}: the run raised {failures[0]!r}")
    if runner.is_alive() or not outcomes:
        raise BenchmarkFailed(f"abort trial {trial}: the run did not end within 60 s")
    run = outcomes[0].run
    if run.state is not states.RunState.ABORTED or uncordon is None:
        raise BenchmarkFailed(
            f"abort trial {trial}: run {run.id} ended {run.state.value} ({run.reason}); "
            "expected ABORTED with the node uncordoned"
        )
    if sandbox.cordoned():
        raise BenchmarkFailed(f"abort trial {trial}: nodes left cordoned: {sandbox.cordoned()}")
    reverts = eng.store.events(run.id, kind="revert")
    if not reverts:
        raise BenchmarkFailed(f"abort trial {trial}: run {run.id} journalled no revert event")
    return (
        uncordon.at - breach_at,
        (reverts[0].at - breach_wall).total_seconds(),
    )


# ---- the whole run ---------------------------------------------------------------------------


def host_info() -> dict[str, str | int | None]:
    """The machine the figures come from; `load` (1/5/15 min) shows whether it was busy."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "load": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
    }


def run_benchmark(
    config: Config, *, workdir: pathlib.Path, quick: bool = False, partial: bool = False
) -> Results:
    """Measure everything `config` asks for, in `workdir` (left behind for inspection)."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    host = host_info()
    load_start = load_now()
    figures: list[RollbackFigures] = []
    if config.sizes and config.concurrencies:
        with cluster(workdir, nodes=config.nodes, name="rollback") as sandbox:
            for n in config.sizes:
                figures.append(measure_rollback(workdir, sandbox, n=n, config=config))
    abort = measure_abort(workdir, config=config) if config.abort_trials > 0 else None
    if not config.peer:
        peer_note = "Chaos Toolkit not measured (--no-peer)"
    elif chaostoolkit.chaos_executable(config.peer_venv) is None:
        peer_note = chaostoolkit.setup_hint(config.peer_venv)
    else:
        peer_note = ""
    return Results(
        started_at=started,
        quick=quick,
        partial=partial,
        host=host,
        load_start=load_start,
        load_end=load_now(),
        latency_s=config.latency_s,
        rollback=tuple(figures),
        abort=abort,
        peer_note=peer_note,
    )


def write_results(results: Results, *, directory: pathlib.Path) -> pathlib.Path:
    """Write `rollback-<date>.json` and overwrite `rollback-latest.json`; the dated path."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=2) + "\n"
    dated = directory / f"rollback-{datetime.now(UTC):%Y-%m-%d}.json"
    dated.write_text(text)
    (directory / "rollback-latest.json").write_text(text)
    return dated


def _load(load: Load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def _times(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}x"


def render_table(results: Results) -> str:
    """The figures as a plain-text table (what `main` prints)."""
    lines = [
        f"Stormdrill rollback benchmark ({results.started_at}, {results.host['cpus']} CPUs, "
        f"{results.latency_s * 1000:g} ms API latency, sandbox API server in its own process)",
        f"load {_load(results.load_start)} at the start, {_load(results.load_end)} at the end",
        "",
        f"{'N':>5} {'c':>3} {'min s':>8} {'median s':>8} {'limit s':>8} {'x limit':>7} "
        f"{'calls/rv':>8} {'journal s':>9} {'cpu s':>5} {'srv s':>5} {'vs c=1':>7} {'vs CTK':>7}"
        "  load start -> end",
    ]
    for fig in results.rollback:
        for run in fig.runs:
            floor = "" if run.journal_floor_s is None else f"{run.journal_floor_s:.3f}"
            lines.append(
                f"{run.n:>5} {run.concurrency:>3} {run.wall_min_s:>8.3f} {run.wall_s:>8.3f} "
                f"{run.limit_stated_s:>8.3f} {run.ratio_to_limit:>7.2f} "
                f"{run.api_calls_per_revert:>8.2f} {floor:>9} "
                f"{statistics.median(run.client_cpu_s):>5.2f} "
                f"{statistics.median(run.server_cpu_s):>5.2f} "
                f"{_times(fig.speedup_over_baseline(run)):>7} {_times(fig.vs_peer(run)):>7}  "
                f"{_load(run.load_start)} -> {_load(run.load_end)}"
            )
        if fig.peer is not None:
            p = fig.peer
            lines.append(
                f"{p.n:>5} CTK {p.min_s:>8.3f} {p.median_s:>8.3f}   Chaos Toolkit {p.version} "
                f"rollback phase (its journal, {len(p.runs)} run(s); method phase "
                f"{statistics.median(r.method_s for r in p.runs):.3f}s)"
            )
    if results.peer_note:
        lines.append(results.peer_note)
    a = results.abort
    if a is not None:
        lines.append("")
        lines.append(
            f"abort latency over {a.trials} trials (probe interval {a.probe_interval_s:g}s, time "
            f"scale {a.time_scale:g}): median {a.median_s:.3f}s, max {a.max_s:.3f}s "
            f"(to the revert event: median {statistics.median(a.to_revert_event_s):.3f}s, "
            f"max {max(a.to_revert_event_s):.3f}s)"
        )
    lines.append("")
    lines.append("targets:")
    for check in results.checks():
        verdict = "met" if check.met else "MISSED"
        if check.unit == "x":
            shown = f"{check.measured:.1f}x (needs >= {check.bound:g}x)"
        else:
            shown = f"{check.measured:.3f}s (bound {check.bound:.3f}s)"
        lines.append(f"  [{verdict:>6}] {check.name}: {shown}")
    return "\n".join(lines)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers like 100,1000") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers like 100,1000")
    return values


def _positive(text: str) -> int:
    [value] = _ints(text)
    return value


def config_from_args(args: argparse.Namespace) -> tuple[Config, bool]:
    """The Config the command line asks for, and whether only some rows were picked."""
    config = Config.quick() if args.quick else Config()
    partial = args.n is not None or args.concurrency is not None
    changes: dict[str, Any] = {"peer": not args.no_peer}
    if args.n is not None:
        changes["sizes"] = args.n
    if args.concurrency is not None:
        changes["concurrencies"] = args.concurrency
    if args.repeats is not None:
        changes["repeats"] = args.repeats
    if args.abort_trials is not None:
        changes["abort_trials"] = args.abort_trials
    elif partial:
        changes["abort_trials"] = 0
    return dataclasses.replace(config, **changes), partial


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.rollback`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rollback", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N=100, c=1,16, 5 abort trials")
    parser.add_argument("--n", type=_ints, help="rows' N, e.g. 1000 or 100,1000 (default all)")
    parser.add_argument("--concurrency", type=_ints, help="rows' c, e.g. 16 or 1,16,64")
    parser.add_argument("--repeats", type=_positive, help="repetitions per row (default 3)")
    parser.add_argument(
        "--abort-trials", type=int, help="abort latency trials (default 20; 0 with --n/--c)"
    )
    parser.add_argument("--no-peer", action="store_true", help="do not run Chaos Toolkit")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    config, partial = config_from_args(args)
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = pathlib.Path(tempfile.mkdtemp(prefix="stormdrill-bench-"))
            print(f"working in {workdir}", file=sys.stderr)
        else:
            workdir = pathlib.Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="stormdrill-bench-"))
            )
        results = run_benchmark(config, workdir=workdir, quick=args.quick, partial=partial)
    print(render_table(results))
    written = write_results(results, directory=args.results)
    print(f"\nwrote {written} and {written.parent / 'rollback-latest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
