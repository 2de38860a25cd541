"""Errors: the orchestrator's branch of Stormdrill's error tree.

Every error here derives from `scenarios.errors.StormdrillError` through
`OrchestratorError`. Provider code wraps SDK errors at its edge into
`ProviderRetryable` (try again, maybe after `delay` seconds; with `retry_after_s`, the
server throttles everyone and its callers pause) or `ProviderPermanent` (trying again will
not help); anything else escaping a provider is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from scenarios import errors as scenario_errors
from scenarios import models as scenario_models

if TYPE_CHECKING:
    from orchestrator import mutations, states


StormdrillError = scenario_errors.StormdrillError
"""The root of the error tree (defined by the scenario language, the lowest layer)."""


class OrchestratorError(scenario_errors.StormdrillError):
    """The root of every error the orchestrator raises on purpose."""


class IllegalTransition(OrchestratorError):
    """A run was asked to move between two states the state machine does not connect."""

    def __init__(
        self,
        *,
        run_id: str,
        from_state: states.RunState,
        to_state: states.RunState,
        allowed: Iterable[states.RunState],
        why: str = "",
    ) -> None:
        self.run_id = run_id
        self.from_state = from_state
        self.to_state = to_state
        self.allowed = tuple(sorted(allowed, key=lambda s: s.value))
        choices = ", ".join(s.value for s in self.allowed) or "nothing (terminal state)"
        detail = f": {why}" if why else ""
        super().__init__(
            f"run {run_id}: illegal transition {from_state.value} -> {to_state.value}{detail} "
            f"(from {from_state.value} a run may go to: {choices})"
        )


class GuardrailTripped(OrchestratorError):
    """A guardrail rule fired; the run must abort and roll back."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        self.message = message
        super().__init__(f"guardrail {rule!r} tripped: {message}")


class ProviderError(OrchestratorError):
    """A provider could not do what it was asked (wrapped SDK or API error)."""


class ProviderRetryable(ProviderError):
    """A transient provider failure: try again, after `delay` seconds if the provider knows.

    `retry_after_s` says the server is throttling every caller, not just this call (HTTP 429
    with `Retry-After` from API Priority and Fairness, AWS throttling): whoever shares that
    server (a rollback's pool) starts no new call on it for that long.
    """

    def __init__(
        self, message: str, delay: float | None = None, *, retry_after_s: float | None = None
    ) -> None:
        self.message = message
        self.delay = delay
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ProviderPermanent(ProviderError):
    """A provider failure that retrying will not fix (forbidden, invalid, gone for good)."""


class ProviderDenied(ProviderPermanent):
    """The system answered but would not let us: not authenticated (401) or not allowed (403).

    Permanent (retrying with the same credentials will not help), yet not the user's input
    being wrong: like an outage, it means a system could not be used (exit code 5).
    """


class TargetReplaced(ProviderPermanent):
    """The object a fault was made on was deleted and recreated by someone else mid-drill.

    The new incarnation is not ours: its state may be deliberate, so it is never changed,
    and the fault is never reported undone. A person must look at it.
    """


def is_infrastructure(exc: BaseException) -> bool:
    """Whether `exc` (or an error it was raised from) means a system was unreachable or refused us.

    True for transient provider failures (connection refused, timeouts, 5xx, throttling) and
    for `ProviderDenied` (401/403); False for everything else, invalid input included.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ProviderRetryable | ProviderDenied | StoreUnreachable):
            return True
        current = current.__cause__ or current.__context__
    return False


class JournalError(OrchestratorError):
    """The journal could not be read or written, or an entry is not in the expected state."""


class StoreUnreachable(JournalError):
    """The run store could not be reached or opened; `url` has its password masked."""

    def __init__(self, *, url: str, reason: str) -> None:
        self.url = url
        self.reason = " ".join(reason.split())
        super().__init__(
            f"cannot open the journal (the run store) at {url}: {self.reason} (is the database"
            " running, and is STORMDRILL_DATABASE_URL right?)"
        )


class StaleRun(JournalError):
    """Optimistic check failed: the stored run is not in the state the caller expected.

    Another process (a second engine, or recovery) moved the run in between; the
    caller must re-read it and decide again, never overwrite.
    """


class AckRejected(OrchestratorError):
    """An acknowledgement of a manual step came from someone who may not act on it."""


def _close_hint(name: str, known: Sequence[str]) -> str:
    """` (did you mean 'x'?)` for a mistyped name, else where to find the names."""
    hint = scenario_models.did_you_mean(name, tuple(known))
    return f" ({hint})" if hint else " (run `stormdrill actions` to list them)"


class UnknownAction(OrchestratorError):
    """No action of that name is registered."""

    def __init__(self, name: str, *, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        hint = _close_hint(name, self.known)
        super().__init__(f"unknown action {name!r}{hint}")


class UnknownProbe(OrchestratorError):
    """No probe of that name is registered."""

    def __init__(self, name: str, *, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        hint = _close_hint(name, self.known)
        super().__init__(f"unknown probe {name!r}{hint}")


class InvalidParams(OrchestratorError):
    """Parameters given to an action or probe do not match its params model."""


class RegistryError(OrchestratorError):
    """An action or probe class is malformed or its name is already taken."""


class RollbackFailed(OrchestratorError):
    """Some mutations could not be undone; `leftovers` are still in effect (or unknown)."""

    def __init__(
        self,
        leftovers: Sequence[tuple[mutations.JournalEntry, str]],
        *,
        run_id: str = "",
    ) -> None:
        self.leftovers = tuple(leftovers)
        where = f"run {run_id}: " if run_id else ""
        lines = [
            f"  #{entry.seq} {entry.action} on {entry.target.key}: {error}"
            for entry, error in self.leftovers
        ]
        super().__init__(
            f"{where}{len(self.leftovers)} mutation(s) could not be undone; they may still be "
            "in effect. Fix the cause, then run `stormdrill recover` to retry:\n" + "\n".join(lines)
        )
