"""`/login/oidc` and `/login/oidc/callback`: the OIDC authorization-code login (PKCE).

`GET /login/oidc?next=…` starts a login (`drills.service.oidc_login.Client.begin`: the
pending login waits in the store) and answers 303 to the issuer with the login's state in a
cookie (`stormdrill_oidc_state`: HttpOnly, SameSite=Lax — the callback is a navigation from
the issuer's site — for `/login/oidc` only, ten minutes). The issuer sends the browser back
to `GET /login/oidc/callback?code=…&state=…`, which checks the state against that cookie,
exchanges the code, verifies the ID token and answers 303 to `next` (a path on this server)
with the session cookie, as `POST /login` does. An issuer's `error=`, a missing, wrong or
replayed state, or an ID token that does not check out answers the login form (401) with the
reason; every outcome is audited (`session.login`). Without the OIDC login configured
(`STORMDRILL_OIDC_CLIENT_ID` and the issuer), `/login/oidc` is a 404 page saying so.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Annotated

import fastapi
from fastapi import responses
from starlette import concurrency

from drills.service import auth, oidc_login, sessions
from drills.web import audit, deps, rendering, routing
from drills.web.pages import login

router = routing.router()

START = "/login/oidc"
CALLBACK = "/login/oidc/callback"
STATE_COOKIE = "stormdrill_oidc_state"


def client_of(request: fastapi.Request) -> oidc_login.Client:
    """The app's OIDC login client (made on first use); `NotConfigured` (404) without one."""
    state = request.app.state
    found: oidc_login.Client | None = getattr(state, "oidc_login", None)
    if found is None:
        oidc: auth.OidcVerifier | None = state.oidc
        found = oidc_login.Client.from_settings(
            state.api_settings, None if oidc is None else oidc.config
        )
        state.oidc_login = found
    return found


def redirect_uri(request: fastapi.Request) -> str:
    """The callback's absolute URL: under `STORMDRILL_PUBLIC_URL`, else the request's base."""
    public: str | None = getattr(request.app.state.api_settings, "public_url", None)
    base = public or str(request.base_url)
    return base.rstrip("/") + CALLBACK


def _forget_state(request: fastapi.Request, answer: responses.Response) -> None:
    answer.delete_cookie(
        STATE_COOKIE,
        path=START,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
    )


async def _refused(
    request: fastapi.Request,
    store: deps.StoreDep,
    reason: str,
    *,
    next_: str = "/",
    status: int = 401,
) -> responses.Response:
    await audit.record(
        request, store, action="session.login", target="session", status=status, detail=reason
    )
    answer = login.form_page(request, next_=next_, error=reason, status_code=status)
    _forget_state(request, answer)
    return answer


@router.get(START)
async def start(
    request: fastapi.Request,
    store: deps.StoreDep,
    next_: Annotated[str | None, fastapi.Query(alias="next")] = None,
) -> responses.Response:
    client = client_of(request)
    target = login.safe_next(next_)
    try:
        started = await concurrency.run_in_threadpool(
            functools.partial(client.begin, store, redirect_uri=redirect_uri(request), next_=target)
        )
    except oidc_login.IssuerUnreachable as exc:
        return await _refused(request, store, str(exc), next_=target, status=502)
    answer = responses.RedirectResponse(started.url, status_code=303)
    answer.set_cookie(
        STATE_COOKIE,
        started.state,
        max_age=int(client.config.pending_ttl.total_seconds()),
        path=START,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
    )
    return answer


@router.get(CALLBACK)
async def callback(
    request: fastapi.Request,
    store: deps.StoreDep,
    code: str = "",
    state: str = "",
    error: str | None = None,
    error_description: str | None = None,
) -> responses.Response:
    client = client_of(request)
    browser_state = request.cookies.get(STATE_COOKIE)
    if error is not None:
        next_ = "/"
        if state and browser_state == state:
            try:  # this browser's login ended at the issuer: drop it
                pending = await concurrency.run_in_threadpool(sessions.take_pending, store, state)
                next_ = pending.next
            except auth.Unauthenticated:
                pass
        detail = f" ({error_description})" if error_description else ""
        return await _refused(
            request,
            store,
            f"your organisation's login refused: {error}{detail}. Start the login again.",
            next_=next_,
        )
    ttl = timedelta(seconds=request.app.state.api_settings.session_ttl_s)
    try:
        issued, pending = await concurrency.run_in_threadpool(
            functools.partial(
                client.finish, store, state=state, code=code, browser_state=browser_state, ttl=ttl
            )
        )
    except auth.Unauthenticated as exc:
        status = 502 if isinstance(exc, oidc_login.IssuerUnreachable) else 401
        return await _refused(request, store, str(exc), status=status)
    await audit.record(
        request, store, action="session.login", target="session", principal=issued.session.principal
    )
    # Not a 303: the redirect chain began at the issuer (another site), so a browser would
    # not send the new SameSite=Strict cookie on the next request of that chain and the
    # person would look logged out. This page moves on by itself (a meta refresh is a
    # navigation of this site), and has a link for browsers that do not refresh.
    target = login.safe_next(pending.next)
    answer = rendering.page(
        request,
        "signed_in.html",
        title="Logged in",
        target=target,
        who=issued.session.principal.display_name or issued.session.principal.name,
    )
    login.set_session_cookie(request, answer, issued)
    _forget_state(request, answer)
    return answer
