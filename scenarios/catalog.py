"""Catalog: what lint needs to know about actions and probes, without depending on the engine.

The engine (a higher layer) owns the real action and probe implementations; it describes
them to the scenario language with these plain records. Invariants: records are frozen;
`params` is the pydantic model of the step's or probe's `with:` block, or None when the
action takes no parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pydantic


@dataclasses.dataclass(frozen=True)
class ActionInfo:
    """An action the engine can run.

    mutating: it changes something; revertible: the engine records an undo for it;
    destructive: it removes capacity or access, so its target needs a blast radius;
    target_kinds: the target kinds it accepts (empty: it takes no target).
    """

    name: str
    mutating: bool
    revertible: bool
    destructive: bool
    params: type[pydantic.BaseModel] | None
    target_kinds: frozenset[str]


@dataclasses.dataclass(frozen=True)
class ProbeInfo:
    """A probe type the engine can run, and the model of its `with:` block."""

    name: str
    params: type[pydantic.BaseModel] | None


@dataclasses.dataclass(frozen=True)
class Catalog:
    """The actions and probe types known to the engine, by name."""

    actions: Mapping[str, ActionInfo]
    probes: Mapping[str, ProbeInfo]

    @classmethod
    def of(cls, *, actions: list[ActionInfo], probes: list[ProbeInfo]) -> Catalog:
        return cls(
            actions={action.name: action for action in actions},
            probes={probe.name: probe for probe in probes},
        )
