"""Aborts mid-run (kill switch, `stormdrill abort`, SIGINT) stop injecting and roll back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from typer import testing

from drills import cli
from orchestrator import engine, journal, mutations, states
from sandbox import stack
from tests.engine_runs import support

_S = states.RunState
LONG_SOAK = ("soak=1h",)
"""72 s at the sandbox's time scale: far longer than any test waits; only an abort ends it."""


def _assert_rolled_back(store: journal.Journal, run_id: states.RunId) -> None:
    entries = store.entries(run_id)
    assert entries
    assert all(
        e.state in (mutations.EntryState.REVERTED, mutations.EntryState.SKIPPED) for e in entries
    ), [(e.seq, e.state) for e in entries]
    order = support.revert_order_per_target(store, run_id)
    assert all(seqs == sorted(seqs, reverse=True) for seqs in order.values()), order


def test_engaging_the_kill_switch_mid_run_aborts_and_rolls_back(
    world: stack.Sandbox, store: journal.Journal, db_url: str
) -> None:
    before = support.snapshot(world)
    drill = support.bind(world, "az-failure-kubernetes", sets=LONG_SOAK)

    def engage_when_holding() -> None:
        with journal.open_store(db_url) as other:
            support.wait_for(support.step_started(other, "hold-zone-down"), what="the soak")
            other.set_killswitch(engaged=True, by="oncall", reason="customer impact")

    side = support.in_background(engage_when_holding)
    outcome = support.make_engine(store, drill).run(drill)
    side.join(timeout=10)

    assert outcome.run.state is _S.ABORTED
    assert outcome.exit_code == engine.ExitCode.ABORTED == 2
    assert "kill switch is engaged by oncall: customer impact" in (outcome.run.abort_reason or "")
    _assert_rolled_back(store, outcome.run.id)
    assert "web-rescheduled" not in {
        e.data["step"] for e in store.events(outcome.run.id, kind="step")
    }
    support.assert_same_world(before, support.snapshot(world))


def test_stormdrill_abort_mid_run_aborts_and_rolls_back_including_explicit_rollback_steps(
    world: stack.Sandbox, store: journal.Journal, db_url: str
) -> None:
    before = support.snapshot(world)
    drill = support.bind(world, "az-failure-aws", sets=LONG_SOAK)
    said: list[testing.Result] = []

    def abort_when_holding() -> None:
        with journal.open_store(db_url) as other:
            support.wait_for(support.step_started(other, "hold-zone-down"), what="the soak")
            [run] = other.runs_in_flight()
        said.append(
            testing.CliRunner().invoke(cli.app, ["abort", run.id], env=support.cli_env(db_url))
        )

    side = support.in_background(abort_when_holding)
    outcome = support.make_engine(store, drill).run(drill)
    side.join(timeout=10)

    assert said and said[0].exit_code == 0, said[0].output if said else "abort never ran"
    assert f"abort requested for {outcome.run.id}" in said[0].stdout
    assert outcome.run.state is _S.ABORTED
    assert outcome.exit_code == engine.ExitCode.ABORTED
    assert outcome.run.abort_reason == "abort requested from the CLI"  # who asked, as they asked
    _assert_rolled_back(store, outcome.run.id)
    fail_back = [e for e in store.entries(outcome.run.id) if e.step == "fail-back-payments-db"]
    assert len(fail_back) == 1, "the scenario's own rollback step runs on an abort too"
    support.assert_same_world(before, support.snapshot(world))


def _injected(store: journal.Journal) -> bool:
    """The newest run is INJECTING and has a fault in place."""
    runs = store.list_runs(limit=1)
    if not runs or runs[0].state is not _S.INJECTING:
        return False
    return any(e.state is mutations.EntryState.APPLIED for e in store.entries(runs[0].id))


def test_sigint_to_a_running_cli_aborts_cleanly_with_rollback_and_exit_2(
    world: stack.Sandbox, db_url: str, tmp_path: Path
) -> None:
    before = support.snapshot(world)
    env = {**os.environ, **support.cli_env(db_url)}
    command = [sys.executable, "-m", "drills.cli", "run", "az-failure-kubernetes"]
    command += ["--env", str(world.info.environment), "--set", "soak=1h", "--yes"]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with journal.open_store(db_url) as store:
            soaking = support.step_started(store, "hold-zone-down")
            support.wait_for(
                lambda: (_injected(store) and soaking()) or process.poll() is not None,
                timeout_s=60,
                what="the run soaking with its faults applied",
            )
            assert process.poll() is None, process.communicate()
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
            [run] = store.list_runs()
            assert process.returncode == engine.ExitCode.ABORTED == 2, (out, err)
            assert run.state is _S.ABORTED
            assert run.abort_reason == "stopped by signal (SIGINT/SIGTERM)"
            assert "Traceback" not in err
            assert "ABORTED" in out
            _assert_rolled_back(store, run.id)
            _assert_the_signal_cut_the_soak_short(store, run)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    support.assert_same_world(before, support.snapshot(world))


def _assert_the_signal_cut_the_soak_short(store: journal.Journal, run: states.Run) -> None:
    """By the engine's own record: the signal ended the soak before its scaled end.

    Order: the soak started, then the signal's abort; the soak step ended, then rolling back,
    every revert, ABORTED; the probe step after the soak never ran. The soak's scaled end is
    its start plus `soak` (1 h) times the time scale the run recorded (72 s in the sandbox);
    the engine stamped ABORTED before it.
    """
    events = store.events(run.id)
    timeline = [(e.seq, e.kind, e.message) for e in events]
    soak = [e for e in events if e.kind == "step" and e.data.get("step") == "hold-zone-down"]
    assert [e.message for e in soak] == [
        "step hold-zone-down (wait) started",
        "step hold-zone-down finished",
    ], timeline
    [abort] = [e for e in events if e.kind == "abort"]
    [rolling_back] = [e for e in events if e.data.get("state") == _S.ROLLING_BACK.value]
    [aborted] = [e for e in events if e.data.get("state") == _S.ABORTED.value]
    reverts = [e.seq for e in events if e.kind == "revert"]
    assert reverts, timeline
    assert abort.message == "stopped by signal (SIGINT/SIGTERM)"
    assert soak[0].seq < abort.seq < aborted.seq, timeline
    order = [soak[0].seq, soak[1].seq, rolling_back.seq, *reverts, aborted.seq]
    assert order == sorted(order), timeline
    assert "web-rescheduled" not in {e.data.get("step") for e in events}, timeline

    parameters, scale = run.record.parameters, run.record.time_scale
    assert parameters["soak"] == "1h", parameters
    assert isinstance(scale, float), scale
    assert scale == stack.TIME_SCALE
    soak_end = soak[0].at + timedelta(hours=1) * scale
    assert abort.at < soak_end and aborted.at < soak_end, (abort.at, aborted.at, soak_end)
