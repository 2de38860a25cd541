"""Routes: `GET /coverage`: which services are drilled for which failure modes, how well.

`?format=json` (default) is `views.CoverageView`, the same as `stormdrill coverage --format
json`; `?format=csv` the CSV the CLI writes. The catalog is `STORMDRILL_CMDB`'s, or with
`?environment=NAME` that Environment's CMDB; `?strict=true` refuses a catalog with any
refused entity (422) instead of leaving it out, as the CLI's `--strict`.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import fastapi

from drills import settings as settings_mod
from drills.api import deps, problems
from drills.service import auth, catalogs, documents, views
from drills.service import coverage as coverage_service
from orchestrator.cmdb import models as cmdb_models
from reports import coverage_rendering

router = fastapi.APIRouter(tags=["coverage"])

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]


class Format(enum.StrEnum):
    JSON = "json"
    CSV = "csv"


def catalog(
    settings: settings_mod.Settings,
    folders: documents.Folders,
    *,
    environment: str | None,
    strict: bool,
) -> cmdb_models.Catalog:
    """The CMDB of `environment` (a name of the environment folders), else the settings';
    `NoCatalog` when none is named."""
    env = None if environment is None else documents.find_environment(folders, environment).model
    return catalogs.require_catalog(settings, env, (), strict=strict)


@router.get(
    "/coverage",
    summary="The coverage matrix: services by failure modes, judged by the policy",
    response_model=views.CoverageView,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **problems.responses(*problems.COMMON, 404),
    },
)
def coverage(
    store: deps.StoreDep,
    settings: deps.SettingsDep,
    folders: deps.FoldersDep,
    _: Reader,
    output_format: Annotated[Format, fastapi.Query(alias="format")] = Format.JSON,
    environment: Annotated[
        str | None, fastapi.Query(description="Use this Environment's CMDB.")
    ] = None,
    strict: bool = False,
) -> fastapi.Response:
    """Every cell of every service, and the roll-ups; or the same as CSV."""
    found = catalog(settings, folders, environment=environment, strict=strict)
    matrix = coverage_service.matrix(
        store, catalog=found, policy_path=None, now=dt.datetime.now(dt.UTC)
    )
    if output_format is Format.CSV:
        return fastapi.Response(
            content=coverage_rendering.render(matrix, coverage_rendering.Format.CSV),
            media_type="text/csv; charset=utf-8",
        )
    view = views.CoverageView.from_matrix(matrix)
    return fastapi.responses.JSONResponse(view.dump())
