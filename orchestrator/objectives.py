"""Objectives: the recovery time a drill achieved, measured from its probe samples.

Achieved RTO is the time from T0 (the first fault applied) to the moment every recovery
probe passes and keeps passing for a stability window; any failure inside the window
resets it. A drill whose probes never failed after T0 achieved an RTO of zero (no
outage was observed). Pure functions over recorded samples, so reports can recompute.

Time scale: machine waits (probe intervals, `wait` steps, stability windows) are shrunk by
the run's time scale; people (manual steps) are never scaled. So the measured recovery
splits into time spent waiting for a person (real time, as it would be in an outage) and
machine time (shrunk); `Recovery.real_world_s` scales only the machine part back up and is
what the real-world objective is judged against. A manual step's wait after T0 counts in
the RTO: recovery is not over before the last person acted.
Targets come from the scenario's `objectives`, else from the CMDB objectives of the
targeted services for the scenario's failure mode (the strictest wins).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from orchestrator import events as event_kinds
from orchestrator import journal
from orchestrator import manual as manual_steps
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
class ManualWait:
    """How long a manual step waited for a person: from its prompt to its acknowledgement
    (or its timeout finding; `ended` is None when the run ended first)."""

    step: str
    started: datetime
    ended: datetime | None


def manual_waits(events: Iterable[journal.Event]) -> list[ManualWait]:
    """Each manual step's wait, from the `manual` event to the first accepted `ack` (or the
    step's timeout finding), in timeline order."""
    ordered = sorted(events, key=lambda e: (e.at, e.seq))
    waits: list[ManualWait] = []
    for index, event in enumerate(ordered):
        if event.kind != event_kinds.EventKind.MANUAL:
            continue
        step = event.data.get("step")
        if not isinstance(step, str):
            continue
        ended: datetime | None = None
        for later in ordered[index + 1 :]:
            if later.data.get("step") != step:
                continue
            if later.kind == event_kinds.EventKind.ACK and manual_steps.accepts(
                event.data, later.data
            ):
                ended = later.at
                break
            if later.kind == event_kinds.EventKind.MANUAL or (
                later.kind == event_kinds.EventKind.FINDING
                and later.data.get("rule") == "manual-timeout"
            ):
                ended = later.at
                break
        waits.append(ManualWait(step=step, started=event.at, ended=ended))
    return waits


@dataclasses.dataclass(frozen=True)
class Recovery:
    """The achieved RTO in real (wall-clock) seconds, split into people and machine time."""

    measured_s: float
    """Seconds from T0 to recovery, as the run's clock saw them."""
    manual_s: float
    """Of which a person was being waited for (never scaled)."""
    time_scale: float

    @property
    def machine_s(self) -> float:
        """Of which machine time (shrunk by the time scale)."""
        return max(self.measured_s - self.manual_s, 0.0)

    @property
    def real_world_s(self) -> float:
        """What the recovery would take in a real outage: machine time scaled back up."""
        scale = self.time_scale if self.time_scale > 0 else 1.0
        return self.machine_s / scale + self.manual_s


def recovery(
    samples: Sequence[Sample],
    waits: Sequence[ManualWait],
    *,
    t0: datetime | None,
    window_s: float,
    time_scale: float,
) -> Recovery | None:
    """The achieved RTO counting manual waits: recovery ends when probes are stable (see
    `achieved_rto`) and every manual step that waited after `t0` was acted on.

    None when there was no fault or the probes never recovered.
    """
    probed = achieved_rto(samples, t0=t0, window_s=window_s)
    if t0 is None or probed is None:
        return None
    spans = [(max(w.started, t0), w.ended) for w in waits if w.ended is not None and w.ended > t0]
    measured = max([probed, *((end - t0).total_seconds() for _, end in spans)])
    manual = sum((end - start).total_seconds() for start, end in spans)
    return Recovery(
        measured_s=round(measured, 3),
        manual_s=round(min(manual, measured), 3),
        time_scale=time_scale,
    )


def human_duration(seconds: float | None) -> str:
    """`0.4 s`, `1.4 s`, `12 s`, `2 min 5 s`, `1 h 3 min` (for people; never `1.439617 s`)."""
    if seconds is None:
        return "not measured"
    value = max(seconds, 0.0)
    if value < 10:
        return f"{value:.1f} s".replace(".0 s", " s")
    whole = round(value)
    if whole < 120:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


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
