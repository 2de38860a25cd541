"""Routes: the CMDB: its services, one service, and the impact of losing one.

The same views as `stormdrill cmdb show|impact --format json`. The catalog is
`STORMDRILL_CMDB`'s, or with `?environment=NAME` that Environment's CMDB (see
`routes.coverage.catalog`); a ref is what people write (`checkout`,
`resource:payments-db`, `component:default/checkout`).
"""

from __future__ import annotations

from typing import Annotated

import fastapi

from drills.api import deps, problems
from drills.api.routes import coverage
from drills.service import auth, views
from drills.service import cmdb as cmdb_service

router = fastapi.APIRouter(tags=["cmdb"])

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]
Environment = Annotated[str | None, fastapi.Query(description="Use this Environment's CMDB.")]


@router.get(
    "/cmdb/services",
    summary="Every CMDB service, the most critical tier first",
    response_model=views.ServiceListView,
    responses=problems.responses(*problems.COMMON, 404),
)
def services(
    settings: deps.SettingsDep,
    folders: deps.FoldersDep,
    _: Reader,
    environment: Environment = None,
    strict: bool = False,
) -> views.ServiceListView:
    """Each service with its dependencies, dependents, placement, people and objectives."""
    found = coverage.catalog(settings, folders, environment=environment, strict=strict)
    return cmdb_service.services(found)


@router.get(
    "/cmdb/services/{ref:path}/impact",
    summary="What losing a service reaches, transitively",
    response_model=views.ImpactView,
    responses=problems.responses(*problems.COMMON, 404),
)
def impact(
    ref: str,
    settings: deps.SettingsDep,
    folders: deps.FoldersDep,
    _: Reader,
    failure_mode: Annotated[
        str | None,
        fastapi.Query(alias="failureMode", description="RTO/RPO for this failure mode."),
    ] = None,
    environment: Environment = None,
    strict: bool = False,
) -> views.ImpactView:
    """The service and everything that depends on it, with the objectives that hold."""
    found = coverage.catalog(settings, folders, environment=environment, strict=strict)
    return cmdb_service.impact_view(found, [ref], failure_mode=failure_mode)


@router.get(
    "/cmdb/services/{ref:path}",
    summary="One CMDB service in full",
    response_model=views.ServiceView,
    responses=problems.responses(*problems.COMMON, 404),
)
def service(
    ref: str,
    settings: deps.SettingsDep,
    folders: deps.FoldersDep,
    _: Reader,
    environment: Environment = None,
    strict: bool = False,
) -> views.ServiceView:
    """What it depends on, what uses it, where it runs, its people and objectives."""
    found = coverage.catalog(settings, folders, environment=environment, strict=strict)
    return cmdb_service.service(found, ref)
