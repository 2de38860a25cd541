"""`/login` (a form whose field is `token`) and `/logout`.

`POST /login` checks the token as the API checks a bearer token (a Stormdrill token, or an
OIDC JWT when OIDC is configured) and answers 303 to `next` (a path on this server, else
`/`) with the session cookie: HttpOnly, SameSite=Strict, Secure when the request came over
TLS, for the session's lifetime. A token that does not count answers the form again (401)
with the reason, and the token is never echoed back. `POST /logout` ends the session (CSRF
checked) and clears the cookie. Both are audited (`session.login`, `session.logout`).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Annotated

import fastapi
from fastapi import responses
from starlette import concurrency

from drills.service import auth, sessions
from drills.web import audit, deps, rendering, routing

router = routing.router()


def _settings(request: fastapi.Request) -> deps.WebSettings:
    config: deps.WebSettings = request.app.state.api_settings
    return config


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this server (not `//host` or a URL), else `/`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=responses.HTMLResponse)
async def login_form(
    request: fastapi.Request,
    session: deps.OptionalSessionDep,
    next_: Annotated[str | None, fastapi.Query(alias="next")] = None,
    reason: str | None = None,
) -> responses.Response:
    return rendering.page(
        request,
        "login.html",
        title="Log in",
        logged_in=session is not None,
        next=safe_next(next_),
        reason=reason,
        error=None,
        oidc=request.app.state.oidc is not None,
    )


@router.post("/login", response_class=responses.HTMLResponse)
async def login(
    request: fastapi.Request,
    store: deps.StoreDep,
    token: Annotated[str, fastapi.Form()] = "",
    next_: Annotated[str, fastapi.Form(alias="next")] = "/",
) -> responses.Response:
    target = safe_next(next_)
    try:
        issued = await concurrency.run_in_threadpool(
            functools.partial(
                sessions.login,
                store,
                request.app.state.api_settings,
                token,
                oidc=request.app.state.oidc,
                ttl=timedelta(seconds=_settings(request).session_ttl_s),
            )
        )
    except auth.Unauthenticated as exc:
        await audit.record(
            request, store, action="session.login", target="session", status=401, detail=str(exc)
        )
        return rendering.page(
            request,
            "login.html",
            status_code=401,
            title="Log in",
            logged_in=False,
            next=target,
            reason=None,
            error=str(exc),
            oidc=request.app.state.oidc is not None,
        )
    await audit.record(
        request,
        store,
        action="session.login",
        target="session",
        principal=issued.session.principal,
    )
    answer = responses.RedirectResponse(target, status_code=303)
    answer.set_cookie(
        deps.COOKIE,
        issued.secret,
        max_age=max(1, int((issued.session.expires_at - datetime.now(UTC)).total_seconds())),
        path="/",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )
    return answer


@router.post("/logout", dependencies=[fastapi.Depends(deps.get_form_session)])
async def logout(request: fastapi.Request, store: deps.StoreDep) -> responses.Response:
    secret = request.cookies.get(deps.COOKIE, "")
    await concurrency.run_in_threadpool(sessions.logout, store, secret)
    await audit.record(request, store, action="session.logout", target="session")
    answer = responses.RedirectResponse(routing.LOGIN, status_code=303)
    answer.delete_cookie(deps.COOKIE, path="/", httponly=True, samesite="strict")
    return answer
