"""What a page's handler needs, as annotated dependencies read from `app.state`.

`StoreDep`, `SettingsDep`, `RegistryDep`, `DriverDep`, `FoldersDep` are the objects the
API's lifespan put on `app.state` (this package never imports `drills.api`). `SessionDep`
is the logged-in browser: the session cookie resolved in a worker thread
(`drills.service.sessions.resolve`); without a valid one a page answers 303 to
`/login?next=…` (`LoginRequired`). `FormSessionDep` is the same for a form's POST, once
its `csrf_token` field matched the session's (else 403, `CsrfRejected`, audited as
`form.csrf-refused`).
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

import fastapi
from starlette import concurrency

from drills import settings as settings_mod
from drills.service import auth, documents, driver, sessions
from drills.web import audit as web_audit
from orchestrator import journal, registry
from scenarios import errors

COOKIE = "stormdrill_session"
CSRF_FIELD = "csrf_token"
IDEMPOTENCY_FIELD = "idempotency_key"
CSRF_REFUSED = "form.csrf-refused"
"""The audit action of a form refused for its CSRF token (nothing else was looked at)."""


class LoginRequired(errors.StormdrillError):
    """No valid session: the page answers 303 to the login form (`reason` shown there)."""


class CsrfRejected(errors.StormdrillError):
    """A form whose CSRF token is missing or is not the session's: 403."""


class WebSettings(Protocol):
    """What the pages read of the server's settings (`drills.api.config.ApiSettings`)."""

    @property
    def scenario_dirs(self) -> tuple[Any, ...]: ...

    @property
    def environment_dirs(self) -> tuple[Any, ...]: ...

    @property
    def drill_dirs(self) -> tuple[Any, ...]: ...

    @property
    def session_ttl_s(self) -> float: ...


async def get_store(request: fastapi.Request) -> journal.Journal:
    store: journal.Journal = request.app.state.store
    return store


async def get_settings(request: fastapi.Request) -> settings_mod.Settings:
    config: settings_mod.Settings = request.app.state.settings
    return config


async def get_registry(request: fastapi.Request) -> registry.Registry:
    reg: registry.Registry = request.app.state.registry
    return reg


async def get_driver(request: fastapi.Request) -> driver.Driver | None:
    found: driver.Driver | None = request.app.state.driver
    return found


async def get_folders(request: fastapi.Request) -> documents.Folders:
    config: WebSettings = request.app.state.api_settings
    return documents.Folders(
        scenarios=config.scenario_dirs,
        environments=config.environment_dirs,
        drills=config.drill_dirs,
    )


StoreDep = Annotated[journal.Journal, fastapi.Depends(get_store)]
SettingsDep = Annotated[settings_mod.Settings, fastapi.Depends(get_settings)]
RegistryDep = Annotated[registry.Registry, fastapi.Depends(get_registry)]
DriverDep = Annotated[driver.Driver | None, fastapi.Depends(get_driver)]
FoldersDep = Annotated[documents.Folders, fastapi.Depends(get_folders)]


async def get_session(request: fastapi.Request, store: StoreDep) -> sessions.Session:
    """The logged-in browser (also kept on `request.state.session` and `.principal`)."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        raise LoginRequired("log in with your token to see this page")
    try:
        session = await concurrency.run_in_threadpool(sessions.resolve, store, secret)
    except auth.Unauthenticated as exc:
        raise LoginRequired(str(exc)) from None
    request.state.session = session
    request.state.principal = session.principal
    return session


SessionDep = Annotated[sessions.Session, fastapi.Depends(get_session)]


async def get_optional_session(
    request: fastapi.Request, store: StoreDep
) -> sessions.Session | None:
    """The logged-in browser, or None (for pages anyone may see: the login form)."""
    try:
        return await get_session(request, store)
    except LoginRequired:
        return None


OptionalSessionDep = Annotated[sessions.Session | None, fastapi.Depends(get_optional_session)]


async def get_form_session(request: fastapi.Request, session: SessionDep) -> sessions.Session:
    """The session of a form's POST whose `csrf_token` field is the session's (else 403)."""
    form = await request.form()
    presented = form.get(CSRF_FIELD)
    if not sessions.check_csrf(session, presented if isinstance(presented, str) else None):
        store: journal.Journal = request.app.state.store
        await web_audit.record(
            request,
            store,
            action=CSRF_REFUSED,
            target=request.url.path.lstrip("/"),
            status=403,
            detail="the form's CSRF token was missing or not the session's",
        )
        raise CsrfRejected(
            "this form's CSRF token is missing or out of date: reload the page and try again"
        )
    return session


FormSessionDep = Annotated[sessions.Session, fastapi.Depends(get_form_session)]
