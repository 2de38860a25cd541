"""Event streams: a run's timeline replayed from a cursor, then followed live until it ends.

What `GET /runs/{id}/events` (Server-Sent Events) and any other live view stand on. The
store is polled with a cursor (`Journal.events(run_id, after=seq)`) from a worker thread, so
an event loop serving many streams never blocks on the database; between polls the stream
sleeps (`Follow.poll_s`), it never spins.

Invariants:
- Every event is delivered once, in `seq` order, starting after the cursor given (`after`
  None: from the first event). `seq` is the journal's, so a client reconnecting with the
  last seq it saw (`Last-Event-ID`) misses nothing and sees nothing twice.
- Each poll reads from the cursor of the poll before (one poll of look-back) and skips what
  it already delivered: on PostgreSQL a seq is taken at insert and becomes visible at
  commit, so an event may appear after one with a higher seq; it is still delivered (late,
  hence the only case out of order) if it commits within a poll interval, which a
  one-statement append always does.
- The stream ends right after the `state` event that moves the run into a terminal state
  (`states.TERMINAL`). A run found terminal whose timeline holds no new events for
  `Follow.settle_polls` polls in a row (its terminal event was before the cursor, or it has
  none) ends the stream too, so no stream outlives its run.
- With nothing to deliver for `Follow.heartbeat_s`, a `Heartbeat` is yielded (proxies and
  browsers keep the connection open).
- Closing the generator (the client went away) stops the polling at once; it is logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator

from drills.service import runs, views
from orchestrator import errors, journal, states
from orchestrator import events as event_kinds

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Follow:
    """How a stream follows its run: poll interval, heartbeat interval, settling polls."""

    poll_s: float = 0.5
    heartbeat_s: float = 15.0
    settle_polls: int = 2
    """Polls without news after which a run found terminal ends its stream."""


@dataclasses.dataclass(frozen=True)
class Delivered:
    """One timeline event as the stream delivers it: its seq, its kind and its view."""

    event: journal.Event

    @property
    def seq(self) -> int:
        return self.event.seq

    @property
    def kind(self) -> str:
        return self.event.kind

    def view(self) -> views.EventView:
        return views.EventView.from_event(self.event)


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """Nothing happened for a while; the stream is alive."""


Update = Delivered | Heartbeat


def check_run(store: journal.Journal, text: str) -> states.Run:
    """The run a stream would follow, named as every run route names one (`runs.resolve_id`:
    a full id, a unique prefix, `latest`); `runs.UnknownRun` or `runs.AmbiguousRunId`.

    Called before a stream starts, so an unknown run is a plain error (HTTP 404), not an
    empty stream.
    """
    run_id = runs.resolve_id(store, text)
    try:
        return store.get_run(run_id)
    except errors.JournalError as exc:  # deleted between the two reads
        raise runs.UnknownRun(f"no run {text!r} in the store at {store.url}") from exc


def is_terminal_move(event: journal.Event) -> bool:
    """Whether `event` is the `state` event of a move into a terminal state."""
    if event.kind != event_kinds.EventKind.STATE:
        return False
    raw = event.data.get("state")
    try:
        return isinstance(raw, str) and states.RunState(raw) in states.TERMINAL
    except ValueError:
        return False


def _poll(
    store: journal.Journal, run_id: states.RunId, after: int | None
) -> tuple[list[journal.Event], bool]:
    """The events past `after`, and whether the run was terminal before they were read."""
    terminal = store.get_run(run_id).state in states.TERMINAL
    return store.events(run_id, after=after), terminal


async def follow(
    store: journal.Journal,
    run_id: states.RunId,
    *,
    after: int | None = None,
    options: Follow | None = None,
) -> AsyncIterator[Update]:
    """The run's events past `after`, then the live ones, until the run has ended.

    Yields `Delivered` per event and `Heartbeat` when quiet (see the module's invariants).
    """
    options = options or Follow()
    cursor = after
    look_back = after
    seen: set[int] = set()
    delivered = 0
    quiet_terminal_polls = 0
    last_sent = time.monotonic()
    ended = "it failed"
    try:
        while True:
            polled, terminal = await asyncio.to_thread(_poll, store, run_id, look_back)
            found = [event for event in polled if event.seq not in seen]
            look_back = cursor
            seen = {seq for seq in seen if look_back is None or seq > look_back}
            for event in found:
                cursor = event.seq if cursor is None else max(cursor, event.seq)
                seen.add(event.seq)
                delivered += 1
                last_sent = time.monotonic()
                yield Delivered(event)
                if is_terminal_move(event):
                    ended = "the run ended"
                    return
            if found:
                quiet_terminal_polls = 0
                continue
            if terminal:
                quiet_terminal_polls += 1
                if quiet_terminal_polls >= options.settle_polls:
                    ended = "the run had ended"
                    return
            if time.monotonic() - last_sent >= options.heartbeat_s:
                last_sent = time.monotonic()
                yield Heartbeat()
            await asyncio.sleep(options.poll_s)
    except (GeneratorExit, asyncio.CancelledError):
        ended = "the client went away"
        raise
    finally:
        log.info(
            "event stream of run %s closed after %d event(s) (last seq %s): %s",
            run_id,
            delivered,
            cursor,
            ended,
        )
