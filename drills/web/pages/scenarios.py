"""`/scenarios`: the scenarios the server knows; `/scenarios/{name}`: one, its plan, its start.

The list is `GET /api/v1/scenarios`'s (`documents.scenario_list`: the configured folders,
then the bundled library), with each scenario's declared CMDB services. A scenario's page
shows its document as YAML exactly as `GET /api/v1/scenarios/{name}` shows it (secret
defaults masked: `views.ScenarioView`), its parameters, targets and guardrails, and a GET
form (`?environment=NAME&param.NAME=VALUE`) that plans it against an Environment of the
environment folders: the same service calls as `POST /api/v1/plans` (touches nothing;
needs the plan permission; a problem with the request is shown on the page with the
API's status). Secret parameters are never taken by that GET form (a URL ends up in
logs): the plan uses their default or the Environment's value.

`POST /scenarios/{name}/run` (fields `environment`, `param.NAME`, `csrf_token`,
`idempotency_key`) starts the drill as `POST /api/v1/runs` does: the start permission (and
the plan's services for a scoped role), `runs.submit` with the API's trigger (kind `api`,
so the runner inside `serve` drives it), an approval request when the Environment is
protected (the run then awaits approval), audited as `run.start`, then 303 to
`/runs/{id}`. A second send of the same form starts nothing more (`forms.act_once`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Annotated

import fastapi
import yaml
from fastapi import responses
from starlette import concurrency

from drills import settings as settings_mod
from drills.service import (
    approvals,
    auth,
    documents,
    driver,
    problems,
    submitting,
    views,
)
from drills.service import runs as run_service
from drills.web import audit, deps, forms, rendering, routing
from orchestrator import journal, registry, states
from orchestrator.cmdb import errors as cmdb_errors
from scenarios import errors, loading, secrets

router = routing.router()

PARAM_PREFIX = "param."
"""Form fields `param.NAME` carry parameter values (an empty field: the default)."""
START_ACTION = "run.start"


class FormInvalid(errors.StormdrillError):
    """A form that lacks what it needs (422): names the field and what to put there."""


# ---- what the pages show ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScenarioRow:
    """One scenario of the list."""

    summary: views.ScenarioSummaryView
    services: tuple[str, ...]
    """The CMDB services the scenario names (`spec.services`); empty: inferred by plans."""


@dataclasses.dataclass(frozen=True)
class TargetRow:
    """One target of a scenario as its (masked) document writes it."""

    name: str
    provider: str
    kind: str
    selector: str
    namespaces: str
    blast_radius: str | None


@dataclasses.dataclass(frozen=True)
class Guardrail:
    """One guardrail of a scenario: what it says, as written."""

    rule: str
    value: str


@dataclasses.dataclass(frozen=True)
class Field:
    """A parameter's form field: the declared parameter and the value asked for (if any)."""

    parameter: views.ParameterView
    value: str

    @property
    def field(self) -> str:
        return f"{PARAM_PREFIX}{self.parameter.name}"

    @property
    def ident(self) -> str:
        return "param-" + "".join(c if c.isalnum() else "-" for c in self.parameter.name)


@dataclasses.dataclass(frozen=True)
class PlanShown:
    """A plan drawn on the page, or why there is none (`error`, with the API's status)."""

    plan: views.PlanView | None = None
    warning: str | None = None
    error: str | None = None
    status: int = 200


def _json_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def targets_of(document: Mapping[str, object]) -> list[TargetRow]:
    """The targets of a scenario's (masked) document, in document order."""
    rows = []
    for name, raw in _mapping(_mapping(document.get("spec")).get("targets")).items():
        target = _mapping(raw)
        radius = _mapping(target.get("blastRadius")).get("max")
        namespaces = [target["namespace"]] if target.get("namespace") else []
        listed = target.get("namespaces")
        namespaces += list(listed) if isinstance(listed, list) else []
        rows.append(
            TargetRow(
                name=name,
                provider=str(target.get("provider", "")),
                kind=str(target.get("kind", "")),
                selector=_json_text(
                    {k: v for k, v in _mapping(target.get("selector")).items() if v not in ({}, [])}
                ),
                namespaces=", ".join(str(n) for n in namespaces),
                blast_radius=None if radius is None else str(radius),
            )
        )
    return rows


GUARDRAIL_LABELS: tuple[tuple[str, str], ...] = (
    ("environments", "Environments it may run in"),
    ("maxDuration", "Longest run"),
    ("maxServices", "Most services reached"),
    ("maxTier", "Most critical tier reached"),
    ("windows", "Windows it may run in"),
    ("abortWhen", "Aborts when"),
)


def guardrails_of(document: Mapping[str, object]) -> list[Guardrail]:
    """The guardrails of a scenario's (masked) document, one line each."""
    raw = _mapping(_mapping(document.get("spec")).get("guardrails"))
    shown = []
    for key, label in GUARDRAIL_LABELS:
        value = raw.get(key)
        if value is None or value == []:
            continue
        if isinstance(value, list):
            text = "; ".join(_json_text(item) for item in value)
        else:
            text = _json_text(value)
        shown.append(Guardrail(rule=label, value=text))
    return shown


def _services_by_name(folders: documents.Folders) -> dict[str, tuple[str, ...]]:
    """Each scenario's declared services (the first scenario of a name, as the list)."""
    found: dict[str, tuple[str, ...]] = {}
    for doc in loading.load_documents(folders.scenario_paths()).scenarios():
        found.setdefault(doc.name, tuple(str(ref) for ref in doc.model.spec.services))
    return found


def scenario_rows(folders: documents.Folders) -> tuple[views.ScenarioListView, list[ScenarioRow]]:
    """The API's scenario list and a row for each of its scenarios."""
    listed = documents.scenario_list(folders)
    services = _services_by_name(folders)
    rows = [ScenarioRow(summary=s, services=services.get(s.name, ())) for s in listed.scenarios]
    return listed, rows


def allowed(principal: auth.Principal, permission: auth.Permission) -> str | None:
    """None when `principal` may do `permission` (before any service scope); else why not."""
    try:
        auth.authorize(principal, permission)
    except auth.Forbidden as exc:
        return str(exc)
    return None


def parameters_from(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    """The `param.NAME` fields that hold a value (an empty one means: the default)."""
    found: dict[str, str] = {}
    for key, value in items:
        if key.startswith(PARAM_PREFIX) and isinstance(value, str) and value.strip():
            found[key.removeprefix(PARAM_PREFIX)] = value.strip()
    return found


# ---- the plan (as POST /api/v1/plans) ----------------------------------------------------


def plan(
    *,
    scenario: str,
    environment: str,
    parameters: Mapping[str, str],
    principal: auth.Principal,
    settings: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    folders: documents.Folders,
) -> run_service.Planned:
    """Plan `scenario` against `environment` as `POST /api/v1/plans` does (touches nothing)."""
    request = documents.drill_request(
        folders, scenario=scenario, environment=environment, parameters=parameters
    )
    prepared = run_service.prepare(settings, request)
    planned = run_service.plan(settings, store, reg, prepared)
    services = auth.services_of_plan(planned.plan.impact, catalog=prepared.catalog)
    auth.authorize(principal, auth.Permission.PLAN, services)
    return planned


def masked_view(planned: run_service.Planned) -> views.PlanView:
    """The plan's view with the drill's secret values masked (for a page)."""
    dumped = planned.masking.json(planned.view().model_dump(mode="json"))
    return views.PlanView.model_validate(dumped)


def _plan_shown(
    *,
    scenario: str,
    environment: str,
    parameters: Mapping[str, str],
    principal: auth.Principal,
    settings: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    folders: documents.Folders,
) -> PlanShown:
    try:
        planned = plan(
            scenario=scenario,
            environment=environment,
            parameters=parameters,
            principal=principal,
            settings=settings,
            store=store,
            reg=reg,
            folders=folders,
        )
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        return PlanShown(error=secrets.redact(str(exc)), status=problems.kind_of(exc).status)
    return PlanShown(plan=masked_view(planned), warning=planned.warning)


# ---- the start (as POST /api/v1/runs) ---------------------------------------------------


def submit(
    *,
    scenario: str,
    environment: str,
    parameters: Mapping[str, str],
    principal: auth.Principal,
    settings: settings_mod.Settings,
    approval_settings: approvals.ApprovalSettings,
    store: journal.Journal,
    reg: registry.Registry,
    folders: documents.Folders,
    runner: driver.Driver | None,
    reason: str,
) -> states.Run:
    """Submit the drill as `POST /api/v1/runs` does (`drills.service.submitting`)."""
    return submitting.submit_request(
        settings,
        store,
        reg,
        folders,
        scenario=scenario,
        environment=environment,
        parameters=parameters,
        principal=principal,
        approval_settings=approval_settings,
        runner=runner,
        reason=reason,
    )


# ---- routes ------------------------------------------------------------------------------


@router.get("/scenarios", response_class=responses.HTMLResponse)
async def scenario_list(
    request: fastapi.Request, session: deps.SessionDep, folders: deps.FoldersDep
) -> responses.Response:
    auth.authorize(session.principal, auth.Permission.READ)
    listed, rows = await concurrency.run_in_threadpool(scenario_rows, folders)
    return rendering.page(
        request, "scenarios.html", title="Scenarios", rows=rows, problems=listed.problems
    )


@router.get("/scenarios/{name}", response_class=responses.HTMLResponse)
async def scenario_page(
    request: fastapi.Request,
    name: str,
    session: deps.SessionDep,
    settings: deps.SettingsDep,
    store: deps.StoreDep,
    reg: deps.RegistryDep,
    folders: deps.FoldersDep,
    environment: Annotated[str | None, fastapi.Query()] = None,
) -> responses.Response:
    principal = session.principal
    auth.authorize(principal, auth.Permission.READ)
    view = await concurrency.run_in_threadpool(documents.scenario, folders, name)
    environments = await concurrency.run_in_threadpool(documents.environment_list, folders)
    asked = parameters_from(request.query_params.multi_items())
    secret_names = {p.name for p in view.parameters if p.secret}
    plan_values = {k: v for k, v in asked.items() if k not in secret_names}
    plan_refusal = allowed(principal, auth.Permission.PLAN)
    shown: PlanShown | None = None
    if environment:
        if plan_refusal is not None:
            shown = PlanShown(error=plan_refusal, status=403)
        else:
            shown = await concurrency.run_in_threadpool(
                lambda: _plan_shown(
                    scenario=name,
                    environment=environment,
                    parameters=plan_values,
                    principal=principal,
                    settings=settings,
                    store=store,
                    reg=reg,
                    folders=folders,
                )
            )
    fields = [
        Field(parameter=p, value="" if p.secret else plan_values.get(p.name, ""))
        for p in view.parameters
    ]
    return rendering.page(
        request,
        "scenario.html",
        status_code=200 if shown is None else shown.status,
        title=f"Scenario {view.name}",
        scenario=view,
        yaml_text=yaml.safe_dump(view.document, sort_keys=False, allow_unicode=True),
        targets=targets_of(view.document),
        guardrails=guardrails_of(view.document),
        environments=environments.environments,
        environment=environment or "",
        fields=fields,
        shown=shown,
        plan_refusal=plan_refusal,
        start_refusal=allowed(principal, auth.Permission.START),
    )


@router.post("/scenarios/{name}/run")
async def start_drill(
    request: fastapi.Request,
    name: str,
    session: deps.FormSessionDep,
    settings: deps.SettingsDep,
    store: deps.StoreDep,
    reg: deps.RegistryDep,
    folders: deps.FoldersDep,
    runner: deps.DriverDep,
) -> responses.Response:
    principal = session.principal
    form = await request.form()
    raw = form.get("environment")
    environment = raw.strip() if isinstance(raw, str) else ""
    parameters = parameters_from(form.multi_items())
    started: list[states.Run] = []

    def act() -> str:
        documents.find_scenario(folders, name)  # this page starts scenarios only (else 404)
        if not environment:
            raise FormInvalid(
                f"scenario {name}: choose the environment to run it in (the form's"
                " environment field is empty)"
            )
        run = submit(
            scenario=name,
            environment=environment,
            parameters=parameters,
            principal=principal,
            settings=settings,
            approval_settings=request.app.state.api_settings,
            store=store,
            reg=reg,
            folders=folders,
            runner=runner,
            reason=f"POST {request.url.path} (web page)",
        )
        started.append(run)
        return f"/runs/{run.id}"

    try:
        auth.authorize(principal, auth.Permission.START)
        answer = await forms.act_once(request, store, session, act)
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        await audit.record(
            request,
            store,
            action=START_ACTION,
            target=f"scenarios/{name}",
            status=problems.kind_of(exc).status,
            detail=secrets.redact(str(exc)),
        )
        raise
    location = answer.headers.get("location", "/")
    await audit.record(
        request,
        store,
        action=START_ACTION,
        target=location.lstrip("/"),
        status=answer.status_code,
        detail=(
            f"{name} in {environment}"
            + ("" if started else " (the same form again: nothing more started)")
        ),
    )
    return answer
