"""Kill switches: the global one (the journal's) and one per Environment (this module's table).

Engaged, a switch refuses new runs and aborts the running ones in its scope: the global
switch everywhere (the engine refuses at planning and its observer aborts running drills),
an Environment's switch for the runs on that Environment (by name): `engage` asks each run
in flight there to abort (`drills.service.runs.engage_killswitch`; a queued run nobody
drives yet is cancelled at once), and `refuse_if_engaged` is what submission and the API's
runner check. Releasing a switch lets runs start again; it never restarts aborted ones.
Invariants: the per-Environment switches live in `drills.tables_killswitch` (on
`orchestrator.journal.metadata`, so created and migrated with the other tables); one row
per Environment ever switched, updated in place.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from drills import tables_killswitch
from orchestrator import journal
from scenarios import errors

_T = tables_killswitch.environment_killswitch_table


class Engaged(errors.StormdrillError):
    """A kill switch is engaged: no run may start where it applies."""


def get(store: journal.Journal, *, environment: str | None = None) -> journal.Killswitch:
    """The global switch, or the switch of the Environment named `environment`."""
    if environment is None:
        return store.killswitch()
    with store.transaction() as conn:
        row = conn.execute(sa.select(_T).where(_T.c.environment == environment)).first()
    if row is None:
        return journal.Killswitch(engaged=False, by="", reason="", at=None)
    return journal.Killswitch(engaged=row.engaged, by=row.engaged_by, reason=row.reason, at=row.at)


def set_environment(
    store: journal.Journal, *, environment: str, engaged: bool, by: str, reason: str
) -> journal.Killswitch:
    """Engage or release the switch of the Environment named `environment` (the row only:
    `drills.service.runs.engage_killswitch` also stops the runs there)."""
    at = datetime.now(UTC)
    values = {"engaged": engaged, "engaged_by": by, "reason": reason, "at": at}
    with store.transaction(write=True) as conn:
        updated = conn.execute(_T.update().where(_T.c.environment == environment).values(**values))
        if updated.rowcount == 0:
            conn.execute(_T.insert().values(environment=environment, **values))
    return journal.Killswitch(engaged=engaged, by=by, reason=reason, at=at)


def refuse_if_engaged(
    store: journal.Journal, environment: str, *, include_global: bool = True
) -> None:
    """Raise `Engaged` when `environment`'s switch (or, `include_global`, the global one)
    is engaged."""
    for scope in (None, environment) if include_global else (environment,):
        switch = get(store, environment=scope)
        if switch.engaged:
            where = "global kill switch" if scope is None else f"kill switch of {environment}"
            release_with = (
                "stormdrill killswitch off"
                if scope is None
                else f"DELETE /api/v1/killswitch?environment={environment}"
            )
            raise Engaged(
                f"the {where} is engaged by {switch.by or 'someone'}"
                f"{f' ({switch.reason})' if switch.reason else ''}: no drill may start there"
                f" (release it with `{release_with}`)"
            )
