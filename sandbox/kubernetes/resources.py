"""Resource types: what the sandbox serves (group, version, plural, kind, scope).

A `ResourceType` is immutable; a `ResourceRegistry` (one per store) maps plural and kind to
types and can grow at run time (custom resources).
Invariant: within a registry, (group, plural) is unique.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
READ_VERBS: tuple[str, ...] = ("get", "list", "watch")


@dataclasses.dataclass(frozen=True)
class Subresource:
    """A subresource in discovery (`pods/eviction`, `deployments/scale`), with its own kind."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One served resource: `group` is "" for the core group."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()

    @property
    def api_version(self) -> str:
        """`v1` for the core group, `group/version` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def has_subresource(self, name: str) -> bool:
        return any(sub.name == name for sub in self.subresources)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


_STATUS = Subresource("status", "", ("get", "patch", "update"))

NAMESPACES = ResourceType(
    "", "v1", "namespaces", "Namespace", False, ("ns",), subresources=(_STATUS,)
)
NODES = ResourceType("", "v1", "nodes", "Node", False, ("no",), subresources=(_STATUS,))
PODS = ResourceType(
    "",
    "v1",
    "pods",
    "Pod",
    True,
    ("po",),
    subresources=(
        _STATUS,
        Subresource("eviction", "Eviction", ("create",), group="policy", version="v1"),
    ),
)
EVENTS = ResourceType("", "v1", "events", "Event", True, ("ev",))
SERVICES = ResourceType("", "v1", "services", "Service", True, ("svc",), subresources=(_STATUS,))
SERVICE_ACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",))
CONFIG_MAPS = ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",))
_SCALE = Subresource(
    "scale", "Scale", ("get", "patch", "update"), group="autoscaling", version="v1"
)
DEPLOYMENTS = ResourceType(
    "apps", "v1", "deployments", "Deployment", True, ("deploy",), subresources=(_STATUS, _SCALE)
)
REPLICA_SETS = ResourceType(
    "apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), subresources=(_STATUS, _SCALE)
)
DAEMON_SETS = ResourceType(
    "apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), subresources=(_STATUS,)
)
STATEFUL_SETS = ResourceType(
    "apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), subresources=(_STATUS, _SCALE)
)
POD_DISRUPTION_BUDGETS = ResourceType(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "PodDisruptionBudget",
    True,
    ("pdb",),
    subresources=(_STATUS,),
)
NETWORK_POLICIES = ResourceType(
    "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)
)
ROLES = ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True)
ROLE_BINDINGS = ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True)
CLUSTER_ROLES = ResourceType(
    "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False
)
CLUSTER_ROLE_BINDINGS = ResourceType(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
)
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True)
CUSTOM_RESOURCE_DEFINITIONS = ResourceType(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
    ("crd", "crds"),
)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    NAMESPACES,
    NODES,
    PODS,
    EVENTS,
    SERVICES,
    SERVICE_ACCOUNTS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    REPLICA_SETS,
    DAEMON_SETS,
    STATEFUL_SETS,
    POD_DISRUPTION_BUDGETS,
    NETWORK_POLICIES,
    ROLES,
    ROLE_BINDINGS,
    CLUSTER_ROLES,
    CLUSTER_ROLE_BINDINGS,
    LEASES,
    CUSTOM_RESOURCE_DEFINITIONS,
)


class ResourceRegistry:
    """The types one store serves; thread-safe, grows with `register`."""

    def __init__(self, types: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str], ResourceType] = {}
        for resource in types:
            self.register(resource)

    def register(self, resource: ResourceType) -> None:
        """Add (or replace) the type served at (group, plural)."""
        with self._lock:
            self._types[(resource.group, resource.plural)] = resource

    def all(self) -> tuple[ResourceType, ...]:
        with self._lock:
            return tuple(self._types.values())

    def find(self, *, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            found = self._types.get((group, plural))
        return found if found is not None and found.version == version else None

    def by_kind(self, *, api_version: str, kind: str) -> ResourceType | None:
        for resource in self.all():
            if resource.api_version == api_version and resource.kind == kind:
                return resource
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Group name → its versions (core group under "")."""
        result: dict[str, list[str]] = {}
        for resource in self.all():
            versions = result.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
        return result
