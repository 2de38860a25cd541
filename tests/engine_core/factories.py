"""Factories for engine-core tests: fresh runs, mutations and a tiny in-memory world."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from orchestrator import mutations, records, states

T0 = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_owner(*, token: str = "boot:1") -> states.Owner:
    return states.Owner(host="test-host", pid=4242, token=token)


def make_run(
    *,
    run_id: str = "run-1",
    state: states.RunState = states.RunState.PENDING,
    ending: states.Ending | None = None,
    scenario: str = "zone-outage",
    environment: str = "sandbox",
    at: datetime = T0,
    owner: states.Owner | None = None,
) -> states.Run:
    run = states.new_run(
        id=states.RunId(run_id),
        scenario=scenario,
        environment=environment,
        environment_source="environments/sandbox.yaml",
        owner=owner or make_owner(),
        at=at,
        record=records.RunRecord(parameters={"zone": "us-east-1a"}, time_scale=1.0),
    )
    return dataclasses.replace(run, state=state, ending=ending)


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def target(
    name: str, *, kind: str = "deployment", namespace: str | None = "shop"
) -> mutations.TargetRef:
    return mutations.TargetRef(provider="kubernetes", kind=kind, name=name, namespace=namespace)


def set_value(
    *, name: str, previous: int, value: int, step: str = "inject"
) -> mutations.PlannedMutation:
    """A mutation setting the world value of `name` to `value` (undo: back to `previous`)."""
    return mutations.PlannedMutation(
        step=step,
        target=target(name),
        action="test.set-value",
        params={"value": value},
        pre_state={"value": previous},
        undo=mutations.UndoToken(action="test.set-value", data={"value": previous}),
    )


class World:
    """Thread-safe values per target: what a provider's API would hold."""

    def __init__(self, initial: Mapping[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, int] = dict(initial or {})
        self.revert_log: list[int] = []

    def apply(self, mutation: mutations.PlannedMutation) -> None:
        with self._lock:
            value = mutation.params["value"]
            assert isinstance(value, int)
            self.values[mutation.target.name] = value

    def revert(self, entry: mutations.JournalEntry) -> None:
        """Idempotent: setting the previous value twice, or when never applied, is harmless."""
        with self._lock:
            value = entry.undo.data["value"]
            assert isinstance(value, int)
            self.values[entry.target.name] = value
            self.revert_log.append(entry.seq)
