"""Dependencies as annotated types (STYLE rule 18), read from the app `create_app` built.

`StoreDep`, `SettingsDep`, `ApiSettingsDep`, `RegistryDep`, `DriverDep`, `FoldersDep`,
`PrincipalDep`, and `require(permission)`:
`principal: Annotated[auth.Principal, require(auth.Permission.START)]` in a route's signature
authenticates the caller (401) and checks the permission (403). Tests swap any of them with
`app.dependency_overrides[get_store] = …`. The store, registry and driver exist once the
lifespan ran (`with TestClient(app)` or uvicorn); the settings from `create_app` on.
Every dependency here is `async def` and does no I/O on the event loop (a sync one would
cost each request a hop to the worker threads); what must block runs in a worker thread.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import fastapi
from starlette import concurrency

from drills import settings as settings_mod
from drills.api import config as api_config
from drills.service import auth, documents, driver, tokens
from orchestrator import journal, registry


async def get_store(request: fastapi.Request) -> journal.Journal:
    store: journal.Journal = request.app.state.store
    return store


async def get_settings(request: fastapi.Request) -> settings_mod.Settings:
    config: settings_mod.Settings = request.app.state.settings
    return config


async def get_api_settings(request: fastapi.Request) -> api_config.ApiSettings:
    config: api_config.ApiSettings = request.app.state.api_settings
    return config


async def get_registry(request: fastapi.Request) -> registry.Registry:
    reg: registry.Registry = request.app.state.registry
    return reg


async def get_driver(request: fastapi.Request) -> driver.Driver | None:
    """The runner that drives submitted runs; None when `drive_runs` is off."""
    found: driver.Driver | None = request.app.state.driver
    return found


async def get_folders(
    config: Annotated[api_config.ApiSettings, fastapi.Depends(get_api_settings)],
) -> documents.Folders:
    """Where the API's documents come from (`scenario_dirs`, `environment_dirs`, `drill_dirs`)."""
    return documents.Folders(
        scenarios=config.scenario_dirs,
        environments=config.environment_dirs,
        drills=config.drill_dirs,
    )


StoreDep = Annotated[journal.Journal, fastapi.Depends(get_store)]
SettingsDep = Annotated[settings_mod.Settings, fastapi.Depends(get_settings)]
ApiSettingsDep = Annotated[api_config.ApiSettings, fastapi.Depends(get_api_settings)]
RegistryDep = Annotated[registry.Registry, fastapi.Depends(get_registry)]
DriverDep = Annotated[driver.Driver | None, fastapi.Depends(get_driver)]
FoldersDep = Annotated[documents.Folders, fastapi.Depends(get_folders)]


async def get_principal(
    request: fastapi.Request,
    store: StoreDep,
    config: ApiSettingsDep,
) -> auth.Principal:
    """The caller, from `Authorization: Bearer …` (a Stormdrill token or an OIDC JWT).

    A token the store vouched for within `tokens.PRINCIPAL_CACHE_TTL` is answered from the
    app's `tokens.PrincipalCache` on the event loop; anything else is checked in a worker
    thread (it reads the store, or fetches the issuer's keys). Also kept on
    `request.state.principal` (the audit trail reads it there).
    """
    authorization = request.headers.get("authorization")
    cache: tokens.PrincipalCache | None = getattr(request.app.state, "principals", None)
    principal = auth.cached_principal(authorization, cache) if cache is not None else None
    if principal is None:
        principal = await concurrency.run_in_threadpool(
            functools.partial(
                auth.authenticate,
                store,
                config,
                authorization=authorization,
                oidc=getattr(request.app.state, "oidc", None),
                token_cache=cache,
            )
        )
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[auth.Principal, fastapi.Depends(get_principal)]


def require(permission: auth.Permission) -> Any:
    """A dependency: the authenticated principal, once `permission` is granted (else 403)."""

    async def check(request: fastapi.Request, principal: PrincipalDep) -> auth.Principal:
        request.state.principal = principal  # for the audit trail, also when overridden
        auth.authorize(principal, permission)
        return principal

    return fastapi.Depends(check)
