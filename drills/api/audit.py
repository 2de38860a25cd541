"""The audit trail of the API: exactly one append-only entry per mutating request.

`install(app)` (called once by `create_app`) adds an ASGI middleware. Every POST, PUT, PATCH
or DELETE under `/api/v1` is recorded with `drills.service.audit.record` — whatever its
outcome: done, refused (401/403), rejected (422, 404, 409…) or failed (5xx) — with who
(`request.state.principal`, set by `deps.get_principal`; `anonymous` when authentication
failed), the action (`ACTIONS`, by method and route template), the target (the `Location`
of what was created, else the path under `/api/v1` with its query: `killswitch?environment=
staging`, with any `token=` or `access_token=` value masked: `drills.api.masking`),
the status, the address, the user
agent and the request id (the caller's `X-Request-ID`, else a new one; every response
carries it back). For an error the problem's `detail` is kept too; a route that has more
to say about a request that succeeded sets `request.state.audit_detail` (`DETAIL_STATE`:
a forced game-day start says what it overrode).
Invariants: the entry is committed before the response reaches the client (a client that
got an answer finds its entry); a request raising an unhandled error is recorded as 500 and
the error goes on to the server's error handler; an entry that cannot be written is
logged with everything it held and does not change the answer (the action already
happened).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any

import anyio.to_thread
import fastapi
import fastapi.routing
import starlette.routing
import starlette.types

from drills.api import masking
from drills.service import audit, auth, tokens

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REQUEST_ID_HEADER = "x-request-id"
DETAIL_STATE = "audit_detail"
"""The `request.state` attribute a route sets to give its entry a detail (text)."""
MAX_DETAIL_BODY = 64 * 1024
"""An error body longer than this is passed on without its detail being kept."""

ACTIONS: Mapping[tuple[str, str], str] = {
    ("POST", "/api/v1/runs"): "run.start",
    ("POST", "/api/v1/plans"): "plan",
    ("POST", "/api/v1/runs/{}/abort"): "run.abort",
    ("POST", "/api/v1/runs/{}/steps/{}/ack"): "run.ack",
    ("POST", "/api/v1/runs/{}/approve"): "run.approve",
    ("POST", "/api/v1/runs/{}/reject"): "run.reject",
    ("PUT", "/api/v1/killswitch"): "killswitch.engage",
    ("DELETE", "/api/v1/killswitch"): "killswitch.release",
    ("PUT", "/api/v1/killswitch/{}"): "killswitch.engage",
    ("DELETE", "/api/v1/killswitch/{}"): "killswitch.release",
    ("PUT", "/api/v1/environments/{}/killswitch"): "killswitch.engage",
    ("DELETE", "/api/v1/environments/{}/killswitch"): "killswitch.release",
    ("POST", "/api/v1/tokens"): "token.create",
    ("DELETE", "/api/v1/tokens/{}"): "token.revoke",
    ("POST", "/api/v1/tokens/{}/revoke"): "token.revoke",
    ("POST", "/api/v1/schedules"): "schedule.apply",
    ("DELETE", "/api/v1/schedules/{}"): "schedule.delete",
    ("POST", "/api/v1/schedules/{}/pause"): "schedule.pause",
    ("POST", "/api/v1/schedules/{}/resume"): "schedule.resume",
    ("POST", "/api/v1/schedules/{}/approve"): "schedule.approve",
    ("POST", "/api/v1/schedules/{}/reject"): "schedule.reject",
    ("POST", "/api/v1/blackouts"): "blackout.add",
    ("DELETE", "/api/v1/blackouts/{}"): "blackout.remove",
    ("POST", "/api/v1/scenarios:validate"): "scenario.validate",
    ("POST", "/api/v1/gamedays"): "gameday.create",
    ("POST", "/api/v1/gamedays/{}/start"): "gameday.start",
    ("POST", "/api/v1/gamedays/{}/notes"): "gameday.note",
    ("POST", "/api/v1/gamedays/{}/drills/{}/gate"): "gameday.gate",
    ("POST", "/api/v1/gamedays/{}/drills/{}/run"): "gameday.run",
    ("POST", "/api/v1/gamedays/{}/drills/{}/result"): "gameday.result",
    ("POST", "/api/v1/gamedays/{}/participants/{}/absent"): "gameday.absent",
    ("POST", "/api/v1/gamedays/{}/close"): "gameday.close",
}
"""Action names by (method, route template with `{}` for each path parameter). A mutating
route missing here is recorded as `METHOD TEMPLATE` (and `tests/api/test_audit.py` fails
until it is named)."""

_PARAM = re.compile(r"\{[^{}]*\}")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def template_key(path_template: str) -> str:
    """`/api/v1/runs/{run_id}/abort` → `/api/v1/runs/{}/abort` (the `ACTIONS` key form)."""
    return _PARAM.sub("{}", path_template)


def action_for(method: str, path_template: str | None) -> str:
    """The audit action of a request to the route `path_template` (None: no route matched)."""
    if path_template is None:
        return f"{method} (no such route)"
    return ACTIONS.get((method, template_key(path_template)), f"{method} {path_template}")


def install(app: fastapi.FastAPI, *, prefix: str = API_PREFIX) -> None:
    """Record who did what, when, from where, with which outcome, for every mutating route."""
    app.add_middleware(AuditMiddleware, prefix=prefix)


class AuditMiddleware:
    """The ASGI middleware `install` adds (pure ASGI: streaming responses pass untouched)."""

    def __init__(self, app: starlette.types.ASGIApp, *, prefix: str = API_PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(
        self,
        scope: starlette.types.Scope,
        receive: starlette.types.Receive,
        send: starlette.types.Send,
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        path: str = scope["path"]
        audited = scope["method"] in MUTATING and (
            path == self.prefix or path.startswith(self.prefix + "/")
        )
        if not audited:
            await self.app(scope, receive, _with_request_id(send, request_id))
            return
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        recorder = _Recorder(scope=scope, state=state, request_id=request_id, send=send)
        try:
            await self.app(scope, receive, recorder.send)
        except Exception:
            if not recorder.written:
                await recorder.write(500, detail="an unexpected error (see the server log)")
            raise
        if not recorder.written:  # the app ended without answering
            await recorder.write(recorder.status or 500)


class _Recorder:
    """Forwards one response, writing its audit entry before the client can see it."""

    def __init__(
        self,
        *,
        scope: starlette.types.Scope,
        state: MutableMapping[str, Any],
        request_id: str,
        send: starlette.types.Send,
    ) -> None:
        self.scope = scope
        self.state = state
        self.request_id = request_id
        self._send = send
        self.status: int | None = None
        self.written = False
        self._start: starlette.types.Message | None = None
        self._held: list[starlette.types.Message] = []
        self._held_bytes = 0
        self._location: str | None = None

    async def send(self, message: starlette.types.Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = list(message.get("headers", []))
            headers.append((REQUEST_ID_HEADER.encode(), self.request_id.encode()))
            message = {**message, "headers": headers}
            self._location = _header(headers, b"location")
            if self.status < 400:
                await self.write(self.status)
                await self._send(message)
                return
            self._start = message  # hold it: the error's detail comes in the body
            return
        if message["type"] == "http.response.body" and self._start is not None:
            self._held.append(message)
            self._held_bytes += len(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if more and self._held_bytes <= MAX_DETAIL_BODY:
                return
            body = b"".join(m.get("body", b"") for m in self._held)
            detail = _problem_detail(body) if not more else ""
            await self.write(self.status or 500, detail=detail)
            await self._send(self._start)
            self._start = None
            for held in self._held:
                await self._send(held)
            self._held = []
            return
        await self._send(message)

    async def write(self, status: int, *, detail: str = "") -> None:
        if self.written:
            return
        self.written = True
        entry = self._entry(status, detail)
        app = self.scope.get("app")
        store = getattr(getattr(app, "state", None), "store", None)
        if store is None:
            log.error("audit: no store to record %s", entry)
            return
        try:
            await anyio.to_thread.run_sync(functools.partial(audit.record, store, entry))
        except Exception:
            log.exception("audit: could not record %s; the request was answered anyway", entry)

    def _entry(self, status: int, detail: str) -> audit.NewEntry:
        principal = self.state.get("principal")
        given = self.state.get(DETAIL_STATE)
        if not detail and isinstance(given, str):
            detail = given
        method: str = self.scope["method"]
        path: str = self.scope["path"]
        headers = self.scope.get("headers", [])
        client = self.scope.get("client")
        if isinstance(principal, auth.Principal):
            who, kind = principal.name, principal.kind
        else:
            who, kind = "anonymous", "anonymous"
            presented = _presented_token(_header(headers, b"authorization"))
            if presented:
                detail = f"{detail} (presented {presented})".strip()
        query = self.scope.get("query_string", b"").decode("latin-1")
        target = masking.mask_target(self._location or (f"{path}?{query}" if query else path))
        return audit.NewEntry(
            principal=who,
            principal_kind=kind,
            action=action_for(method, _route_template(self.scope)),
            target=target.removeprefix(API_PREFIX).lstrip("/") or "/",
            status=status,
            method=method,
            path=path,
            address=client[0] if client else None,
            user_agent=_header(headers, b"user-agent"),
            request_id=self.request_id,
            detail=detail,
        )


@dataclasses.dataclass(frozen=True)
class RouteInfo:
    """One route of the app as a client sees it: its methods and full path template."""

    methods: frozenset[str]
    path: str
    """With converters, as declared under its prefix: `/api/v1/cmdb/services/{ref:path}`."""

    @property
    def template(self) -> str:
        """Without converters: `/api/v1/cmdb/services/{ref}` (what OpenAPI shows)."""
        return starlette.routing.compile_path(self.path)[1]

    def matches(self, method: str, path: str) -> starlette.routing.Match:
        if not starlette.routing.compile_path(self.path)[0].match(path):
            return starlette.routing.Match.NONE
        if method in self.methods:
            return starlette.routing.Match.FULL
        return starlette.routing.Match.PARTIAL


def route_table(app: Any) -> tuple[RouteInfo, ...]:
    """Every route of `app` with its full path (routers included under prefixes flattened)."""
    routes = getattr(app, "routes", ())
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.16x
    found = flatten(routes) if flatten is not None else routes
    table: list[RouteInfo] = []
    for route in found:
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None)
        if isinstance(path, str) and methods:
            table.append(RouteInfo(methods=frozenset(methods), path=path))
    return tuple(table)


def _route_template(scope: starlette.types.Scope) -> str | None:
    """The path template of the route `scope` is for (None if no route matches it)."""
    method: str = scope["method"]
    path: str = scope["path"]
    partial: str | None = None
    for route in route_table(scope.get("app")):
        match = route.matches(method, path)
        if match is starlette.routing.Match.FULL:
            return route.template
        if match is starlette.routing.Match.PARTIAL and partial is None:
            partial = route.template  # the path matches, the method does not (a 405)
    return partial


def _header(headers: Any, name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _request_id(scope: starlette.types.Scope) -> str:
    given = _header(scope.get("headers", []), REQUEST_ID_HEADER.encode())
    if given and _SAFE_REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def _with_request_id(send: starlette.types.Send, request_id: str) -> starlette.types.Send:
    async def sending(message: starlette.types.Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            message = {**message, "headers": headers}
        await send(message)

    return sending


def _presented_token(authorization: str | None) -> str | None:
    """What a refused caller presented, safe to keep: a token's prefix, never the token."""
    if not authorization:
        return None
    _, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if token.startswith(tokens.PREFIX):
        return f"a Stormdrill token, prefix {token[: tokens.PREFIX_LENGTH]}…"
    return "a JWT" if token.count(".") == 2 else "unreadable credentials"


def _problem_detail(body: bytes) -> str:
    """The `detail` of a problem+json (or JSON) error body, else ''."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    detail = data.get("detail") if isinstance(data, dict) else None
    return detail[:2000] if isinstance(detail, str) else ""
