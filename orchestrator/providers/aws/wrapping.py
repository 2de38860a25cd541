"""Wrapping: SDK errors become provider errors at the edge of every AWS call.

Invariants:
- Throttling (`Throttling`, `ThrottlingException`, `RequestLimitExceeded`,
  `TooManyRequestsException`), any 5xx answer and connection failures become
  `errors.ProviderRetryable`; throttling also sets `retry_after_s` (the answer's Retry-After,
  else `THROTTLE_PAUSE_S`), so a rollback pauses every call to that region's API;
  permission and credential refusals (`DENIED_CODES`, 401/403) become
  `errors.ProviderDenied`; every other SDK error becomes
  `errors.ProviderPermanent(f"{target}: {message}")`.
- Code that expects a particular AWS error (NotFound while undoing, Duplicate while
  re-authorising) catches `ClientError` *inside* `edge(...)` and checks `code(exc)`;
  whatever it does not handle still leaves through the edge, wrapped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from botocore import exceptions as botocore_errors

from orchestrator import errors

THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
THROTTLE_PAUSE_S: Final = 1.0
"""How long callers of a throttling AWS API pause when its answer names no Retry-After."""
SERVER_CODES: Final = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"}
)

DENIED_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthFailure",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
"""Not allowed or not authenticated: `ProviderDenied` (a system refused us, exit code 5)."""

ClientError = botocore_errors.ClientError


def code(exc: botocore_errors.ClientError) -> str:
    """The AWS error code of `exc` (`InvalidNetworkAclID.NotFound`, `Throttling`, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: botocore_errors.ClientError) -> int:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status or 0)


def _message(exc: botocore_errors.ClientError) -> str:
    error = exc.response.get("Error", {})
    text = error.get("Message") or str(exc)
    return f"{code(exc) or 'error'}: {text}"


def _retry_after(exc: botocore_errors.ClientError) -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def wrap(exc: Exception, target: object) -> errors.ProviderError:
    """The provider error `exc` (an SDK error) stands for."""
    if isinstance(exc, botocore_errors.ClientError):
        if code(exc) in THROTTLING_CODES or _status(exc) == 429:
            retry_after = _retry_after(exc)
            return errors.ProviderRetryable(
                f"{target}: {_message(exc)} (throttled; retrying)",
                delay=retry_after,
                retry_after_s=THROTTLE_PAUSE_S if retry_after is None else retry_after,
            )
        if code(exc) in SERVER_CODES or _status(exc) >= 500:
            return errors.ProviderRetryable(f"{target}: {_message(exc)} (transient; retrying)")
        if code(exc) in DENIED_CODES or _status(exc) in (401, 403):
            return errors.ProviderDenied(f"{target}: {_message(exc)}")
        return errors.ProviderPermanent(f"{target}: {_message(exc)}")
    if isinstance(exc, botocore_errors.ConnectionError | botocore_errors.HTTPClientError):
        return errors.ProviderRetryable(f"{target}: cannot reach AWS: {exc}")
    if isinstance(exc, botocore_errors.NoCredentialsError):
        return errors.ProviderPermanent(
            f"{target}: no AWS credentials found; set spec.aws.profile or spec.aws.roleArn "
            "in the Environment, or provide credentials to the process"
        )
    return errors.ProviderPermanent(f"{target}: {exc}")


@contextlib.contextmanager
def edge(target: object) -> Iterator[None]:
    """Run AWS calls for `target`; SDK errors leave as `ProviderRetryable`/`ProviderPermanent`."""
    try:
        yield
    except (botocore_errors.BotoCoreError, botocore_errors.ClientError) as exc:
        raise wrap(exc, target) from exc
