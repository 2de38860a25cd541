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
from orchestrator.cmdb import models as cmdb_models

router = fastapi.APIRouter(tags=["cmdb"])

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]
Environment = Annotated[str | None, fastapi.Query(description="Use this Environment's CMDB.")]


def _catalog(
    settings: deps.SettingsDep,
    folders: deps.FoldersDep,
    environment: Environment = None,
    strict: bool = False,
) -> cmdb_models.Catalog:
    """The catalog a request names (`?environment=`, `?strict=`): see `coverage.catalog`."""
    return coverage.catalog(settings, folders, environment=environment, strict=strict)


Catalog = Annotated[cmdb_models.Catalog, fastapi.Depends(_catalog)]


@router.get(
    "/cmdb/services",
    summary="Every CMDB service, the most critical tier first",
    response_model=views.ServiceListView,
    responses=problems.responses(*problems.COMMON, 404),
)
def services(_: Reader, found: Catalog) -> views.ServiceListView:
    """Each service with its dependencies, dependents, placement, people and objectives."""
    return cmdb_service.services(found)


@router.get(
    "/cmdb/services/{ref:path}/impact",
    summary="What losing a service reaches, transitively",
    response_model=views.ImpactView,
    responses=problems.responses(*problems.COMMON, 404),
)
def impact(
    ref: str,
    _: Reader,
    found: Catalog,
    failure_mode: Annotated[
        str | None,
        fastapi.Query(alias="failureMode", description="RTO/RPO for this failure mode."),
    ] = None,
) -> views.ImpactView:
    """The service and everything that depends on it, with the objectives that hold."""
    return cmdb_service.impact_view(found, [ref], failure_mode=failure_mode)


@router.get(
    "/cmdb/services/{ref:path}",
    summary="One CMDB service in full",
    response_model=views.ServiceView,
    responses=problems.responses(*problems.COMMON, 404),
)
def service(ref: str, _: Reader, found: Catalog) -> views.ServiceView:
    """What it depends on, what uses it, where it runs, its people and objectives."""
    return cmdb_service.service(found, ref)
