"""Run states: the run record and the one function that moves it between states.

Invariants:
- `transition` is the only way a run changes state; it returns a new `Run` and
  raises `errors.IllegalTransition` for any move not in `ALLOWED`.
- A run enters ROLLING_BACK with an `ending` (completed | aborted | failed): why the
  rollback happens. VERIFYING may only finish in that ending's state, or in FAILED
  (verification found a problem), or in ROLLBACK_FAILED (the fault is still there).
- CRASHED is not terminal: recovery owns a crashed run and moves it to ROLLING_BACK.
  ROLLBACK_FAILED is terminal for the engine but recovery may retry it (ROLLING_BACK).
- The verdict (did the hypothesis hold) is separate from the state.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NewType

from orchestrator import errors, records

RunId = NewType("RunId", str)


class RunState(enum.StrEnum):
    PENDING = "pending"
    PLANNING = "planning"
    PREFLIGHT = "preflight"
    INJECTING = "injecting"
    OBSERVING = "observing"
    ROLLING_BACK = "rolling_back"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"
    CRASHED = "crashed"
    ROLLBACK_FAILED = "rollback_failed"


class Verdict(enum.StrEnum):
    """Whether the steady-state hypothesis held during the drill."""

    HELD = "held"
    DEVIATED = "deviated"
    INCONCLUSIVE = "inconclusive"


class Ending(enum.StrEnum):
    """Why a run is rolling back, hence where VERIFYING sends it."""

    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def state(self) -> RunState:
        return RunState(self.value)


TERMINAL: frozenset[RunState] = frozenset(
    {RunState.COMPLETED, RunState.ABORTED, RunState.FAILED, RunState.ROLLBACK_FAILED}
)
"""States the engine never leaves by itself (recovery may retry ROLLBACK_FAILED)."""

IN_FLIGHT: frozenset[RunState] = frozenset(RunState) - TERMINAL
"""States in which a run may still hold faults or locks: recovery looks at these."""

_S = RunState
_ALLOWED_EXPLICIT: dict[RunState, frozenset[RunState]] = {
    # PENDING -> ABORTED: a queued run cancelled (or refused approval) before it started.
    _S.PENDING: frozenset({_S.PLANNING, _S.ABORTED}),
    _S.PLANNING: frozenset({_S.PREFLIGHT, _S.ABORTED, _S.FAILED}),
    # Nothing is touched before INJECTING, so PREFLIGHT may end without rollback.
    _S.PREFLIGHT: frozenset({_S.INJECTING, _S.ABORTED, _S.FAILED}),
    _S.INJECTING: frozenset({_S.OBSERVING, _S.ROLLING_BACK}),
    _S.OBSERVING: frozenset({_S.ROLLING_BACK}),
    _S.ROLLING_BACK: frozenset({_S.VERIFYING, _S.ROLLBACK_FAILED}),
    # VERIFYING -> ROLLBACK_FAILED: the post-rollback check finds the fault still in place.
    _S.VERIFYING: frozenset({_S.COMPLETED, _S.ABORTED, _S.FAILED, _S.ROLLBACK_FAILED}),
    _S.CRASHED: frozenset({_S.ROLLING_BACK}),
    _S.ROLLBACK_FAILED: frozenset({_S.ROLLING_BACK}),
    _S.COMPLETED: frozenset(),
    _S.ABORTED: frozenset(),
    _S.FAILED: frozenset(),
}

ALLOWED: Mapping[RunState, frozenset[RunState]] = {
    state: targets | ({_S.CRASHED} if state in IN_FLIGHT and state is not _S.CRASHED else set())
    for state, targets in _ALLOWED_EXPLICIT.items()
}
"""Every legal move: any in-flight state may also become CRASHED (except CRASHED itself)."""


@dataclass(frozen=True)
class Owner:
    """The process that drives a run: host, pid and a token that a reused pid cannot fake.

    The token is the kernel boot id plus the process start time (Linux), so a pid
    recycled after a reboot or by a newer process does not look like the owner.
    """

    host: str
    pid: int
    token: str

    @classmethod
    def current(cls) -> Owner:
        """The owner identity of this process."""
        return cls(host=socket.gethostname(), pid=os.getpid(), token=_own_token())

    def is_alive_here(self) -> bool | None:
        """True/False when the owner is on this host and liveness is knowable, else None."""
        if self.host != socket.gethostname():
            return None
        token = process_token(self.pid)
        if token is None:
            return None if not _proc_available() else False
        return token == self.token


def _proc_available() -> bool:
    return Path("/proc/self/stat").exists()


def process_token(pid: int) -> str | None:
    """Boot id + start time of `pid` (Linux /proc), or None when unknowable or not running."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counted after the ")" that closes the command name.
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20:
        return None
    if fields[0] in ("Z", "X"):
        return None  # a zombie (not yet reaped by its parent) or dead process runs nothing

    return f"{boot_id}:{fields[19]}"


@functools.cache
def _own_token() -> str:
    return process_token(os.getpid()) or f"uuid:{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Run:
    """One drill run as the journal stores it. Built new by `transition`, never mutated."""

    id: RunId
    scenario: str
    environment: str
    environment_source: str
    """Where the environment document came from (path or name), so recovery can reconnect."""
    state: RunState
    started_at: datetime
    updated_at: datetime
    owner: Owner
    reason: str = ""
    verdict: Verdict | None = None
    ending: Ending | None = None
    abort_reason: str | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    record: records.RunRecord = field(default_factory=records.RunRecord)
    """What the run recorded besides its state: parameters, targets, objectives, leftovers."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def new_run_id(at: datetime) -> RunId:
    """A sortable, unique run id such as `20250101T120000Z-3f9a1c2b`."""
    return RunId(f"{at.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}")


def new_run(
    *,
    id: RunId,
    scenario: str,
    environment: str,
    environment_source: str,
    owner: Owner,
    at: datetime,
    record: records.RunRecord | None = None,
) -> Run:
    """A fresh PENDING run."""
    return Run(
        id=id,
        scenario=scenario,
        environment=environment,
        environment_source=environment_source,
        state=RunState.PENDING,
        started_at=at,
        updated_at=at,
        owner=owner,
        record=record or records.RunRecord(),
    )


def transition(
    run: Run,
    to: RunState,
    *,
    reason: str,
    at: datetime,
    ending: Ending | None = None,
    verdict: Verdict | None = None,
) -> Run:
    """Move `run` to `to`, or raise `errors.IllegalTransition`.

    `ending` is required when an engine enters ROLLING_BACK from INJECTING/OBSERVING;
    recovery (from CRASHED/ROLLBACK_FAILED) keeps the stored ending, FAILED if none.
    `verdict`, when given, is recorded alongside (it never changes the state).
    """
    allowed = ALLOWED[run.state]
    if to not in allowed:
        raise errors.IllegalTransition(
            run_id=run.id, from_state=run.state, to_state=to, allowed=allowed
        )
    new_ending = run.ending
    if to is RunState.ROLLING_BACK:
        new_ending = _rollback_ending(run, ending)
    elif ending is not None:
        raise errors.IllegalTransition(
            run_id=run.id,
            from_state=run.state,
            to_state=to,
            allowed=allowed,
            why="an ending is only set when entering rolling_back",
        )
    if run.state is RunState.VERIFYING:
        _check_verifying_exit(run, to, allowed)
    abort_reason = run.abort_reason
    if abort_reason is None and (
        to is RunState.ABORTED or (to is RunState.ROLLING_BACK and new_ending is Ending.ABORTED)
    ):
        abort_reason = reason
    return dataclasses.replace(
        run,
        state=to,
        reason=reason,
        updated_at=at,
        ending=new_ending,
        abort_reason=abort_reason,
        verdict=verdict if verdict is not None else run.verdict,
        finished_at=at if to in TERMINAL else None,
    )


def _rollback_ending(run: Run, ending: Ending | None) -> Ending:
    if run.state in {RunState.INJECTING, RunState.OBSERVING}:
        if ending is None:
            raise errors.IllegalTransition(
                run_id=run.id,
                from_state=run.state,
                to_state=RunState.ROLLING_BACK,
                allowed=ALLOWED[run.state],
                why="entering rolling_back needs ending=completed|aborted|failed",
            )
        return ending
    # Recovery: CRASHED or ROLLBACK_FAILED keep why the rollback started.
    return ending or run.ending or Ending.FAILED


def _check_verifying_exit(run: Run, to: RunState, allowed: frozenset[RunState]) -> None:
    if to in {RunState.FAILED, RunState.ROLLBACK_FAILED, RunState.CRASHED}:
        return
    expected = (run.ending or Ending.FAILED).state
    if to is not expected:
        raise errors.IllegalTransition(
            run_id=run.id,
            from_state=run.state,
            to_state=to,
            allowed=allowed,
            why=f"the run is rolling back to end {expected.value}, so it may only finish "
            f"{expected.value}, failed or rollback_failed",
        )
