"""Guarding: what the guardrails decide about a scheduled fire without a cluster.

A fire is judged at claim time (and in the preview, at its due time) by the plan-time rules
that need only the documents and the clock: the Environment's change freezes (a fire inside
one is skipped `freeze: REASON (START - END)`, the times joined by an en dash), then the
scenario's allowed environments and failure mode, its time windows and the Environment's
approval policy (given the approvals the run would carry); a refusal skips the fire
`guardrail: MESSAGE` with the rules' own messages. The documents are not in the schedule's
stored template: they are read when the fire is judged, from the files its run names
(`scenario_source`, `environment_source`), and bound as `runs.rebind` binds the run, so
these rules see what the engine will see when it plans the run (a freeze added to the
Environment after `schedules apply` counts at once). The engine still re-checks everything,
these rules and the ones that need the cluster.
Invariants: nothing here writes; a document that cannot be read or bound decides nothing
(`facts_of` answers None and logs why): the fire starts and the engine, which fails closed,
refuses the run with the error naming the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

from drills.scheduling import model
from drills.service import runs
from orchestrator import guardrails, journal, records, states
from scenarios import errors, models

log = logging.getLogger(__name__)

_EN_DASH = "\u2013"


@dataclasses.dataclass(frozen=True)
class Facts:
    """The bound scenario and the Environment a schedule's run would be planned with."""

    scenario: models.Scenario
    environment: models.Environment


def facts_of(template: model.RunTemplate, *, now: dt.datetime) -> Facts | None:
    """The documents of the run `template` submits, bound as the engine binds it; None
    (logged) when they cannot be read or bound, and the rules here decide nothing."""
    run = states.new_run(
        id=states.new_run_id(now),
        scenario=template.scenario,
        environment=template.environment,
        environment_source=template.environment_source,
        owner=journal.UNCLAIMED,
        at=now,
        record=records.RunRecord.from_json(template.record),
    )
    try:
        drill = runs.rebind(run)
    except (errors.StormdrillError, OSError) as exc:
        log.warning(
            "cannot judge the fires of %s (%s) by its guardrails before they start: %s;"
            " they start and the engine judges them when it plans the run",
            template.drill_source,
            template.scenario,
            exc,
        )
        return None
    return Facts(scenario=drill.scenario, environment=drill.environment)


def freeze_at(facts: Facts, at: dt.datetime) -> models.Freeze | None:
    """The first change freeze of the Environment in effect at `at` (start inclusive,
    end exclusive, as the engine's freeze rule), if any."""
    for freeze in facts.environment.spec.freezes:
        if freeze.start <= at < freeze.end:
            return freeze
    return None


def freeze_text(freeze: models.Freeze) -> str:
    """`freeze: End-of-year change freeze (2026-12-18T00:00:00+00:00 - 2027-01-04T…)`, the
    times joined by an en dash (U+2013), as a skipped fire's reason."""
    return model.skip_text(
        model.SkipReason.FREEZE,
        f"{freeze.reason} ({freeze.start.isoformat()} {_EN_DASH} {freeze.end.isoformat()})",
    )


def refusals(
    facts: Facts,
    *,
    at: dt.datetime,
    approvals: Sequence[str] | None,
    schedule: str | None = None,
) -> list[guardrails.GuardrailVerdict]:
    """The static plan-time rules that refuse a run planned at `at`: allowed environments
    and failure mode, time windows, and (unless `approvals` is None) the approval policy,
    whose refusal names how to approve the `schedule` whose fire it is."""
    scenario, environment = facts.scenario, facts.environment
    approving = (
        []
        if approvals is None
        else guardrails.check_approvals(environment, approvals, schedule=schedule)
    )
    verdicts = [
        *guardrails.check_environment(scenario, environment),
        *approving,
        *guardrails.check_windows(scenario.spec.guardrails.windows, at),
    ]
    return guardrails.refusals(verdicts)


def skip_reason(
    facts: Facts | None,
    *,
    at: dt.datetime,
    approvals: Sequence[str] | None,
    schedule: str | None = None,
) -> str | None:
    """Why a fire whose run would be planned at `at` is skipped (`freeze: …` or
    `guardrail: …`), or None: these rules let it start (or `facts` is None)."""
    if facts is None:
        return None
    freeze = freeze_at(facts, at)
    if freeze is not None:
        return freeze_text(freeze)
    refused = refusals(facts, at=at, approvals=approvals, schedule=schedule)
    if refused:
        return model.skip_text(
            model.SkipReason.GUARDRAIL, "; ".join(verdict.message for verdict in refused)
        )
    return None
