"""Security headers on every page and static file (not on `/api/v1`, which answers JSON).

Content-Security-Policy: scripts only from this server (`script-src 'self'`, no inline
script, no eval), no framing (`frame-ancestors 'none'`), forms post only here, live
updates (SSE) only from here; inline `style` attributes are allowed (the SVG pictures use
presentation attributes and a few inline styles, and styles cannot run code). Also
`X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` and
`X-Frame-Options: DENY` for browsers that predate `frame-ancestors`.
"""

from __future__ import annotations

import starlette.datastructures
import starlette.types

API_PREFIX = "/api/"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self';"
    " base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    """ASGI middleware adding `HEADERS` to every HTTP response outside `/api/`."""

    def __init__(self, app: starlette.types.ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: starlette.types.Scope,
        receive: starlette.types.Receive,
        send: starlette.types.Send,
    ) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: starlette.types.Message) -> None:
            if message["type"] == "http.response.start":
                headers = starlette.datastructures.MutableHeaders(scope=message)
                for name, value in HEADERS:
                    if name.decode() not in headers:
                        headers.append(name.decode(), value.decode())
            await send(message)

        await self.app(scope, receive, with_headers)
