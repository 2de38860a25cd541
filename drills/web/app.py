"""`install(app)`: the pages, their static files and their security headers on `app`.

`stormdrill serve`'s app (the API's `create_app`) calls it once, so the pages share the
API's lifespan (store, registry, runner on `app.state`). Static files (the style sheet, the
one script, vendored: no CDN) are served from the package under `/static`. Each page
module's router is added in `PAGES` order. `ADDRESSES` is the contract for bookmarks and
links from notifications (the web issue spells them out).
"""

from __future__ import annotations

import fastapi
from fastapi import staticfiles

from drills.web import security
from drills.web.pages import (
    approvals,
    audit,
    coverage,
    dashboard,
    gamedays,
    login,
    oidc,
    runs,
    scenarios,
    schedules,
)

PAGES = (login, oidc, dashboard, coverage, runs, scenarios, approvals, schedules, gamedays, audit)
ADDRESSES: tuple[str, ...] = (
    "/",
    "/coverage",
    "/runs",
    "/runs/{id}",
    "/scenarios",
    "/schedules",
    "/gamedays",
    "/gamedays/{id}",
    "/approvals",
    "/audit",
    "/login",
    "/login/oidc",
    "/login/oidc/callback",
)
STATIC = "/static"


def install(app: fastapi.FastAPI) -> None:
    """Add the pages to `app` (once, after its API routers)."""
    app.add_middleware(security.SecurityHeaders)
    app.mount(STATIC, staticfiles.StaticFiles(packages=[("drills.web", "static")]), name="static")
    for module in PAGES:
        app.include_router(module.router)
