"""The run state machine: every legal move works, every other move is refused."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from orchestrator import errors, states
from tests.engine_core import factories

S = states.RunState

# Written out by hand, independently of states.ALLOWED.
LEGAL: frozenset[tuple[states.RunState, states.RunState]] = frozenset(
    {
        (S.PENDING, S.PLANNING),
        (S.PENDING, S.ABORTED),
        (S.PLANNING, S.PREFLIGHT),
        (S.PLANNING, S.ABORTED),
        (S.PLANNING, S.FAILED),
        (S.PREFLIGHT, S.INJECTING),
        (S.PREFLIGHT, S.ABORTED),
        (S.PREFLIGHT, S.FAILED),
        (S.INJECTING, S.OBSERVING),
        (S.INJECTING, S.ROLLING_BACK),
        (S.OBSERVING, S.ROLLING_BACK),
        (S.ROLLING_BACK, S.VERIFYING),
        (S.ROLLING_BACK, S.ROLLBACK_FAILED),
        (S.VERIFYING, S.COMPLETED),
        (S.VERIFYING, S.ABORTED),
        (S.VERIFYING, S.FAILED),
        (S.VERIFYING, S.ROLLBACK_FAILED),
        (S.CRASHED, S.ROLLING_BACK),
        (S.ROLLBACK_FAILED, S.ROLLING_BACK),
        *(
            (s, S.CRASHED)
            for s in (
                S.PENDING,
                S.PLANNING,
                S.PREFLIGHT,
                S.INJECTING,
                S.OBSERVING,
                S.ROLLING_BACK,
                S.VERIFYING,
            )
        ),
    }
)

ENDING_FOR = {
    S.COMPLETED: states.Ending.COMPLETED,
    S.ABORTED: states.Ending.ABORTED,
    S.FAILED: states.Ending.FAILED,
}


def _attempt(source: states.RunState, to: states.RunState) -> states.Run:
    """Try source -> to with the ending a well-behaved engine would supply."""
    run = factories.make_run(state=source, ending=ENDING_FOR.get(to, states.Ending.COMPLETED))
    ending = states.Ending.COMPLETED if to is S.ROLLING_BACK else None
    return states.transition(run, to, reason="test", at=factories.later(1), ending=ending)


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("to", list(S))
def test_transition_is_allowed_exactly_for_the_moves_in_the_table(
    source: states.RunState, to: states.RunState
) -> None:
    if (source, to) in LEGAL:
        moved = _attempt(source, to)
        assert moved.state is to
        assert moved.updated_at == factories.later(1)
    else:
        with pytest.raises(errors.IllegalTransition) as caught:
            _attempt(source, to)
        assert caught.value.from_state is source
        assert caught.value.to_state is to


def test_the_published_table_matches_the_hand_written_one() -> None:
    published = {(a, b) for a, targets in states.ALLOWED.items() for b in targets}
    assert published == LEGAL


def test_terminal_states_are_the_four_endings_and_crashed_is_not_one() -> None:
    assert frozenset({S.COMPLETED, S.ABORTED, S.FAILED, S.ROLLBACK_FAILED}) == states.TERMINAL
    assert S.CRASHED in states.IN_FLIGHT


def test_a_normal_drill_walks_from_pending_to_completed() -> None:
    run = factories.make_run()
    path = [S.PLANNING, S.PREFLIGHT, S.INJECTING, S.OBSERVING]
    for minute, to in enumerate(path, start=1):
        run = states.transition(run, to, reason=f"enter {to}", at=factories.later(minute))
    run = states.transition(
        run,
        S.ROLLING_BACK,
        reason="observation window over",
        at=factories.later(10),
        ending=states.Ending.COMPLETED,
        verdict=states.Verdict.HELD,
    )
    run = states.transition(run, S.VERIFYING, reason="reverted", at=factories.later(11))
    run = states.transition(run, S.COMPLETED, reason="verified", at=factories.later(12))
    assert run.state is S.COMPLETED
    assert run.verdict is states.Verdict.HELD
    assert run.finished_at == factories.later(12)
    assert run.abort_reason is None


def test_illegal_transition_names_the_run_and_the_allowed_moves() -> None:
    run = factories.make_run(state=S.OBSERVING)
    with pytest.raises(errors.IllegalTransition) as caught:
        states.transition(run, S.COMPLETED, reason="skip rollback", at=factories.later(1))
    message = str(caught.value)
    assert "run-1" in message
    assert "observing -> completed" in message
    assert "rolling_back" in message


def test_entering_rolling_back_from_observing_requires_an_ending() -> None:
    run = factories.make_run(state=S.OBSERVING)
    with pytest.raises(errors.IllegalTransition, match="ending"):
        states.transition(run, S.ROLLING_BACK, reason="done", at=factories.later(1))


def test_an_ending_outside_rolling_back_is_refused() -> None:
    run = factories.make_run(state=S.PENDING)
    with pytest.raises(errors.IllegalTransition, match="ending"):
        states.transition(
            run, S.PLANNING, reason="go", at=factories.later(1), ending=states.Ending.ABORTED
        )


def test_an_aborted_rollback_cannot_be_verified_as_completed() -> None:
    run = factories.make_run(state=S.OBSERVING)
    run = states.transition(
        run,
        S.ROLLING_BACK,
        reason="guardrail error-rate tripped",
        at=factories.later(1),
        ending=states.Ending.ABORTED,
    )
    run = states.transition(run, S.VERIFYING, reason="reverted", at=factories.later(2))
    with pytest.raises(errors.IllegalTransition, match="aborted"):
        states.transition(run, S.COMPLETED, reason="verified", at=factories.later(3))
    finished = states.transition(run, S.ABORTED, reason="verified", at=factories.later(3))
    assert finished.abort_reason == "guardrail error-rate tripped"
    assert finished.ending is states.Ending.ABORTED


@pytest.mark.parametrize("ending", list(states.Ending))
def test_verification_may_always_end_failed_or_rollback_failed(ending: states.Ending) -> None:
    run = factories.make_run(state=S.VERIFYING, ending=ending)
    for to in (S.FAILED, S.ROLLBACK_FAILED):
        assert states.transition(run, to, reason="check", at=factories.later(1)).state is to


def test_recovery_of_a_crashed_run_keeps_its_ending_or_assumes_failed() -> None:
    crashed = factories.make_run(state=S.CRASHED, ending=states.Ending.ABORTED)
    resumed = states.transition(crashed, S.ROLLING_BACK, reason="recovery", at=factories.later(1))
    assert resumed.ending is states.Ending.ABORTED
    unknown = factories.make_run(state=S.CRASHED, ending=None)
    resumed = states.transition(unknown, S.ROLLING_BACK, reason="recovery", at=factories.later(1))
    assert resumed.ending is states.Ending.FAILED


def test_retrying_a_failed_rollback_reopens_the_run() -> None:
    run = factories.make_run(state=S.ROLLING_BACK, ending=states.Ending.COMPLETED)
    failed = states.transition(run, S.ROLLBACK_FAILED, reason="1 left", at=factories.later(1))
    assert failed.terminal
    assert failed.finished_at == factories.later(1)
    retried = states.transition(failed, S.ROLLING_BACK, reason="recover", at=factories.later(2))
    assert retried.finished_at is None
    assert retried.ending is states.Ending.COMPLETED


def test_transition_returns_a_new_run_and_leaves_the_old_one_alone() -> None:
    run = factories.make_run()
    moved = states.transition(run, S.PLANNING, reason="go", at=factories.later(1))
    assert run.state is S.PENDING
    assert moved is not run
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.state = S.PLANNING  # type: ignore[misc]


def test_states_parse_from_their_stored_strings() -> None:
    assert states.RunState("rolling_back") is S.ROLLING_BACK
    assert states.Verdict("deviated") is states.Verdict.DEVIATED
    with pytest.raises(ValueError):
        states.RunState("Rolling Back")


def test_the_current_process_is_recognised_as_alive() -> None:
    assert states.Owner.current().is_alive_here() is True


def test_a_reused_pid_with_another_start_token_is_not_the_owner() -> None:
    me = states.Owner.current()
    impostor = dataclasses.replace(me, token="some-other-boot:1")
    assert impostor.is_alive_here() is False


def test_an_exited_process_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    gone = states.Owner(host=states.Owner.current().host, pid=child.pid, token="x:1")
    assert gone.is_alive_here() is False
    assert os.getpid() != child.pid


def test_liveness_of_an_owner_on_another_host_is_unknown() -> None:
    remote = dataclasses.replace(states.Owner.current(), host="elsewhere.invalid")
    assert remote.is_alive_here() is None


def test_a_killed_process_not_yet_reaped_by_its_parent_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        token = states.process_token(child.pid)
        assert token is not None
        owner = states.Owner(host=states.Owner.current().host, pid=child.pid, token=token)
        assert owner.is_alive_here() is True
        os.kill(child.pid, signal.SIGKILL)
        for _ in range(200):  # the kernel marks it a zombie; we do not reap it yet
            if (
                pathlib.Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
                == "Z"
            ):
                break
            time.sleep(0.01)
        assert owner.is_alive_here() is False
    finally:
        child.kill()
        child.wait()
