"""Submitting a drill on someone's behalf: what `POST /api/v1/runs` and the scenario page's
"Start drill" form both do (STYLE rule 17: one function under both entry points).

`submit_request` resolves the scenario and Environment from the served folders, refuses
when the kill switch is engaged for that Environment, plans the drill (touching nothing)
when the Environment is protected or the caller's role is scoped, and then checks the
caller may start a drill on every service the plan reaches. It submits the run PENDING with
the caller as its trigger's principal; a protected Environment's run is put under an
approval request (the caller is its requester, so the two-person rule holds). With the
serve runner, the run is handed to it inside `runner.submitting`, so the runner never sees
the run before its approval request exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from drills import settings as settings_mod
from drills.service import approvals, auth, documents, driver, killswitches
from drills.service import runs as run_service
from orchestrator import engine, journal, registry, states


def _scoped(principal: auth.Principal) -> bool:
    return any(grant.scoped for grant in principal.effective_grants())


def submit_request(
    settings: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    folders: documents.Folders,
    *,
    scenario: str,
    environment: str | None,
    parameters: Mapping[str, object],
    principal: auth.Principal,
    approval_settings: approvals.ApprovalSettings,
    runner: driver.Driver | None,
    reason: str,
    trigger_kind: engine.TriggerKind = engine.TriggerKind.API,
) -> states.Run:
    """Submit `scenario` in `environment` for `principal` (see the module doc); the run.

    Raises what the steps raise: `documents.NotFound`, `killswitches.Engaged`,
    `auth.Forbidden`, invalid documents, an unreachable CMDB or store.
    """
    request = documents.drill_request(
        folders, scenario=scenario, environment=environment, parameters=parameters
    )
    prepared = run_service.prepare(settings, request)
    killswitches.refuse_if_engaged(store, prepared.drill.environment.metadata.name)
    needed = approvals.required(prepared.drill.environment)
    drill_plan = None
    if needed or _scoped(principal):
        eng = run_service.make_engine(settings, store, reg, catalog=prepared.catalog)
        drill_plan = eng.plan(prepared.drill)  # touches nothing
        services = auth.services_of_plan(drill_plan.impact, catalog=prepared.catalog)
        auth.authorize(principal, auth.Permission.START, services)
    trigger = engine.Trigger(kind=trigger_kind, principal=principal.name, reason=reason)
    run_id = states.new_run_id(datetime.now(UTC))

    def queue() -> states.Run:
        run = run_service.submit(settings, store, reg, prepared, trigger=trigger, run_id=run_id)
        if drill_plan is not None and needed:
            approvals.protect(
                store, run, plan=drill_plan, requester=principal.name, config=approval_settings
            )
        return run

    if runner is None:
        return queue()
    with runner.submitting(run_id):
        run = queue()
        runner.hand_over(run.id, prepared)
    return run
