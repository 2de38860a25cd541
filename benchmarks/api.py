"""API benchmark: `GET /api/v1/runs` and `GET /api/v1/runs/{id}` under 50 concurrent clients.

Run it as `.venv/bin/python -m benchmarks.api` (`--quick`: 5 s of load; `--profile`: also
profile both routes in-process with cProfile and print the functions that cost most).
It prints the figures and writes `benchmarks/results/api-<date>.json` and `api-latest.json`.

What it does:
- seeds a fresh SQLite store with `--runs` runs (default 1,000: a mix of states, verdicts,
  scenarios and environments, each with a short timeline and one journal entry), written
  through the journal's own methods;
- starts `stormdrill serve` in a subprocess (`python -m drills.cli serve`, uvicorn, one
  process; `--server-log-level warning`, so no access log), with recovery and the run
  driver off (`STORMDRILL_RECOVER_ON_START`/`_DRIVE_RUNS=false`: nothing to drive), and
  authenticates with a real viewer token (`drills.service.tokens.create`); without that
  module it serves `create_app` from this module with the principal overridden (`--open`);
- measures the server's RSS idle (after one request of each route, so imports are done)
  and its peak under load (`/proc/<pid>/status` VmRSS, sampled every 0.2 s; psutil when
  installed);
- runs `--clients` closed-loop clients for `--duration` seconds (after `warmup_s` unmeasured),
  each on its own keep-alive connection alternating `GET /api/v1/runs` and
  `GET /api/v1/runs/{id}` of a random seeded run: it writes the next request only once the
  whole answer of the last one is read. Latency is measured in the client per request,
  from writing the request to having read its whole body, so it includes the client's own
  scheduling (client and server share the machine's CPUs); a non-200 answer, an unreadable
  one, a dropped connection or 30 s without an answer is a failure (counted per route);
- the client is one asyncio process on raw streams, with every request's bytes built
  before the load and a minimal HTTP/1.1 response reader (status, `Content-Length` or
  `chunked`, `Connection: close`), so that it costs the shared CPUs little: an httpx
  `AsyncClient` per client (what this benchmark used first) spent most of a core on
  itself at ~100 requests/s, which the server's figures then paid for. It reports its own
  CPU (`client_cpu_pct`) beside the server's (`server_cpu_pct`, all threads, from
  `/proc/<pid>/stat`) and the server's CPU per request answered, warm-up included
  (`server_cpu_ms_per_request`): on a shared machine that is the steadier figure.

Targets (issue 13): p99 ≤ 50 ms, RSS ≤ 150 MB. A run in which any request fails (not 200)
reports the failures and does not claim the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import json
import os
import pathlib
import platform
import pstats
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx

from drills import settings as settings_mod
from drills import store as store_mod
from orchestrator import journal, mutations, records, states

TARGET_P99_MS = 50.0
TARGET_RSS_MB = 150.0
LIST_PATH = "/api/v1/runs"
SHOW_PATH = "/api/v1/runs/{id}"
FLOOR_PATH = "/healthz"
STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
RESULTS = pathlib.Path(__file__).parent / "results"

_SCENARIOS = ("az-failure", "key-person-loss", "dependency-outage", "region-failover")
_ENVIRONMENTS = ("sandbox", "staging", "production")
_ENDINGS: tuple[tuple[states.RunState, states.Verdict | None], ...] = (
    (states.RunState.COMPLETED, states.Verdict.HELD),
    (states.RunState.COMPLETED, states.Verdict.HELD),
    (states.RunState.COMPLETED, states.Verdict.DEVIATED),
    (states.RunState.ABORTED, states.Verdict.INCONCLUSIVE),
    (states.RunState.FAILED, None),
    (states.RunState.ROLLBACK_FAILED, None),
    (states.RunState.PENDING, None),
)


@dataclasses.dataclass(frozen=True)
class Config:
    runs: int = 1000
    clients: int = 50
    duration_s: float = 20.0
    warmup_s: float = 2.0
    events_per_run: int = 6
    workers: int = 1
    """`serve --workers`: uvicorn worker processes (CPU and RSS are then the whole tree's)."""
    floor: bool = False
    """`--floor`: every request is `GET /healthz` (no token, no store, a constant answer):
    what the same server, clients and machine do when the route costs nothing, i.e. the
    latency floor of one process at this concurrency. Claims no target."""


@dataclasses.dataclass(frozen=True)
class RouteFigures:
    route: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclasses.dataclass(frozen=True)
class Results:
    started_at: str
    host: dict[str, object]
    config: Config
    auth: str
    """`token` (a real viewer token) or `override` (the principal set in the subprocess)."""
    seed_s: float
    routes: tuple[RouteFigures, ...]
    total_rps: float
    rss_idle_mb: float
    rss_peak_mb: float
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    failures: tuple[str, ...]
    """The first few failed requests (status and body start)."""
    client_cpu_pct: float = 0.0
    """The load generator's CPU over the load (100 = one core): it shares the machine."""
    server_cpu_pct: float = 0.0
    """The server process's CPU over the load (all its threads; 100 = one core)."""
    server_cpu_ms_per_request: float = 0.0

    @property
    def targets(self) -> dict[str, bool]:
        if self.config.floor:
            return {}  # a floor run measures the server, not the routes the targets are for
        clean = not self.failures
        return {
            "p99<=50ms": clean and all(r.p99_ms <= TARGET_P99_MS for r in self.routes),
            "rss<=150MB": clean and self.rss_peak_mb <= TARGET_RSS_MB,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark": "api",
            **dataclasses.asdict(self),
            "targets": self.targets,
            "target_values": {"p99_ms": TARGET_P99_MS, "rss_mb": TARGET_RSS_MB},
        }


# ---- seeding ----------------------------------------------------------------------------


def seed(store: journal.Journal, *, runs: int, events_per_run: int) -> list[states.RunId]:
    """`runs` runs with timelines and one journal entry each, through the journal's methods."""
    rng = random.Random(13)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made: list[states.RunId] = []
    for index in range(runs):
        at = start + timedelta(minutes=7 * index)
        run_id = states.RunId(f"{at:%Y%m%dT%H%M%SZ}-{index:08x}")
        state, verdict = _ENDINGS[index % len(_ENDINGS)]
        run = states.new_run(
            id=run_id,
            scenario=_SCENARIOS[index % len(_SCENARIOS)],
            environment=_ENVIRONMENTS[index % len(_ENVIRONMENTS)],
            environment_source=f"environments/{_ENVIRONMENTS[index % len(_ENVIRONMENTS)]}.yaml",
            owner=journal.UNCLAIMED,
            at=at,
            record=records.RunRecord(
                scenario_source=f"scenarios/{_SCENARIOS[index % len(_SCENARIOS)]}.yaml",
                parameters={"soak": "5m", "zone": f"zone-{index % 3}"},
                time_scale=1.0,
            ),
        )
        store.create_run(run)
        entry = store.record_intent(
            run_id,
            mutations.PlannedMutation(
                step="inject",
                target=mutations.TargetRef(
                    provider="kubernetes", kind="node", name=f"node-{rng.randrange(500)}"
                ),
                action="kubernetes.nodes.cordon",
                params={},
                pre_state={"unschedulable": False},
                undo=mutations.UndoToken(action="kubernetes.nodes.cordon", data={}),
            ),
        )
        if state is not states.RunState.PENDING:
            store.mark_applied(entry.seq)
            store.mark_reverted(entry.seq)
            ended = dataclasses.replace(
                run,
                state=state,
                verdict=verdict,
                reason=f"{state.value}: seeded",
                updated_at=at + timedelta(minutes=5),
                finished_at=at + timedelta(minutes=5),
            )
            store.save_run(ended, expected_state=states.RunState.PENDING)
        store.append_events(
            run_id,
            [
                journal.NewEvent(
                    kind="state",
                    message=f"step {n}",
                    data={"state": "planning" if n == 0 else "observing"},
                    at=at + timedelta(seconds=n),
                )
                for n in range(events_per_run)
            ],
        )
        made.append(run_id)
    return made


# ---- the server -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(workdir: pathlib.Path) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=workdir / "data",
        database_url=f"sqlite:///{workdir / 'data' / 'stormdrill.db'}",
        reports_dir=workdir / "reports",
        killswitch_file=workdir / "killswitch",
    )


def serve(workdir: pathlib.Path, *, port: int, open_access: bool) -> None:
    """The API over `workdir`'s store, as `stormdrill serve` runs it (the subprocess' body)."""
    import uvicorn

    from drills.api import app as app_mod
    from drills.api import config as api_config
    from drills.api import deps
    from drills.service import auth

    app = app_mod.create_app(
        _config(workdir), api_config.ApiSettings(drive_runs=False, recover_on_start=False)
    )
    if open_access:
        viewer = auth.Principal(name="benchmark", roles=frozenset({auth.Role.VIEWER}))
        app.dependency_overrides[deps.get_principal] = lambda: viewer
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _viewer_token(store: journal.Journal) -> str | None:
    try:
        from drills.service import auth, tokens
    except ImportError:
        return None
    issued = tokens.create(store, role=auth.Role.VIEWER, created_by="benchmark", name="bench")
    return issued.secret


def _server_command(
    workdir: pathlib.Path, *, port: int, open_access: bool, workers: int = 1
) -> tuple[list[str], dict[str, str]]:
    """`stormdrill serve` itself (a real token), else this module's `serve` (`--open`)."""
    config = _config(workdir)
    env = {
        **os.environ,
        "STORMDRILL_DATABASE_URL": config.database_url,
        "STORMDRILL_DATA_DIR": str(config.data_dir),
        "STORMDRILL_REPORTS_DIR": str(config.reports_dir),
        "STORMDRILL_DRIVE_RUNS": "false",
        "STORMDRILL_RECOVER_ON_START": "false",
    }
    if open_access:
        command = [sys.executable, "-m", "benchmarks.api", "--serve", str(workdir)]
        return [*command, "--port", str(port), "--open"], env
    serve_command = [sys.executable, "-m", "drills.cli", "serve", "--host", "127.0.0.1"]
    flags = ["--port", str(port), "--server-log-level", "warning", "--workers", str(workers)]
    return [*serve_command, *flags], env


@contextlib.contextmanager
def _server(
    workdir: pathlib.Path, *, open_access: bool, workers: int = 1
) -> Iterator[tuple[str, int]]:
    """The API subprocess; yields (base URL, pid) once it answers."""
    port = _free_port()
    command, env = _server_command(workdir, port=port, open_access=open_access, workers=workers)
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=pathlib.Path(__file__).parent.parent,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the API exited with {process.returncode}: "
                    + (workdir / "server.log").read_text()[-2000:]
                )
            try:
                if httpx.get(f"{base}/openapi.json", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer on {base} in {STARTUP_TIMEOUT_S}s")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants now (`/proc/<pid>/task/*/children`): uvicorn's workers."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in pathlib.Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time `pid` and its live descendants used so far, user and system, all threads
    (`/proc/<pid>/stat`; a descendant that ended is not counted)."""
    total = 0.0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = pathlib.Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pid: int) -> float:
    """The resident set size of `pid` and its descendants, summed, in MiB (each worker
    process counts in full: they share almost nothing, uvicorn spawns them)."""
    return sum(_rss_mb_of(each) for each in process_tree(pid))


def _rss_mb_of(pid: int) -> float:
    """The resident set size of `pid` in MiB (psutil if installed, else /proc)."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS in /proc/{pid}/status") from None
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


class _RssSampler:
    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self._pid, self._interval = pid, interval_s
        self._stop = threading.Event()
        self.peak = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, rss_mb(self._pid))
            self._stop.wait(self._interval)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- load -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Samples:
    latencies: dict[str, list[float]]
    failures: list[str]
    count_failures: dict[str, int]
    answered: int = 0
    """Every request with an answer, warm-up included (what the server's CPU paid for)."""


class ResponseUnreadable(Exception):
    """The server's answer is not an HTTP/1.1 response this client can read."""


def request_bytes(path: str, *, host: str, headers: dict[str, str]) -> bytes:
    """A whole `GET path` request, built once and written as is for every repeat."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One response off a keep-alive connection: (status, body, server will close).

    The minimum of HTTP/1.1 a JSON API answers with: a status line, headers, and a body of
    `Content-Length` bytes or `chunked`; `ResponseUnreadable` for anything else.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ResponseUnreadable(f"status line {status_line[:80]!r}")
    length: int | None = None
    chunked = closing = False
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            closing = b"close" in value.lower()
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await _trailers(reader)
                return int(parts[1]), bytes(body), closing
            body += await reader.readexactly(size + 2)
            del body[-2:]
    if length is None:
        raise ResponseUnreadable("a response with neither Content-Length nor chunked")
    return int(parts[1]), await reader.readexactly(length), closing


async def _trailers(reader: asyncio.StreamReader) -> None:
    while (await reader.readuntil(b"\r\n")) != b"\r\n":
        pass


async def _client(
    index: int,
    *,
    address: tuple[str, int],
    list_request: bytes,
    show_requests: Sequence[tuple[str, bytes]],
    until: float,
    measure_from: float,
    samples: _Samples,
) -> None:
    """One closed-loop client on one keep-alive connection: send, read the whole answer,
    send the next; a failed request costs its connection (the next one opens a new one)."""
    rng = random.Random(index)
    turn = index % 2
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while time.monotonic() < until:
            route = (LIST_PATH, SHOW_PATH)[turn]
            turn ^= 1
            if route == LIST_PATH:
                path, request = LIST_PATH, list_request
            else:
                path, request = rng.choice(show_requests)
            began = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    if connection is None:
                        connection = await asyncio.open_connection(*address)
                    reader, writer = connection
                    writer.write(request)
                    status, body, closing = await read_response(reader)
                ok, what, detail = status == 200, f"{status} {path}", ""
                if not ok:
                    detail = body[:200].decode("utf-8", "replace")
                if closing:
                    writer.close()
                    connection = None
            except (OSError, EOFError, TimeoutError, ValueError, ResponseUnreadable) as exc:
                ok, what, detail = False, f"{type(exc).__name__} {path}", str(exc)[:200]
                if connection is not None:
                    connection[1].close()
                    connection = None
            elapsed_ms = (time.perf_counter() - began) * 1000
            samples.answered += 1
            if time.monotonic() < measure_from:
                continue
            if ok:
                samples.latencies[route].append(elapsed_ms)
            else:
                samples.count_failures[route] += 1
                if len(samples.failures) < 5:
                    samples.failures.append(f"{what}: {detail}")
    finally:
        if connection is not None:
            connection[1].close()


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


@dataclasses.dataclass(frozen=True)
class LoadFigures:
    routes: tuple[RouteFigures, ...]
    total_rps: float
    failures: tuple[str, ...]
    client_cpu_pct: float
    """The load generator's own CPU over the load (100 = one core busy)."""
    answered: int
    """Requests answered, warm-up included."""


def load(
    base: str, *, headers: dict[str, str], ids: Sequence[states.RunId], config: Config
) -> LoadFigures:
    """Drive the clients; the figures per route, requests/s overall, the first failures."""
    samples = _Samples(
        latencies={LIST_PATH: [], SHOW_PATH: []},
        failures=[],
        count_failures={LIST_PATH: 0, SHOW_PATH: 0},
    )
    url = httpx.URL(base)
    host = url.host
    port = url.port or 80
    authority = f"{host}:{port}"
    list_request = request_bytes(LIST_PATH, host=authority, headers=headers)
    show_requests = [
        (
            f"/api/v1/runs/{run_id}",
            request_bytes(f"/api/v1/runs/{run_id}", host=authority, headers=headers),
        )
        for run_id in ids
    ]
    if config.floor:
        list_request = request_bytes(FLOOR_PATH, host=authority, headers={})
        show_requests = [(FLOOR_PATH, list_request)]

    async def everyone() -> None:
        now = time.monotonic()
        measure_from = now + config.warmup_s
        until = measure_from + config.duration_s
        await asyncio.gather(
            *(
                _client(
                    i,
                    address=(host, port),
                    list_request=list_request,
                    show_requests=show_requests,
                    until=until,
                    measure_from=measure_from,
                    samples=samples,
                )
                for i in range(config.clients)
            )
        )

    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(everyone())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    figures = tuple(
        RouteFigures(
            route=route,
            requests=len(values),
            failures=samples.count_failures[route],
            rps=len(values) / config.duration_s,
            p50_ms=round(_percentile(values, 50), 2),
            p99_ms=round(_percentile(values, 99), 2),
            max_ms=round(max(values, default=0.0), 2),
        )
        for route, values in samples.latencies.items()
    )
    total = sum(f.requests for f in figures) / config.duration_s
    return LoadFigures(
        routes=figures,
        total_rps=total,
        failures=tuple(samples.failures),
        client_cpu_pct=round(100 * cpu / wall, 1) if wall else 0.0,
        answered=samples.answered,
    )


# ---- the benchmark ------------------------------------------------------------------------


def run_benchmark(config: Config, *, workdir: pathlib.Path) -> Results:
    """Seed, serve, measure idle, load, measure under load; the figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    began = time.perf_counter()
    with store_mod.open_store(_config(workdir)) as store:
        ids = seed(store, runs=config.runs, events_per_run=config.events_per_run)
        token = _viewer_token(store)
    seed_s = time.perf_counter() - began
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with _server(workdir, open_access=token is None, workers=config.workers) as (base, pid):
        for path in (LIST_PATH, f"/api/v1/runs/{ids[0]}"):
            answer = httpx.get(f"{base}{path}", headers=headers, timeout=30.0)
            if answer.status_code != 200:
                raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:500]}")
        time.sleep(0.5)
        idle = rss_mb(pid)
        server_cpu = cpu_seconds(pid)
        with _RssSampler(pid) as sampler:
            began_load = time.perf_counter()
            figures = load(base, headers=headers, ids=ids, config=config)
            load_wall = time.perf_counter() - began_load
        server_cpu = cpu_seconds(pid) - server_cpu
        peak = max(sampler.peak, idle)
    return Results(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        host={"cpus": os.cpu_count(), "python": platform.python_version()},
        config=config,
        auth="token" if token else "override",
        seed_s=round(seed_s, 2),
        routes=figures.routes,
        total_rps=round(figures.total_rps, 1),
        rss_idle_mb=round(idle, 1),
        rss_peak_mb=round(peak, 1),
        load_start=load_start,
        load_end=os.getloadavg(),
        failures=figures.failures,
        client_cpu_pct=figures.client_cpu_pct,
        server_cpu_pct=round(100 * server_cpu / load_wall, 1),
        server_cpu_ms_per_request=(
            round(1000 * server_cpu / figures.answered, 3) if figures.answered else 0.0
        ),
    )


def profile_routes(config: Config, *, workdir: pathlib.Path, requests: int = 20) -> str:
    """cProfile of what each route does (the service calls and views, in-process).

    The routes are thin: `GET /runs` is `runs.list_runs` + `RunPageView`, `GET /runs/{id}`
    is `runs.show_named` (resolve and show) + its view; profiling those calls directly shows the
    server's own cost without the HTTP machinery (which a TestClient runs in another thread,
    out of the profiler's sight).
    """
    from drills.service import runs as run_service
    from drills.service import views

    workdir.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    with store_mod.open_store(_config(workdir)) as store:
        ids = seed(store, runs=config.runs, events_per_run=config.events_per_run)

        def listing() -> object:
            page = run_service.list_runs(store, limit=20)
            return views.RunPageView(
                runs=[views.RunView.from_run(r) for r in page.runs], next_cursor=page.next_cursor
            )

        def showing() -> object:
            return run_service.show_named(store, ids[1]).view()

        for route, call in ((LIST_PATH, listing), (SHOW_PATH, showing)):
            call()
            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.enable()
            for _ in range(requests):
                call()
            profiler.disable()
            each_ms = (time.perf_counter() - began) * 1000 / requests
            out.write(f"\n== {route}: {requests} calls, {each_ms:.1f} ms each (profiled) ==\n")
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(22)
    return out.getvalue()


def write_results(results: Results, *, directory: pathlib.Path) -> pathlib.Path:
    """Write `api-<date>.json` and overwrite `api-latest.json`; the dated path. A floor or
    several-worker run is a variant (`api-floor-…`, `api-w2-…`) and leaves `latest` alone."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=2) + "\n"
    variant = ("floor-" if results.config.floor else "") + (
        f"w{results.config.workers}-" if results.config.workers != 1 else ""
    )
    dated = directory / f"api-{variant}{datetime.now(UTC):%Y-%m-%d}.json"
    dated.write_text(text)
    if not variant:
        (directory / "api-latest.json").write_text(text)
    return dated


def render(results: Results) -> str:
    lines = [
        f"Stormdrill API benchmark ({results.started_at}, {results.host['cpus']} CPUs, "
        f"{results.config.runs} runs, {results.config.clients} clients, "
        f"{results.config.duration_s:g} s, {results.config.workers} worker(s),"
        f" auth: {results.auth})",
        *(
            [f"FLOOR: every request below is GET {FLOOR_PATH} (no token, no store)"]
            if results.config.floor
            else []
        ),
        "load {:.2f} {:.2f} {:.2f} at the start, ".format(*results.load_start)
        + "{:.2f} {:.2f} {:.2f} at the end".format(*results.load_end),
        "",
        f"{'route':<22} {'requests':>8} {'fail':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8}",
    ]
    for r in results.routes:
        lines.append(
            f"{r.route:<22} {r.requests:>8} {r.failures:>5} {r.rps:>8.1f} {r.p50_ms:>8.1f} "
            f"{r.p99_ms:>8.1f} {r.max_ms:>8.1f}"
        )
    lines += [
        f"{'total':<22} {'':>8} {'':>5} {results.total_rps:>8.1f}",
        "",
        f"RSS idle {results.rss_idle_mb:.1f} MiB, peak under load {results.rss_peak_mb:.1f} MiB",
        f"CPU under load: server {results.server_cpu_pct:.0f}% "
        f"({results.server_cpu_ms_per_request:.2f} ms a request), "
        f"load generator {results.client_cpu_pct:.0f}% (100% = one core)",
        "targets: "
        + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in results.targets.items()),
    ]
    lines += [f"failure: {f}" for f in results.failures]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=Config.runs)
    parser.add_argument("--clients", type=int, default=Config.clients)
    parser.add_argument("--duration", type=float, default=Config.duration_s)
    parser.add_argument("--quick", action="store_true", help="5 s of load instead of 20 s.")
    parser.add_argument("--workers", type=int, default=Config.workers, help="serve --workers.")
    parser.add_argument(
        "--floor", action="store_true", help=f"Every request GET {FLOOR_PATH}: the floor."
    )
    parser.add_argument("--profile", action="store_true", help="Also cProfile both routes.")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="Keep the working directory.")
    parser.add_argument("--serve", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--open", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, port=args.port, open_access=args.open)
        return
    config = Config(
        runs=args.runs,
        clients=args.clients,
        duration_s=5.0 if args.quick else args.duration,
        workers=args.workers,
        floor=args.floor,
    )
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="stormdrill-api-bench-"))
    try:
        results = run_benchmark(config, workdir=workdir / "load")
        print(render(results))
        print(f"written: {write_results(results, directory=args.results)}")
        if args.profile:
            print(profile_routes(config, workdir=workdir / "profile"))
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
