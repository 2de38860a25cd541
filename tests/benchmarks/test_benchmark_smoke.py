"""Smoke tests of benchmarks/rollback.py: the smallest rows run, are correct and well shaped.

Only correctness and the result's shape are asserted (every node uncordoned, nothing left to
undo, the fields the results JSON promises); never timing.
"""

from __future__ import annotations

import json
import math
import pathlib
import urllib.request
from typing import Any

import pytest

from benchmarks import rollback
from orchestrator.providers.kubernetes import markers
from tests.benchmarks import processes

RUN_FIELDS = {
    "n",
    "concurrency",
    "wall_s",
    "wall_min_s",
    "wall_median_s",
    "walls_s",
    "api_calls",
    "api_calls_per_revert",
    "limit_stated_s",
    "limit_s",
    "ratio_to_limit",
    "speedup_vs_c1",
    "vs_chaostoolkit",
    "journal_floor_s",
    "load_start",
    "load_end",
}


def _patch_node(cluster: rollback.Cluster, name: str, patch: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{cluster.server.url}/api/v1/nodes/{name}",
        data=json.dumps(patch).encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def test_smallest_rows_revert_every_cordon_and_report_every_field(tmp_path: pathlib.Path) -> None:
    config = rollback.Config(
        sizes=(10,),
        concurrencies=(1, 16),
        repeats=2,
        abort_trials=2,
        peer=False,
    )

    results = rollback.run_benchmark(config, workdir=tmp_path / "work", quick=True)

    [figures] = results.rollback
    assert [run.concurrency for run in figures.runs] == [1, 16]
    for run in figures.runs:
        assert run.n == 10 and len(run.walls_s) == 2
        assert run.wall_min_s <= run.wall_s and all(wall > 0 for wall in run.walls_s)
        assert run.api_calls >= 10 and run.api_calls_per_revert >= 1
        assert run.limit_stated_s == pytest.approx(math.ceil(10 / run.concurrency) * 0.02)
        assert run.limit_per_call_s >= run.limit_stated_s
        assert run.journal_floor_s is not None and run.journal_floor_s > 0
        assert len(run.load_start) == len(run.load_end) == 3
    assert figures.speedup is not None and figures.speedup > 0
    assert len(results.abort.to_patch_s if results.abort else ()) == 2
    document = results.to_json()
    assert {"load_start", "load_end", "latency_s", "targets"} <= set(document)
    [entry] = document["rollback"]
    for run_json in entry["runs"]:
        assert set(run_json) >= RUN_FIELDS
    assert entry["chaostoolkit"] is None
    names = [check["name"] for check in document["targets"]]
    assert any("1.5x limit" in name for name in names)
    assert any("faster than c=1" in name for name in names)
    assert any("abort latency" in name for name in names)
    assert processes.standalone_children() == []


def test_results_are_written_as_dated_and_latest_json(tmp_path: pathlib.Path) -> None:
    config = rollback.Config(
        sizes=(2,), concurrencies=(1, 2), repeats=1, abort_trials=1, peer=False
    )
    results = rollback.run_benchmark(config, workdir=tmp_path / "work")

    dated = rollback.write_results(results, directory=tmp_path / "results")

    latest = tmp_path / "results" / "rollback-latest.json"
    assert dated.name.startswith("rollback-") and dated.exists()
    assert json.loads(latest.read_text()) == json.loads(dated.read_text())
    assert json.loads(latest.read_text())["rollback"][0]["n"] == 2
    assert "abort latency" in rollback.render_table(results)


def test_one_row_from_the_command_line_skips_abort_and_marks_the_results_partial(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--n", "4", "--concurrency", "2", "--repeats", "1", "--no-peer"]
    code = rollback.main([*argv, "--results", str(tmp_path)])

    assert code == 0
    document = json.loads((tmp_path / "rollback-latest.json").read_text())
    assert document["partial"] is True and document["abort"] is None
    [entry] = document["rollback"]
    [run] = entry["runs"]
    assert (run["n"], run["concurrency"], run["repeats"]) == (4, 2, 1)
    assert run["speedup_vs_c1"] is None
    assert "Chaos Toolkit not measured (--no-peer)" in capsys.readouterr().out


def test_picking_rows_keeps_the_other_defaults_and_rejects_bad_numbers() -> None:
    parser = rollback.build_parser()

    config, partial = rollback.config_from_args(parser.parse_args(["--n", "100,3000"]))
    assert partial is True
    assert config.sizes == (100, 3000) and config.concurrencies == (1, 16, 64)
    assert config.abort_trials == 0 and config.repeats == 3 and config.nodes == 3000

    full, partial = rollback.config_from_args(parser.parse_args([]))
    assert partial is False and full.sizes == (100, 1000, 3000) and full.abort_trials == 20

    with pytest.raises(SystemExit):
        parser.parse_args(["--concurrency", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--n", "many"])


def test_a_missing_peer_venv_is_reported_with_the_command_that_creates_it(
    tmp_path: pathlib.Path,
) -> None:
    config = rollback.Config(
        sizes=(2,),
        concurrencies=(1,),
        repeats=1,
        abort_trials=0,
        peer_venv=tmp_path / "no-venv",
        journal_floor=False,
    )

    results = rollback.run_benchmark(config, workdir=tmp_path / "work")

    assert results.rollback[0].peer is None
    assert "python -m benchmarks.peers.chaostoolkit setup" in results.peer_note
    assert results.peer_note in rollback.render_table(results)


def test_a_row_fails_when_a_node_it_did_not_cordon_is_left_cordoned(
    tmp_path: pathlib.Path,
) -> None:
    with rollback.cluster(tmp_path, nodes=6) as sandbox:
        names = sandbox.node_names()
        _patch_node(sandbox, names[5], {"spec": {"unschedulable": True}})

        with pytest.raises(rollback.BenchmarkFailed, match="4 nodes cordoned, expected 3"):
            rollback._rollback_once(
                tmp_path, sandbox, names=names[:3], concurrency=2, latency_s=0.0, repeat=0
            )


def test_a_node_carrying_only_a_drill_marker_is_not_clean(tmp_path: pathlib.Path) -> None:
    with rollback.cluster(tmp_path, nodes=3) as sandbox:
        name = sandbox.node_names()[1]
        assert sandbox.cordoned() == []

        _patch_node(sandbox, name, {"metadata": {"annotations": {markers.RUN_ID: "r-1"}}})

        assert sandbox.cordoned() == [name]
