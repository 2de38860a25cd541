"""Driver: run a real drill in a child process that SIGKILLs itself at one chosen point.

The drill is the product's own path: `drills.binding.bind` + `binding.make_engine` +
`Engine.run` against an Environment file and a SQLite store. Two test-only instruments
decide when the process dies (`SIGKILL`, no cleanup of any kind):

- `KillingJournal`, passed to the engine as its store: dies right after its Nth durable write
  of one kind (`intent`, `applied`, `reverted`, `event`) or right after the run is saved in a
  given state (`state`, e.g. `state:rolling_back`).
- botocore event hooks registered on the run's AWS connection (the connector is wrapped, no
  SDK method is patched): die just before the Nth mutating AWS call is sent (`aws-before`)
  or just after the Nth one answered (`aws-after`).
(Kubernetes requests are killed server side by the test, see `harness.RequestKiller`.)

Before it dies the child writes a kill record (`--record FILE`, JSON): the point, why it died
(which instrument, which write or call) and its journal position (the run's state, its
entries' states, its newest event), so the suite can check the kill landed where it was
meant to. A point `pgterm-KIND:N` does not kill: after the Nth event of KIND it terminates
the drill's own PostgreSQL backends from another connection (`pg_terminate_backend`) and
carries on, so the run meets a dropped database connection mid-flight.

Two ways to use it:
- `python -m tests.crash_safety.driver drill --scenario F --env ENV --db URL [--kill KIND:N]`
  runs one drill in this process (it may die; exit status 137 means it was killed).
- `python -m tests.crash_safety.driver serve` is what the suite runs: a pre-imported parent
  that forks one child per request (JSON lines on stdin/stdout), so each of the suite's many
  kill points costs a fork, not an interpreter start. Requests: `drill` (answers `started`
  with the child's pid, waits for `go`, then answers `ended`) and `cli` (runs
  `python -m drills.cli ARGS` in a forked child: `runpy` of the real module as `__main__`).
The serving parent never starts threads or opens the store, so forking it is safe.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import pathlib
import runpy
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, cast

import psycopg
import sqlalchemy as sa

from drills import binding
from orchestrator import engine, journal, mutations, states
from orchestrator.providers.aws import connecting

JOURNAL_KINDS = ("intent", "applied", "reverted", "event")
AWS_KINDS = ("aws-before", "aws-after")
CONFIG = engine.EngineConfig(stability_window_s=5.0, heartbeat_s=0.2, recovery_timeout_s=60.0)
"""Short verification (scaled by the sandbox's time scale): the suite judges the world itself."""

_READ_PREFIXES = ("Describe", "List", "Get")


@dataclasses.dataclass(frozen=True)
class KillPoint:
    """Die right after the `n`th event of `kind` (`state:<state>` counts saves in that state)."""

    kind: str
    n: int

    @classmethod
    def parse(cls, text: str) -> KillPoint:
        kind, _, n = text.rpartition(":")
        return cls(kind=kind, n=int(n))

    def __str__(self) -> str:
        return f"{self.kind}:{self.n}"


PGTERM = "pgterm-"
"""Prefix of the points that terminate the drill's database backends instead of killing it."""


class Ticker:
    """Counts events by kind; SIGKILLs this process when the kill point's count is reached.

    It also keeps the journal position the drill has reached (fed by `KillingJournal`) and
    writes it, with the reason, to `record` just before the kill.
    """

    def __init__(
        self,
        point: KillPoint | None,
        *,
        record: pathlib.Path | None = None,
        terminate: Callable[[], list[int]] | None = None,
    ) -> None:
        self.point = point
        self.record = record
        self.terminate = terminate
        self.counts: Counter[str] = Counter()
        self.run_id: str | None = None
        self.run_state: str | None = None
        self.entries: dict[int, str] = {}
        self.last_event = 0
        self._lock = threading.Lock()

    def entry(self, entry: mutations.JournalEntry) -> None:
        with self._lock:
            self.run_id = str(entry.run_id)
            self.entries[entry.seq] = entry.state.value

    def event(self, seq: int) -> None:
        with self._lock:
            self.last_event = max(self.last_event, seq)

    def run(self, run: states.Run) -> None:
        with self._lock:
            self.run_id, self.run_state = str(run.id), run.state.value

    def position(self) -> dict[str, object]:
        """What this process knows the journal holds (call with the lock held)."""
        return {
            "run": self.run_id,
            "run_state": self.run_state,
            "entries": {str(k): v for k, v in sorted(self.entries.items())},
            "last_event": self.last_event,
        }

    def tick(self, kind: str, **wrote: object) -> None:
        found: dict[str, object] = {}
        with self._lock:
            self.counts[kind] += 1
            point = self.point
            reached = point is not None and self.counts[kind] == point.n
            hit = reached and point is not None and point.kind == kind
            term = reached and point is not None and point.kind == PGTERM + kind
            if hit or term:
                found = {
                    "point": str(point),
                    "reason": f"{kind} #{self.counts[kind]}",
                    "wrote": {"kind": kind, **wrote},
                    "position": self.position(),
                }
        if term and self.terminate is not None:
            found["terminated"] = self.terminate()
            self._write(found)
        elif hit:
            self._write(found)
            os.kill(os.getpid(), signal.SIGKILL)

    def _write(self, found: Mapping[str, object]) -> None:
        if self.record is not None:
            self.record.write_text(json.dumps(found), encoding="utf-8")


class KillingJournal:
    """A journal that ticks after each durable write (so the write is on disk when we die)."""

    def __init__(self, inner: journal.Journal, ticker: Ticker) -> None:
        self._inner = inner
        self._ticker = ticker

    def _entry(self, kind: str, entry: mutations.JournalEntry) -> mutations.JournalEntry:
        self._ticker.entry(entry)
        self._ticker.tick(kind, seq=entry.seq, state=entry.state.value)
        return entry

    def record_intent(
        self, run_id: states.RunId, mutation: mutations.PlannedMutation
    ) -> mutations.JournalEntry:
        return self._entry("intent", self._inner.record_intent(run_id, mutation))

    def mark_applied(
        self, seq: int, *, undo: mutations.UndoToken | None = None
    ) -> mutations.JournalEntry:
        return self._entry("applied", self._inner.mark_applied(seq, undo=undo))

    def mark_reverted(
        self, seq: int, *, attempts: int = 1, timeline: journal.Timeline | None = None
    ) -> mutations.JournalEntry:
        return self._entry(
            "reverted", self._inner.mark_reverted(seq, attempts=attempts, timeline=timeline)
        )

    def mark_reverted_later(
        self,
        seq: int,
        *,
        attempts: int = 1,
        timeline: journal.Timeline | None = None,
        known: mutations.JournalEntry | None = None,
    ) -> Future[mutations.JournalEntry]:
        """As the journal's; the kill point is reached once the record is durable."""
        marked = self._inner.mark_reverted_later(
            seq, attempts=attempts, timeline=timeline, known=known
        )

        def durable(done: Future[mutations.JournalEntry]) -> None:
            if done.exception() is None:
                self._entry("reverted", done.result())

        marked.add_done_callback(durable)
        return marked

    # The other marks move the position but are no kill points.
    def mark_apply_failed(self, seq: int, *, error: str) -> mutations.JournalEntry:
        entry = self._inner.mark_apply_failed(seq, error=error)
        self._ticker.entry(entry)
        return entry

    def mark_skipped(self, seq: int, *, reason: str) -> mutations.JournalEntry:
        entry = self._inner.mark_skipped(seq, reason=reason)
        self._ticker.entry(entry)
        return entry

    def mark_revert_failed(
        self,
        seq: int,
        *,
        error: str,
        attempts: int = 1,
        timeline: journal.Timeline | None = None,
    ) -> mutations.JournalEntry:
        entry = self._inner.mark_revert_failed(
            seq, error=error, attempts=attempts, timeline=timeline
        )
        self._ticker.entry(entry)
        return entry

    def append_event(
        self,
        run_id: states.RunId,
        *,
        kind: str,
        message: str,
        data: Mapping[str, mutations.JsonValue] | None = None,
    ) -> journal.Event:
        event = self._inner.append_event(run_id, kind=kind, message=message, data=data)
        self._ticker.event(event.seq)
        self._ticker.tick("event", seq=event.seq, event_kind=kind)
        return event

    def append_events(
        self, run_id: states.RunId, events: Sequence[journal.NewEvent]
    ) -> list[journal.Event]:
        written = self._inner.append_events(run_id, events)
        for event in written:
            self._ticker.event(event.seq)
        return written

    def save_run(self, run: states.Run, *, expected_state: states.RunState) -> states.Run:
        saved = self._inner.save_run(run, expected_state=expected_state)
        self._ticker.run(saved)
        self._ticker.tick(f"state:{run.state.value}", state=run.state.value)
        return saved

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def instrument_aws(reg: Any, ticker: Ticker) -> None:
    """Wrap the registry's AWS connector so every mutating call of the run ticks."""
    connect = reg.connectors()[connecting.PROVIDER]

    def before(event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if not operation.startswith(_READ_PREFIXES):
            ticker.tick("aws-before", operation=operation)

    def after(event_name: str, http_response: Any, **_: Any) -> None:
        ok = int(getattr(http_response, "status_code", 500)) < 300
        operation = event_name.rsplit(".", 1)[-1]
        if ok and not operation.startswith(_READ_PREFIXES):
            ticker.tick("aws-after", operation=operation)

    def wrapped(environment: Any) -> object:
        conn = connect(environment)
        if isinstance(conn, connecting.AwsConnection):
            conn.session.events.register("before-send", before)
            conn.session.events.register("after-call", after)
        return conn

    reg.register_connector(connecting.PROVIDER, wrapped)


def _tagged(db: str) -> tuple[str, Callable[[], list[int]] | None]:
    """`db` with an application_name naming this process (PostgreSQL), and a function that
    terminates this process's backends from a connection of its own (None on SQLite)."""
    url = sa.make_url(journal.normalise_url(db))
    if url.get_backend_name() != "postgresql":
        return db, None
    name = f"stormdrill-crash-{os.getpid()}"
    tagged = url.update_query_dict({"application_name": name})
    admin = tagged.set(drivername="postgresql", query={}).render_as_string(hide_password=False)

    def terminate() -> list[int]:
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchall()
        return [int(pid) for pid, done in rows if done]

    return tagged.render_as_string(hide_password=False), terminate


def run_drill(
    *,
    scenario: pathlib.Path,
    env: pathlib.Path,
    db: str,
    point: KillPoint | None,
    counts: pathlib.Path | None,
    record: pathlib.Path | None = None,
) -> int:
    """Run one drill (dying at `point`, if it is reached); the exit code of `stormdrill run`."""
    db, terminate = _tagged(db)
    ticker = Ticker(point, record=record, terminate=terminate)
    bound = binding.bind(str(scenario), env=str(env), sets=[])
    with journal.open_store(db) as store:
        eng = binding.make_engine(
            store=cast(journal.Journal, KillingJournal(store, ticker)),
            catalog=None,
            config=CONFIG,
            killswitch_file=None,
        )
        instrument_aws(eng.registry, ticker)
        outcome = eng.run(bound.drill)
    if counts is not None:
        counts.write_text(json.dumps(dict(ticker.counts)), encoding="utf-8")
    return outcome.exit_code


# ----- the forking server -----------------------------------------------------------------


def _send(message: Mapping[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _redirect(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _status(status: int) -> dict[str, object]:
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status), "code": None}
    return {"signal": None, "code": os.WEXITSTATUS(status)}


def _child_drill(request: Mapping[str, Any], go: int) -> int:
    os.read(go, 1)
    os.close(go)
    kill = request.get("kill")
    counts = request.get("counts")
    record = request.get("record")
    return run_drill(
        scenario=pathlib.Path(request["scenario"]),
        env=pathlib.Path(request["env"]),
        db=str(request["db"]),
        point=KillPoint.parse(kill) if kill else None,
        counts=pathlib.Path(counts) if counts else None,
        record=pathlib.Path(record) if record else None,
    )


def _child_cli(request: Mapping[str, Any]) -> int:
    os.environ.update({str(k): str(v) for k, v in dict(request.get("environ") or {}).items()})
    sys.argv = ["stormdrill", *[str(a) for a in request["args"]]]
    try:
        runpy.run_module("drills.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _fork(request: Mapping[str, Any]) -> None:
    op = request["op"]
    read_go, write_go = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.close(write_go)
            _redirect(str(request["log"]))
            code = _child_drill(request, read_go) if op == "drill" else _child_cli(request)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(read_go)
    if op == "drill":
        _send({"event": "started", "pid": pid})
        line = sys.stdin.readline()
        if json.loads(line or "{}").get("op") != "go":
            os.kill(pid, signal.SIGKILL)
    os.write(write_go, b"g")
    os.close(write_go)
    _, status = os.waitpid(pid, 0)
    _send({"event": "ended", "pid": pid, **_status(status)})


def warm_up() -> None:
    """Import what the first Kubernetes call would import lazily (seconds, once, not per fork)."""
    from kubernetes import client as k8s_client

    for name in (
        "CoreV1Api",
        "AppsV1Api",
        "PolicyV1Api",
        "NetworkingV1Api",
        "RbacAuthorizationV1Api",
    ):
        getattr(k8s_client, name)
    # The CLI imports a command's module only when it runs: import them all once here, so
    # each forked `cli` request starts warm.
    cli = importlib.import_module("drills.cli")
    for command in cli.COMMANDS:
        importlib.import_module(command.target.partition(":")[0])


def serve() -> int:
    """Answer fork requests from stdin until it closes."""
    warm_up()
    _send({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        _fork(json.loads(line))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.crash_safety.driver")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="fork drills and CLI calls on request (JSON lines)")
    drill = sub.add_parser("drill", help="run one drill here, dying at --kill KIND:N")
    drill.add_argument("--scenario", type=pathlib.Path, required=True)
    drill.add_argument("--env", type=pathlib.Path, required=True)
    drill.add_argument("--db", required=True, help="sqlite:///PATH or postgresql://...")
    drill.add_argument("--kill", type=KillPoint.parse, default=None)
    drill.add_argument("--counts", type=pathlib.Path, default=None)
    drill.add_argument("--record", type=pathlib.Path, default=None, help="kill record (JSON)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    return run_drill(
        scenario=args.scenario,
        env=args.env,
        db=args.db,
        point=args.kill,
        counts=args.counts,
        record=args.record,
    )


if __name__ == "__main__":
    sys.exit(main())
