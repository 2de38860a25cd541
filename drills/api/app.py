"""The FastAPI application: `create_app(settings, api_settings)` builds it, with no globals.

The lifespan opens the run store (the same one the CLI resolves) and the provider registry and
keeps them on `app.state`; `drills.api.deps` reads them from there. Every resource has its own
router module under `drills.api.routes`; resources live under `/api/v1`, health and metrics
outside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import fastapi

from drills import settings as settings_mod
from drills import store as store_mod
from drills.api import audit as api_audit
from drills.api import config as api_config
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
    """The API over the store `settings` name (opened at start-up, closed at shutdown)."""
    config = api_settings or api_config.ApiSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        store = store_mod.open_store(settings)
        app.state.store = store
        try:
            yield
        finally:
            store.close()

    app = fastapi.FastAPI(title="Stormdrill", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.api_settings = config
    api_audit.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    for module in _RESOURCES:
        app.include_router(module.router, prefix=API_PREFIX)
    return app
