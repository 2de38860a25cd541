"""Dependencies as annotated types (STYLE rule 18), read from the app `create_app` built.

`StoreDep`, `SettingsDep`, `ApiSettingsDep`, `PrincipalDep`, and `require(permission)`:
`principal: Annotated[auth.Principal, require(auth.Permission.START)]` in a route's signature
authenticates the caller (401) and checks the permission (403). Tests swap any of them with
`app.dependency_overrides[get_store] = …`.
"""

from __future__ import annotations

from typing import Annotated, Any

import fastapi

from drills import settings as settings_mod
from drills.api import config as api_config
from drills.service import auth
from orchestrator import journal


def get_store(request: fastapi.Request) -> journal.Journal:
    store: journal.Journal = request.app.state.store
    return store


def get_settings(request: fastapi.Request) -> settings_mod.Settings:
    config: settings_mod.Settings = request.app.state.settings
    return config


def get_api_settings(request: fastapi.Request) -> api_config.ApiSettings:
    config: api_config.ApiSettings = request.app.state.api_settings
    return config


StoreDep = Annotated[journal.Journal, fastapi.Depends(get_store)]
SettingsDep = Annotated[settings_mod.Settings, fastapi.Depends(get_settings)]
ApiSettingsDep = Annotated[api_config.ApiSettings, fastapi.Depends(get_api_settings)]


def get_principal(
    request: fastapi.Request,
    store: StoreDep,
    config: ApiSettingsDep,
) -> auth.Principal:
    """The caller, from `Authorization: Bearer …` (a Stormdrill token or an OIDC JWT).

    Also kept on `request.state.principal` (the audit trail reads it there).
    """
    principal = auth.authenticate(  # type: ignore[attr-defined]  # filled in by issue 13
        store, config, authorization=request.headers.get("authorization")
    )
    request.state.principal = principal
    return principal  # type: ignore[no-any-return]


PrincipalDep = Annotated[auth.Principal, fastapi.Depends(get_principal)]


def require(permission: auth.Permission) -> Any:
    """A dependency: the authenticated principal, once `permission` is granted (else 403)."""

    def check(principal: PrincipalDep) -> auth.Principal:
        auth.authorize(principal, permission)  # type: ignore[attr-defined]  # issue 13
        return principal

    return fastapi.Depends(check)
