"""Connection: the official Kubernetes client for one Environment, and the SDK error edge.

Invariants:
- An Environment without `spec.kubernetes` has no cluster (refused, naming the fix) unless
  `--kubeconfig`/`--context` give one. Otherwise access follows kubectl (`locate`): the
  Environment's `inCluster` or `kubeconfig` (with `--kubeconfig`/`--context` applied over
  it by `overridden`), else `$KUBECONFIG` (a path list, merged as kubectl merges it: the
  first file to set a value wins), else
  `~/.kube/config`, else the in-cluster service account when in a pod. The context is the
  one named (Environment or `--context`), else the kubeconfig's current context; a context
  it lacks is `ContextNotFound` naming those it has. The process-wide default config of the
  client is never read or set. The `ApiClient`'s connection pool holds at least
  `POOL_MAXSIZE` connections (above rollback concurrency).
- Every API call goes through `KubeConnection.call`, which asks for the raw JSON answer (no
  model round-trip on reads), applies the request timeout, and maps SDK errors: 409, 429, 5xx,
  timeouts and connection errors to `ProviderRetryable` (subclasses in `kube_errors`), 404 to
  `kube_errors.NotFound`, 410 (an expired list) to `ListExpired` (retryable: list again),
  401/403 to `ProviderDenied`, other 4xx to `ProviderPermanent` naming
  the object and the reason.
- Objects travel inside this package as `KubeObject`: the API's own JSON, never modified in place.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
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
    """The listings one dry-run context has made, keyed on that context (see `listing`).

    A listing is whatever `listing` keeps of a list (immutable facts or indexes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: weakref.ReferenceType[Any] | None = None
        self._found: dict[str, object] = {}

    def get(self, ctx: object, key: str) -> object | None:
        """The listing `key` made for `ctx`, or None."""
        with self._lock:
            if self._owner is None or self._owner() is not ctx:
                return None
            return self._found.get(key)

    def put(self, ctx: object, key: str, found: object) -> None:
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
        data = self.call_raw(what, method, *args, **kwargs)
        return json.loads(data) if data else None

    def call_raw(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """`call`, but the answer's body unparsed (b"" for none); errors mapped the same."""
        kwargs.setdefault("_request_timeout", self.request_timeout_s)
        kwargs["_preload_content"] = False
        try:
            response = method(*args, **kwargs)
            data = response.data
        except k8s_client.ApiException as exc:
            raise translate(exc, what=what) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.ProviderRetryable(
                f"{what}: cannot reach the Kubernetes API server ({type(exc).__name__}: {exc});"
                " check the cluster is up and the kubeconfig points at it"
            ) from exc
        return bytes(data or b"")

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
    if status == 410:
        return ListExpired(detail + "; list again from the start")
    if status == 409:
        if _status_reason(exc) == "AlreadyExists":
            return kube_errors.AlreadyExists(detail)
        return kube_errors.Conflict(detail + "; re-read the object and apply the change again")
    if status == 429:
        return kube_errors.too_many_requests(detail, body=exc.body, retry_after=_retry_after(exc))
    if status == 0 or status >= 500:
        return errors.ProviderRetryable(detail, delay=_retry_after(exc))
    if status in (401, 403):
        return errors.ProviderDenied(detail)
    return errors.ProviderPermanent(detail)


class ListExpired(errors.ProviderRetryable):
    """410 Gone: a paginated list's snapshot (its continue token) expired; list again."""


SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
"""Where a pod's service-account token is mounted (with `KUBERNETES_SERVICE_HOST`: in a pod)."""
IN_CLUSTER_CONTEXT = "in-cluster"
"""The context name shown for in-cluster access (it has none of its own)."""


class SourceKind(enum.StrEnum):
    """Where the cluster's access came from, in kubectl's order."""

    KUBECONFIG_FILE = "kubeconfig"
    """Named by the Environment (`spec.kubernetes.kubeconfig`) or `--kubeconfig`."""
    KUBECONFIG_VARIABLE = "$KUBECONFIG"
    HOME = "~/.kube/config"
    IN_CLUSTER = "the in-cluster service account"


class ContextNotFound(errors.ProviderPermanent):
    """The kubeconfig has no such context (or no current one): invalid input, exit 3."""


@dataclasses.dataclass(frozen=True)
class KubeSource:
    """The kubeconfig file(s) and context a connection uses (no files: in-cluster)."""

    kind: SourceKind
    files: tuple[Path, ...] = ()
    context: str | None = None
    """The context asked for; None: the kubeconfig's current context."""

    def describe(self) -> str:
        if self.kind is SourceKind.IN_CLUSTER:
            return str(self.kind)
        paths = os.pathsep.join(str(f) for f in self.files)
        if self.kind is SourceKind.KUBECONFIG_VARIABLE:
            return f"{self.kind} ({paths})"
        return f"{self.kind} {paths}" if self.kind is SourceKind.KUBECONFIG_FILE else paths


@dataclasses.dataclass(frozen=True)
class KubeTarget:
    """Which cluster a connection reaches: its API server and the context that names it."""

    server: str
    context: str
    source: KubeSource


def overridden(
    environment: models.Environment, *, kubeconfig: Path | None, context: str | None
) -> models.Environment:
    """`environment` with `--kubeconfig` / `--context` in place of its own access.

    `--kubeconfig` replaces the Environment's kubeconfig (and its context: that named a
    context of the replaced file); `--context` picks a context of whichever kubeconfig
    applies. Either one turns `inCluster` off. The other `spec.kubernetes` fields stay.
    """
    if kubeconfig is None and context is None:
        return environment
    access = environment.spec.kubernetes or models.KubernetesAccess()
    changes: dict[str, object] = {"in_cluster": False}
    if kubeconfig is not None:
        changes.update(kubeconfig=kubeconfig.expanduser().resolve(), context=None)
    if context is not None:
        changes["context"] = context
    spec = environment.spec.model_copy(update={"kubernetes": access.model_copy(update=changes)})
    return environment.model_copy(update={"spec": spec})


def locate(
    access: models.KubernetesAccess | None,
    *,
    environ: Mapping[str, str],
    home: Path,
    token_file: Path = SERVICE_ACCOUNT_TOKEN,
) -> KubeSource:
    """Where to read cluster access from, as kubectl decides (nothing is read here).

    The Environment's `inCluster` or `kubeconfig`, else `$KUBECONFIG` (a path list), else
    `~/.kube/config` if it exists, else the in-cluster service account when running in a
    pod. `ProviderPermanent` naming all of these when none applies.
    """
    context = access.context if access is not None else None
    if access is not None and access.in_cluster:
        return KubeSource(kind=SourceKind.IN_CLUSTER)
    if access is not None and access.kubeconfig is not None:
        return KubeSource(
            kind=SourceKind.KUBECONFIG_FILE, files=(access.kubeconfig,), context=context
        )
    listed = tuple(
        Path(p).expanduser() for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p
    )
    if listed:
        return KubeSource(kind=SourceKind.KUBECONFIG_VARIABLE, files=listed, context=context)
    default = home / ".kube" / "config"
    if default.is_file():
        return KubeSource(kind=SourceKind.HOME, files=(default,), context=context)
    if environ.get("KUBERNETES_SERVICE_HOST") and token_file.is_file() and context is None:
        return KubeSource(kind=SourceKind.IN_CLUSTER)
    raise errors.ProviderPermanent(
        "no Kubernetes access found: the Environment names no kubeconfig, $KUBECONFIG is not"
        f" set, {default} does not exist and this is not a pod; set spec.kubernetes.kubeconfig,"
        " export KUBECONFIG or pass --kubeconfig"
    )


def _merged(source: KubeSource) -> Any:
    """The kubeconfig files merged as kubectl merges them (first file to set a value wins)."""
    merger = k8s_config.kube_config.KubeConfigMerger(os.pathsep.join(str(f) for f in source.files))
    if merger.config is None:
        raise k8s_config.ConfigException(
            "no such kubeconfig file" if len(source.files) == 1 else "none of these files exist"
        )
    first_current = next(
        (
            raw["current-context"]
            for raw in merger.config_files.values()
            if raw.get("current-context")
        ),
        None,
    )
    if first_current is not None:
        merger.config.value["current-context"] = first_current
    return merger.config


def _context_names(merged: Any) -> list[str]:
    return [str(item["name"]) for item in merged.value.get("contexts") or []]


def configure(
    environment: models.Environment,
    configuration: Any,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    token_file: Path = SERVICE_ACCOUNT_TOKEN,
) -> KubeTarget:
    """Load `environment`'s cluster access into `configuration`; the cluster it names.

    Reads `os.environ` and the home folder when not given (at call time, never at import).
    A context the kubeconfig lacks is `kube_errors.ContextNotFound`, naming those it has.
    """
    access = environment.spec.kubernetes
    where = f"environment {environment.metadata.name}"
    if access is None:
        raise errors.ProviderPermanent(
            f"{where}: spec.kubernetes is not set; add 'kubernetes: {{}}' (use $KUBECONFIG or"
            " ~/.kube/config), 'kubernetes: {kubeconfig: …}' or 'kubernetes: {inCluster: true}'"
            " to run Kubernetes actions, or pass --kubeconfig / --context"
        )
    source = locate(
        access,
        environ=os.environ if environ is None else environ,
        home=Path.home() if home is None else home,
        token_file=token_file,
    )
    try:
        if source.kind is SourceKind.IN_CLUSTER:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return KubeTarget(server=configuration.host, context=IN_CLUSTER_CONTEXT, source=source)
        merged = _merged(source)
        names = _context_names(merged)
        context = source.context or merged.value.get("current-context") or None
        if context is None or context not in names:
            asked = f"context {context!r} is not in" if context else "no current context in"
            raise ContextNotFound(
                f"{where}: {asked} {source.describe()}; contexts there:"
                f" {', '.join(names) or 'none'}"
                " (pick one with --context or spec.kubernetes.context)"
            )
        loader = k8s_config.kube_config.KubeConfigLoader(
            config_dict=merged, active_context=context, config_base_path=None
        )
        loader.load_and_set(configuration)
        _drop_idle_refresh(loader, configuration)
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        raise errors.ProviderPermanent(
            f"{where}: cannot load Kubernetes access from {source.describe()}"
            + (f" (context {source.context!r})" if source.context else "")
            + f": {exc}"
        ) from exc
    return KubeTarget(server=configuration.host, context=context, source=source)


def _drop_idle_refresh(loader: Any, configuration: Any) -> None:
    """Forget the client's token refresh hook when it could never refresh anything.

    For a kubeconfig user with a token, the client installs a hook that runs before every
    request: it reloads the credentials when they carry an expiry (exec plugins, auth
    providers) and otherwise re-applies the very same host, token and TLS settings, which
    costs about 0.15 ms a request (measured: `Configuration.auth_settings` 151 µs with the
    hook, 0.8 µs without) and is a sixth of a revert's CPU at rollback concurrency 16. A token
    without expiry is fixed once loaded (the client reads `token`/`tokenFile` only at load),
    so the hook is dropped for it; with an expiry it stays.
    """
    found = vars(loader)
    if "token" in found and "expiry" not in found:
        configuration.refresh_api_key_hook = None


def target(environment: models.Environment) -> KubeTarget:
    """The cluster a connection for `environment` would reach (reads config, calls nothing)."""
    return configure(environment, k8s_client.Configuration())


def connect(environment: models.Environment) -> KubeConnection:
    """Open the cluster `environment` names (kubectl's conventions); `ProviderPermanent` if not."""
    configuration = k8s_client.Configuration()
    configure(environment, configuration)
    configuration.connection_pool_maxsize = max(
        POOL_MAXSIZE, configuration.connection_pool_maxsize or 0
    )
    return KubeConnection(api_client=k8s_client.ApiClient(configuration=configuration))


def from_context(ctx: registry.ProviderContext) -> KubeConnection:
    """The run's Kubernetes connection (opened by the registered connector)."""
    conn = ctx.connection(PROVIDER)
    if not isinstance(conn, KubeConnection):
        raise errors.ProviderPermanent(
            f"the connection registered for {PROVIDER!r} is a {type(conn).__name__}, not a"
            " KubeConnection; register orchestrator.providers.kubernetes.connection.connect"
        )
    return conn
