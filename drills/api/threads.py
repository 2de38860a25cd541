"""Worker threads for the blocking work of `async` routes (store reads), under one limiter.

A sync route or dependency costs FastAPI a hop to anyio's worker threads (40 of them) for
each of them, and its response model another for validation; under load that is most of a
read's cost, and 40 threads reading at once also outgrow the store's pool of 8 connections
(each connection beyond it is opened and closed per request). The hot read routes are
`async def` instead and hand their store work to `read(request, call)`: one hop, at most
`READ_THREADS` at a time (the app's `read_limiter`, made in the lifespan), the rest waiting
their turn on the event loop. Invariant: nothing that blocks runs on the event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import fastapi

READ_THREADS = 4
"""How many store reads of the hot routes run at once (fewer than the pool's 8 connections:
Python runs one thread at a time, and SQLite or PostgreSQL answer these reads in well under
a millisecond)."""

_T = TypeVar("_T")


def limiter() -> anyio.CapacityLimiter:
    """The limiter `read` uses (make it in the lifespan: it belongs to the event loop)."""
    return anyio.CapacityLimiter(READ_THREADS)


async def read(
    request: fastapi.Request, call: Callable[..., _T], /, *args: Any, **kwargs: Any
) -> _T:
    """`call(*args, **kwargs)` in a worker thread under the app's `read_limiter`."""
    bounded: anyio.CapacityLimiter | None = getattr(request.app.state, "read_limiter", None)
    return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs), limiter=bounded)
