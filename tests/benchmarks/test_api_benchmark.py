"""Smoke test of benchmarks/api.py: the smallest configuration runs and its figures add up.

Only the shape and correctness of the figures are asserted (every request answered 200,
both routes measured, RSS read from the server process), never timing.
"""

from __future__ import annotations

import json
import os
import pathlib

from benchmarks import api
from drills import store as store_mod
from orchestrator import states


def test_the_smallest_api_benchmark_serves_both_routes_without_a_failure(
    tmp_path: pathlib.Path,
) -> None:
    config = api.Config(runs=12, clients=2, duration_s=0.5, warmup_s=0.0, events_per_run=2)

    results = api.run_benchmark(config, workdir=tmp_path / "work")

    assert results.failures == ()
    assert [r.route for r in results.routes] == [api.LIST_PATH, api.SHOW_PATH]
    for route in results.routes:
        assert route.requests > 0 and route.failures == 0
        assert 0 < route.p50_ms <= route.p99_ms <= route.max_ms
    assert results.total_rps > 0
    assert 0 < results.rss_idle_mb <= results.rss_peak_mb
    assert results.auth == "token"  # a real viewer token, checked by the server


def test_seeding_writes_the_runs_with_their_timelines_and_journals(
    tmp_path: pathlib.Path,
) -> None:
    with store_mod.open_store(api._config(tmp_path)) as store:
        ids = api.seed(store, runs=14, events_per_run=3)
        stored = store.list_runs(limit=None)
        pending = [r for r in stored if r.state is states.RunState.PENDING]

        assert sorted(ids) == sorted(r.id for r in stored) and len(ids) == 14
        assert len(pending) == 2  # one in seven
        assert all(len(store.events(run_id)) == 3 for run_id in ids)
        assert all(len(store.entries(run_id)) == 1 for run_id in ids)


def test_results_are_written_as_dated_and_latest_json(tmp_path: pathlib.Path) -> None:
    results = api.Results(
        started_at="2026-01-01T00:00:00+00:00",
        host={"cpus": os.cpu_count()},
        config=api.Config(),
        auth="token",
        seed_s=1.0,
        routes=(
            api.RouteFigures(api.LIST_PATH, 10, 0, 5.0, 1.0, 2.0, 3.0),
            api.RouteFigures(api.SHOW_PATH, 10, 0, 5.0, 1.0, 60.0, 70.0),
        ),
        total_rps=10.0,
        rss_idle_mb=80.0,
        rss_peak_mb=90.0,
        load_start=(0.0, 0.0, 0.0),
        load_end=(0.0, 0.0, 0.0),
        failures=(),
    )

    dated = api.write_results(results, directory=tmp_path / "results")

    latest = json.loads((tmp_path / "results" / "api-latest.json").read_text())
    assert dated.name.startswith("api-") and json.loads(dated.read_text()) == latest
    assert latest["targets"] == {"p99<=50ms": False, "rss<=150MB": True}
    assert latest["routes"][1]["p99_ms"] == 60.0
    assert "MISSED" in api.render(results)


def test_a_floor_run_with_two_workers_answers_healthz_and_leaves_latest_alone(
    tmp_path: pathlib.Path,
) -> None:
    config = api.Config(
        runs=4, clients=4, duration_s=0.5, warmup_s=0.0, events_per_run=1, workers=2, floor=True
    )

    results = api.run_benchmark(config, workdir=tmp_path / "work")
    dated = api.write_results(results, directory=tmp_path / "results")

    assert results.failures == () and results.targets == {}
    assert all(route.requests > 0 and route.failures == 0 for route in results.routes)
    assert dated.name.startswith("api-floor-w2-")
    assert not (tmp_path / "results" / "api-latest.json").exists()
    assert f"every request below is GET {api.FLOOR_PATH}" in api.render(results)
