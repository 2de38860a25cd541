"""Real `stormdrill serve` processes over one store, and what the store says afterwards.

`write_world(root)` writes a cheap drill world (a scenario that only waits a few seconds
and touches nothing, an Environment it runs in, one Drill per schedule, each `every: 2s`
with an `endAt`, so the nominal fire times of a schedule are exactly known);
`Replica` is one `python -m drills.cli serve` subprocess on a fixed free port (started,
waited for on `/healthz`, SIGKILLed, restarted on the same port, stopped with SIGINT);
`tally(store, expected)` reads fires, runs and their state events back and counts what the
replica test asserts: missing or extra fire rows, runs started twice, runs shared by fires,
skipped fires without a reason. Nothing here asserts: the test does.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import sqlalchemy as sa

from drills import tables_leases
from drills.scheduling import model, storing
from orchestrator import events, journal, records, states

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: replica-tick
spec:
  description: Holds for a few seconds and touches nothing (the replica test's drill).
  failureMode: custom
  hypothesis: Nothing breaks while it waits.
  guardrails:
    environments: [replica]
    maxDuration: 1m
  steps:
    - name: hold
      wait: {hold}
"""

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: replica
spec:
  protected: false
"""

DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: {name}
spec:
  scenario: ./replica-tick.scenario.yaml
  environment: ./replica.environment.yaml
  schedule:
    every: {every}
    endAt: "{end_at}"
"""

HEALTH_PATH = "/healthz"
PLANNING = states.RunState.PLANNING.value


def free_port() -> int:
    """A port nobody listens on now (bound to port 0 and closed again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def write_world(root: Path, *, hold: str) -> None:
    """The scenario (waits `hold`, e.g. `3s`) and Environment the Drills name, in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "replica-tick.scenario.yaml").write_text(SCENARIO.format(hold=hold), encoding="utf-8")
    (root / "replica.environment.yaml").write_text(ENVIRONMENT, encoding="utf-8")


def write_drill(root: Path, name: str, *, every: str, end_at: dt.datetime) -> Path:
    """A Drill `name` of the world in `root` firing `every` until `end_at`; its path."""
    path = root / f"{name}.drill.yaml"
    stamp = end_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    path.write_text(DRILL.format(name=name, every=every, end_at=stamp), encoding="utf-8")
    return path


def expected_fires(schedule: model.Schedule) -> list[dt.datetime]:
    """Every nominal time of an applied interval schedule: its first fire, then one every
    `every_s`, up to its `endAt` (plain arithmetic, not the code under test)."""
    spec = schedule.trigger
    assert schedule.next_nominal is not None and spec.every_s is not None
    assert spec.end_at is not None
    times = []
    current = schedule.next_nominal
    while current <= spec.end_at:
        times.append(current)
        current += dt.timedelta(seconds=spec.every_s)
    return times


def serve_env(*, database_url: str, data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its `STORMDRILL_*` variables, plus the store,
    the data folders and `extra` (lease, loop and driver settings)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STORMDRILL_")}
    env.update(
        {
            "STORMDRILL_DATABASE_URL": database_url,
            "STORMDRILL_DATA_DIR": str(data_dir),
            "STORMDRILL_REPORTS_DIR": str(data_dir / "reports"),
            **extra,
        }
    )
    return env


class Replica:
    """One `stormdrill serve` process on `port` (the same port across restarts, so the
    same lease holder name `host:port`); its output goes to a log file per incarnation."""

    def __init__(self, name: str, *, port: int, env: Mapping[str, str], logs: Path) -> None:
        self.name = name
        self.port = port
        self.env = dict(env)
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self._log_path: Path | None = None

    @property
    def holder(self) -> str:
        """The lease holder id `serve` gives itself (`drills.api.app`: host and port)."""
        return f"{socket.gethostname()}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"replica {self.name} was never started"
        return self.process.pid

    def start(self) -> None:
        self.incarnation += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        self._log_path = self.logs / f"{self.name}-{self.incarnation}.log"
        with self._log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "drills.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--server-log-level",
                    "warning",
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, *, timeout_s: float) -> float:
        """Block until `/healthz` answers 200 (the lifespan has finished starting: lease,
        recovery, runner, claim loop); the seconds waited. Raises `AssertionError` with
        the log's tail if the process exits or `timeout_s` passes first."""
        began = time.monotonic()
        url = f"http://127.0.0.1:{self.port}{HEALTH_PATH}"
        while time.monotonic() - began < timeout_s:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"replica {self.name} exited {self.process.returncode} before it answered"
                    f" {HEALTH_PATH}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as answer:
                    if answer.status == 200:
                        return time.monotonic() - began
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise AssertionError(
            f"replica {self.name} did not answer {url} within {timeout_s:.0f}s:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """SIGKILL, and reap it (a zombie would still look alive to recovery)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def interrupt(self) -> None:
        """SIGINT (Ctrl-C): `serve` stops its runner, releases the lease and exits."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def wait_stopped(self, *, timeout_s: float) -> int:
        """Wait for the process to exit; its exit code (it is killed past `timeout_s`)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise AssertionError(
                f"replica {self.name} did not stop within {timeout_s:.0f}s:\n{self.log_tail()}"
            ) from None

    def ensure_stopped(self) -> None:
        """Kill whatever is still running (cleanup after a failed test)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        text = self._log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


# ---- reading the store --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LeaseState:
    holder: str
    epoch: int


def lease(store: journal.Journal, name: str = "housekeeping") -> LeaseState | None:
    """The lease row's holder and epoch now ("" holder: released), or None if never taken."""
    table = tables_leases.leases_table
    with store.transaction() as conn:
        row = conn.execute(
            sa.select(table.c.holder, table.c.epoch).where(table.c.name == name)
        ).first()
    if row is None:
        return None
    return LeaseState(holder=row.holder, epoch=int(row.epoch))


def fire_count(store: journal.Journal) -> int:
    with store.transaction() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(storing.F)).scalar_one())


def first_fire_recorded_after(store: journal.Journal, at: dt.datetime) -> dt.datetime | None:
    """When the first fire row recorded after `at` was written (its claim pass's time)."""
    with store.transaction() as conn:
        found: dt.datetime | None = conn.execute(
            sa.select(sa.func.min(storing.F.c.recorded_at)).where(storing.F.c.recorded_at > at)
        ).scalar()
    return found


def run_in_flight_of(store: journal.Journal, pid: int) -> states.Run | None:
    """A run process `pid` is driving now (past PENDING, not yet final), if any."""
    for run in store.runs_in_flight():
        if run.owner.pid == pid and run.state is not states.RunState.PENDING:
            return run
    return None


def settled(store: journal.Journal, schedule_ids: Sequence[str]) -> bool:
    """Every schedule has ended (no next fire) and no run is pending or in flight."""
    with store.transaction() as conn:
        rows = conn.execute(
            sa.select(storing.S.c.next_nominal).where(storing.S.c.id.in_(list(schedule_ids)))
        ).all()
    if len(rows) != len(schedule_ids) or any(row.next_nominal is not None for row in rows):
        return False
    return not store.runs_in_flight()


@dataclasses.dataclass(frozen=True)
class Tally:
    """What the store holds after the replicas stopped (counts; the test asserts on them)."""

    fires: int
    expected: int
    started: int
    skipped_by_reason: Mapping[str, int]
    missing: tuple[tuple[str, dt.datetime], ...]
    """Expected (schedule, nominal time) pairs without a fire row (gaps)."""
    unexpected: tuple[tuple[str, dt.datetime], ...]
    """Fire rows at a nominal time the schedule does not have."""
    duplicate_fires: int
    """Fire rows beyond the first for one (schedule, nominal time)."""
    skipped_without_reason: int
    started_without_run: int
    """Started fires whose run id is missing, or names no run in the store."""
    runs_shared_by_fires: int
    """Run ids that more than one fire row names."""
    runs_without_fire: int
    """Runs with trigger schedule that no fire row names."""
    runs_not_matching_fire: int
    """Runs whose record's trigger does not say schedule and this fire's time."""
    runs_started_twice: int
    """Runs with more than one move to PLANNING in their timeline."""
    runs_never_started: int
    """Runs of started fires that never reached PLANNING."""
    runs_by_state: Mapping[str, int]
    recovered_runs: int
    """Runs that went through CRASHED (their orchestrator died; recovery rolled them back)."""


def tally(store: journal.Journal, expected: Mapping[str, Sequence[dt.datetime]]) -> Tally:
    """Count fires, runs and their starts for the schedules `expected` names."""
    with store.transaction() as conn:
        fire_rows = [
            storing.fire_from_row(row)
            for row in conn.execute(
                sa.select(storing.F).where(storing.F.c.schedule_id.in_(list(expected)))
            )
        ]
        names = {
            row.id: row.name
            for row in conn.execute(
                sa.select(storing.S.c.id, storing.S.c.name).where(
                    storing.S.c.id.in_(list(expected))
                )
            )
        }
        moves = conn.execute(
            sa.select(journal.events_table.c.run_id, journal.events_table.c.data).where(
                journal.events_table.c.kind == events.EventKind.STATE.value
            )
        ).all()
    runs = {run.id: run for run in store.list_runs(limit=None)}
    per_key = collections.Counter((f.schedule_id, f.nominal) for f in fire_rows)
    wanted = {(sid, at) for sid, times in expected.items() for at in times}
    states_of: dict[str, list[str]] = collections.defaultdict(list)
    for run_id, data in moves:
        states_of[run_id].append(str((data or {}).get("state")))
    started = [f for f in fire_rows if f.outcome is model.Outcome.STARTED]
    skipped = [f for f in fire_rows if f.outcome is model.Outcome.SKIPPED]
    run_ids = collections.Counter(f.run_id for f in started if f.run_id)
    schedule_runs = {
        run_id
        for run_id, run in runs.items()
        if run.record.trigger is not None
        and run.record.trigger.kind is records.TriggerKind.SCHEDULE
    }
    not_matching = 0
    for fire in started:
        run = runs.get(states.RunId(fire.run_id or ""))
        trigger = None if run is None else run.record.trigger
        if run is None or trigger is None:
            continue
        if (
            trigger.kind is not records.TriggerKind.SCHEDULE
            or trigger.principal != f"schedule:{names.get(fire.schedule_id)}"
            or not trigger.reason.startswith(f"fire at {fire.nominal.isoformat()} ")
        ):
            not_matching += 1
    started_runs = [states.RunId(f.run_id) for f in started if f.run_id]
    return Tally(
        fires=len(fire_rows),
        expected=len(wanted),
        started=len(started),
        skipped_by_reason=dict(
            sorted(collections.Counter(f.reason.split(":")[0] for f in skipped).items())
        ),
        missing=tuple(sorted(wanted - set(per_key))),
        unexpected=tuple(sorted(set(per_key) - wanted)),
        duplicate_fires=sum(count - 1 for count in per_key.values()),
        skipped_without_reason=sum(1 for f in skipped if not f.reason.strip()),
        started_without_run=sum(1 for f in started if not f.run_id or f.run_id not in runs),
        runs_shared_by_fires=sum(1 for count in run_ids.values() if count > 1),
        runs_without_fire=len(schedule_runs - set(run_ids)),
        runs_not_matching_fire=not_matching,
        runs_started_twice=sum(1 for r in started_runs if states_of[r].count(PLANNING) > 1),
        runs_never_started=sum(1 for r in started_runs if PLANNING not in states_of[r]),
        runs_by_state=dict(
            sorted(
                collections.Counter(runs[r].state.value for r in started_runs if r in runs).items()
            )
        ),
        recovered_runs=sum(
            1 for r in started_runs if states.RunState.CRASHED.value in states_of[r]
        ),
    )
