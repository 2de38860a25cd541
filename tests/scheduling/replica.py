"""A claim-loop replica in its own process: `python -m tests.scheduling.replica URL T0 TICKS GO`.

Walks a fast clock shared by every replica: from the wall-clock instant GO (epoch seconds)
on, each `STEP_S` of real time is one simulated second after T0; it runs
`claiming.fire_due(store, T0 + tick + 0.5 s)` for the current tick, again and again, until
TICKS simulated seconds have passed, so replicas started together claim the same fires at
the same moments. Prints how many fire rows it wrote.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from drills import tables_schedules  # noqa: F401  (its tables on journal.metadata)
from drills.scheduling import claiming
from orchestrator import journal

STEP_S = 0.02


def main(argv: list[str]) -> int:
    url, start, ticks, go = (
        argv[0],
        dt.datetime.fromisoformat(argv[1]),
        int(argv[2]),
        float(argv[3]),
    )
    written = 0
    with journal.open_store(url) as store:
        time.sleep(max(0.0, go - time.time()))
        while (tick := int((time.time() - go) / STEP_S)) < ticks:
            written += len(claiming.fire_due(store, start + dt.timedelta(seconds=tick + 0.5)))
        written += len(claiming.fire_due(store, start + dt.timedelta(seconds=ticks - 0.5)))
    sys.stdout.write(f"{written}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
