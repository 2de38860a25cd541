"""Mutations: what a drill changes in the world, and how to undo it.

Invariants:
- A `PlannedMutation` carries its `UndoToken` before anything is touched: the
  journal writes it durably (`intent`) before the provider mutates.
- Everything here is frozen and JSON-serialisable; the JSON payloads (`params`,
  `pre_state`, undo `data`) are copied and checked on construction, so a caller
  mutating its own dict later cannot change what was planned or journalled.
- `TargetRef.key` is stable: it names the thing itself (provider, kind, region,
  namespace, name), not its incarnation (`uid`), and is used for target locks and
  for ordering reverts on the same target.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from orchestrator import states

JsonValue: TypeAlias = (
    "str | int | float | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)
JsonObject: TypeAlias = Mapping[str, JsonValue]


def freeze_json(value: Mapping[str, JsonValue], *, what: str) -> dict[str, JsonValue]:
    """A private deep copy of a JSON object; `TypeError` naming `what` if it is not JSON."""
    try:
        copied: dict[str, JsonValue] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from exc
    return copied


@dataclass(frozen=True)
class TargetRef:
    """One thing a drill touches: a node, a deployment, a subnet, a person's pager."""

    provider: str
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None
    region: str | None = None

    @property
    def key(self) -> str:
        """Stable identity: `provider:kind:region:namespace:name` (empty parts kept)."""
        return ":".join(
            (self.provider, self.kind, self.region or "", self.namespace or "", self.name)
        )

    def __str__(self) -> str:
        where = "/".join(p for p in (self.region, self.namespace) if p)
        return f"{self.provider} {self.kind} {where + '/' if where else ''}{self.name}"

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "provider": self.provider,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "region": self.region,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, JsonValue]) -> TargetRef:
        def opt(key: str) -> str | None:
            value = raw.get(key)
            return None if value is None else str(value)

        return cls(
            provider=str(raw["provider"]),
            kind=str(raw["kind"]),
            name=str(raw["name"]),
            namespace=opt("namespace"),
            uid=opt("uid"),
            region=opt("region"),
        )


@dataclass(frozen=True)
class UndoToken:
    """What is needed to undo one mutation; written before the mutation is made."""

    action: str
    data: Mapping[str, JsonValue]

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", freeze_json(self.data, what=f"undo data of {self.action}"))

    def to_json(self) -> dict[str, JsonValue]:
        return {"action": self.action, "data": dict(self.data)}

    @classmethod
    def from_json(cls, raw: Mapping[str, JsonValue]) -> UndoToken:
        data = raw.get("data") or {}
        if not isinstance(data, Mapping):
            raise TypeError(f"undo token data must be an object, got {type(data).__name__}")
        return cls(action=str(raw["action"]), data=data)


@dataclass(frozen=True)
class PlannedMutation:
    """A mutation an action intends to make, with its undo known in advance."""

    step: str
    target: TargetRef
    action: str
    params: Mapping[str, JsonValue]
    pre_state: Mapping[str, JsonValue]
    undo: UndoToken

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", freeze_json(self.params, what=f"{self.action} params"))
        object.__setattr__(
            self, "pre_state", freeze_json(self.pre_state, what=f"{self.action} pre_state")
        )


class EntryState(enum.StrEnum):
    """Where one journal entry stands."""

    INTENDED = "intended"
    """Written before the mutation; whether it happened is unknown until marked."""
    APPLIED = "applied"
    APPLY_FAILED = "apply_failed"
    """The provider reported the mutation was not made (known not applied)."""
    REVERTED = "reverted"
    REVERT_FAILED = "revert_failed"
    SKIPPED = "skipped"
    """Never attempted (dry run, or the run stopped before reaching it)."""


NEEDS_UNDO: frozenset[EntryState] = frozenset(
    {EntryState.INTENDED, EntryState.APPLIED, EntryState.REVERT_FAILED}
)
"""Entries whose effect may still be in the world: the rollback plan."""


@dataclass(frozen=True)
class JournalEntry:
    """One mutation as the journal records it."""

    seq: int
    run_id: states.RunId
    step: str
    target: TargetRef
    action: str
    params: Mapping[str, JsonValue]
    pre_state: Mapping[str, JsonValue]
    undo: UndoToken
    state: EntryState
    error: str | None
    created_at: datetime
    updated_at: datetime
    attempts: int

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} on {self.target}"
