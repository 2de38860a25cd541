"""A child process that journals an intent, says so on stdout, then waits to be killed.

Run as `python -m tests.engine_core.crash_writer URL RUN_ID`.
"""

from __future__ import annotations

import sys
import threading

from orchestrator import journal, states
from tests.engine_core import factories


def main(url: str, run_id: str) -> None:
    store = journal.open_store(url)
    run = store.create_run(factories.make_run(run_id=run_id, state=states.RunState.INJECTING))
    entry = store.record_intent(run.id, factories.set_value(name="web", previous=3, value=0))
    sys.stdout.write(f"intent {entry.seq}\n")
    sys.stdout.flush()
    threading.Event().wait()  # "mutating" until SIGKILL


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
