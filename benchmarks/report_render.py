"""Benchmark: build and render the post-mortem of a run with many events.

Usage: `.venv/bin/python benchmarks/report_render.py [--events 10000]`. Builds the run in
a tmp SQLite journal (probe samples flapping, like a long drill), then times reading it,
building the post-mortem, rendering Markdown/HTML/JSON and linting the Markdown. Prints
the times; asserts nothing (timing lives here, not in tests).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from orchestrator import journal, records, states
from reports import evidence, linting, postmortem, rendering


def build_run(store: journal.Journal, events: int) -> states.RunId:
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    run = states.new_run(
        id=states.RunId("bench"),
        scenario="bench",
        environment="staging",
        environment_source="staging.yaml",
        owner=states.Owner(host="bench", pid=1, token="t"),
        at=start,
        record=records.RunRecord(
            time_scale=1.0, objectives=records.Objectives(t0=start, achieved_rto_s=42.0)
        ),
    )
    store.create_run(run)
    for i in range(events):
        ok = (i // 50) % 4 != 3
        store.append_event(
            run.id,
            kind="probe",
            message=f"probe-{i % 5} {'ok' if ok else 'FAILED'}",
            data={"probe": f"probe-{i % 5}", "ok": ok, "phase": "during"},
        )
    return run.id


def main(events: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        clock_state = [dt.datetime(2025, 1, 1, tzinfo=dt.UTC)]

        def clock() -> dt.datetime:
            clock_state[0] += dt.timedelta(milliseconds=100)
            return clock_state[0]

        store = journal.open_store(f"sqlite:///{Path(folder) / 'bench.db'}", clock=clock)
        run_id = build_run(store, events)
        began = time.perf_counter()
        loaded = evidence.load(store, run_id)
        timings["read"] = time.perf_counter() - began
        began = time.perf_counter()
        report = postmortem.build_postmortem(loaded, None, cmdb=None)
        timings["build"] = time.perf_counter() - began
        for fmt in rendering.Format:
            began = time.perf_counter()
            text = rendering.render(report, fmt)
            timings[f"render {fmt.value}"] = time.perf_counter() - began
            if fmt is rendering.Format.MARKDOWN:
                began = time.perf_counter()
                linting.lint(text)
                timings["lint md"] = time.perf_counter() - began
        store.close()
    return timings


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    for name, seconds in main(args.events).items():
        print(f"{name:>12}: {seconds * 1000:8.1f} ms ({args.events} events)")
