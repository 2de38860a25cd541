"""Routes: scenarios: the list (configured folders and the bundled library), one scenario,
and `POST /scenarios:validate` for an uploaded document.

Validation takes the document as the request body (YAML or JSON text, one or more
documents; `?filename=` names it in the problems, default `document.yaml`) and answers
200 with every problem `stormdrill validate` would print for it, placed at
`filename:line:column` (`valid: false` when there is an error). Nothing is stored.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import tempfile
from typing import Annotated

import fastapi
from starlette import concurrency

from drills.api import deps, problems
from drills.service import auth, documents, views
from drills.service import scenarios as scenario_service
from scenarios import errors

router = fastapi.APIRouter(tags=["scenarios"])

Reader = Annotated[auth.Principal, deps.require(auth.Permission.READ)]
MAX_DOCUMENT_BYTES = 1 << 20
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


class DocumentTooLarge(errors.StormdrillError):
    """An uploaded document over `MAX_DOCUMENT_BYTES`."""


@router.get(
    "/scenarios",
    summary="List the scenarios (configured folders, then the bundled library)",
    response_model=views.ScenarioListView,
    responses=problems.responses(*problems.COMMON),
)
def list_scenarios(_: Reader, folders: deps.FoldersDep) -> views.ScenarioListView:
    """Every scenario by name, and the problems of the files that could not be read."""
    return documents.scenario_list(folders)


@router.get(
    "/scenarios/{name}",
    summary="One scenario: its parameters and document",
    response_model=views.ScenarioView,
    responses=problems.responses(*problems.COMMON, 404),
)
def get_scenario(name: str, _: Reader, folders: deps.FoldersDep) -> views.ScenarioView:
    """The scenario `name` (secret parameter defaults masked)."""
    return documents.scenario(folders, name)


def _validate(body: bytes, filename: str) -> views.ValidationView:
    with tempfile.TemporaryDirectory(prefix="stormdrill-validate-") as folder:
        path = pathlib.Path(folder) / filename
        path.write_bytes(body)
        checked = scenario_service.check([path])
        temp = str(path)

        def named(text: str) -> str:
            return text.replace(temp, filename)

        renamed = scenario_service.Checked(
            result=checked.result,
            problems=tuple(
                dataclasses.replace(p, file=named(p.file), message=named(p.message))
                for p in checked.problems
            ),
        )
        view = scenario_service.validation_view(renamed)
    return view.model_copy(
        update={
            "documents": [d.model_copy(update={"file": named(d.file)}) for d in view.documents],
            "blocked": [b.model_copy(update={"file": named(b.file)}) for b in view.blocked],
        }
    )


@router.post(
    "/scenarios:validate",
    summary="Validate an uploaded Scenario, Drill or Environment document",
    response_model=views.ValidationView,
    responses=problems.responses(*problems.COMMON),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {
                    "schema": {"type": "string"},
                    "example": "apiVersion: stormdrill.dev/v1\nkind: Scenario\n...",
                }
            },
        }
    },
)
async def validate(
    request: fastapi.Request,
    _: Reader,
    filename: Annotated[
        str,
        fastapi.Query(description="The name problems are placed at.", pattern=_SAFE_NAME.pattern),
    ] = "document.yaml",
) -> views.ValidationView:
    """Every problem of the document (YAML, schema, parameters, semantic lint) at file:line."""
    body = await request.body()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(
            f"the document is {len(body)} bytes; at most {MAX_DOCUMENT_BYTES} are validated"
        )
    if not filename.endswith((".yaml", ".yml")):
        filename = f"{filename}.yaml"
    return await concurrency.run_in_threadpool(_validate, body, filename)
