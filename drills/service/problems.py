"""How an error of Stormdrill's tree is answered: its kind (a slug, a title, an HTTP status).

Shared by the entry points that answer over HTTP: the API turns a kind into an RFC 9457
problem (`drills.api.problems`), the web pages into an error page (`drills.web.routing`).
First match wins: invalid documents 422; an unknown run, scenario, environment, drill or
CMDB service 404; a run that already ended, a lost claim, an engaged kill switch 409;
`auth.Unauthenticated` 401, `auth.Forbidden` 403; an unreachable store 503 (a database
error mid-request counts), another unreachable system 502; any other `StormdrillError` or
CMDB error is a user mistake (422); anything else is a bug (500).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa

from drills import binding
from drills.service import (
    approvals,
    auth,
    catalogs,
    documents,
    idempotency,
    killswitches,
    tokens,
)
from drills.service import runs as run_service
from orchestrator import engine
from orchestrator import errors as orchestrator_errors
from orchestrator.cmdb import errors as cmdb_errors
from scenarios import errors, secrets


@dataclasses.dataclass(frozen=True)
class Kind:
    """How one branch of the error tree is answered."""

    slug: str
    title: str
    status: int


INVALID_DOCUMENT = Kind("invalid-document", "Invalid document", 422)
INVALID_REQUEST = Kind("invalid-request", "Invalid request", 422)
NOT_FOUND = Kind("not-found", "Not found", 404)
CONFLICT = Kind("conflict", "Conflict", 409)
RUN_ENDED = Kind("run-ended", "The run already ended", 409)
AMBIGUOUS = Kind("ambiguous-run-id", "Ambiguous run id", 409)
KILLSWITCH = Kind("killswitch-engaged", "The kill switch is engaged", 409)
UNAUTHENTICATED = Kind("unauthenticated", "Not authenticated", 401)
FORBIDDEN = Kind("forbidden", "Forbidden", 403)
STORE_UNREACHABLE = Kind("store-unreachable", "The run store is unreachable", 503)
UPSTREAM_UNREACHABLE = Kind("upstream-unreachable", "A system could not be reached", 502)
INTERNAL = Kind("internal", "Internal error", 500)

_BY_TYPE: Sequence[tuple[tuple[type[BaseException], ...], Kind]] = (
    ((errors.ScenarioInvalid, cmdb_errors.CatalogInvalid), INVALID_DOCUMENT),
    ((auth.Unauthenticated,), UNAUTHENTICATED),
    ((auth.Forbidden, orchestrator_errors.AckRejected), FORBIDDEN),
    ((orchestrator_errors.StoreUnreachable,), STORE_UNREACHABLE),
    ((run_service.RunEnded,), RUN_ENDED),
    ((run_service.AmbiguousRunId,), AMBIGUOUS),
    ((killswitches.Engaged,), KILLSWITCH),
    (
        (
            run_service.UnknownRun,
            documents.NotFound,
            cmdb_errors.UnknownRef,
            catalogs.NoCatalog,
            run_service.ReportUnavailable,
            tokens.UnknownToken,
        ),
        NOT_FOUND,
    ),
    (
        (
            engine.NotClaimable,
            orchestrator_errors.StaleRun,
            orchestrator_errors.IllegalTransition,
            run_service.SecretUnavailable,
            approvals.NotAwaitingApproval,
            approvals.PlanMismatch,
            idempotency.KeyInFlight,
        ),
        CONFLICT,
    ),
    ((binding.BindingError, run_service.BadCursor, run_service.BadSince), INVALID_REQUEST),
)


def store_failure(exc: BaseException) -> str:
    """What went wrong with the store, in one line, without the SQL or a password."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = str(exc.orig)
    elif isinstance(exc, sa.exc.SQLAlchemyError):
        text = type(exc).__name__
    else:
        text = str(exc)
    return secrets.redact(" ".join(text.split()))


def kind_of(exc: BaseException) -> Kind:
    """The answer for `exc`: by its place in the error tree (first match wins); a database
    error mid-request (the store went away) is the unreachable store's 503."""
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return STORE_UNREACHABLE
    for types, kind in _BY_TYPE:
        if isinstance(exc, types):
            return kind
    if orchestrator_errors.is_infrastructure(exc):
        return UPSTREAM_UNREACHABLE
    if isinstance(exc, errors.StormdrillError | cmdb_errors.CmdbError):
        return INVALID_REQUEST
    return INTERNAL
