"""Dependencies as annotated types (STYLE rule 18), read from the app `create_app` built.

`StoreDep`, `SettingsDep`, `ApiSettingsDep`, `RegistryDep`, `DriverDep`, `FoldersDep`,
`PrincipalDep`, `FeedReaderDep` (a feed's reader: also a viewer token in `?token=`), and
`require(permission)`:
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
    queried: auth.Principal | None = getattr(request.state, "query_principal", None)
    if queried is not None:  # a feed's `?token=`, checked by `_query_reader` already
        return queried
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


QUERY_TOKEN = "token"
"""The query parameter a calendar client sends its token in (`get_feed_principal`)."""
FEED_TOKEN_HINT = "stormdrill tokens create --role viewer --name calendar"


async def _query_reader(
    request: fastapi.Request,
    store: StoreDep,
    token: Annotated[
        str | None,
        fastapi.Query(
            alias=QUERY_TOKEN,
            description="A viewer token, for calendar clients that cannot send an"
            " `Authorization` header (subscribe by URL). Only a Stormdrill token whose role"
            " is exactly viewer is accepted here (URLs end up in logs and at calendar"
            f" providers): create one with `{FEED_TOKEN_HINT}`.",
        ),
    ] = None,
) -> auth.Principal | None:
    """The reader a `?token=` names (None without one), kept on `request.state` for
    `get_principal`, which the feed route resolves after this one."""
    if token is None:
        return None
    principal = await _query_principal(request, store, token)
    request.state.query_principal = principal
    request.state.principal = principal  # for the audit trail
    return principal


async def get_feed_principal(
    query: Annotated[auth.Principal | None, fastapi.Depends(_query_reader)],
    header: Annotated[auth.Principal, fastapi.Depends(get_principal)],
) -> auth.Principal:
    """A reader of a feed (`GET /gamedays.ics`): from `?token=` or as `get_principal` says.

    Only the routes that declare this accept a token in the query, and only a stored token
    (`sdt_…`, never an OIDC JWT) whose role is exactly viewer: anything else is 401 (not a
    token this server vouches for) or 403 (a stronger token, which must not travel in
    URLs). With no `?token=`, the `Authorization` header decides (`get_principal`, which
    returns the query's reader when there is one). Both at once is 401 (send one). The
    principal must then be granted `Permission.READ` (403 otherwise).
    """
    principal = query if query is not None else header
    auth.authorize(principal, auth.Permission.READ)
    return principal


FeedReaderDep = Annotated[auth.Principal, fastapi.Depends(get_feed_principal)]


async def _query_principal(
    request: fastapi.Request, store: journal.Journal, secret: str
) -> auth.Principal:
    if request.headers.get("authorization") is not None:
        raise auth.Unauthenticated(
            f"credentials both in the Authorization header and in ?{QUERY_TOKEN}=: send one"
        )
    secret = secret.strip()
    if not secret.startswith(tokens.PREFIX):
        raise auth.Unauthenticated(
            f"?{QUERY_TOKEN}= takes a Stormdrill viewer token (sdt_…), not an OIDC token or"
            f" anything else (send those in 'Authorization: Bearer …'; create a viewer token"
            f" with `{FEED_TOKEN_HINT}`)"
        )
    cache: tokens.PrincipalCache | None = getattr(request.app.state, "principals", None)
    principal = cache.principal(secret) if cache is not None else None
    if principal is None:
        principal = await concurrency.run_in_threadpool(
            functools.partial(tokens.authenticate, store, secret, cache=cache)
        )
    if principal.roles != {auth.Role.VIEWER}:
        raise auth.Forbidden(
            f"{principal.describe()} may not be sent in a URL (?{QUERY_TOKEN}=): only a viewer"
            " token may, as URLs are kept in server and proxy logs and by calendar providers."
            f" Create a viewer token for the calendar: `{FEED_TOKEN_HINT}`, and send this"
            " one only in 'Authorization: Bearer …' (revoke it if the URL was shared)"
        )
    return principal
