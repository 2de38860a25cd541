"""Aborts mid-run (kill switch, `stormdrill abort`, SIGINT) stop injecting and roll back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
    assert outcome.run.abort_reason == "abort requested (stormdrill abort)"
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
    started = time.monotonic()
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
            support.wait_for(
                lambda: _injected(store) or process.poll() is not None,
                timeout_s=60,
                what="the run injecting with a fault applied",
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
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert time.monotonic() - started < 72, "the abort ended the soak early"
    support.assert_same_world(before, support.snapshot(world))
