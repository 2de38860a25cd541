"""Routes: environments (list, get) from `ApiSettings.environment_dirs`.

Never a credential, token or password: `views.EnvironmentView` describes how a cluster or
account is reached (a kubeconfig path, a context, a profile or role name, an endpoint
without its userinfo) and masks any parameter whose name or value looks secret.
"""

from __future__ import annotations

from typing import Annotated

import fastapi

from drills.api import deps, problems
from drills.service import auth, documents, views

router = fastapi.APIRouter(tags=["environments"])

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]


@router.get(
    "/environments",
    summary="List the Environments of the configured folders",
    response_model=views.EnvironmentListView,
    responses=problems.responses(*problems.COMMON),
)
def list_environments(_: Reader, folders: deps.FoldersDep) -> views.EnvironmentListView:
    """Every Environment by name: protected or not, how many approvers a run there needs."""
    return documents.environment_list(folders)


@router.get(
    "/environments/{name}",
    summary="One Environment, without its secrets",
    response_model=views.EnvironmentView,
    responses=problems.responses(*problems.COMMON, 404),
)
def get_environment(name: str, _: Reader, folders: deps.FoldersDep) -> views.EnvironmentView:
    """The Environment `name`: access described, never credentials; secrets masked."""
    return documents.environment(folders, name)
