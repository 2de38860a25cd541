"""The role matrix: every route of the app by every role, with real tokens.

`MATRIX` names, for each (method, path template), the least role that may call it (viewer:
every role; operator or approver: that role and admin; admin: admin only), or `PUBLIC`
(no credentials: probes and the API's own description) or `SCRAPE` (`/metrics`: open, or
the scrape token when one is set). A route the app has and the matrix lacks fails
`test_every_route_of_the_app_is_in_the_matrix`: add it here when you add the route.
Each entry is then called without credentials (401 unless public), with each role's token
(403 without the role; anything but 401/403 with it — requests carry placeholder ids and
an empty JSON body, so a 404 or a 422 still proves the caller was let through).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
import starlette.routing
from fastapi import testclient

from drills.api import app as app_mod
from drills.api import audit as api_audit
from drills.service import auth, tokens
from drills.web import app as web_app
from tests.api import auth_fixtures

PUBLIC: Literal["public"] = "public"
SCRAPE: Literal["scrape"] = "scrape"
Minimal = auth.Role | Literal["public", "scrape"]

_V, _O, _A, _ADM = auth.Role.VIEWER, auth.Role.OPERATOR, auth.Role.APPROVER, auth.Role.ADMIN
R = "/api/v1/runs/{run_id}"

MATRIX: dict[tuple[str, str], Minimal] = {
    # outside /api/v1
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,  # probes carry no credentials
    ("GET", "/metrics"): SCRAPE,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # documents
    ("GET", "/api/v1/scenarios"): _V,
    ("GET", "/api/v1/scenarios/{name}"): _V,
    ("POST", "/api/v1/scenarios:validate"): _V,  # checks an uploaded document, changes nothing
    ("GET", "/api/v1/environments"): _V,
    ("GET", "/api/v1/environments/{name}"): _V,
    ("GET", "/api/v1/drills"): _V,
    ("GET", "/api/v1/drills/{name}"): _V,
    # runs
    ("POST", "/api/v1/runs"): _O,
    ("GET", "/api/v1/runs"): _V,
    ("GET", R): _V,
    ("POST", f"{R}/abort"): _O,
    ("POST", f"{R}/steps/{{step}}/ack"): _O,
    ("GET", f"{R}/report"): _V,
    ("GET", f"{R}/junit"): _V,
    ("GET", f"{R}/events"): _V,
    ("POST", f"{R}/approve"): _A,
    ("POST", f"{R}/reject"): _A,
    ("GET", f"{R}/approvals"): _V,
    ("POST", "/api/v1/plans"): _O,
    # coverage and the CMDB
    ("GET", "/api/v1/coverage"): _V,
    ("GET", "/api/v1/cmdb/services"): _V,
    ("GET", "/api/v1/cmdb/services/{ref}"): _V,
    ("GET", "/api/v1/cmdb/services/{ref}/impact"): _V,
    # the kill switch, the audit trail, tokens
    ("GET", "/api/v1/killswitch"): _V,
    ("PUT", "/api/v1/killswitch"): _ADM,
    ("DELETE", "/api/v1/killswitch"): _ADM,
    ("GET", "/api/v1/audit"): _ADM,
    ("POST", "/api/v1/tokens"): _ADM,
    ("GET", "/api/v1/tokens"): _ADM,
    ("GET", "/api/v1/tokens/{token_id}"): _ADM,
    ("DELETE", "/api/v1/tokens/{token_id}"): _ADM,
    # schedules and blackouts
    ("GET", "/api/v1/schedules"): _V,
    ("POST", "/api/v1/schedules"): _O,
    ("GET", "/api/v1/schedules/{schedule}"): _V,
    ("DELETE", "/api/v1/schedules/{schedule}"): _O,
    ("POST", "/api/v1/schedules/{schedule}/pause"): _O,
    ("POST", "/api/v1/schedules/{schedule}/resume"): _O,
    ("POST", "/api/v1/schedules/{schedule}/approve"): _A,
    ("POST", "/api/v1/schedules/{schedule}/reject"): _A,
    ("GET", "/api/v1/schedules/{schedule}/preview"): _V,
    ("GET", "/api/v1/schedules/{schedule}/fires"): _V,
    ("GET", "/api/v1/blackouts"): _V,
    ("POST", "/api/v1/blackouts"): _O,
    ("DELETE", "/api/v1/blackouts/{blackout_id}"): _O,
    ("GET", "/api/v1/gamedays.ics"): _V,  # the calendar feed
    # game days
    ("GET", "/api/v1/gamedays"): _V,
    ("POST", "/api/v1/gamedays"): _O,
    ("GET", "/api/v1/gamedays/{gameday}"): _V,
    ("GET", "/api/v1/gamedays/{gameday}/report"): _V,
    ("POST", "/api/v1/gamedays/{gameday}/start"): _O,
    ("POST", "/api/v1/gamedays/{gameday}/notes"): _O,
    ("POST", "/api/v1/gamedays/{gameday}/drills/{position}/gate"): _O,
    ("POST", "/api/v1/gamedays/{gameday}/drills/{position}/run"): _O,
    ("POST", "/api/v1/gamedays/{gameday}/drills/{position}/result"): _O,
    ("POST", "/api/v1/gamedays/{gameday}/participants/{person}/absent"): _O,
    ("POST", "/api/v1/gamedays/{gameday}/close"): _O,
}

PLACEHOLDERS = {
    "ref": "component:default/does-not-exist",
    "step": "no-such-step",
    "position": "1",
}


def allowed(role: auth.Role, minimal: auth.Role) -> bool:
    """Whether `role` may call a route whose least role is `minimal`."""
    return role is _ADM or minimal is _V or role is minimal


def _concrete(template: str) -> str:
    return re.sub(
        r"\{([^{}:]+)[^{}]*\}", lambda m: PLACEHOLDERS.get(m[1], "does-not-exist"), template
    )


def _app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """The app's routes but the web pages' (sessions, not bearer tokens: tests/web/test_login.py
    checks every page asks for a login)."""
    app = app_mod.create_app(auth_fixtures.settings_for(tmp_path), auth_fixtures.api_settings())
    pages = {
        starlette.routing.compile_path(route.path)[1]
        for module in web_app.PAGES
        for route in module.router.routes
        if isinstance(route, starlette.routing.Route)
    }
    return {
        (method, route.template)
        for route in api_audit.route_table(app)
        for method in route.methods
        if method != "HEAD" and route.template not in pages and not route.path.startswith("/static")
    }


def test_every_route_of_the_app_is_in_the_matrix(tmp_path: Path) -> None:
    routes = _app_routes(tmp_path)

    unclassified = sorted(routes - set(MATRIX))
    assert unclassified == [], "add these routes to MATRIX in tests/api/test_role_matrix.py"
    stale = sorted(set(MATRIX) - routes)
    assert stale == [], "these MATRIX entries name routes the app no longer has"


def test_the_matrix_agrees_with_the_roles_permissions() -> None:
    """Each least role is one that `auth.ROLE_PERMISSIONS` can express (a sanity check)."""
    for key, minimal in MATRIX.items():
        if isinstance(minimal, auth.Role):
            holders = {r for r in auth.Role if allowed(r, minimal)}
            assert any(holders == auth.roles_with(p) for p in auth.Permission), (
                f"{key}: no permission is held by exactly {sorted(holders)}"
            )


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[testclient.TestClient, dict[auth.Role, dict[str, str]]]]:
    config = auth_fixtures.settings_for(tmp_path_factory.mktemp("matrix"))
    with auth_fixtures.client_for(config) as client:
        store = auth_fixtures.store_of(client)
        headers = {
            role: auth_fixtures.bearer(auth_fixtures.issue(store, role)) for role in auth.Role
        }
        yield client, headers


@pytest.mark.parametrize(
    ("method", "template"), sorted(MATRIX), ids=[f"{m} {t}" for m, t in sorted(MATRIX)]
)
def test_each_role_is_let_through_only_with_its_role(
    world: tuple[testclient.TestClient, dict[auth.Role, dict[str, str]]],
    method: str,
    template: str,
) -> None:
    client, headers = world
    minimal = MATRIX[(method, template)]
    path = _concrete(template)
    body: dict[str, object] | None = {} if method in api_audit.MUTATING else None

    anonymous = client.request(method, path, json=body)
    if isinstance(minimal, auth.Role):
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
    else:
        assert anonymous.status_code not in (401, 403), anonymous.text
        return
    for role in auth.Role:
        answer = client.request(method, path, json=body, headers=headers[role])
        if allowed(role, minimal):
            assert answer.status_code not in (401, 403), f"{role}: {answer.text}"
        else:
            assert answer.status_code == 403, f"{role}: {answer.status_code} {answer.text}"
            assert f"test-{role.value} ({role.value}) may not" in answer.json()["detail"]


def test_a_revoked_or_garbled_token_is_401_everywhere_a_role_is_needed(
    world: tuple[testclient.TestClient, dict[auth.Role, dict[str, str]]],
) -> None:
    client, _ = world
    store = auth_fixtures.store_of(client)
    secret = auth_fixtures.issue(store, _ADM, name="leaked")
    tokens.revoke(store, secret[: tokens.PREFIX_LENGTH], by="test")
    for (method, template), minimal in sorted(MATRIX.items()):
        if not isinstance(minimal, auth.Role):
            continue
        body: dict[str, object] | None = {} if method in api_audit.MUTATING else None
        for header in (
            auth_fixtures.bearer(secret),
            auth_fixtures.bearer(secret[:-1] + ("A" if secret[-1] != "A" else "B")),
            {"Authorization": f"Basic {secret}"},
        ):
            answer = client.request(method, _concrete(template), json=body, headers=header)
            assert answer.status_code == 401, f"{method} {template}: {answer.text}"


def test_metrics_needs_the_scrape_token_when_one_is_set(tmp_path: Path) -> None:
    api = auth_fixtures.api_settings(metrics_token="scrape-me-0123456789")
    with auth_fixtures.client_for(auth_fixtures.settings_for(tmp_path), api) as client:
        admin = auth_fixtures.issue(auth_fixtures.store_of(client), _ADM)
        scraped = [
            client.get(path, headers=header).status_code
            for (method, path), minimal in MATRIX.items()
            if minimal == SCRAPE and method == "GET"
            for header in (
                {},
                auth_fixtures.bearer(admin),
                auth_fixtures.bearer("scrape-me-0123456789"),
            )
        ]

    assert scraped == [401, 401, 200]
