"""Smoke test of benchmarks/plan.py: the smallest size runs in its processes and is correct.

Only the result's shape and correctness are asserted (the plan selected and evicted what the
cluster holds, figures present and positive), never timing.
"""

from __future__ import annotations

import json
import pathlib

from benchmarks import plan


def test_the_smallest_size_plans_in_a_fresh_process_and_writes_dated_and_latest_json(
    tmp_path: pathlib.Path,
) -> None:
    results = plan.run_benchmark([60], workdir=tmp_path / "work", repeats=1)

    [size] = results.sizes
    assert (size.pods, size.nodes, size.zone_nodes) == (60, 6, 2)
    assert size.evicted_pods == 20  # round-robin: 10 pods on each of the zone's 2 nodes
    assert size.planned_mutations == 2 + 2 + 10  # cordon, drain, delete 10
    assert len(size.times_s) == len(size.cpu_s) == 1 and size.min_s > 0
    assert size.peak_rss_mb > 0 and size.api_calls_per_plan > 0
    assert "resolve targets" in size.breakdown_s
    assert [c.name for c in results.checks()] == []  # no target is stated for 60 pods

    dated = plan.write_results(results, directory=tmp_path / "results")

    latest = json.loads((tmp_path / "results" / "plan-latest.json").read_text())
    assert dated.name.startswith("plan-") and json.loads(dated.read_text()) == latest
    [row] = latest["sizes"]
    assert {"pods", "nodes", "times_s", "min_s", "median_s", "peak_rss_mb", "cpu_s"} <= set(row)
    assert latest["benchmark"] == "plan" and "load" in latest["host"]
    assert plan.render_table(results).splitlines()[2].split()[0] == "pods"
