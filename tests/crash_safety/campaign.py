"""Campaign: calibrate a drill, then kill it at many seeded points and recover after each.

Per kill point: fork the drill, let it die (SIGKILL) at the point, run `stormdrill recover`
against the same store, then require (a) recover exited 0, (b) no run is left unfinished,
ROLLBACK_FAILED or holding target locks, (c) the world equals the pre-drill snapshot. The
next point starts from that same world, so a leftover fails the case that left it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from tests.crash_safety import harness

log = logging.getLogger(__name__)

Snapshot = Callable[[], Any]


@dataclasses.dataclass
class Campaign:
    """One drill, its world and the tools to kill it; `run` does the kill points."""

    driver: harness.Driver
    scenario: pathlib.Path
    env: pathlib.Path
    db: str
    snapshot: Snapshot
    workdir: pathlib.Path
    killer: harness.RequestKiller | None = None
    cases: list[str] = dataclasses.field(default_factory=list)
    not_reached: list[str] = dataclasses.field(default_factory=list)

    def _arm(self, point: str | None) -> Callable[[int], None]:
        killer = self.killer

        def on_start(pid: int) -> None:
            if killer is None:
                return
            kind, _, n = (point or "none:0").rpartition(":")
            if kind in harness.REQUEST_KINDS:
                killer.arm(pid, n=int(n), drop=kind == "request-drop")
            else:
                killer.arm(pid, n=0, drop=False)

        return on_start

    def calibrate(self) -> dict[str, int]:
        """Run the drill once to the end; what it counted (writes, requests, AWS calls)."""
        counts_file = self.workdir / "calibration-counts.json"
        ended = self.driver.drill(
            scenario=self.scenario,
            env=self.env,
            db=self.db,
            kill=None,
            counts=counts_file,
            on_start=self._arm(None),
        )
        requests = self.killer.disarm() if self.killer is not None else 0
        assert ended.code == 0, f"calibration drill did not complete:\n{ended.output()}"
        counts: dict[str, int] = json.loads(counts_file.read_text(encoding="utf-8"))
        if self.killer is not None:
            counts.update(dict.fromkeys(harness.REQUEST_KINDS, requests))
        return counts

    def check(self, before: Any, what: str, recover_output: str) -> None:
        problems = harness.store_problems(self.db)
        assert not problems, f"{what}: after recover: {problems}\n{recover_output}"
        after = self.snapshot()
        changes = list(harness.diff(before, after))
        assert not changes, (
            f"{what}: the world differs from before the drill after recover:\n  "
            + "\n  ".join(changes)
            + f"\nrecover said:\n{recover_output}"
        )

    def run(self, points: Sequence[str], *, before: Any, seed: int) -> None:
        for i, point in enumerate(points, 1):
            started = time.monotonic()
            what = f"seed {seed}, case {i}/{len(points)}, kill point {point}"
            kind = point.rpartition(":")[0]
            journal_point = None if kind in harness.REQUEST_KINDS else point
            ended = self.driver.drill(
                scenario=self.scenario,
                env=self.env,
                db=self.db,
                kill=journal_point,
                on_start=self._arm(point),
            )
            if self.killer is not None:
                self.killer.disarm()
            if not ended.killed:
                assert ended.code is not None and ended.code == 0, (
                    f"{what}: the drill neither died nor completed:\n{ended.output()}"
                )
                self.not_reached.append(point)
            drilled = time.monotonic()
            recovered = self.driver.cli(["recover"], db=self.db)
            recovered_at = time.monotonic()
            assert recovered.code == 0, f"{what}: recover failed:\n{recovered.output()}"
            self.check(before, what, recovered.output())
            self.cases.append(point)
            log.info(
                "%s: healed (drill %.1fs, recover %.1fs, check %.1fs)",
                what,
                drilled - started,
                recovered_at - drilled,
                time.monotonic() - recovered_at,
            )


def state_kinds(counts: dict[str, int]) -> list[str]:
    return sorted(k for k in counts if k.startswith("state:"))


def points_for(
    counts: dict[str, int],
    *,
    seed: int,
    salt: int,
    how_many: int,
    groups: Sequence[Sequence[str]],
) -> list[str]:
    rng = random.Random(seed * 7919 + salt)
    return harness.choose_points(rng, counts, how_many=how_many, groups=groups)
