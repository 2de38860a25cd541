"""Journal benchmark: latency of one durable journal append, p50 and p99, SQLite and PostgreSQL.

Run it as `.venv/bin/python -m benchmarks.journal [--appends 2000] [--postgres URL | --no-postgres]
[--results DIR]`. It prints a table and writes `benchmarks/results/journal-<date>.json` and
`journal-latest.json`.

What it measures: for each backend, one run and `appends` mutations on it, each journalled as
the engine does, one call after another on one thread: `record_intent` (before the mutation),
`mark_applied` (after it) and `mark_reverted` (after its undo). Each call returns only once its
record is durable (SQLite: a file journal in WAL mode with synchronous=FULL, as `open_store`
sets it; PostgreSQL: a committed transaction), so each timed call is one durable write. The
figures are the p50 and p99 of each call's wall time, per call and over all of them.

Invariants: the SQLite file lives in a temporary directory; on PostgreSQL the tables live in a
schema of their own (`stormdrill_bench_<random>`, through the connection's search_path),
dropped at the end even on failure; a figure is reported only if every entry ended reverted
with nothing left to undo (`BenchmarkFailed` otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import pathlib
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from orchestrator import journal, mutations, states
from scenarios import errors as scenario_errors

log = logging.getLogger(__name__)

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OPERATIONS: tuple[str, ...] = ("record_intent", "mark_applied", "mark_reverted")
P50_TARGET_S = 0.005
P99_TARGET_S = 0.008


class BenchmarkFailed(scenario_errors.StormdrillError):
    """The journal benchmark produced a wrong result, so its timing means nothing."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank: the smallest value with that share at or below)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = min(max(1, math.ceil(fraction * len(ordered))), len(ordered))
    return ordered[rank - 1]


@dataclasses.dataclass(frozen=True)
class Latencies:
    """Wall times (seconds) of one kind of append."""

    operation: str
    samples_s: tuple[float, ...]

    @property
    def p50_s(self) -> float:
        return percentile(self.samples_s, 0.50)

    @property
    def p99_s(self) -> float:
        return percentile(self.samples_s, 0.99)

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "count": len(self.samples_s),
            "p50_s": self.p50_s,
            "p99_s": self.p99_s,
            "mean_s": statistics.fmean(self.samples_s),
            "max_s": max(self.samples_s),
        }


@dataclasses.dataclass(frozen=True)
class BackendFigures:
    """Every append on one backend."""

    backend: str
    url: str
    """The URL with any password hidden."""
    appends: int
    operations: tuple[Latencies, ...]
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]

    @property
    def all(self) -> Latencies:
        return Latencies(
            operation="all", samples_s=tuple(s for op in self.operations for s in op.samples_s)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "url": self.url,
            "appends": self.appends,
            "operations": [op.to_json() for op in (*self.operations, self.all)],
            "load_start": list(self.load_start),
            "load_end": list(self.load_end),
        }


@dataclasses.dataclass(frozen=True)
class Results:
    started_at: str
    host: dict[str, str | int | None]
    backends: tuple[BackendFigures, ...]
    skipped: tuple[str, ...]

    def checks(self) -> list[dict[str, Any]]:
        """The issue's targets on all appends of each backend."""
        found: list[dict[str, Any]] = []
        for fig in self.backends:
            every = fig.all
            for name, measured, bound in (
                ("p50", every.p50_s, P50_TARGET_S),
                ("p99", every.p99_s, P99_TARGET_S),
            ):
                found.append(
                    {
                        "name": f"journal append {name} on {fig.backend} <= {bound * 1000:g} ms",
                        "measured": measured,
                        "bound": bound,
                        "unit": "s",
                        "met": measured <= bound,
                    }
                )
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "journal",
            "started_at": self.started_at,
            "host": self.host,
            "backends": [fig.to_json() for fig in self.backends],
            "skipped": list(self.skipped),
            "targets": self.checks(),
        }


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (one, five, fifteen)


def _mutation(i: int) -> mutations.PlannedMutation:
    target = mutations.TargetRef(provider="kubernetes", kind="node", name=f"node-{i:05d}")
    return mutations.PlannedMutation(
        step="cordon",
        target=target,
        action="kubernetes.nodes.cordon",
        params={},
        pre_state={"unschedulable": False},
        undo=mutations.UndoToken(
            action="kubernetes.nodes.cordon", data={"node": target.name, "unschedulable": False}
        ),
    )


def _new_run(store: journal.Journal) -> states.Run:
    now = datetime.now(UTC)
    return store.create_run(
        states.new_run(
            id=states.new_run_id(now),
            scenario="bench-journal",
            environment="bench",
            environment_source="benchmarks/journal.py",
            owner=states.Owner.current(),
            at=now,
        )
    )


def measure_backend(backend: str, url: str, *, appends: int) -> BackendFigures:
    """`appends` intent/applied/reverted triples on the journal at `url`, each call timed."""
    store = journal.open_store(url)
    load_start = _load()
    samples: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    try:
        run = _new_run(store)
        clock = time.perf_counter
        for i in range(appends):
            mutation = _mutation(i)
            started = clock()
            entry = store.record_intent(run.id, mutation)
            applied_at = clock()
            store.mark_applied(entry.seq, undo=mutation.undo)
            reverted_at = clock()
            store.mark_reverted(entry.seq)
            ended = clock()
            samples["record_intent"].append(applied_at - started)
            samples["mark_applied"].append(reverted_at - applied_at)
            samples["mark_reverted"].append(ended - reverted_at)
        entries = store.entries(run.id)
        not_reverted = [e for e in entries if e.state is not mutations.EntryState.REVERTED]
        if len(entries) != appends or not_reverted or store.undo_plan(run.id):
            raise BenchmarkFailed(
                f"journal on {backend}: {len(entries)} entries (expected {appends}), "
                f"{len(not_reverted)} not reverted"
            )
        display = sa.make_url(url).render_as_string(hide_password=True)
    finally:
        store.close()
    return BackendFigures(
        backend=backend,
        url=display,
        appends=appends,
        operations=tuple(Latencies(op, tuple(samples[op])) for op in OPERATIONS),
        load_start=load_start,
        load_end=_load(),
    )


@contextlib.contextmanager
def private_schema(admin_url: str) -> Iterator[str]:
    """A journal URL whose tables live in a fresh schema of `admin_url`, dropped afterwards."""
    schema = f"stormdrill_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(journal.normalise_url(admin_url))
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            yield (
                sa.make_url(journal.normalise_url(admin_url))
                .update_query_dict({"options": f"-csearch_path={schema}"})
                .render_as_string(hide_password=False)
            )
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.dispose()


def run_benchmark(*, workdir: pathlib.Path, appends: int, postgres_url: str | None) -> Results:
    """SQLite (a file in `workdir`), then PostgreSQL unless `postgres_url` is None."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    host: dict[str, str | int | None] = {
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
    }
    figures = [measure_backend("sqlite", f"sqlite:///{workdir / 'journal.db'}", appends=appends)]
    skipped: list[str] = []
    if postgres_url is None:
        skipped.append("postgresql (--no-postgres)")
    else:
        with private_schema(postgres_url) as url:
            figures.append(measure_backend("postgresql", url, appends=appends))
    return Results(started_at=started, host=host, backends=tuple(figures), skipped=tuple(skipped))


def render_table(results: Results) -> str:
    lines = [
        f"Stormdrill journal append latency ({results.started_at}, {results.host['cpus']} CPUs, "
        f"load {results.host['load']} at the start)",
        "",
        f"{'backend':<11} {'call':<14} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for fig in results.backends:
        for op in (*fig.operations, fig.all):
            lines.append(
                f"{fig.backend:<11} {op.operation:<14} {len(op.samples_s):>6} "
                f"{op.p50_s * 1000:>8.2f} {op.p99_s * 1000:>8.2f} {max(op.samples_s) * 1000:>8.2f}"
            )
    for note in results.skipped:
        lines.append(f"skipped: {note}")
    lines.append("")
    lines.append("targets:")
    for check in results.checks():
        verdict = "met" if check["met"] else "MISSED"
        lines.append(
            f"  [{verdict:>6}] {check['name']}: {check['measured'] * 1000:.2f} ms "
            f"(bound {check['bound'] * 1000:g} ms)"
        )
    return "\n".join(lines)


def write_results(results: Results, *, directory: pathlib.Path) -> pathlib.Path:
    """Write `journal-<date>.json` and overwrite `journal-latest.json`; the dated path."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=2) + "\n"
    dated = directory / f"journal-{datetime.now(UTC):%Y-%m-%d}.json"
    dated.write_text(text)
    (directory / "journal-latest.json").write_text(text)
    return dated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.journal", description=__doc__)
    parser.add_argument("--appends", type=int, default=2000, help="mutations per backend")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES_URL, help="PostgreSQL URL")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="stormdrill-bench-journal-") as tmp:
        results = run_benchmark(
            workdir=pathlib.Path(tmp),
            appends=args.appends,
            postgres_url=None if args.no_postgres else args.postgres,
        )
    print(render_table(results))
    written = write_results(results, directory=args.results)
    print(f"\nwrote {written} and {written.parent / 'journal-latest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
