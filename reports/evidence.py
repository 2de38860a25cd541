"""Evidence: everything recorded about one run, read once, and the scenario it ran.

A `RunEvidence` is the run record with its timeline (events) and its mutation journal
entries, frozen. Reports are pure functions of it (plus the scenario and the CMDB), so a
report can be rebuilt from the store at any time and tests build one without a database.
`scenario_for` re-renders the scenario a run used from its recorded source file and
parameters; it returns None when the file is gone, and reports then fall back to the
run record alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

from orchestrator import events, journal, mutations, states
from scenarios import errors as scenario_errors
from scenarios import library, loading, models, substituting

log = logging.getLogger(__name__)

FACTS_KIND = events.EventKind.REPORT_FACTS
"""Event kind `writing.write_for_run` appends once per run: failure mode and CMDB hashes."""


@dataclasses.dataclass(frozen=True)
class RunEvidence:
    """A run with its timeline (oldest first) and its journal entries (oldest first)."""

    run: states.Run
    events: tuple[journal.Event, ...] = ()
    entries: tuple[mutations.JournalEntry, ...] = ()

    def of_kind(self, kind: str) -> list[journal.Event]:
        return [event for event in self.events if event.kind == kind]


def load(store: journal.Journal, run_id: states.RunId) -> RunEvidence:
    """The run `run_id` with its events and entries; `JournalError` if there is none."""
    run = store.get_run(run_id)
    return RunEvidence(
        run=run, events=tuple(store.events(run.id)), entries=tuple(store.entries(run.id))
    )


def scenario_for(run: states.Run) -> models.Scenario | None:
    """The scenario as the run used it (recorded source + parameters), or None if unreadable."""
    source = run.record.scenario_source
    path = Path(source) if source else None
    if path is None or not path.is_file():
        try:
            path = library.find(run.scenario)
        except scenario_errors.StormdrillError:
            log.warning("run %s: scenario %s not found; reporting from the record", run.id, source)
            return None
    values = dict(run.record.parameters)
    try:
        loaded = loading.load_scenario(path)
        return substituting.render(loaded, values)  # type: ignore[arg-type]
    except scenario_errors.StormdrillError as exc:
        log.warning(
            "run %s: scenario %s unreadable (%s); reporting from the record", run.id, path, exc
        )
        return None


def facts(evidence: RunEvidence) -> Mapping[str, mutations.JsonValue]:
    """The data of the run's `report-facts` event (empty if it has none)."""
    found = evidence.of_kind(FACTS_KIND)
    return found[-1].data if found else {}
