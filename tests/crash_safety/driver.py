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
import json
import os
import pathlib
import runpy
import signal
import sys
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

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


class Ticker:
    """Counts events by kind; SIGKILLs this process when the kill point's count is reached."""

    def __init__(self, point: KillPoint | None) -> None:
        self.point = point
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def tick(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            hit = (
                self.point is not None
                and self.point.kind == kind
                and self.counts[kind] == self.point.n
            )
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)


class KillingJournal:
    """A journal that ticks after each durable write (so the write is on disk when we die)."""

    def __init__(self, inner: journal.Journal, ticker: Ticker) -> None:
        self._inner = inner
        self._ticker = ticker

    def record_intent(
        self, run_id: states.RunId, mutation: mutations.PlannedMutation
    ) -> mutations.JournalEntry:
        entry = self._inner.record_intent(run_id, mutation)
        self._ticker.tick("intent")
        return entry

    def mark_applied(
        self, seq: int, *, undo: mutations.UndoToken | None = None
    ) -> mutations.JournalEntry:
        entry = self._inner.mark_applied(seq, undo=undo)
        self._ticker.tick("applied")
        return entry

    def mark_reverted(self, seq: int, *, attempts: int = 1) -> mutations.JournalEntry:
        entry = self._inner.mark_reverted(seq, attempts=attempts)
        self._ticker.tick("reverted")
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
        self._ticker.tick("event")
        return event

    def save_run(self, run: states.Run, *, expected_state: states.RunState) -> states.Run:
        saved = self._inner.save_run(run, expected_state=expected_state)
        self._ticker.tick(f"state:{run.state.value}")
        return saved

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def instrument_aws(reg: Any, ticker: Ticker) -> None:
    """Wrap the registry's AWS connector so every mutating call of the run ticks."""
    connect = reg.connectors()[connecting.PROVIDER]

    def before(event_name: str, **_: Any) -> None:
        if not event_name.rsplit(".", 1)[-1].startswith(_READ_PREFIXES):
            ticker.tick("aws-before")

    def after(event_name: str, http_response: Any, **_: Any) -> None:
        ok = int(getattr(http_response, "status_code", 500)) < 300
        if ok and not event_name.rsplit(".", 1)[-1].startswith(_READ_PREFIXES):
            ticker.tick("aws-after")

    def wrapped(environment: Any) -> object:
        conn = connect(environment)
        if isinstance(conn, connecting.AwsConnection):
            conn.session.events.register("before-send", before)
            conn.session.events.register("after-call", after)
        return conn

    reg.register_connector(connecting.PROVIDER, wrapped)


def run_drill(
    *,
    scenario: pathlib.Path,
    env: pathlib.Path,
    db: str,
    point: KillPoint | None,
    counts: pathlib.Path | None,
) -> int:
    """Run one drill (dying at `point`, if it is reached); the exit code of `stormdrill run`."""
    ticker = Ticker(point)
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
    return run_drill(
        scenario=pathlib.Path(request["scenario"]),
        env=pathlib.Path(request["env"]),
        db=str(request["db"]),
        point=KillPoint.parse(kill) if kill else None,
        counts=pathlib.Path(counts) if counts else None,
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
    runpy.run_module("drills.cli", run_name="drills_cli_warm_up")


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
    drill.add_argument("--db", required=True, help="sqlite:///PATH")
    drill.add_argument("--kill", type=KillPoint.parse, default=None)
    drill.add_argument("--counts", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    return run_drill(
        scenario=args.scenario, env=args.env, db=args.db, point=args.kill, counts=args.counts
    )


if __name__ == "__main__":
    sys.exit(main())
