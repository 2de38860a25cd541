"""Plan benchmark: `Engine.plan` wall time and peak memory over big sandbox clusters.

Run it as `.venv/bin/python -m benchmarks.plan [--pods 1000,10000,50000] [--results DIR]`.
It prints a table and writes `benchmarks/results/plan-<date>.json` and `plan-latest.json`.

What it measures: for each size N, a server process (`--serve`) seeds a sandbox store with
N/10 Ready nodes over three zones and N Running pods (owned by a ReplicaSet) in an opted-in
namespace, and serves it on loopback (`KubeApiServer`), as a real API server runs apart from
the planner. A fresh child process (`--child`) binds an az-failure-like scenario (cordon and drain
every node of one zone, delete 10 of the bench pods, whose target selects all N) and times
`Engine.plan` `--repeats` times, then one more pass split into target resolution and each
step's planning. The child reports its own peak RSS (`getrusage(RUSAGE_SELF).ru_maxrss`); it
is started by this small process, not by the one holding the cluster, because a process
started by vfork + exec inherits its starter's peak RSS.
The official Kubernetes client and the API classes a plan uses are imported before the first
timed plan (once per process whatever the cluster's size; importing `CoreV1Api` and its
models alone takes about 1 s and 95 MB, which the peak RSS includes).

Invariants: a figure is never reported for a wrong plan (the child checks that the plan
selects every zone node and every pod, evicts exactly the zone's pods and is not refused,
else it exits non-zero and the benchmark fails); everything listens on 127.0.0.1 with an
ephemeral port; all state lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import json
import logging
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from drills import binding
from orchestrator import engine, journal, planning, states
from sandbox.kubernetes import resources, seed, server
from sandbox.kubernetes import store as store_module
from scenarios import errors as scenario_errors

log = logging.getLogger(__name__)

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
DEFAULT_SIZES: tuple[int, ...] = (1000, 10_000, 50_000)
DEFAULT_REPEATS = 3
PODS_PER_NODE = 10
ENVIRONMENT_NAME = "bench"
BENCH_NAMESPACE = "bench"
BENCH_LABELS: Mapping[str, str] = {"app": "bench"}
ZONE_LABEL = "topology.kubernetes.io/zone"
TARGETS: Mapping[int, float] = {10_000: 1.0, 50_000: 4.0}
"""Pods → the issue's bound on the median plan time (seconds)."""
WARM_APIS = ("CoreV1Api", "AppsV1Api", "PolicyV1Api")
"""The official client's APIs a plan uses, imported before the first timed plan."""
RSS_TARGET_MB: Mapping[int, float] = {50_000: 250.0}
"""Pods → the issue's bound on the planning process's peak RSS (MB)."""


class BenchmarkFailed(scenario_errors.StormdrillError):
    """A benchmark phase produced a wrong result, so its timing means nothing."""


@dataclasses.dataclass(frozen=True)
class SizeFigures:
    """One cluster size: the timed plans and the planning process's peak memory."""

    pods: int
    nodes: int
    zone_nodes: int
    evicted_pods: int
    planned_mutations: int
    api_calls_per_plan: float
    times_s: tuple[float, ...]
    cpu_s: tuple[float, ...]
    """CPU time of the planning process during each timed plan (all its threads)."""
    server_cpu_s: float
    """CPU time of this process (the sandbox API server's threads) while the child ran,
    divided by the plans it served (the timed ones and the breakdown pass)."""
    peak_rss_mb: float
    breakdown_s: Mapping[str, float]
    seed_s: float

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    def to_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "times_s": list(self.times_s),
            "cpu_s": list(self.cpu_s),
            "breakdown_s": dict(self.breakdown_s),
            "min_s": self.min_s,
            "median_s": self.median_s,
        }


@dataclasses.dataclass(frozen=True)
class Check:
    """`measured <= bound`."""

    name: str
    measured: float
    bound: float
    unit: str

    @property
    def met(self) -> bool:
        return self.measured <= self.bound


@dataclasses.dataclass(frozen=True)
class Results:
    started_at: str
    host: Mapping[str, str | int | None]
    load_after: str
    repeats: int
    sizes: tuple[SizeFigures, ...]

    def checks(self) -> list[Check]:
        found: list[Check] = []
        for fig in self.sizes:
            if fig.pods in TARGETS:
                found.append(
                    Check(
                        f"plan {fig.pods} pods median <= {TARGETS[fig.pods]:g} s",
                        fig.median_s,
                        TARGETS[fig.pods],
                        "s",
                    )
                )
            if fig.pods in RSS_TARGET_MB:
                found.append(
                    Check(
                        f"plan {fig.pods} pods peak RSS <= {RSS_TARGET_MB[fig.pods]:g} MB",
                        fig.peak_rss_mb,
                        RSS_TARGET_MB[fig.pods],
                        "MB",
                    )
                )
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "plan",
            "started_at": self.started_at,
            "host": dict(self.host),
            "load_after": self.load_after,
            "repeats": self.repeats,
            "sizes": [fig.to_json() for fig in self.sizes],
            "targets": [{**dataclasses.asdict(c), "met": c.met} for c in self.checks()],
        }


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def host_info() -> dict[str, str | int | None]:
    """The machine the figures come from; `load` (1/5/15 min) shows whether it was busy."""
    return {
        "load": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


# ---- the sandbox (this process) -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cluster:
    api: server.KubeApiServer
    environment_path: pathlib.Path
    scenario_path: pathlib.Path
    nodes: int
    zone_nodes: int
    zone_pods: int


def _write_yaml(path: pathlib.Path, document: Mapping[str, Any]) -> None:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))


def _scenario(zone: str) -> dict[str, Any]:
    return {
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
                    "selector": {"labels": {ZONE_LABEL: zone}},
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
                    "action": "kubernetes.nodes.cordon",
                    "target": "zone-nodes",
                },
                {
                    "name": "drain-zone",
                    "action": "kubernetes.nodes.drain",
                    "target": "zone-nodes",
                    "with": {"timeout": "2m"},
                },
                {
                    "name": "delete-some",
                    "action": "kubernetes.pods.delete",
                    "target": "bench-pods",
                    "with": {"count": 10},
                    "rollback": "none",
                    "irreversible": "bench pods are not recreated",
                },
                {"name": "hold", "wait": "5m"},
            ],
        },
    }


def seeded_store(*, pods: int, nodes: int) -> store_module.ClusterStore:
    """`nodes` Ready nodes over three zones and `pods` owned bench pods in an opted-in namespace."""
    store = store_module.ClusterStore()
    seed.seed_nodes(store, count=nodes, zones=seed.ZONES)
    seed.ensure_namespace(store, BENCH_NAMESPACE, labels={seed.ALLOW_DRILLS_LABEL: "true"})
    seed.seed_pods(store, namespace=BENCH_NAMESPACE, count=pods, labels=BENCH_LABELS, owned=True)
    return store


def _warm(store: store_module.ClusterStore) -> None:
    """Serialise every node and pod once, as the sandbox does on first listing them (it caches
    each stored object's JSON), so that no timed plan pays the sandbox's own first encoding."""
    for kind in (resources.NODES, resources.PODS):
        for item in store.list_page(resource=kind, copies=False).items:
            store.encoded(item)


@contextlib.contextmanager
def cluster(folder: pathlib.Path, *, pods: int) -> Iterator[Cluster]:
    """A seeded sandbox behind a loopback API server, with an Environment and the scenario."""
    folder.mkdir(parents=True, exist_ok=True)
    nodes = max(len(seed.ZONES), pods // PODS_PER_NODE)
    store = seeded_store(pods=pods, nodes=nodes)
    zone = seed.ZONES[0]
    in_zone = {
        str(n["metadata"]["name"])  # type: ignore[index]
        for n in store.list(resource=resources.NODES, label_selector=f"{ZONE_LABEL}={zone}")
    }
    zone_pods = len(
        [
            p
            for p in store.list(resource=resources.PODS, namespace=BENCH_NAMESPACE)
            if p["spec"]["nodeName"] in in_zone  # type: ignore[index]
        ]
    )
    _warm(store)
    api = server.KubeApiServer(store=store, faults=server.FaultConfig())
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
        scenario = folder / "scenario.yaml"
        _write_yaml(scenario, _scenario(zone))
        yield Cluster(
            api=api,
            environment_path=environment,
            scenario_path=scenario,
            nodes=nodes,
            zone_nodes=len(in_zone),
            zone_pods=zone_pods,
        )
    finally:
        api.stop()


# ---- the planning child ---------------------------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's peak resident set size (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _check(plan: planning.Plan, *, expect: Mapping[str, int]) -> tuple[int, int]:
    """(mutations planned, pods evicted); `BenchmarkFailed` unless the plan is the right one."""
    if plan.refused:
        raise BenchmarkFailed("plan refused: " + "; ".join(v.message for v in plan.refusals))
    zone, pods = plan.selections["zone-nodes"].count, plan.selections["bench-pods"].count
    if zone != expect["zone_nodes"] or pods != expect["pods"]:
        raise BenchmarkFailed(
            f"plan selected {zone} zone nodes (expected {expect['zone_nodes']}) and {pods} pods"
            f" (expected {expect['pods']})"
        )
    drains = [m for s in plan.steps if s.step.name == "drain-zone" for m in s.mutations]
    evicted = 0
    for mutation in drains:
        listed = mutation.pre_state.get("pods")
        evicted += len(listed) if isinstance(listed, list | tuple) else 0
    if evicted != expect["zone_pods"]:
        raise BenchmarkFailed(f"the drain evicts {evicted} pods, expected {expect['zone_pods']}")
    return sum(len(s.mutations) for s in plan.steps), evicted


def _breakdown(eng: engine.Engine, drill: planning.DrillInput) -> dict[str, float]:
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
        spent[f"step {step.name}"] = time.perf_counter() - started
    return spent


def run_child(
    *, scenario: pathlib.Path, environment: pathlib.Path, repeats: int, expect: Mapping[str, int]
) -> dict[str, Any]:
    """Plan `repeats` times (timed) and once more split up; the figures as JSON."""
    client = importlib.import_module("kubernetes.client")
    for api in WARM_APIS:  # the client imports each API (and its models) on first use
        getattr(client, api)
    bound = binding.bind(str(scenario), env=str(environment), sets=[])
    with tempfile.TemporaryDirectory(prefix="stormdrill-plan-") as tmp:
        store = journal.open_store(f"sqlite:///{pathlib.Path(tmp) / 'journal.db'}")
        try:
            eng = engine.Engine(store=store, reg=binding.make_registry())
            times: list[float] = []
            cpu: list[float] = []
            counted = (0, 0)
            for _ in range(repeats):
                started, cpu_started = time.perf_counter(), time.process_time()
                plan = eng.plan(bound.drill)
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
                counted = _check(plan, expect=expect)
                del plan
                gc.collect()  # a plan's leftovers in reference cycles: one plan per CLI run
            breakdown = _breakdown(eng, bound.drill)
        finally:
            store.close()
    return {
        "times_s": times,
        "cpu_s": cpu,
        "planned_mutations": counted[0],
        "evicted_pods": counted[1],
        "breakdown_s": breakdown,
        "peak_rss_mb": _peak_rss_mb(),
    }


# ---- the whole run --------------------------------------------------------------------------


def serve(folder: pathlib.Path, *, pods: int) -> None:
    """The `--serve` process: seed, serve, say where on stdout; on a line on stdin, stop and
    say how many requests it answered and the CPU time it spent answering them."""
    started = time.perf_counter()
    with cluster(folder, pods=pods) as sandbox:
        gc.freeze()  # the seeded store is permanent: never scanned by the collector again
        cpu_ready = time.process_time()
        ready = {
            "scenario": str(sandbox.scenario_path),
            "environment": str(sandbox.environment_path),
            "nodes": sandbox.nodes,
            "expect": {
                "zone_nodes": sandbox.zone_nodes,
                "pods": pods,
                "zone_pods": sandbox.zone_pods,
            },
            "seed_s": time.perf_counter() - started,
        }
        print(json.dumps(ready), flush=True)
        sys.stdin.readline()
        served = {"requests": sandbox.api.request_count, "cpu_s": time.process_time() - cpu_ready}
    print(json.dumps(served), flush=True)


def measure_size(workdir: pathlib.Path, *, pods: int, repeats: int) -> SizeFigures:
    """Seed and serve a cluster of `pods` pods in one process, plan it in a fresh one."""
    me = [sys.executable, "-m", "benchmarks.plan"]
    folder = workdir / f"pods-{pods}"
    with subprocess.Popen(
        [*me, "--serve", str(pods), "--folder", str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as server_process:
        assert server_process.stdin is not None and server_process.stdout is not None
        line = server_process.stdout.readline()
        if not line:
            raise BenchmarkFailed(f"the sandbox for {pods} pods did not start")
        ready = json.loads(line)
        command = [
            *me,
            "--child",
            "--scenario",
            ready["scenario"],
            "--environment",
            ready["environment"],
            "--repeats",
            str(repeats),
            "--expect",
            json.dumps(ready["expect"]),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        server_process.stdin.write("stop\n")
        server_process.stdin.flush()
        served = json.loads(server_process.stdout.readline() or "{}")
    if done.returncode != 0:
        raise BenchmarkFailed(
            f"planning {pods} pods failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    passes = repeats + 1
    return SizeFigures(
        pods=pods,
        nodes=int(ready["nodes"]),
        zone_nodes=int(ready["expect"]["zone_nodes"]),
        evicted_pods=int(figures["evicted_pods"]),
        planned_mutations=int(figures["planned_mutations"]),
        api_calls_per_plan=float(served.get("requests", 0)) / passes,
        times_s=tuple(float(t) for t in figures["times_s"]),
        cpu_s=tuple(float(t) for t in figures["cpu_s"]),
        server_cpu_s=float(served.get("cpu_s", 0.0)) / passes,
        peak_rss_mb=float(figures["peak_rss_mb"]),
        breakdown_s={str(k): float(v) for k, v in figures["breakdown_s"].items()},
        seed_s=float(ready["seed_s"]),
    )


def run_benchmark(
    sizes: Sequence[int], *, workdir: pathlib.Path, repeats: int = DEFAULT_REPEATS
) -> Results:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    host = host_info()
    figures = tuple(measure_size(workdir, pods=n, repeats=repeats) for n in sizes)
    return Results(
        started_at=started, host=host, load_after=load_average(), repeats=repeats, sizes=figures
    )


def write_results(results: Results, *, directory: pathlib.Path) -> pathlib.Path:
    """Write `plan-<date>.json` and overwrite `plan-latest.json`; the dated path."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=2) + "\n"
    dated = directory / f"plan-{datetime.now(UTC):%Y-%m-%d}.json"
    dated.write_text(text)
    (directory / "plan-latest.json").write_text(text)
    return dated


def render_table(results: Results) -> str:
    """The figures as a plain-text table (what `main` prints)."""
    lines = [
        f"Stormdrill plan benchmark ({results.started_at}, {results.host['cpus']} CPUs, load"
        f" {results.host['load']} at the start, {results.load_after} at the end;"
        f" {results.repeats} plans per size)",
        "",
        f"{'pods':>7} {'nodes':>6} {'zone':>5} {'evicted':>8} {'calls':>6} {'min s':>7}"
        f" {'median s':>9} {'cpu s':>6} {'server cpu s':>12} {'peak RSS MB':>12}",
    ]
    for fig in results.sizes:
        lines.append(
            f"{fig.pods:>7} {fig.nodes:>6} {fig.zone_nodes:>5} {fig.evicted_pods:>8}"
            f" {fig.api_calls_per_plan:>6.0f} {fig.min_s:>7.3f} {fig.median_s:>9.3f}"
            f" {statistics.median(fig.cpu_s):>6.3f} {fig.server_cpu_s:>12.3f}"
            f" {fig.peak_rss_mb:>12.1f}"
        )
        lines.append(
            "        " + ", ".join(f"{part} {s:.3f}s" for part, s in fig.breakdown_s.items())
        )
    checks = results.checks()
    if checks:
        lines += ["", "targets:"]
        for check in checks:
            verdict = "met" if check.met else "MISSED"
            lines.append(
                f"  [{verdict:>6}] {check.name}: {check.measured:.3f} {check.unit}"
                f" (bound {check.bound:g} {check.unit})"
            )
    return "\n".join(lines)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        found = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--pods {text!r}: write sizes like 1000,10000") from exc
    if not found or any(n < 1 for n in found):
        raise argparse.ArgumentTypeError(f"--pods {text!r}: give at least one size >= 1")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan", description=__doc__)
    parser.add_argument("--pods", type=_sizes, default=DEFAULT_SIZES, help="e.g. 1000,10000")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_DIR)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--environment", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.child:
        figures = run_child(
            scenario=args.scenario,
            environment=args.environment,
            repeats=args.repeats,
            expect=args.expect,
        )
        print(json.dumps(figures))
        return 0
    if args.serve is not None:
        serve(args.folder, pods=args.serve)
        return 0
    with tempfile.TemporaryDirectory(prefix="stormdrill-bench-plan-") as tmp:
        results = run_benchmark(args.pods, workdir=pathlib.Path(tmp), repeats=args.repeats)
    print(render_table(results))
    written = write_results(results, directory=args.results)
    print(f"\nwrote {written} and {written.parent / 'plan-latest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
