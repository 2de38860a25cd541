"""Which run and step a log record belongs to, for structured logs.

The engine binds the run id while it drives a run and the step while a step runs
(`bound(run_id=..., step=...)`); `ContextFilter` copies them onto every log record as
`run_id` and `step` (None outside a run or step), so a formatter can print them.
The values live in context variables: they follow the thread that set them (a worker
thread the engine starts sees none unless it binds its own), and `bound` restores the
previous values on exit, so nesting and exceptions leave nothing behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stormdrill_run_id", default=None
)
_STEP: contextvars.ContextVar[str | None] = contextvars.ContextVar("stormdrill_step", default=None)


@contextlib.contextmanager
def bound(*, run_id: str | None = None, step: str | None = None) -> Iterator[None]:
    """Within the block, log records carry this run id and/or step (None: left as it is)."""
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    for var, value in ((_RUN_ID, run_id), (_STEP, step)):
        if value is not None:
            tokens.append((var, var.set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> tuple[str | None, str | None]:
    """The (run id, step) bound here now."""
    return _RUN_ID.get(), _STEP.get()


class ContextFilter(logging.Filter):
    """Adds `run_id` and `step` to every record it sees (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id, step = current()
        if getattr(record, "run_id", None) is None:
            record.run_id = run_id
        if getattr(record, "step", None) is None:
            record.step = step
        return True
