"""Acting: what every Kubernetes action shares — undo tokens that name a marker entry.

An undo token's data is `{target, runId, step, entry, ...}`: the object, the run and step that
changed it, and the `stormdrill.dev/undo` entry key holding the fault (None: the action
changed nothing there, e.g. the node was cordoned before the drill). Reverting heals exactly
that entry through `healing.heal`, so revert and sweep undo the same way.

An apply that made its change also keeps, under `healing.SNAPSHOT`, what the object looked
like right after it (`healing.snapshot`): revert then tries `healing.heal_at_once` first, one
conditional request, and reads the object (`_refuse_replaced`, `healing.heal`) only when the
server refuses it. A token without a snapshot (a journal written before snapshots, or an
intent whose apply never reported back) goes straight to the reading path.

Invariants: `plan` only reads; `revert` is idempotent (a missing entry is "already undone" or
"never happened", both success); params models forbid unknown fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.kubernetes import connection, healing, objects

log = logging.getLogger(__name__)

P = TypeVar("P", bound=pydantic.BaseModel)


class Params(pydantic.BaseModel):
    """Base of every action's and probe's `with:` model: camelCase, unknown fields refused."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=pydantic.alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class NoParams(Params):
    """An action that takes no `with:` parameters."""


def params_json(params: pydantic.BaseModel) -> dict[str, mutations.JsonValue]:
    dumped: dict[str, mutations.JsonValue] = params.model_dump(mode="json", by_alias=True)
    return dumped


def token(
    action: str,
    *,
    target: mutations.TargetRef,
    run_id: str,
    step: str,
    entry: str | None,
    **extra: mutations.JsonValue,
) -> mutations.UndoToken:
    return mutations.UndoToken(
        action=action,
        data={"target": target.to_json(), "runId": run_id, "step": step, "entry": entry, **extra},
    )


def refined(
    undo: mutations.UndoToken, *, entry: str | None, **extra: mutations.JsonValue
) -> mutations.UndoToken:
    return mutations.UndoToken(action=undo.action, data={**undo.data, "entry": entry, **extra})


def applied(
    undo: mutations.UndoToken,
    *,
    entry: str | None,
    after: Mapping[str, Any] | None,
    **extra: mutations.JsonValue,
) -> mutations.UndoToken:
    """`undo` refined after an apply: `entry` (None: nothing of ours to undo) and, when there
    is one, the `healing.snapshot` of `after` (the object as the apply left it)."""
    snap = healing.snapshot(after, key=entry)
    if snap is not None:
        extra[healing.SNAPSHOT] = snap
    return refined(undo, entry=entry, **extra)


def token_target(undo: mutations.UndoToken) -> mutations.TargetRef:
    raw = undo.data.get("target")
    if not isinstance(raw, Mapping):
        raise errors.ProviderPermanent(f"undo token of {undo.action} names no target: {undo.data}")
    return mutations.TargetRef.from_json(raw)


def token_str(undo: mutations.UndoToken, key: str) -> str | None:
    value = undo.data.get(key)
    return None if value is None else str(value)


def require_kind(action: str, targets: Any, kinds: frozenset[str]) -> list[mutations.TargetRef]:
    """`targets` as a list, refusing refs of another provider or kind."""
    refs = list(targets)
    for ref in refs:
        if ref.kind not in kinds:
            raise errors.ProviderPermanent(
                f"{action} cannot act on {ref} (it accepts {', '.join(sorted(kinds))})"
            )
    return refs


class MarkedAction(registry.Action[P], Generic[P]):
    """An action whose undo is one marker entry on its target object."""

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        entry = token_str(undo, "entry")
        target = token_target(undo)
        if entry is None:
            log.info("%s on %s changed nothing; nothing to undo", undo.action, target)
            return
        run_id = token_str(undo, "runId") or str(ctx.run_id)
        step = token_str(undo, "step") or None
        conn = connection.from_context(ctx)
        snap = undo.data.get(healing.SNAPSHOT)
        if isinstance(snap, Mapping) and (not target.uid or target.uid == snap.get("uid")):
            done = healing.heal_at_once(
                conn, target, run_id=run_id, key=entry, snap=snap, step=step
            )
            if done is healing.AtOnce.ABSENT:
                log.info("%s on %s: already undone or never applied", undo.action, target)
            if done is not healing.AtOnce.FALL_BACK:
                return
        _refuse_replaced(conn, target)
        healed = healing.heal(conn, target, run_id=run_id, keys={entry}, step=step)
        if not healed:
            log.info("%s on %s: already undone or never applied", undo.action, target)


def _refuse_replaced(conn: connection.KubeConnection, target: mutations.TargetRef) -> None:
    """`errors.TargetReplaced` if the object now under `target`'s name is another incarnation.

    Someone deleted and recreated it during the drill: whatever it carries now was put there
    by them (even a copy of our fault), so it is neither touched nor reported undone.
    """
    if not target.uid:
        return
    current = objects.read(conn, target)
    found = str((current or {}).get("metadata", {}).get("uid") or "")
    if current is None or found == target.uid:
        return
    raise errors.TargetReplaced(
        f"{target}: deleted and recreated by someone else during the drill (uid {target.uid}"
        f" is now {found}); the fault may no longer be ours, so the new object was not touched."
        " A person must check it (and remove the fault by hand if it is still there)"
    )
