"""Test support: the `Shop` handle and polling for outcomes the controller brings about later."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TypeVar

from kubernetes import client

from sandbox import workloads

T = TypeVar("T")


def eventually(read: Callable[[], T], accept: Callable[[T], bool], *, within_s: float = 15.0) -> T:
    """Call `read` until `accept` holds for its value; fail with the last value after `within_s`."""
    deadline = time.monotonic() + within_s
    value = read()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition never held; last value: {value!r}")
        time.sleep(0.05)
        value = read()
    return value


@dataclasses.dataclass(frozen=True)
class Shop:
    """The workload server over a private seeded cluster, and a client of that cluster."""

    server: workloads.WorkloadServer
    api: client.ApiClient

    def health_url(self, service: str) -> str:
        return self.server.health_url(service)
