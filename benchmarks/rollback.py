"""Rollback benchmark: rollback wall time, abort latency and plan time against the sandbox.

Run it as `.venv/bin/python -m benchmarks.rollback` (`--quick` for a smoke run). It prints a
table and writes `benchmarks/results/rollback-<date>.json` and `rollback-latest.json`.

What it measures (see benchmarks/README.md for how to read the figures):
- Rollback: N nodes of a 1,000-node sandbox are cordoned for real (the Kubernetes provider's
  cordon action, journalled in a SQLite journal as the engine does), then undone with
  `rollback.revert_run` at concurrency 1 and at the default, with `FaultConfig.latency_s` on
  every API request. Each figure is reported only after checking that every node is
  schedulable again and carries no marker, and that the journal has nothing left to undo.
- The journal floor: the same `revert_run` over N journalled no-op mutations (no API calls),
  i.e. what the SQLite writes of a rollback cost on their own.
- Abort latency: the real engine (`Engine.run`) on a one-node cordon scenario whose `http`
  probe (interval 1 s, tolerance 0, in abortWhen) starts failing at a known instant; the
  latency is the time from that instant to the sandbox applying the uncordon PATCH.
- Plan time: `Engine.plan` on an az-failure-kubernetes-like scenario over 1,000 nodes and
  10,000 pods (no injected latency).

Invariants: a figure is never reported for a wrong result (each phase checks its outcome and
raises `BenchmarkFailed`); everything listens on 127.0.0.1 with ephemeral ports; all state
lives in a temporary directory.
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
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pydantic
import yaml

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
from sandbox.kubernetes import resources, seed, server
from sandbox.kubernetes import store as store_module
from scenarios import errors as scenario_errors
from scenarios import loading, models

log = logging.getLogger(__name__)

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
ENVIRONMENT_NAME = "bench"
BENCH_NAMESPACE = "bench"
BENCH_LABELS: Mapping[str, str] = {"app": "bench"}
ABORT_NODE = "node-us-east-1a-1"


class BenchmarkFailed(scenario_errors.StormdrillError):
    """A benchmark phase produced a wrong result, so its timing means nothing."""


# ---- configuration and figures ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """What to measure. The defaults are the issue's figures; `quick()` is the smoke run."""

    sizes: tuple[int, ...] = (100, 1000)
    node_count: int = 1000
    latency_s: float = 0.02
    concurrencies: tuple[int, ...] = (1, engine.EngineConfig().rollback_concurrency)
    abort_trials: int = 20
    probe_interval_s: float = 1.0
    plan_nodes: int = 1000
    plan_pods: int = 10_000
    plan_repeats: int = 5
    seed: int = 20250101

    @classmethod
    def quick(cls) -> Config:
        return cls(sizes=(100,), abort_trials=5)

    @property
    def default_concurrency(self) -> int:
        return max(self.concurrencies)


@dataclasses.dataclass(frozen=True)
class RollbackRun:
    """One rollback of N cordons at one concurrency."""

    n: int
    concurrency: int
    wall_s: float
    api_calls: int
    api_calls_per_revert: float
    limit_stated_s: float
    """ceil(N / c) x latency: one API call per revert."""
    limit_per_call_s: float
    """ceil(N / c) x calls per revert x latency: the calls a revert makes are sequential."""
    journal_floor_s: float
    """The same revert_run over N no-op mutations: the SQLite journal writes alone."""


@dataclasses.dataclass(frozen=True)
class RollbackFigures:
    """Sequential against concurrent rollback of N cordons."""

    n: int
    latency_s: float
    runs: tuple[RollbackRun, ...]

    def at(self, concurrency: int) -> RollbackRun:
        return next(run for run in self.runs if run.concurrency == concurrency)

    @property
    def speedup(self) -> float:
        """Wall time at concurrency 1 over wall time at the highest concurrency measured."""
        slowest = min(self.runs, key=lambda r: r.concurrency)
        fastest = max(self.runs, key=lambda r: r.concurrency)
        return slowest.wall_s / fastest.wall_s


@dataclasses.dataclass(frozen=True)
class AbortFigures:
    """Breach to first revert, over the trials (seconds)."""

    trials: int
    probe_interval_s: float
    time_scale: float
    to_patch_s: tuple[float, ...]
    """Breach to the sandbox applying the uncordon PATCH (the headline figure)."""
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


@dataclasses.dataclass(frozen=True)
class PlanFigures:
    """`Engine.plan` over a large cluster (no injected latency)."""

    nodes: int
    pods: int
    zone_nodes: int
    planned_mutations: int
    api_calls: int
    times_s: tuple[float, ...]
    breakdown_s: Mapping[str, float]
    """One untimed-for-the-median pass: target resolution, then each action step's planning."""

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)


@dataclasses.dataclass(frozen=True)
class Results:
    """Everything one benchmark run measured, and where."""

    started_at: str
    quick: bool
    host: Mapping[str, str | int | None]
    rollback: tuple[RollbackFigures, ...]
    abort: AbortFigures
    plan: PlanFigures

    def to_json(self) -> dict[str, Any]:
        """The JSON written to benchmarks/results (figures plus the targets they meet or not)."""
        return {
            "benchmark": "rollback",
            "started_at": self.started_at,
            "quick": self.quick,
            "host": dict(self.host),
            "rollback": [
                {
                    "n": fig.n,
                    "latency_s": fig.latency_s,
                    "speedup": fig.speedup,
                    "runs": [dataclasses.asdict(run) for run in fig.runs],
                }
                for fig in self.rollback
            ],
            "abort": {
                **dataclasses.asdict(self.abort),
                "median_s": self.abort.median_s,
                "max_s": self.abort.max_s,
                "target_s": self.abort.target_s,
            },
            "plan": {**dataclasses.asdict(self.plan), "median_s": self.plan.median_s},
            "targets": [dataclasses.asdict(check) for check in self.checks()],
        }

    def checks(self) -> list[Check]:
        """The issue's targets, each with the measured figure and whether it is met."""
        found: list[Check] = []
        for fig in self.rollback:
            top = fig.at(max(r.concurrency for r in fig.runs))
            found.append(
                Check(
                    f"rollback N={fig.n} c={top.concurrency} <= 2x limit (stated, 1 call/revert)",
                    top.wall_s,
                    2 * top.limit_stated_s,
                )
            )
            found.append(
                Check(
                    f"rollback N={fig.n} c={top.concurrency} <= 2x limit (per call)",
                    top.wall_s,
                    2 * top.limit_per_call_s,
                )
            )
            found.append(Check(f"rollback N={fig.n} speedup >= 10x", 10.0, fig.speedup, unit="x"))
        found.append(
            Check("abort latency max <= interval + 0.2 s", self.abort.max_s, self.abort.target_s)
        )
        found.append(Check("plan median <= 2 s", self.plan.median_s, 2.0))
        return found


@dataclasses.dataclass(frozen=True)
class Check:
    """`measured <= bound` (for a speedup the bound is the measured figure: 10 <= speedup)."""

    name: str
    measured: float
    bound: float
    unit: str = "s"

    @property
    def met(self) -> bool:
        return self.measured <= self.bound


# ---- the sandbox -----------------------------------------------------------------------------


@dataclasses.dataclass
class Cluster:
    """A seeded sandbox store behind a loopback API server, and an Environment file for it."""

    store: store_module.ClusterStore
    api: server.KubeApiServer
    environment_path: pathlib.Path

    def node_names(self) -> list[str]:
        return [_name(node) for node in self.store.list(resource=resources.NODES)]

    def cordoned(self) -> list[str]:
        """Nodes that are unschedulable or still carry a drill marker."""
        return [
            _name(node)
            for node in self.store.list(resource=resources.NODES)
            if _spec(node).get("unschedulable") or _has_marker(node)
        ]

    def zone_size(self, zone: str) -> int:
        """How many nodes carry the zone label `zone`."""
        return len(
            self.store.list(
                resource=resources.NODES, label_selector=f"topology.kubernetes.io/zone={zone}"
            )
        )

    def set_latency(self, seconds: float) -> None:
        self.api.faults.latency_s = seconds


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _has_marker(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return any(key in annotations for key in markers.ANNOTATIONS)


@contextlib.contextmanager
def cluster(
    workdir: pathlib.Path, *, nodes: int, pods: int = 0, name: str = "cluster"
) -> Iterator[Cluster]:
    """A sandbox with `nodes` Ready nodes over three zones and `pods` bench pods (opted in)."""
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    cluster_store = store_module.ClusterStore()
    seed.seed_nodes(cluster_store, count=nodes, zones=seed.ZONES)
    if pods:
        seed.ensure_namespace(
            cluster_store, BENCH_NAMESPACE, labels={seed.ALLOW_DRILLS_LABEL: "true"}
        )
        seed.seed_pods(
            cluster_store, namespace=BENCH_NAMESPACE, count=pods, labels=BENCH_LABELS, owned=True
        )
    api = server.KubeApiServer(store=cluster_store, faults=server.FaultConfig())
    api.start()
    try:
        kubeconfig = api.write_kubeconfig(folder / "kubeconfig")
        environment = folder / "environment.yaml"
        _write_yaml(
            environment,
            {
                "apiVersion": "stormdrill.dev/v1",
                "kind": "Environment",
                "metadata": {"name": ENVIRONMENT_NAME},
                "spec": {"timeScale": 1.0, "kubernetes": {"kubeconfig": str(kubeconfig)}},
            },
        )
        yield Cluster(store=cluster_store, api=api, environment_path=environment)
    finally:
        api.stop()


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
    """A `revert_run` listener like the engine's during rollback: the live view only.

    `revert_run` journals the timeline itself (one batch after the rollback), so the engine
    hands it the CLI's live listener, not its journalling one; this one just counts.
    """
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
    """Cordon `names` for real, journalled as the engine does (intent, apply, applied)."""
    action = reg.get_action(kube_nodes.CordonAction.name)()
    refs = [mutations.TargetRef(provider="kubernetes", kind="node", name=name) for name in names]
    for planned in action.plan(ctx, targets=refs, params=acting.NoParams()):
        mutation = dataclasses.replace(planned, step="cordon")
        entry = store.record_intent(ctx.run_id, mutation)
        undo = action.apply(ctx, mutation=mutation)
        store.mark_applied(entry.seq, undo=undo)


def _journal_floor(workdir: pathlib.Path, *, n: int, concurrency: int) -> float:
    """`revert_run` wall time over `n` no-op mutations (journal writes only)."""
    reg = registry.Registry()
    reg.register(_NoopAction)
    store = _open_journal(workdir / f"floor-{n}-{concurrency}.db")
    try:
        run = _new_run(store, label="floor")
        ctx = context.RunContext(
            run_id=run.id,
            environment=_environment_stub(),
            connections=context.Connections(_environment_stub(), {}),
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


def measure_rollback(
    workdir: pathlib.Path, sandbox: Cluster, *, n: int, config: Config
) -> RollbackFigures:
    """Cordon `n` nodes and roll them back at each concurrency; check every node is clean."""
    names = sandbox.node_names()[:n]
    if len(names) < n:
        raise BenchmarkFailed(f"rollback N={n}: the sandbox has only {len(names)} nodes")
    reg = binding.make_registry()
    runs: list[RollbackRun] = []
    for concurrency in config.concurrencies:
        store = _open_journal(workdir / f"rollback-{n}-{concurrency}.db")
        try:
            run = _new_run(store, label=f"rollback-{n}-{concurrency}")
            ctx = _context(reg, sandbox.environment_path, run.id)
            sandbox.set_latency(0.0)
            _cordon(store, reg, ctx, names)
            if len(sandbox.cordoned()) != n:
                raise BenchmarkFailed(
                    f"rollback N={n}: {len(sandbox.cordoned())} nodes cordoned, expected {n}"
                )
            sandbox.set_latency(config.latency_s)
            calls_before = sandbox.api.request_count
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
            calls = sandbox.api.request_count - calls_before
            sandbox.set_latency(0.0)
            left = sandbox.cordoned()
            if not outcome.ok or len(outcome.reverted) != n or left or store.undo_plan(run.id):
                raise BenchmarkFailed(
                    f"rollback N={n} c={concurrency}: {len(outcome.failed)} reverts failed, "
                    f"{len(left)} nodes still cordoned or marked ({', '.join(left[:5])})"
                )
        finally:
            store.close()
        per_revert = calls / n
        waves = math.ceil(n / concurrency)
        runs.append(
            RollbackRun(
                n=n,
                concurrency=concurrency,
                wall_s=wall,
                api_calls=calls,
                api_calls_per_revert=per_revert,
                limit_stated_s=waves * config.latency_s,
                limit_per_call_s=waves * per_revert * config.latency_s,
                journal_floor_s=_journal_floor(workdir, n=n, concurrency=concurrency),
            )
        )
        log.info("rollback N=%d c=%d: %.3fs, %d API calls", n, concurrency, wall, calls)
    return RollbackFigures(n=n, latency_s=config.latency_s, runs=tuple(runs))


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


class _NodeWatch:
    """Timestamps (monotonic) when the abort node is cordoned and when it is uncordoned."""

    def __init__(self, probe: _ProbeTarget) -> None:
        self._probe = probe
        self.cordoned = threading.Event()
        self.uncordoned_at: float | None = None

    def __call__(self, event: store_module.WatchEvent) -> None:
        if event.resource != resources.NODES or _name(event.object) != ABORT_NODE:
            return
        unschedulable = bool(_spec(event.object).get("unschedulable"))
        if unschedulable:
            self.cordoned.set()
        elif self.cordoned.is_set() and self.uncordoned_at is None:
            self.uncordoned_at = time.monotonic()
            self._probe.healthy = True  # the fault is gone: let verify pass at once


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
                log.info("abort trial %d: %.3fs to the PATCH", trial, latency)
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
    watch = _NodeWatch(probe)
    unsubscribe = sandbox.store.subscribe(watch)
    outcomes: list[engine.RunOutcome] = []
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            outcomes.append(eng.run(drill))
        except BaseException as exc:  # reported below, in the benchmark's thread
            failures.append(exc)

    runner = threading.Thread(target=drive, name=f"bench-abort-{trial}", daemon=True)
    try:
        runner.start()
        if not watch.cordoned.wait(30):
            raise BenchmarkFailed(f"abort trial {trial}: the node was never cordoned")
        time.sleep(rng.uniform(0.0, config.probe_interval_s))
        breach_at = time.monotonic()
        breach_wall = datetime.now(UTC)
        probe.healthy = False
        runner.join(60)
    finally:
        unsubscribe()
        probe.healthy = True
    if failures:
        raise BenchmarkFailed(f"abort trial {trial}: the run raised {failures[0]!r}")
    if runner.is_alive() or not outcomes:
        raise BenchmarkFailed(f"abort trial {trial}: the run did not end within 60 s")
    run = outcomes[0].run
    if run.state is not states.RunState.ABORTED or watch.uncordoned_at is None:
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
        watch.uncordoned_at - breach_at,
        (reverts[0].at - breach_wall).total_seconds(),
    )


# ---- plan time -------------------------------------------------------------------------------


def _plan_scenario(path: pathlib.Path, *, zone: str) -> None:
    _write_yaml(
        path,
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Scenario",
            "metadata": {"name": "bench-az-failure"},
            "spec": {
                "description": "Cordon and drain one zone's nodes; delete a few bench pods.",
                "failureMode": "availability-zone",
                "hypothesis": "The bench workload survives the loss of one zone.",
                "targets": {
                    "zone-nodes": {
                        "provider": "kubernetes",
                        "kind": "node",
                        "selector": {"labels": {"topology.kubernetes.io/zone": zone}},
                        "blastRadius": {"max": "100%"},
                    },
                    "bench-pods": {
                        "provider": "kubernetes",
                        "kind": "pod",
                        "namespace": BENCH_NAMESPACE,
                        "selector": {"labels": dict(BENCH_LABELS)},
                        "blastRadius": {"max": "100%"},
                    },
                },
                "guardrails": {"environments": [ENVIRONMENT_NAME], "maxDuration": "30m"},
                "steps": [
                    {
                        "name": "cordon-zone",
                        "action": kube_nodes.CordonAction.name,
                        "target": "zone-nodes",
                    },
                    {
                        "name": "drain-zone",
                        "action": kube_nodes.DrainAction.name,
                        "target": "zone-nodes",
                        "with": {"timeout": "2m"},
                    },
                    {
                        "name": "delete-some",
                        "action": "kubernetes.pods.delete",
                        "target": "bench-pods",
                        "with": {"count": 10},
                        "rollback": "none",
                        "irreversible": "bare bench pods are not recreated",
                    },
                    {"name": "hold", "wait": "5m"},
                ],
            },
        },
    )


def measure_plan(workdir: pathlib.Path, *, config: Config) -> PlanFigures:
    """Median `Engine.plan` time over a big cluster; the plan must select the whole zone."""
    folder = workdir / "plan"
    folder.mkdir(parents=True, exist_ok=True)
    zone = seed.ZONES[0]
    with cluster(
        workdir, nodes=config.plan_nodes, pods=config.plan_pods, name="plan-cluster"
    ) as sandbox:
        expected = sandbox.zone_size(zone)
        scenario_path = folder / "scenario.yaml"
        _plan_scenario(scenario_path, zone=zone)
        bound = binding.bind(str(scenario_path), env=str(sandbox.environment_path), sets=[])
        store = _open_journal(folder / "journal.db")
        try:
            eng = engine.Engine(store=store, reg=binding.make_registry())
            times: list[float] = []
            calls = 0
            mutations_planned = 0
            for _ in range(config.plan_repeats):
                before = sandbox.api.request_count
                started = time.perf_counter()
                plan = eng.plan(bound.drill)
                times.append(time.perf_counter() - started)
                calls = sandbox.api.request_count - before
                if plan.refused:
                    raise BenchmarkFailed(
                        "plan refused: " + "; ".join(v.message for v in plan.refusals)
                    )
                nodes_sel = plan.selections["zone-nodes"]
                pods_sel = plan.selections["bench-pods"]
                if nodes_sel.count != expected or pods_sel.count != config.plan_pods:
                    raise BenchmarkFailed(
                        f"plan selected {nodes_sel.count} zone nodes (expected {expected}) and "
                        f"{pods_sel.count} pods (expected {config.plan_pods})"
                    )
                mutations_planned = sum(len(step.mutations) for step in plan.steps)
            breakdown = _plan_breakdown(eng, bound.drill)
        finally:
            store.close()
    return PlanFigures(
        nodes=config.plan_nodes,
        pods=config.plan_pods,
        zone_nodes=expected,
        planned_mutations=mutations_planned,
        api_calls=calls,
        times_s=tuple(times),
        breakdown_s=breakdown,
    )


def _plan_breakdown(eng: engine.Engine, drill: planning.DrillInput) -> dict[str, float]:
    """Where plan time goes: resolving every target, then planning each action step."""
    ctx = eng.context_for(drill, run_id=states.RunId("plan-breakdown"), dry_run=True)
    started = time.perf_counter()
    selections = planning.resolve_targets(drill.scenario, reg=eng.registry, ctx=ctx)
    spent = {"resolve targets": time.perf_counter() - started}
    for step in drill.scenario.spec.steps:
        if step.action is None:
            continue
        started = time.perf_counter()
        planning.plan_action(step, reg=eng.registry, ctx=ctx, selections=selections)
        spent[f"step {step.name} ({step.action})"] = time.perf_counter() - started
    return spent


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


def run_benchmark(config: Config, *, workdir: pathlib.Path, quick: bool = False) -> Results:
    """Measure everything `config` asks for, in `workdir` (left behind for inspection)."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    host = host_info()
    figures: list[RollbackFigures] = []
    with cluster(workdir, nodes=max(config.node_count, *config.sizes), name="rollback") as sandbox:
        for n in config.sizes:
            figures.append(measure_rollback(workdir, sandbox, n=n, config=config))
    abort = measure_abort(workdir, config=config)
    plan = measure_plan(workdir, config=config)
    return Results(
        started_at=started,
        quick=quick,
        host=host,
        rollback=tuple(figures),
        abort=abort,
        plan=plan,
    )


def write_results(results: Results, *, directory: pathlib.Path) -> pathlib.Path:
    """Write `rollback-<date>.json` and overwrite `rollback-latest.json`; the dated path."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=2) + "\n"
    dated = directory / f"rollback-{datetime.now(UTC):%Y-%m-%d}.json"
    dated.write_text(text)
    (directory / "rollback-latest.json").write_text(text)
    return dated


def render_table(results: Results) -> str:
    """The figures as a plain-text table (what `main` prints)."""
    lines = [
        f"Stormdrill rollback benchmark ({results.started_at}, {results.host['cpus']} CPUs, "
        f"load {results.host['load']} at the start)"
    ]
    lines.append("")
    lines.append(
        f"{'N':>5} {'c':>3} {'wall s':>8} {'calls/revert':>12} {'limit s':>8} "
        f"{'limit/call s':>12} {'journal s':>9} {'speedup':>8}"
    )
    for fig in results.rollback:
        for run in fig.runs:
            speed = (
                f"{fig.speedup:.1f}x"
                if run.concurrency == max(r.concurrency for r in fig.runs)
                else ""
            )
            lines.append(
                f"{run.n:>5} {run.concurrency:>3} {run.wall_s:>8.3f} "
                f"{run.api_calls_per_revert:>12.2f} {run.limit_stated_s:>8.3f} "
                f"{run.limit_per_call_s:>12.3f} {run.journal_floor_s:>9.3f} {speed:>8}"
            )
    a = results.abort
    lines.append("")
    lines.append(
        f"abort latency over {a.trials} trials (probe interval {a.probe_interval_s:g}s, time "
        f"scale {a.time_scale:g}): median {a.median_s:.3f}s, max {a.max_s:.3f}s "
        f"(to the revert event: median {statistics.median(a.to_revert_event_s):.3f}s, "
        f"max {max(a.to_revert_event_s):.3f}s)"
    )
    p = results.plan
    lines.append(
        f"plan over {p.nodes} nodes / {p.pods} pods ({p.zone_nodes} zone nodes, "
        f"{p.planned_mutations} mutations, {p.api_calls} API calls): median {p.median_s:.3f}s "
        f"of {len(p.times_s)}"
    )
    for part, seconds in p.breakdown_s.items():
        lines.append(f"  {part}: {seconds:.3f}s")
    lines.append("")
    lines.append("targets:")
    for check in results.checks():
        verdict = "met" if check.met else "MISSED"
        if check.unit == "x":
            shown = f"speedup {check.bound:.1f}x (needs >= {check.measured:.0f}x)"
        else:
            shown = f"{check.measured:.3f}s (bound {check.bound:.3f}s)"
        lines.append(f"  [{verdict:>6}] {check.name}: {shown}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rollback", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N=100 only, 5 abort trials")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    config = Config.quick() if args.quick else Config()
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = pathlib.Path(tempfile.mkdtemp(prefix="stormdrill-bench-"))
            print(f"working in {workdir}", file=sys.stderr)
        else:
            workdir = pathlib.Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="stormdrill-bench-"))
            )
        results = run_benchmark(config, workdir=workdir, quick=args.quick)
    print(render_table(results))
    written = write_results(results, directory=args.results)
    print(f"\nwrote {written} and {written.parent / 'rollback-latest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
