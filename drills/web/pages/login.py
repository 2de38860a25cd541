"""`/login` (a form whose field is `token`) and `/logout`.

`POST /login` checks the token as the API checks a bearer token (a Stormdrill token, or an
OIDC JWT when OIDC is configured) and answers 303 to `next` (a path on this server, else
`/`) with the session cookie: HttpOnly, SameSite=Strict, Secure when the request came over
TLS, for the session's lifetime. A token that does not count answers the form again (401)
with the reason, and the token is never echoed back. `POST /logout` ends the session (CSRF
checked) and clears the cookie. Both are audited (`session.login`, `session.logout`).
`set_session_cookie` and `form_page` are shared with the OIDC login (`pages/oidc.py`).
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
    return form_page(request, next_=safe_next(next_), reason=reason, logged_in=session is not None)


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
        return form_page(request, next_=target, error=str(exc), status_code=401)
    await audit.record(
        request,
        store,
        action="session.login",
        target="session",
        principal=issued.session.principal,
    )
    answer = responses.RedirectResponse(target, status_code=303)
    set_session_cookie(request, answer, issued)
    return answer


def set_session_cookie(
    request: fastapi.Request, answer: responses.Response, issued: sessions.Issued
) -> None:
    """Put `issued`'s session cookie on `answer` (HttpOnly, SameSite=Strict, Secure over
    TLS, for the session's lifetime)."""
    answer.set_cookie(
        deps.COOKIE,
        issued.secret,
        max_age=max(1, int((issued.session.expires_at - datetime.now(UTC)).total_seconds())),
        path="/",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )


def oidc_login_offered(request: fastapi.Request) -> bool:
    """Whether the form offers the OIDC login (a client id and the issuer configured)."""
    return request.app.state.oidc is not None and bool(
        getattr(request.app.state.api_settings, "oidc_client_id", None)
    )


def form_page(
    request: fastapi.Request,
    *,
    next_: str,
    error: str | None = None,
    reason: str | None = None,
    logged_in: bool = False,
    status_code: int = 200,
) -> responses.Response:
    """The login form (the OIDC pages answer refusals with it too)."""
    return rendering.page(
        request,
        "login.html",
        status_code=status_code,
        title="Log in",
        logged_in=logged_in,
        next=next_,
        reason=reason,
        error=error,
        oidc=request.app.state.oidc is not None,
        oidc_login=oidc_login_offered(request),
    )


@router.post("/logout", dependencies=[fastapi.Depends(deps.get_form_session)])
async def logout(request: fastapi.Request, store: deps.StoreDep) -> responses.Response:
    secret = request.cookies.get(deps.COOKIE, "")
    await concurrency.run_in_threadpool(sessions.logout, store, secret)
    await audit.record(request, store, action="session.logout", target="session")
    answer = responses.RedirectResponse(routing.LOGIN, status_code=303)
    answer.delete_cookie(deps.COOKIE, path="/", httponly=True, samesite="strict")
    return answer
