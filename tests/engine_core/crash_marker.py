"""A child process that marks an entry reverted with its timeline and is killed at one moment.

Run as `python -m tests.engine_core.crash_marker URL RUN_ID MOMENT`; it says `applied SEQ`
once its entry is applied, then marks it reverted with a "reverting" and a "reverted" line:
- `inside`: says `inside` as the batch's events are about to be sent (the mark's UPDATE is
  done, the transaction not committed) and waits there to be killed;
- `after`: says `marked SEQ` once `mark_reverted` has returned, then waits to be killed.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from orchestrator import journal, states
from tests.engine_core import factories

STARTED = datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(url: str, run_id: str, moment: str) -> None:
    store = journal.open_store(url)
    run = store.create_run(factories.make_run(run_id=run_id, state=states.RunState.INJECTING))
    entry = store.record_intent(run.id, factories.set_value(name="web", previous=3, value=0))
    store.mark_applied(entry.seq)
    _say(f"applied {entry.seq}")
    if moment == "inside":

        def stop(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
                _say("inside")
                threading.Event().wait()  # between the UPDATE and the commit, until SIGKILL

        sa.event.listen(sa.engine.Engine, "before_cursor_execute", stop)
    timeline = journal.Timeline(
        run.id,
        [
            journal.NewEvent("revert", f"reverting #{entry.seq}", {"seq": entry.seq}, at=STARTED),
            journal.NewEvent("mutation", f"reverted #{entry.seq}", {"seq": entry.seq}),
        ],
    )
    store.mark_reverted(entry.seq, timeline=timeline)
    _say(f"marked {entry.seq}")
    threading.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
