"""Problems: one exception handler maps Stormdrill's error tree to RFC 9457 problem details.

Every error a route lets escape becomes `application/problem+json` with `type`, `title`,
`status` and `detail` (secrets masked, as the CLI prints them): invalid documents are 422
with `errors`, the same `file:line:column: field: message` lines `stormdrill validate`
prints; an unknown run, scenario, environment, drill or CMDB service is 404; a run that
already ended, a claim lost to another process, an engaged kill switch are 409;
`auth.Unauthenticated` is 401 (with `WWW-Authenticate: Bearer`), `auth.Forbidden` 403, an
unreachable store 503 and another unreachable system (Kubernetes, AWS) 502. Request
validation errors are 422 problems too. Any other `StormdrillError` is a user mistake
(422); anything else is a bug: 500, logged with its traceback, none of it in the answer.
`install(app)` registers the handlers; `RESPONSES` are the error responses routes declare.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping
from typing import Any

import fastapi
import fastapi.exceptions
import pydantic
import sqlalchemy as sa
import starlette.exceptions

from drills.service import problems as service_problems
from drills.service import runs as run_service
from drills.service import views
from drills.service.problems import (  # the kinds are shared with the web pages
    FORBIDDEN,
    INTERNAL,
    INVALID_DOCUMENT,
    INVALID_REQUEST,
    NOT_FOUND,
    RUN_ENDED,
    STORE_UNREACHABLE,
    UNAUTHENTICATED,
    UPSTREAM_UNREACHABLE,
    Kind,
    store_failure,
)
from orchestrator.cmdb import errors as cmdb_errors
from scenarios import errors, secrets

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://stormdrill.dev/problems/"


class Problem(pydantic.BaseModel):
    """An RFC 9457 problem detail; `errors` lists each place a document is wrong."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": f"{TYPE_BASE}invalid-document",
                    "title": "Invalid document",
                    "status": 422,
                    "detail": "1 problem in the documents",
                    "instance": "/api/v1/runs",
                    "errors": ["drill.yaml:14:7: spec.steps[2].action: unknown action"],
                }
            ]
        },
    )

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[str] | None = None
    """For invalid documents: the `file:line:column: field: message` lines."""
    problems: list[views.ProblemView] | None = None
    """For invalid documents: the same problems, field by field."""
    candidates: list[str] | None = None
    """For an ambiguous run id: the ids it matches, newest first."""


def kind_of(exc: BaseException) -> Kind:
    """The answer for `exc` (`drills.service.problems.kind_of`; a repeated idempotency key
    still being answered is a conflict too)."""
    return service_problems.kind_of(exc)


def respond(
    kind: Kind,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> fastapi.responses.JSONResponse:
    """A problem+json response of `kind`."""
    body = Problem(
        type=f"{TYPE_BASE}{kind.slug}",
        title=kind.title,
        status=kind.status,
        detail=detail,
        instance=instance,
        **extra,
    )
    return fastapi.responses.JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=kind.status,
        media_type=MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def from_error(
    exc: BaseException, *, instance: str | None = None
) -> fastapi.responses.JSONResponse:
    """The problem response for an error of the tree (or a bug: 500)."""
    kind = kind_of(exc)
    if kind is INTERNAL:
        log.error("unexpected error answering %s", instance, exc_info=exc)
        return respond(
            kind, "an unexpected error; the server log has the details", instance=instance
        )
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    detail = secrets.redact(str(exc))
    if isinstance(exc, sa.exc.SQLAlchemyError):
        log.error("the run store failed answering %s", instance, exc_info=exc)
        detail = f"the run store failed: {store_failure(exc)}"
    if isinstance(exc, errors.ScenarioInvalid | cmdb_errors.CatalogInvalid):
        found = list(exc.problems)
        extra["errors"] = [secrets.redact(str(p)) for p in found]
        extra["problems"] = [views.ProblemView.from_problem(p) for p in found]
        detail = f"{len(found)} problem(s) in the documents"
    if isinstance(exc, run_service.AmbiguousRunId):
        extra["candidates"] = list(exc.candidates)
    if kind is UNAUTHENTICATED:
        headers["WWW-Authenticate"] = 'Bearer realm="stormdrill"'
    if kind is STORE_UNREACHABLE:
        headers["Retry-After"] = "5"
    return respond(kind, detail, instance=instance, headers=headers, **extra)


def install(app: fastapi.FastAPI) -> None:
    """Answer every error with a problem: the tree's, request validation, HTTP and bugs."""

    async def on_error(request: fastapi.Request, exc: Exception) -> fastapi.responses.Response:
        return from_error(exc, instance=request.url.path)

    async def on_validation(request: fastapi.Request, exc: Exception) -> fastapi.responses.Response:
        assert isinstance(exc, fastapi.exceptions.RequestValidationError)
        lines = [_validation_line(err) for err in exc.errors()]
        return respond(
            INVALID_REQUEST,
            "; ".join(lines),
            instance=request.url.path,
            errors=lines,
        )

    async def on_http(request: fastapi.Request, exc: Exception) -> fastapi.responses.Response:
        assert isinstance(exc, starlette.exceptions.HTTPException)
        kind = Kind(_slug(exc.status_code), _title(exc.status_code), exc.status_code)
        return respond(kind, str(exc.detail), instance=request.url.path, headers=exc.headers or {})

    app.add_exception_handler(errors.StormdrillError, on_error)
    app.add_exception_handler(cmdb_errors.CmdbError, on_error)
    app.add_exception_handler(fastapi.exceptions.RequestValidationError, on_validation)
    app.add_exception_handler(starlette.exceptions.HTTPException, on_http)
    app.add_exception_handler(sa.exc.SQLAlchemyError, on_error)
    app.add_exception_handler(Exception, on_error)


def _validation_line(err: Mapping[str, Any]) -> str:
    """`body.parameters: Input should be a valid dictionary` (where, then what is wrong)."""
    where = ".".join(str(part) for part in err.get("loc", ()))
    return f"{where}: {err.get('msg', 'invalid')}"


def _title(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _slug(status: int) -> str:
    return _title(status).lower().replace(" ", "-")


def _example(kind: Kind, detail: str) -> dict[str, Any]:
    return {
        "type": f"{TYPE_BASE}{kind.slug}",
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
    }


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error responses for a route: each status a problem+json with an example."""
    examples = {
        400: {
            "type": f"{TYPE_BASE}bad-request",
            "title": "Bad Request",
            "status": 400,
            "detail": "There was an error parsing the body",
        },
        401: _example(UNAUTHENTICATED, "no bearer token"),
        403: _example(FORBIDDEN, "the viewer role may not start runs"),
        404: _example(NOT_FOUND, "no run 'nope' in the store"),
        409: _example(RUN_ENDED, "run 20250101T120000Z-3f9a1c2b already ended (completed)"),
        422: _example(INVALID_DOCUMENT, "1 problem(s) in the documents"),
        502: _example(UPSTREAM_UNREACHABLE, "the Kubernetes API server refused the connection"),
        503: _example(STORE_UNREACHABLE, "cannot open the journal (the run store)"),
    }
    return {
        status: {
            "model": Problem,
            "description": _title(status),
            "content": {MEDIA_TYPE: {"example": examples.get(status, _example(INTERNAL, "-"))}},
        }
        for status in statuses
    }


COMMON = (400, 401, 403, 422, 503)
"""What any authenticated route may answer besides its own (400: a body that is not JSON)."""
