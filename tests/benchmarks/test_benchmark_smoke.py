"""Smoke test of benchmarks/rollback.py: the smallest configuration runs and is correct.

Only correctness is asserted (every node uncordoned, figures positive); never timing.
"""

from __future__ import annotations

import json
import pathlib

from benchmarks import rollback


def test_smallest_benchmark_reverts_every_cordon_and_reports_positive_figures(
    tmp_path: pathlib.Path,
) -> None:
    config = rollback.Config(
        sizes=(10,),
        node_count=20,
        concurrencies=(1, 4),
        abort_trials=2,
        plan_nodes=30,
        plan_pods=60,
        plan_repeats=1,
    )

    results = rollback.run_benchmark(config, workdir=tmp_path / "work", quick=True)

    [figures] = results.rollback
    assert [run.concurrency for run in figures.runs] == [1, 4]
    for run in figures.runs:
        assert run.n == 10
        assert run.wall_s > 0 and run.journal_floor_s > 0
        assert run.api_calls >= 10 and run.api_calls_per_revert >= 1
        assert run.limit_per_call_s >= run.limit_stated_s > 0
    assert figures.speedup > 0
    assert len(results.abort.to_patch_s) == 2
    assert all(latency > 0 for latency in results.abort.to_patch_s)
    assert results.plan.zone_nodes == 10 and results.plan.pods == 60
    assert results.plan.median_s > 0 and results.plan.planned_mutations > 0


def test_results_are_written_as_dated_and_latest_json(tmp_path: pathlib.Path) -> None:
    config = rollback.Config(
        sizes=(2,),
        node_count=3,
        concurrencies=(1, 2),
        abort_trials=1,
        plan_nodes=3,
        plan_pods=3,
        plan_repeats=1,
    )
    results = rollback.run_benchmark(config, workdir=tmp_path / "work")

    dated = rollback.write_results(results, directory=tmp_path / "results")

    latest = tmp_path / "results" / "rollback-latest.json"
    assert dated.name.startswith("rollback-") and dated.exists()
    assert json.loads(latest.read_text()) == json.loads(dated.read_text())
    assert json.loads(latest.read_text())["rollback"][0]["n"] == 2
    assert "abort latency" in rollback.render_table(results)
