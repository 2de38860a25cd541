"""The render benchmark runs (small); its timings are not asserted."""

from __future__ import annotations

from benchmarks import report_render


def test_render_benchmark_runs_on_a_small_run() -> None:
    timings = report_render.main(events=60)
    assert {"read", "build", "render md", "render html", "render json", "lint md"} <= set(timings)
