"""Manual steps: who may act on one, who is absent, and whether an acknowledgement counts.

Core code: the engine, the CLI and the reports call it; it reads the CMDB model and the
journal and imports no provider (the people provider writes the absences it reads, under
`ABSENCE_ACTION`, and imports its constants from here).

Invariants:
- The people who may act are resolved once, when the step starts: a user assignee is that
  user; a team (any Group) is its members and its sub-groups' (`role: any` / `lead`: the
  CMDB names no leads) or, for `role: on-call`, whoever its rotations put on call at that
  moment (overrides applied); a service is its owners or its rotations' on-call. People
  the run has marked absent are never among them.
- A person is absent for a run while a journal entry of `ABSENCE_ACTION` on their `person`
  target is intended or applied (not yet reverted): `absent_people`.
- Without a CMDB the engine cannot tell who is who: `eligible` is None and any
  acknowledgement is accepted (recorded as such).
- The `manual` event of the step records `eligible` and `absent` (canonical user refs);
  `check_ack` judges an acknowledgement against that record, so the CLI and the API reject
  the wrong person at ack time with the same message, and the engine ignores them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from orchestrator import errors, journal, mutations
from orchestrator import events as event_kinds
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb
from scenarios import models

ABSENCE_ACTION = "people.mark-unavailable"
"""The action whose journal entries mark people absent for a run (the people provider's)."""
PERSON = "person"
"""The `TargetRef.kind` of a person (`people person user:<namespace>/<name>`)."""
STILL_IN_EFFECT = frozenset({mutations.EntryState.INTENDED, mutations.EntryState.APPLIED})
"""Entry states in which an absence holds."""


@dataclasses.dataclass(frozen=True)
class Eligibility:
    """Who may act on a manual step at the moment it started."""

    assignee: str
    role: models.AssigneeRole
    eligible: tuple[cmdb.EntityRef, ...] | None
    """None: no CMDB, anyone may acknowledge."""
    absent: tuple[cmdb.EntityRef, ...] = ()
    """People who would have been asked but are absent for the drill."""
    source: str = ""
    problem: str | None = None
    """Why nobody may act (set when `eligible` is empty)."""

    @property
    def nobody(self) -> bool:
        return self.eligible is not None and not self.eligible

    def names(self) -> str:
        if self.eligible is None:
            return "anyone (no CMDB)"
        return ", ".join(p.short for p in self.eligible) or "nobody"

    def to_json(self) -> dict[str, mutations.JsonValue]:
        return {
            "eligible": None if self.eligible is None else [str(p) for p in self.eligible],
            "absent": [str(p) for p in self.absent],
            "eligibleFrom": self.source,
            "problem": self.problem,
        }


def members(catalog: cmdb.Catalog, ref: cmdb.EntityRef) -> tuple[cmdb.EntityRef, ...]:
    """The people `ref` stands for: a user itself, a group's members and its sub-groups'."""
    if ref.kind is cmdb.EntityKind.USER:
        return (ref,)
    found: list[cmdb.EntityRef] = []
    seen: set[cmdb.EntityRef] = set()
    pending = [ref]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        group = catalog.groups.get(current)
        if group is None:
            continue
        found.extend(group.members)
        pending.extend(group.children)
    return tuple(dict.fromkeys(found))


def on_call(rotation: cmdb.Rotation, *, at: datetime) -> tuple[cmdb.EntityRef, ...]:
    """Everyone on any layer of `rotation` at `at` (overrides applied), in escalation order."""
    return tuple(dict.fromkeys(p for layer in rotation.layers for p in layer.on_call_at(at)))


def _candidates(
    catalog: cmdb.Catalog, ref: cmdb.EntityRef, role: models.AssigneeRole, at: datetime
) -> tuple[tuple[cmdb.EntityRef, ...], str, str | None]:
    """(people, where they come from, a problem) for `ref` in `role`."""
    if ref.kind is cmdb.EntityKind.USER:
        return (ref,), f"the user {ref.short}", None
    on_call_role = role is models.AssigneeRole.ON_CALL
    if on_call_role and (ref.kind is cmdb.EntityKind.GROUP or ref in catalog.services):
        rotations = catalog.rotations_for(ref)
        if not rotations:
            return (), "", f"no on-call rotation covers {ref} (add one to the OnCall file)"
        people = [p for r in rotations for p in on_call(r, at=at)]
        names = ", ".join(r.name for r in rotations)
        return tuple(dict.fromkeys(people)), f"on call at {at:%H:%M}Z in rotation(s) {names}", None
    if ref.kind is cmdb.EntityKind.GROUP:
        return members(catalog, ref), f"members of {ref}", None
    service = catalog.services.get(ref)
    if service is not None:
        return service.people.owners, f"owners of {ref}", None
    return (), "", f"{ref} is a {ref.kind.value}; assign a user, a team or a service"


def resolve(
    catalog: cmdb.Catalog | None,
    *,
    assignee: str,
    role: models.AssigneeRole,
    absent: Collection[cmdb.EntityRef],
    at: datetime,
) -> Eligibility:
    """The people who may act on a step assigned to `assignee` in `role`, at `at`."""
    if catalog is None:
        return Eligibility(assignee, role, None, source="no CMDB: anyone may acknowledge")
    try:
        ref = catalog.lookup(assignee)
    except cmdb_errors.CmdbError as exc:
        return Eligibility(assignee, role, (), problem=f"assignee {assignee!r}: {exc}")
    people, source, problem = _candidates(catalog, ref, role, at)
    eligible = tuple(p for p in people if p not in absent)
    gone = tuple(p for p in people if p in absent)
    if not eligible and problem is None:
        problem = (
            f"everyone who may act ({', '.join(p.short for p in people)}) is absent"
            if people
            else f"{source or assignee} is nobody"
        )
    return Eligibility(str(ref), role, eligible, gone, source, problem)


def absent_people(entries: Iterable[mutations.JournalEntry]) -> frozenset[cmdb.EntityRef]:
    """Who a run has marked absent and not yet made available again."""
    return frozenset(
        cmdb.EntityRef.parse(entry.target.name, default_kind=cmdb.EntityKind.USER)
        for entry in entries
        if entry.action == ABSENCE_ACTION
        and entry.target.kind == PERSON
        and entry.state in STILL_IN_EFFECT
    )


def person_key(raw: str) -> str:
    """`bob`, `user:bob` and `user:default/bob` all give `user:default/bob`."""
    try:
        return str(cmdb.EntityRef.parse(raw, default_kind=cmdb.EntityKind.USER))
    except cmdb_errors.CmdbError:
        return raw.strip()


def accepts(
    manual: Mapping[str, mutations.JsonValue], ack: Mapping[str, mutations.JsonValue]
) -> bool:
    """Whether an `ack` event's data may complete the step its `manual` event describes."""
    if ack.get("automated") is True:
        return True
    eligible = manual.get("eligible")
    if not isinstance(eligible, Sequence) or isinstance(eligible, str):
        return True
    return person_key(str(ack.get("by", ""))) in {str(p) for p in eligible}


def check_ack(events: Sequence[journal.Event], *, run_id: str, step: str, by: str) -> None:
    """Raise `AckRejected` unless `by` may acknowledge `step` (per its `manual` event)."""
    manual = event_kinds.EventKind.MANUAL
    waiting = [e for e in events if e.kind == manual and e.data.get("step") == step]
    if not waiting:
        started = sorted({str(e.data.get("step")) for e in events if e.kind == manual})
        raise errors.AckRejected(
            f"run {run_id} has no manual step {step!r} waiting"
            + (f" (manual steps so far: {', '.join(started)})" if started else "")
        )
    data = waiting[-1].data
    eligible = data.get("eligible")
    if not isinstance(eligible, Sequence) or isinstance(eligible, str):
        return
    allowed = [str(p) for p in eligible]
    absent_raw = data.get("absent")
    absent = (
        [str(p) for p in absent_raw]
        if isinstance(absent_raw, Sequence) and not isinstance(absent_raw, str)
        else []
    )
    who = person_key(by)
    shown = ", ".join(p.rpartition("/")[2] for p in allowed) or "nobody"
    if who in absent:
        raise errors.AckRejected(
            f"{by} is marked unavailable in run {run_id} (the drill simulates their absence);"
            f" step {step!r} must be acknowledged by one of: {shown}"
        )
    if who not in allowed:
        raise errors.AckRejected(
            f"{by} may not acknowledge step {step!r} of run {run_id}: it is assigned to"
            f" {data.get('assignee')} ({data.get('role')}), who may be: {shown};"
            " pass --by with one of them"
        )
