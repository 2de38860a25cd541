"""Routes: drills: the Drill documents of the configured folders (list, get).

A Drill binds a scenario to an environment with parameter values (secret ones masked),
an optional schedule and recorded approvals; `POST /runs {"scenario": DRILL}` runs one.
"""

from __future__ import annotations

from typing import Annotated

import fastapi

from drills.api import deps, problems
from drills.service import auth, documents, views

router = fastapi.APIRouter(tags=["drills"])

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]


@router.get(
    "/drills",
    summary="List the Drill documents of the configured folders",
    response_model=views.DrillListView,
    responses=problems.responses(*problems.COMMON),
)
def list_drills(_: Reader, folders: deps.FoldersDep) -> views.DrillListView:
    """Every Drill by name, and the problems of the files that could not be read."""
    return documents.drill_list(folders)


@router.get(
    "/drills/{name}",
    summary="One Drill document",
    response_model=views.DrillView,
    responses=problems.responses(*problems.COMMON, 404),
)
def get_drill(name: str, _: Reader, folders: deps.FoldersDep) -> views.DrillView:
    """The Drill `name`: its scenario, environment, parameters, schedule and approvals."""
    return documents.drill(folders, name)
