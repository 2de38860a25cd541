"""Retrying: exponential backoff with jitter for transient provider failures.

Invariants:
- Only `errors.ProviderRetryable` is retried; its `delay` (a server's Retry-After)
  wins over the computed backoff.
- A retry never starts past `max_attempts` or past `max_elapsed` seconds since the
  first attempt (the sleep it would need counts).
- A server that throttles everyone (`errors.ProviderRetryable.retry_after_s`) pauses every
  caller sharing it: `Pauses` holds, per pool key (an API server), the moment new calls may
  start again; a pause only ever moves later, never earlier.
- Clock, sleep and randomness are injected, so tests run without waiting.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], None]
Random = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry: attempts, backoff (base * 2**n, capped), jitter and a time budget."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_elapsed: float = 300.0
    jitter: float = 0.5
    """Fraction of each computed delay that is randomised (0 = none, 1 = full jitter)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("RetryPolicy.jitter must be between 0 and 1")

    def delay(self, attempt: int, *, hint: float | None, rand: Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if hint is not None:
            return max(0.0, hint)
        backoff = min(self.max_delay, self.base_delay * (2.0 ** (attempt - 1)))
        return backoff * (1.0 - self.jitter * rand())

    def next_delay(
        self,
        attempt: int,
        *,
        elapsed: float,
        hint: float | None,
        rand: Random,
        floor: float = 0.0,
    ) -> float | None:
        """The wait before another attempt, or None if the budget forbids one.

        `floor`: wait at least this long (the caller's pool is paused that long).
        """
        if attempt >= self.max_attempts:
            return None
        wait = max(floor, self.delay(attempt, hint=hint, rand=rand))
        if elapsed + wait > self.max_elapsed:
            return None
        return wait


@dataclass(frozen=True)
class Timing:
    """The clock, sleep and random source retries use; swap them in tests."""

    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    rand: Random = random.random


class Pauses:
    """When calls to each pool (an API server) may start again; thread-safe.

    `pause(key, seconds)` holds back new calls on `key` until `seconds` from now (or later,
    if an earlier pause already reaches further); `remaining(key)` is how long that still is.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def pause(self, key: str, seconds: float) -> float:
        """Start no new call on `key` for `seconds`; returns the seconds now left to wait."""
        with self._lock:
            now = self._clock()
            until = max(self._until.get(key, now), now + max(0.0, seconds))
            self._until[key] = until
            return until - now

    def remaining(self, key: str) -> float:
        """Seconds until calls on `key` may start (0.0 when it is not paused)."""
        with self._lock:
            until = self._until.get(key)
            return 0.0 if until is None else max(0.0, until - self._clock())

    def wait(self, key: str, sleep: Sleep) -> float:
        """Sleep until `key` is not paused (pauses added meanwhile included); seconds slept."""
        slept = 0.0
        while (left := self.remaining(key)) > 0:
            sleep(left)
            slept += left
        return slept
