"""Connection: the official Kubernetes client for one Environment, and the SDK error edge.

Invariants:
- The `ApiClient` is built from the Environment only (`kubeconfig` + `context`, or the
  in-cluster service account); `$KUBECONFIG` and the process-wide default config are never used.
  Its connection pool holds at least `POOL_MAXSIZE` connections (above rollback concurrency).
- Every API call goes through `KubeConnection.call`, which asks for the raw JSON answer (no
  model round-trip on reads), applies the request timeout, and maps SDK errors: 409, 429, 5xx,
  timeouts and connection errors to `ProviderRetryable` (subclasses in `kube_errors`), 404 to
  `kube_errors.NotFound`, 401/403 to `ProviderDenied`, other 4xx to `ProviderPermanent` naming
  the object and the reason.
- Objects travel inside this package as `KubeObject`: the API's own JSON, never modified in place.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeAlias

import urllib3

from orchestrator import errors, lazy, registry
from orchestrator.providers.kubernetes import errors as kube_errors
from scenarios import models

log = logging.getLogger(__name__)

k8s_client: Any = lazy.Module("kubernetes.client")
k8s_config: Any = lazy.Module("kubernetes.config")
"""The official client, imported when a run first connects (`stormdrill validate` never does)."""

PROVIDER = "kubernetes"
DEFAULT_REQUEST_TIMEOUT_S = 15.0
POOL_MAXSIZE = 32
"""Connections kept open to the API server. The client's default (cpu_count x 5) can be below
the engine's rollback concurrency (16): every request past the pool then opens and discards
a connection. 32 covers the rollback workers plus the probes and the watchdog beside them."""

KubeObject: TypeAlias = dict[str, Any]
"""A Kubernetes object exactly as the API server serialised it (JSON)."""


class Listings:
    """The listings one dry-run context has made, keyed on that context (see `listing`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: weakref.ReferenceType[Any] | None = None
        self._found: dict[str, list[KubeObject]] = {}

    def get(self, ctx: object, key: str) -> list[KubeObject] | None:
        """The listing `key` made for `ctx`, or None."""
        with self._lock:
            if self._owner is None or self._owner() is not ctx:
                return None
            return self._found.get(key)

    def put(self, ctx: object, key: str, found: list[KubeObject]) -> None:
        """Keep `found` for `ctx` (the listings of any other context are dropped first)."""
        try:
            owner = weakref.ref(ctx)
        except TypeError:  # a context that cannot be weakly referenced: share nothing
            return
        with self._lock:
            if self._owner is None or self._owner() is not ctx:
                self._found = {}
                self._owner = owner
            self._found[key] = found

    def __repr__(self) -> str:
        return f"Listings({sorted(self._found)})"


@dataclasses.dataclass(frozen=True)
class KubeConnection:
    """An open `ApiClient` and the typed API groups the provider uses."""

    api_client: Any
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    listings: Listings = dataclasses.field(default_factory=Listings, compare=False)
    """Listings shared within one dry-run planning pass (see `listing`)."""

    @property
    def core(self) -> Any:
        return k8s_client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> Any:
        return k8s_client.AppsV1Api(self.api_client)

    @property
    def policy(self) -> Any:
        return k8s_client.PolicyV1Api(self.api_client)

    @property
    def networking(self) -> Any:
        return k8s_client.NetworkingV1Api(self.api_client)

    @property
    def rbac(self) -> Any:
        return k8s_client.RbacAuthorizationV1Api(self.api_client)

    def call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an API method for `what` (the object, for messages); its JSON answer or None."""
        kwargs.setdefault("_request_timeout", self.request_timeout_s)
        kwargs["_preload_content"] = False
        try:
            response = method(*args, **kwargs)
        except k8s_client.ApiException as exc:
            raise translate(exc, what=what) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.ProviderRetryable(
                f"{what}: cannot reach the Kubernetes API server ({type(exc).__name__}: {exc});"
                " check the cluster is up and the kubeconfig points at it"
            ) from exc
        data = response.data
        return json.loads(data) if data else None

    def close(self) -> None:
        self.api_client.close()


def _status_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return ""
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def _status_reason(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return ""
    return str(body.get("reason") or "") if isinstance(body, dict) else ""


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def translate(exc: Any, *, what: str) -> errors.ProviderError:
    """The orchestrator error for an `ApiException` about `what`."""
    status = int(exc.status or 0)
    message = _status_message(exc)
    detail = f"{what}: {exc.reason}" + (f" ({message})" if message else "")
    if status == 404:
        return kube_errors.NotFound(detail)
    if status == 409:
        if _status_reason(exc) == "AlreadyExists":
            return kube_errors.AlreadyExists(detail)
        return kube_errors.Conflict(detail + "; re-read the object and apply the change again")
    if status == 429:
        return kube_errors.TooManyRequests(detail, delay=_retry_after(exc))
    if status == 0 or status >= 500:
        return errors.ProviderRetryable(detail, delay=_retry_after(exc))
    if status in (401, 403):
        return errors.ProviderDenied(detail)
    return errors.ProviderPermanent(detail)


def connect(environment: models.Environment) -> KubeConnection:
    """Open the cluster named by `environment.spec.kubernetes`; `ProviderPermanent` if we cannot."""
    access = environment.spec.kubernetes
    where = f"environment {environment.metadata.name}"
    if access is None:
        raise errors.ProviderPermanent(
            f"{where}: spec.kubernetes is not set; add 'kubernetes: {{kubeconfig: …}}' or"
            " 'kubernetes: {inCluster: true}' to run Kubernetes actions"
        )
    try:
        configuration = k8s_client.Configuration()
        if access.in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=str(access.kubeconfig),
                context=access.context,
                client_configuration=configuration,
                persist_config=False,
            )
        configuration.connection_pool_maxsize = max(
            POOL_MAXSIZE, configuration.connection_pool_maxsize or 0
        )
        api_client = k8s_client.ApiClient(configuration=configuration)
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        source = "the in-cluster service account" if access.in_cluster else access.kubeconfig
        raise errors.ProviderPermanent(
            f"{where}: cannot load Kubernetes access from {source}"
            + (f" (context {access.context!r})" if access.context else "")
            + f": {exc}"
        ) from exc
    return KubeConnection(api_client=api_client)


def from_context(ctx: registry.ProviderContext) -> KubeConnection:
    """The run's Kubernetes connection (opened by the registered connector)."""
    conn = ctx.connection(PROVIDER)
    if not isinstance(conn, KubeConnection):
        raise errors.ProviderPermanent(
            f"the connection registered for {PROVIDER!r} is a {type(conn).__name__}, not a"
            " KubeConnection; register orchestrator.providers.kubernetes.connection.connect"
        )
    return conn
