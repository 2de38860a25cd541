"""Objectives: the recovery time a drill achieved, measured from its probe samples.

Achieved RTO is the time from T0 (the first fault applied) to the moment every recovery
probe passes and keeps passing for a stability window; any failure inside the window
resets it. A drill whose probes never failed after T0 achieved an RTO of zero (no
outage was observed). Pure functions over recorded samples, so reports can recompute.
Targets come from the scenario's `objectives`, else from the CMDB objectives of the
targeted services for the scenario's failure mode (the strictest wins).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from orchestrator import journal
from orchestrator.cmdb import models as cmdb_models
from scenarios import quantities


@dataclasses.dataclass(frozen=True)
class Sample:
    """One probe result at one moment."""

    at: datetime
    probe: str
    ok: bool


def samples_from_events(events: Iterable[journal.Event]) -> list[Sample]:
    """The probe samples recorded in a run's timeline (events of kind `probe`)."""
    found: list[Sample] = []
    for event in events:
        name = event.data.get("probe")
        ok = event.data.get("ok")
        if isinstance(name, str) and isinstance(ok, bool):
            found.append(Sample(at=event.at, probe=name, ok=ok))
    return sorted(found, key=lambda s: s.at)


def achieved_rto(
    samples: Sequence[Sample], *, t0: datetime | None, window_s: float
) -> float | None:
    """Seconds from `t0` until all probes passed and stayed passing for `window_s`.

    None when there was no fault (`t0` is None) or recovery was never observed for a full
    window. 0.0 when no probe failed after `t0`.
    """
    if t0 is None:
        return None
    after = [s for s in samples if s.at >= t0]
    if not any(not s.ok for s in after):
        return 0.0
    latest: dict[str, bool] = {}
    streak_start: datetime | None = None
    for sample in after:
        latest[sample.probe] = sample.ok
        healthy = all(latest.values())
        if not healthy:
            streak_start = None
            continue
        if streak_start is None:
            streak_start = sample.at
        if (sample.at - streak_start).total_seconds() >= window_s:
            return max((streak_start - t0).total_seconds(), 0.0)
    return None


@dataclasses.dataclass(frozen=True)
class Target:
    """An objective's target in real-world seconds and where it came from."""

    seconds: float | None
    source: str | None
    """`scenario`, `cmdb:<service ref>`, or None when neither gives one."""


def target_of(
    declared: quantities.Duration | None,
    *,
    services: Sequence[cmdb_models.Service],
    mode: str,
    kind: Literal["rto", "rpo"],
) -> Target:
    """The scenario's target, else the strictest CMDB objective of `services` for `mode`."""
    if declared is not None:
        return Target(declared.seconds, "scenario")
    found: list[tuple[float, str]] = []
    for service in services:
        given = (
            service.objectives.rto_for(mode) if kind == "rto" else service.objectives.rpo_for(mode)
        )
        if given is not None:
            found.append((given.total_seconds(), f"cmdb:{service.ref}"))
    if not found:
        return Target(None, None)
    seconds, source = min(found)
    return Target(seconds, source)
