"""Chaos Toolkit peer: the same rollback work done by `chaos run`, timed from its own journal.

`python -m benchmarks.peers.chaostoolkit setup` creates a side virtualenv
(`benchmarks/peers/.venv`, git-ignored) and installs `chaostoolkit` from PyPI into it; the
project's own environment never gets it. `python -m benchmarks.peers.chaostoolkit run --n 1000`
measures one figure; `benchmarks/rollback.py` calls `measure` for each N it runs.

The experiment: N HTTP actions in `method` (one "cordon" PATCH per node) and N HTTP rollbacks
(one "uncordon" PATCH per node, each with a JSON body), against a loopback endpoint that sleeps
`latency_s` before answering each request, as the sandbox API server does. Chaos Toolkit runs
rollbacks one after another (its default; `"background": true` would give each its own
thread). The figure is the rollback phase from its own `journal.json`: the first rollback's
`start` to the last rollback's `end`.

Invariants: a figure is reported only if the run's status is `completed`, every rollback
succeeded, and the endpoint received exactly N rollback requests (one per node) — otherwise
`PeerFailed`; everything listens on 127.0.0.1 with an ephemeral port; all files live in the
given working directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import logging
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Self

from scenarios import errors as scenario_errors

log = logging.getLogger(__name__)

VENV = pathlib.Path(__file__).resolve().parent / ".venv"
PACKAGE = "chaostoolkit"
RUN_TIMEOUT_S = 3600.0


class PeerFailed(scenario_errors.StormdrillError):
    """The peer could not be set up, or its run went wrong, so its timing means nothing."""


@dataclasses.dataclass(frozen=True)
class PeerRun:
    """One `chaos run` of N actions and N rollbacks, timed from its journal."""

    n: int
    latency_s: float
    rollback_s: float
    """First rollback's start to the last rollback's end (journal.json)."""
    method_s: float
    """First action's start to the last action's end (journal.json)."""
    total_s: float
    """The journal's own duration of the whole experiment."""
    rollback_requests: int


@dataclasses.dataclass(frozen=True)
class PeerFigures:
    """Repeated runs of the same N; min and median of the rollback phase."""

    tool: str
    version: str
    n: int
    latency_s: float
    runs: tuple[PeerRun, ...]

    @property
    def min_s(self) -> float:
        return min(run.rollback_s for run in self.runs)

    @property
    def median_s(self) -> float:
        return statistics.median(run.rollback_s for run in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "version": self.version,
            "n": self.n,
            "latency_s": self.latency_s,
            "min_s": self.min_s,
            "median_s": self.median_s,
            "runs": [dataclasses.asdict(run) for run in self.runs],
        }


# ---- the side virtualenv ---------------------------------------------------------------------


def chaos_executable(venv: pathlib.Path = VENV) -> pathlib.Path | None:
    """The `chaos` command of the side venv, or None when it has not been set up."""
    chaos = venv / "bin" / "chaos"
    return chaos if chaos.exists() else None


def setup_hint(venv: pathlib.Path = VENV) -> str:
    """What to run to create the side venv (printed when it is missing)."""
    return (
        f"Chaos Toolkit is not installed in {venv}; create it with "
        "`.venv/bin/python -m benchmarks.peers.chaostoolkit setup`"
    )


def setup(venv: pathlib.Path = VENV, *, requirement: str = PACKAGE) -> pathlib.Path:
    """Create `venv` (if missing) and pip-install `requirement` into it; the `chaos` path."""
    if not (venv / "bin" / "python").exists():
        _check(subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False), "venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    _check(subprocess.run([*pip, requirement], check=False), f"pip install {requirement}")
    chaos = chaos_executable(venv)
    if chaos is None:
        raise PeerFailed(f"pip installed {requirement} into {venv} but {venv}/bin/chaos is missing")
    return chaos


def _check(done: subprocess.CompletedProcess[Any], what: str) -> None:
    if done.returncode != 0:
        raise PeerFailed(f"{what} failed with exit code {done.returncode} (see the output above)")


def version(chaos: pathlib.Path) -> str:
    """`chaos --version`'s version (e.g. "1.19.0")."""
    done = subprocess.run(
        [str(chaos), "--no-log-file", "--version"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise PeerFailed(f"{chaos} --version failed: {done.stderr.strip()}")
    return done.stdout.strip().rsplit(" ", 1)[-1]


# ---- the endpoint ----------------------------------------------------------------------------


class DelayEndpoint:
    """A loopback HTTP endpoint: every request sleeps `latency_s`, then answers 200 JSON.

    It counts requests per first path segment (`action`, `rollback`).
    """

    def __init__(self, *, latency_s: float) -> None:
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_PATCH(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                json.loads(body or b"{}")
                time.sleep(endpoint.latency_s)
                endpoint._count(self.path)
                payload = b'{"kind":"Node","status":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="peer-endpoint", daemon=True
        )

    def _count(self, path: str) -> None:
        segment = path.strip("/").split("/", 1)[0]
        with self._lock:
            self._counts[segment] = self._counts.get(segment, 0) + 1

    def count(self, segment: str) -> int:
        with self._lock:
            return self._counts.get(segment, 0)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# ---- the experiment --------------------------------------------------------------------------


def experiment(*, n: int, base_url: str) -> dict[str, Any]:
    """N HTTP actions in `method`, N HTTP rollbacks (newest first, as a rollback goes)."""

    def call(kind: str, index: int, unschedulable: bool) -> dict[str, Any]:
        return {
            "type": "action",
            "name": f"{'cordon' if unschedulable else 'uncordon'}-node-{index}",
            "provider": {
                "type": "http",
                "url": f"{base_url}/{kind}/nodes/node-{index}",
                "method": "PATCH",
                "headers": {"Content-Type": "application/json"},
                "arguments": {"spec": {"unschedulable": unschedulable}},
                "timeout": 30,
            },
        }

    return {
        "version": "1.0.0",
        "title": f"Cordon {n} nodes, then roll every cordon back",
        "description": "Stormdrill's rollback benchmark, as a Chaos Toolkit experiment.",
        "tags": ["benchmark"],
        "method": [call("action", i, True) for i in range(n)],
        "rollbacks": [call("rollback", i, False) for i in reversed(range(n))],
    }


def _phase_s(activities: Sequence[Mapping[str, Any]]) -> float:
    starts = [datetime.fromisoformat(str(a["start"])) for a in activities]
    ends = [datetime.fromisoformat(str(a["end"])) for a in activities]
    return (max(ends) - min(starts)).total_seconds()


def run_once(
    chaos: pathlib.Path,
    *,
    n: int,
    latency_s: float,
    workdir: pathlib.Path,
    endpoint: DelayEndpoint,
) -> PeerRun:
    """One `chaos run` of the experiment; the phases' wall times from its journal."""
    workdir.mkdir(parents=True, exist_ok=True)
    experiment_path = workdir / "experiment.json"
    journal_path = workdir / "journal.json"
    experiment_path.write_text(json.dumps(experiment(n=n, base_url=endpoint.url)))
    journal_path.unlink(missing_ok=True)
    endpoint.reset()
    with (workdir / "chaostoolkit.log").open("wb") as output:
        done = subprocess.run(
            [
                str(chaos),
                "--no-version-check",
                "--settings",
                str(workdir / "settings.yaml"),
                "--log-file",
                str(workdir / "chaostoolkit-debug.log"),
                "run",
                "--rollback-strategy",
                "always",
                "--journal-path",
                str(journal_path),
                str(experiment_path),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    if not journal_path.exists():
        raise PeerFailed(
            f"chaos run exited {done.returncode} without a journal; see {workdir}/chaostoolkit.log"
        )
    journal = json.loads(journal_path.read_text())
    rollbacks = journal.get("rollbacks") or []
    actions = journal.get("run") or []
    failed = [
        r.get("activity", {}).get("name") for r in rollbacks if r.get("status") != "succeeded"
    ]
    received = endpoint.count("rollback")
    if journal.get("status") != "completed" or failed or len(rollbacks) != n or received != n:
        raise PeerFailed(
            f"chaos run N={n}: status {journal.get('status')!r}, {len(rollbacks)} rollbacks "
            f"journalled ({len(failed)} not succeeded: {failed[:3]}), {received} rollback "
            f"requests received (expected {n}); see {workdir}/chaostoolkit.log"
        )
    return PeerRun(
        n=n,
        latency_s=latency_s,
        rollback_s=_phase_s(rollbacks),
        method_s=_phase_s(actions),
        total_s=float(journal.get("duration") or 0.0),
        rollback_requests=received,
    )


def measure(
    *,
    n: int,
    latency_s: float,
    repeats: int,
    workdir: pathlib.Path,
    venv: pathlib.Path = VENV,
) -> PeerFigures:
    """`repeats` runs of N actions and N rollbacks at `latency_s`; raises if not set up."""
    chaos = chaos_executable(venv)
    if chaos is None:
        raise PeerFailed(setup_hint(venv))
    runs: list[PeerRun] = []
    with DelayEndpoint(latency_s=latency_s) as endpoint:
        for repeat in range(repeats):
            run = run_once(
                chaos,
                n=n,
                latency_s=latency_s,
                workdir=workdir / f"chaostoolkit-{n}-{repeat}",
                endpoint=endpoint,
            )
            log.info("chaos toolkit N=%d run %d: rollbacks %.3fs", n, repeat, run.rollback_s)
            runs.append(run)
    return PeerFigures(
        tool="chaostoolkit", version=version(chaos), n=n, latency_s=latency_s, runs=tuple(runs)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.chaostoolkit", description=__doc__
    )
    commands = parser.add_subparsers(dest="command", required=True)
    set_up = commands.add_parser("setup", help=f"create {VENV} and install chaostoolkit")
    set_up.add_argument("--requirement", default=PACKAGE, help="e.g. chaostoolkit==1.19.0")
    run = commands.add_parser("run", help="time N rollbacks with chaos run")
    run.add_argument("--n", type=int, default=1000)
    run.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    run.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "setup":
        chaos = setup(requirement=args.requirement)
        print(f"installed {PACKAGE} {version(chaos)}: {chaos}")
        return 0
    with tempfile.TemporaryDirectory(prefix="stormdrill-peer-") as tmp:
        figures = measure(
            n=args.n, latency_s=args.latency, repeats=args.repeats, workdir=pathlib.Path(tmp)
        )
    print(
        f"chaostoolkit {figures.version}: N={figures.n} at {figures.latency_s * 1000:g} ms: "
        f"rollback phase min {figures.min_s:.3f}s, median {figures.median_s:.3f}s "
        f"(method phase {figures.runs[0].method_s:.3f}s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
