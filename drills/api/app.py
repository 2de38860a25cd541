"""The FastAPI application: `create_app(settings, api_settings)` builds it, with no globals.

The lifespan opens the run store (the same one the CLI resolves; an old schema is upgraded
on SQLite and refused on PostgreSQL, naming `stormdrill db upgrade`) and the provider
registry, runs recovery once (`ApiSettings.recover_on_start`: a run whose orchestrator died
is rolled back before anything new starts), then starts the runner that drives submitted runs
(`drills.service.driver`, when `drive_runs`); at shutdown it stops the runner (drills being
driven abort and roll back) and closes the store. All of it is kept on `app.state`, where
`drills.api.deps` reads it. Every resource has its own router module under
`drills.api.routes`; resources live under `/api/v1`, health and metrics outside it. Every
error is answered as `application/problem+json` (`drills.api.problems`).
`create_app_from_env` is the factory `stormdrill serve` hands uvicorn (by import string,
so the CLI never imports this package): settings from `os.environ` and `STORMDRILL_CONFIG`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
from collections.abc import AsyncIterator

import fastapi
from starlette import concurrency

from drills import settings as settings_mod
from drills import store as store_mod
from drills.api import audit as api_audit
from drills.api import config as api_config
from drills.api import examples, idempotency, problems, threads
from drills.api.routes import (
    approvals,
    audit,
    cmdb,
    coverage,
    drills,
    environments,
    events,
    health,
    killswitch,
    metrics,
    plans,
    runs,
    scenarios,
    tokens,
)
from drills.service import auth, driver, schema
from drills.service import runs as run_service
from drills.service import tokens as tokens_service
from orchestrator import journal, registry
from orchestrator.providers import builtin

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
_RESOURCES = (
    scenarios,
    environments,
    drills,
    runs,
    approvals,
    events,
    plans,
    coverage,
    cmdb,
    killswitch,
    audit,
    tokens,
)


def create_app(
    settings: settings_mod.Settings, api_settings: api_config.ApiSettings | None = None
) -> fastapi.FastAPI:
    """The API over the store `settings` name (opened at start-up, closed at shutdown).

    Raises `auth.AuthConfigInvalid` for OIDC settings that cannot work.
    """
    config = api_settings or api_config.ApiSettings()
    oidc = auth.OidcConfig.from_settings(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        store = await concurrency.run_in_threadpool(store_mod.open_store, settings)
        try:  # an old schema: SQLite is upgraded, PostgreSQL refused (`stormdrill db upgrade`)
            await concurrency.run_in_threadpool(schema.prepare, store)
        except BaseException:
            store.close()
            raise
        reg = builtin.registry_with_builtins()
        app.state.store = store
        app.state.registry = reg
        app.state.read_limiter = threads.limiter()
        runner: driver.Driver | None = None
        try:
            if config.recover_on_start:
                await concurrency.run_in_threadpool(_recover, settings, store, reg)
            if config.drive_runs:
                runner = driver.Driver(
                    settings,
                    store,
                    reg,
                    approval_settings=config,
                    workers=config.driver_workers,
                    poll_s=config.driver_poll_s,
                )
                runner.start()
            app.state.driver = runner
            yield
        finally:
            if runner is not None:
                await concurrency.run_in_threadpool(runner.stop)
            store.close()

    app = fastapi.FastAPI(
        title="Stormdrill",
        version="1",
        summary="Chaos and continuity drills: plan, run, watch and report them over HTTP.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_settings = config
    app.state.oidc = None if oidc is None else auth.OidcVerifier(oidc)
    app.state.driver = None
    app.state.principals = tokens_service.PrincipalCache()  # tokens checked in the last 2 s
    problems.install(app)
    idempotency.install(app)
    api_audit.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    for module in _RESOURCES:
        app.include_router(module.router, prefix=API_PREFIX)
    examples.install(app)  # recorded 2xx examples in app.openapi() (drills/api/examples.json)
    return app


def _recover(
    settings: settings_mod.Settings, store: journal.Journal, reg: registry.Registry
) -> None:
    """Recovery at start-up: finish every run whose orchestrator died (logged, never fatal
    for a run that cannot be finished yet: the next pass or `stormdrill recover` does)."""
    for item in run_service.recover(settings, store, reg):
        found = item.item
        log.warning(
            "recovered run %s at start-up: %s -> %s (%s)",
            found.run_id,
            found.found_state.value,
            found.final_state.value,
            found.message,
        )


def create_app_from_env() -> fastapi.FastAPI:
    """The app `stormdrill serve` runs: settings from `os.environ` and the config file
    `STORMDRILL_CONFIG` names (variables win over the file)."""
    raw = os.environ.get(api_config.CONFIG_ENV_VAR)
    config_file = pathlib.Path(raw) if raw else None
    env = api_config.store_env(os.environ, config_file)
    settings = settings_mod.Settings.from_env(env)
    return create_app(settings, api_config.ApiSettings.load(env, config_file))
