"""Routes: `/healthz` (the process answers; no auth) and `/readyz` (it can do its job).

Ready means the run store answers a query and, once the store's schema is versioned
(`drills.service.schema.status`), that its migrations are current; a check that fails
makes `/readyz` 503 with what failed and how to fix it. Both are outside `/api/v1` and need
no credentials (probes of a load balancer or Kubernetes carry none).
"""

from __future__ import annotations

import fastapi
import sqlalchemy as sa
from fastapi import responses
from starlette import concurrency

from drills.api import deps
from drills.service import problems, schema, views
from orchestrator import journal
from scenarios import errors

router = fastapi.APIRouter(tags=["health"])

_READY_EXAMPLE = {"status": "ok", "checks": {"store": "ok", "schema": "ok"}}


@router.get(
    "/healthz",
    summary="Liveness: the process answers",
    response_model=views.HealthView,
    responses={200: {"content": {"application/json": {"example": {"status": "ok", "checks": {}}}}}},
)
def healthz() -> views.HealthView:
    """Always `ok` while the process serves requests (no credentials needed)."""
    return views.HealthView(status="ok")


def _checks(store: journal.Journal) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        store.killswitch()  # one read of the store
        checks["store"] = "ok"
    except (errors.StormdrillError, sa.exc.SQLAlchemyError) as exc:
        checks["store"] = f"unreachable: {problems.store_failure(exc)}"
        return False, checks
    status_of = getattr(schema, "status", None)
    if status_of is None:
        return True, checks
    try:
        found = status_of(store)
    except (errors.StormdrillError, sa.exc.SQLAlchemyError) as exc:
        checks["schema"] = f"unknown: {problems.store_failure(exc)}"
        return False, checks
    if found.ok:
        checks["schema"] = "ok"
        return True, checks
    checks["schema"] = (
        f"the store's schema is at {found.current or 'no version'}, this release needs"
        f" {found.head}: run `stormdrill db upgrade`"
    )
    return False, checks


@router.get(
    "/readyz",
    summary="Readiness: the store answers and its schema is current",
    response_model=views.HealthView,
    responses={
        200: {"content": {"application/json": {"example": _READY_EXAMPLE}}},
        503: {
            "model": views.HealthView,
            "description": "Not ready: the store is unreachable or its schema is old.",
        },
    },
)
async def readyz(store: deps.StoreDep) -> fastapi.Response:
    """`ok` when the store answers and its migrations are current; else 503 and why."""
    ok, checks = await concurrency.run_in_threadpool(_checks, store)
    body = views.HealthView(status="ok" if ok else "unavailable", checks=checks)
    return responses.JSONResponse(body.dump(), status_code=200 if ok else 503)
