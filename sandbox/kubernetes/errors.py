"""Errors of the Kubernetes sandbox, each carrying the HTTP code and `Status.reason` it maps to.

The server turns any `ApiError` into a real `Status` object (kind Status, status Failure), so the
store raises the same errors the API server would answer with.
"""

from __future__ import annotations

from scenarios import errors as scenario_errors


class SandboxKubeError(scenario_errors.StormdrillError):
    """Root of the Kubernetes sandbox's errors."""


class ApiError(SandboxKubeError):
    """An error the API server answers with a `Status` object (`code` and `reason`)."""

    code = 500
    reason = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        name: str = "",
        group: str = "",
        causes: tuple[tuple[str, str, str], ...] = (),
        retry_after_s: int = 0,
        list_continue: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = causes  # (reason, message, field)
        self.retry_after_s = retry_after_s  # details.retryAfterSeconds and a Retry-After header
        self.list_continue = list_continue  # the Status's metadata.continue (410 on a list)


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError):
    code = 409
    reason = "Conflict"


class Gone(ApiError):
    code = 410
    reason = "Expired"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    code = 422
    reason = "Invalid"


class TooManyRequests(ApiError):
    code = 429
    reason = "TooManyRequests"


class InternalError(ApiError):
    code = 500
    reason = "InternalError"


class GatewayTimeout(ApiError):
    code = 504
    reason = "Timeout"


class KubectlUnavailable(SandboxKubeError):
    """The kubectl binary could not be fetched or extracted."""
