"""The Chaos Toolkit peer: its experiment, its endpoint, and a real `chaos run` of a few rollbacks.

The real run uses `benchmarks/peers/.venv` when it exists, else creates a side venv in the
session's temporary directory with `chaostoolkit.setup` (pip, from the package registry).
Only outcomes are asserted: every rollback reached the endpoint and was journalled; no timing.
"""

from __future__ import annotations

import json
import pathlib
import urllib.request

import pytest

from benchmarks.peers import chaostoolkit


@pytest.fixture(scope="session")
def chaos_venv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    if chaostoolkit.chaos_executable() is not None:
        return chaostoolkit.VENV
    venv = tmp_path_factory.mktemp("peer") / ".venv"
    chaostoolkit.setup(venv)
    return venv


def test_experiment_has_n_http_actions_and_n_http_rollbacks_newest_first() -> None:
    document = chaostoolkit.experiment(n=3, base_url="http://127.0.0.1:9")

    actions = [a["provider"]["url"] for a in document["method"]]
    undos = [a["provider"]["url"] for a in document["rollbacks"]]
    assert actions == [f"http://127.0.0.1:9/action/nodes/node-{i}" for i in range(3)]
    assert undos == [f"http://127.0.0.1:9/rollback/nodes/node-{i}" for i in (2, 1, 0)]
    assert all(a["type"] == "action" for a in document["method"] + document["rollbacks"])
    assert all(a["provider"]["type"] == "http" for a in document["rollbacks"])
    assert {a["provider"]["arguments"]["spec"]["unschedulable"] for a in document["rollbacks"]} == {
        False
    }


def test_delay_endpoint_answers_json_and_counts_requests_by_kind() -> None:
    with chaostoolkit.DelayEndpoint(latency_s=0.0) as endpoint:
        for kind in ("action", "rollback", "rollback"):
            request = urllib.request.Request(
                f"{endpoint.url}/{kind}/nodes/node-1",
                data=b'{"spec": {"unschedulable": false}}',
                method="PATCH",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
                assert json.loads(answer.read())["status"] == "ok"

        assert (endpoint.count("action"), endpoint.count("rollback")) == (1, 2)
        endpoint.reset()
        assert endpoint.count("rollback") == 0


def test_measuring_without_the_side_venv_names_the_command_that_creates_it(
    tmp_path: pathlib.Path,
) -> None:
    with pytest.raises(chaostoolkit.PeerFailed, match=r"benchmarks\.peers\.chaostoolkit setup"):
        chaostoolkit.measure(
            n=2, latency_s=0.0, repeats=1, workdir=tmp_path, venv=tmp_path / "missing"
        )


def test_chaos_run_rolls_back_every_action_and_its_journal_times_the_rollback_phase(
    tmp_path: pathlib.Path, chaos_venv: pathlib.Path
) -> None:
    figures = chaostoolkit.measure(
        n=4, latency_s=0.001, repeats=2, workdir=tmp_path, venv=chaos_venv
    )

    assert figures.tool == "chaostoolkit" and figures.version
    assert len(figures.runs) == 2
    for run in figures.runs:
        assert run.rollback_requests == 4
        assert run.rollback_s > 0 and run.method_s > 0 and run.total_s >= run.rollback_s
    journal = json.loads((tmp_path / "chaostoolkit-4-1" / "journal.json").read_text())
    assert journal["status"] == "completed"
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"] * 4
    assert figures.min_s <= figures.median_s
    assert set(figures.to_json()) >= {"tool", "version", "n", "min_s", "median_s", "runs"}


def test_a_rollback_the_endpoint_never_received_fails_the_peer_run(
    tmp_path: pathlib.Path, chaos_venv: pathlib.Path
) -> None:
    chaos = chaostoolkit.chaos_executable(chaos_venv)
    assert chaos is not None
    with chaostoolkit.DelayEndpoint(latency_s=0.0) as gone:
        dead_url = gone.url
    with chaostoolkit.DelayEndpoint(latency_s=0.0) as endpoint:
        endpoint.url = dead_url  # the experiment calls a port nothing listens on any more

        with pytest.raises(chaostoolkit.PeerFailed, match="rollback requests received"):
            chaostoolkit.run_once(
                chaos, n=2, latency_s=0.0, workdir=tmp_path / "run", endpoint=endpoint
            )
