"""Routes: /metrics (Prometheus text exposition).

Open by default, as Prometheus scrape endpoints usually are; with `ApiSettings.metrics_token`
set, a scrape must send `Authorization: Bearer <that token>` (401 otherwise, compared in
constant time). The figures are read from the store at scrape time (`drills.api.metrics`).
"""

from __future__ import annotations

import hmac

import fastapi

from drills.api import deps, problems
from drills.api import metrics as api_metrics
from drills.service import auth

router = fastapi.APIRouter(tags=["health"])

_EXAMPLE = (
    "# HELP stormdrill_runs Runs in the store by state and verdict (verdict `none`: not "
    "decided).\n# TYPE stormdrill_runs gauge\n"
    'stormdrill_runs{state="completed",verdict="held"} 12.0\n'
)


def check_scrape_token(config: deps.ApiSettingsDep, request: fastapi.Request) -> None:
    """Refuse a scrape without the configured token (no token configured: anyone may)."""
    if config.metrics_token is None:
        return
    expected = f"Bearer {config.metrics_token.get_secret_value()}".encode()
    given = (request.headers.get("authorization") or "").encode()
    if not hmac.compare_digest(given, expected):
        raise auth.Unauthenticated(
            "/metrics needs `Authorization: Bearer <metrics token>` (the metrics_token "
            "setting of serve, STORMDRILL_METRICS_TOKEN)"
        )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=fastapi.Response,
    responses={
        200: {
            "description": "The Prometheus text exposition (format 0.0.4).",
            "content": {
                api_metrics.CONTENT_TYPE: {"schema": {"type": "string"}, "example": _EXAMPLE}
            },
        },
        **problems.responses(401, 503),
    },
    dependencies=[fastapi.Depends(check_scrape_token)],
)
def metrics(store: deps.StoreDep) -> fastapi.Response:
    """The store's figures now: runs by state and verdict, aborts, rollbacks, probes…"""
    body = api_metrics.exposition(api_metrics.registry_for(store))
    return fastapi.Response(content=body, media_type=api_metrics.CONTENT_TYPE)
