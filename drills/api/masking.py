"""Masking: a credential sent in a URL's query never reaches a log or the audit trail.

A calendar client can only subscribe by URL, so `GET /api/v1/gamedays.ics?token=…` carries
a (viewer) token in its query; every place that keeps a request target keeps it masked:
the audit trail (`drills.api.audit`) and uvicorn's access log (`AccessLogFilter`, which
`stormdrill serve` puts on the `uvicorn.access` logger through uvicorn's log config).

`mask_query("days=7&token=sdt_…")` → `days=7&token=***`; `mask_target` does the same to the
query of `path?query`. Invariants: the value of every parameter named in `MASKED`
(compared case-insensitively and percent-decoded, as a query parser would read the name:
`%74oken=` is `token=`) becomes `MASK`, whatever it held (empty included); everything else
is kept byte for byte; a target without a query is returned as it is. `&` and `;` both
separate parameters here (masking a little more than a parser splits is harmless).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Mapping

MASK = "***"
MASKED: frozenset[str] = frozenset({"token", "access_token"})
"""Query parameters whose value is a credential."""

_SEPARATORS = re.compile(r"([&;])")


def mask_query(query: str) -> str:
    """`query` (without its `?`) with the value of each credential parameter masked."""
    parts = _SEPARATORS.split(query)
    for i in range(0, len(parts), 2):  # the separators sit at the odd places
        name, eq, _ = parts[i].partition("=")
        if eq and urllib.parse.unquote_plus(name).strip().lower() in MASKED:
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def mask_target(target: str) -> str:
    """`/api/v1/gamedays.ics?token=sdt_…` → `/api/v1/gamedays.ics?token=***` (the query is
    what follows the first `?`; a target without one comes back unchanged)."""
    path, mark, query = target.partition("?")
    if not mark:
        return target
    return f"{path}?{mask_query(query)}"


class AccessLogFilter(logging.Filter):
    """Masks credentials in the request targets of uvicorn's access log records.

    uvicorn (0.54, both its httptools and h11 protocols) logs each request on
    `uvicorn.access` as `'%s - "%s %s HTTP/%s" %d'` with the args (client address, method,
    path with its raw query, HTTP version, status); its `AccessFormatter` unpacks those five.
    Every string argument holding a `?` is masked with `mask_target` (the address, method
    and version hold none), so the layout may grow without the filter missing the target;
    the record is kept (the filter never drops a line) with its args' shape unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_masked(arg) for arg in args)
        elif isinstance(args, Mapping):
            record.args = {key: _masked(value) for key, value in args.items()}
        return True


def _masked(arg: object) -> object:
    return mask_target(arg) if isinstance(arg, str) and "?" in arg else arg
