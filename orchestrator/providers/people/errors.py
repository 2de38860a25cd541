"""People provider errors: an absence or a target naming nobody, a repository git cannot read.

Every error here is a `StormdrillError`; those raised while planning or running a drill
are `ProviderPermanent` (the engine stops the run and rolls back). Messages name the ref,
the place and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator import errors


class PeopleError(errors.ProviderPermanent):
    """The root of the people provider's errors."""


class NoCatalog(PeopleError):
    """The Environment names no CMDB, so nobody can be looked up."""


class UnknownPerson(PeopleError):
    """A target or assignee names nobody in the CMDB."""

    def __init__(self, ref: str, *, where: str, what: str, suggestions: Sequence[str] = ()) -> None:
        self.ref = ref
        self.suggestions = tuple(suggestions)
        message = f"{where}: no {what} {ref!r} in the CMDB"
        if self.suggestions:
            message += f" (did you mean {', '.join(repr(s) for s in self.suggestions)}?)"
        else:
            message += " (list people with 'stormdrill cmdb' or fix the ref)"
        super().__init__(message)


class GitFailed(PeopleError):
    """`git` could not read a repository's history (truck-factor analysis)."""
