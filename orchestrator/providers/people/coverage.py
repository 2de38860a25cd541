"""Coverage: how many responders each on-call layer keeps over a window when people are absent.

Pure functions over `cmdb.Rotation`. A layer's responders at a moment are its members with
the overrides active then applied (`Layer.on_call_at`), minus the absent. Coverage over a
window is the fewest responders at any moment of it; the moments that matter are the
window's start and every override start or end inside it (nothing changes in between).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime

from orchestrator import manual
from orchestrator.cmdb import models as cmdb

MIN_RESPONDERS = 2
"""A layer with fewer reachable responders than this is a single point of failure."""


@dataclasses.dataclass(frozen=True)
class LayerCoverage:
    """One layer of one rotation over a window, with and without the absent people."""

    rotation: cmdb.RotationName
    layer: str
    fewest_before: int
    """Fewest responders at any moment of the window, nobody absent."""
    fewest_after: int
    """Fewest responders at any moment of the window, the absent removed."""
    weakest_at: datetime
    """The first moment with `fewest_after` responders."""
    remaining: tuple[cmdb.EntityRef, ...]
    """Who is left at `weakest_at`."""
    lost: tuple[cmdb.EntityRef, ...]
    """Absent people who would have been on call in this layer during the window."""

    @property
    def weakened(self) -> bool:
        """The absence took someone away from this layer during the window."""
        return bool(self.lost)


def moments(layer: cmdb.Layer, *, start: datetime, end: datetime) -> list[datetime]:
    """The window's start and every override boundary strictly inside it, in order."""
    found = {start}
    for override in layer.overrides:
        for edge in (override.start, override.end):
            if start < edge < end:
                found.add(edge)
    return sorted(found)


def layer_coverage(
    rotation: cmdb.Rotation,
    layer: cmdb.Layer,
    *,
    absent: Collection[cmdb.EntityRef],
    start: datetime,
    end: datetime,
) -> LayerCoverage:
    """The coverage of `layer` over [start, end) with `absent` unreachable."""
    fewest_before: int | None = None
    fewest_after: int | None = None
    weakest_at = start
    remaining: tuple[cmdb.EntityRef, ...] = ()
    lost: list[cmdb.EntityRef] = []
    for moment in moments(layer, start=start, end=end):
        on_call = layer.on_call_at(moment)
        left = tuple(person for person in on_call if person not in absent)
        lost.extend(person for person in on_call if person in absent)
        if fewest_before is None or len(on_call) < fewest_before:
            fewest_before = len(on_call)
        if fewest_after is None or len(left) < fewest_after:
            fewest_after, weakest_at, remaining = len(left), moment, left
    return LayerCoverage(
        rotation=rotation.name,
        layer=layer.name,
        fewest_before=fewest_before or 0,
        fewest_after=fewest_after or 0,
        weakest_at=weakest_at,
        remaining=remaining,
        lost=tuple(dict.fromkeys(lost)),
    )


def coverage(
    rotation: cmdb.Rotation,
    *,
    absent: Collection[cmdb.EntityRef],
    start: datetime,
    end: datetime,
) -> list[LayerCoverage]:
    """Every layer of `rotation`, in escalation order."""
    return [
        layer_coverage(rotation, layer, absent=absent, start=start, end=end)
        for layer in rotation.layers
    ]


def on_call_now(
    rotation: cmdb.Rotation, *, at: datetime, absent: Collection[cmdb.EntityRef] = ()
) -> tuple[cmdb.EntityRef, ...]:
    """Everyone reachable on any layer of `rotation` at `at`, in escalation order."""
    return tuple(person for person in manual.on_call(rotation, at=at) if person not in absent)
