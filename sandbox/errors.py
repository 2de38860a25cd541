"""Errors raised by the sandbox (local Kubernetes API, moto, simulated workloads)."""

from __future__ import annotations

from scenarios import errors


class SandboxError(errors.StormdrillError):
    """The sandbox could not start, seed or stop; the message names the part and the fix."""


class SandboxNotStarted(SandboxError):
    """A sandbox part was asked for its address before `start()`."""
